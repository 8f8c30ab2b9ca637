"""SQLite store of trials: crash-safe, resumable, readable as a DataFrame.

- WAL journal and a busy timeout, so several processes can write one store (each write is a short
  transaction, retried on `database is locked`).
- A trial's primary key is the hash of its spec (`trial_id`): inserting a finished trial twice is a
  no-op, so a resumed or concurrent run never duplicates a row.
- Each finished trial is committed before the next is started (`add` commits), so `kill -9` loses at
  most the trial in flight.
- Runs on one store share the work through claimed trials with heartbeats (store/claims.py).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    id TEXT PRIMARY KEY,
    study TEXT NOT NULL,
    status TEXT NOT NULL,            -- ok | diverged | failed
    data_size INTEGER NOT NULL,
    model_size TEXT NOT NULL,        -- JSON of the size knobs, e.g. {"width": 128, "depth": 2}
    seed INTEGER NOT NULL,
    min_dev_error REAL,
    best_epoch INTEGER,
    epochs INTEGER,
    final_train_error REAL,
    test_error REAL,
    params INTEGER,
    train_flops_per_example REAL,
    train_flops REAL,
    wall_time REAL,
    device TEXT,
    error TEXT,
    spec TEXT NOT NULL,              -- JSON: the full trial spec (its hash is the id)
    result TEXT NOT NULL,            -- JSON: the full result, history included
    tags TEXT NOT NULL DEFAULT '{}', -- JSON: search bookkeeping (stage, candidate, factor level)
    finished_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS trials_study ON trials(study);
-- The trials that make up each study as last configured: a folder can also hold trials of an
-- earlier configuration (changed epochs, say), which must not count in its summary or report.
CREATE TABLE IF NOT EXISTS study_trials (
    study TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (study, id)
);
CREATE TABLE IF NOT EXISTS studies (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,            -- JSON of the study as run
    source TEXT,
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    info TEXT NOT NULL DEFAULT '{}'  -- JSON: machine, versions, wall time
);
-- Runs sharing one store (store/claims.py): each run beats in `runners`; a trial it is training is
-- claimed in `claims`, so the other runs leave it alone while the claimer is alive.
CREATE TABLE IF NOT EXISTS runners (
    owner TEXT PRIMARY KEY,          -- host:pid:random, one per run
    study TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    heartbeat REAL NOT NULL
);
-- The forecast ledger (analysis/backtest.py): each run's summary forecasts, scored by later runs.
CREATE TABLE IF NOT EXISTS forecasts (
    study TEXT NOT NULL,
    basis TEXT NOT NULL,             -- JSON [[data size, error], ...]: the points it was made from
    data_size INTEGER NOT NULL,
    value REAL NOT NULL,
    lo REAL NOT NULL,
    hi REAL NOT NULL,
    form TEXT,
    made_at REAL NOT NULL,
    PRIMARY KEY (study, basis, data_size)
);
CREATE TABLE IF NOT EXISTS claims (
    id TEXT PRIMARY KEY,             -- a trial id
    owner TEXT NOT NULL,
    claimed_at REAL NOT NULL
);
"""

_COLUMNS = [
    "id",
    "study",
    "status",
    "data_size",
    "model_size",
    "seed",
    "min_dev_error",
    "best_epoch",
    "epochs",
    "final_train_error",
    "test_error",
    "params",
    "train_flops_per_example",
    "train_flops",
    "wall_time",
    "device",
    "error",
    "spec",
    "result",
    "tags",
    "finished_at",
]


def _retry(fn, tries: int = 50):
    """Run a write, retrying while another process holds the lock (beyond the busy timeout)."""
    for i in range(tries):
        try:
            return fn()
        except sqlite3.OperationalError as e:
            if ("locked" not in str(e) and "busy" not in str(e)) or i == tries - 1:
                raise
            time.sleep(0.05 * (1 + i % 10))


def _remove_made(made: list[Path]) -> None:
    """Remove the store file (and its -wal/-shm) and the folders that one Store() call created."""
    import contextlib

    for p in made:  # the file first, then its folders, innermost first
        with contextlib.suppress(OSError):
            if p.suffix == ".sqlite":
                for q in (p, p.with_name(p.name + "-wal"), p.with_name(p.name + "-shm")):
                    q.unlink(missing_ok=True)
            else:
                p.rmdir()


def _connect_ro(path: Path) -> sqlite3.Connection:
    """Open `path` read-only. Reading a WAL database needs its -shm file; in a read-only folder, where
    none can be made, it is opened as immutable (nobody can be writing it there)."""
    uri = path.resolve().as_uri()
    for mode in ("mode=ro", "immutable=1"):
        conn = sqlite3.connect(f"{uri}?{mode}", uri=True, timeout=30)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
            if mode == "immutable=1":
                raise


class Store:
    FILENAME = "results.sqlite"

    def __init__(self, path: str | Path, *, readonly: bool = False):
        """readonly: open the file as it is (`mode=ro`: nothing created, no schema added), as the
        reading commands (status, export, report --stdout, diagnose, plan) do, so they work on a
        read-only folder and never add our tables to someone else's database."""
        from scalinglab.errors import UserError

        path = Path(path)
        self.path = path / self.FILENAME if path.suffix != ".sqlite" else path
        self.readonly, self.conn = readonly, None
        made = [] if readonly else [p for p in (self.path, *self.path.parents) if not p.exists()]
        try:
            if readonly:
                self.conn = _connect_ro(self.path)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)  # autocommit; explicit txns
            # Retried while locked: runs started together on one new folder race to create it, and
            # switching to WAL can answer "database is locked" at once instead of waiting.
            _retry(self._check_ours)
            if not readonly:
                self.conn.execute("PRAGMA busy_timeout=30000")
                _retry(lambda: self.conn.execute("PRAGMA journal_mode=WAL"))
                self.conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across process crashes
                # one transaction: a run opening the folder at the same moment sees all our tables or none
                _retry(lambda: self.conn.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}\nCOMMIT;"))
        except sqlite3.DatabaseError as e:  # corrupt, not a database, read-only, disk full
            if self.conn is not None:
                self.conn.close()
            _remove_made(made)  # nothing partial: a store this call began and could not finish goes
            raise UserError(
                f"{self.path}: cannot {'read' if readonly else 'open'} the results store ({e}); "
                f"allowed: a scalinglab results.sqlite in a writable folder (or a folder without "
                f"one; choose it with --out)"
            ) from None
        except OSError as e:
            _remove_made(made)
            raise UserError(
                f"{self.path.parent}: cannot create the output folder ({e.strerror or e}); "
                f"allowed: a writable folder (choose it with --out)"
            ) from None

    def _check_ours(self) -> None:
        """A database with tables but not ours is someone else's: refuse it, untouched."""
        from scalinglab.errors import UserError

        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        problem = None
        if tables and not {"trials", "studies", "study_trials"} <= tables:
            problem = f"it holds the tables {', '.join(sorted(tables))}"
        elif tables:
            cols = {r[1] for r in self.conn.execute("PRAGMA table_info(trials)")}
            if not set(_COLUMNS) <= cols:
                problem = f"its trials table lacks {', '.join(sorted(set(_COLUMNS) - cols))}"
        elif self.readonly:
            problem = "it is empty"
        if problem:
            self.conn.close()
            raise UserError(
                f"{self.path}: not a scalinglab results store ({problem}); allowed: a "
                f"results.sqlite written by scalinglab (for a run: choose another folder with --out)"
            )

    @classmethod
    def open_existing(cls, folder: str | Path, *, readonly: bool = True) -> Store:
        """An existing store, by default read-only (see __init__)."""
        from scalinglab.errors import UserError

        p = Path(folder)
        f = p if p.suffix == ".sqlite" else p / cls.FILENAME
        if not f.is_file():
            what = f"{f.name} is not a file" if f.exists() else f"no {cls.FILENAME} here"
            raise UserError(f"{folder}: {what}; give a study output folder (e.g. runs/smoke)")
        return cls(p, readonly=readonly)

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- studies ---------------------------------------------------------------------------------
    def begin_study(self, name: str, config: dict, source: str = "", info: dict | None = None):
        now = time.time()

        def write():
            self.conn.execute(
                "INSERT INTO studies(name, config, source, started_at, updated_at, info) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET config=excluded.config, source=excluded.source, "
                "updated_at=excluded.updated_at",
                (name, json.dumps(config), source, now, now, json.dumps(info or {})),
            )

        _retry(write)

    def update_study_info(self, name: str, **info):
        row = self.conn.execute("SELECT info FROM studies WHERE name=?", (name,)).fetchone()
        merged = {**(json.loads(row[0]) if row else {}), **info}
        _retry(
            lambda: self.conn.execute(
                "UPDATE studies SET info=?, updated_at=? WHERE name=?", (json.dumps(merged), time.time(), name)
            )
        )

    def studies(self) -> list[dict]:
        rows = self.conn.execute("SELECT name, config, source, started_at, updated_at, info FROM studies").fetchall()
        return [
            {
                "name": r[0],
                "config": json.loads(r[1]),
                "source": r[2],
                "started_at": r[3],
                "updated_at": r[4],
                "info": json.loads(r[5]),
            }
            for r in rows
        ]

    # --- trials ----------------------------------------------------------------------------------
    def add(self, study: str, spec: dict, result: dict, tags: dict | None = None) -> bool:
        """Commit one finished trial. Returns False if it was already there (no duplicate row).

        A stored trial whose status is "failed" (an exception, a lost worker: not a result about the
        model) is replaced by a new result of the same trial: that is how `--retry-failed` reruns it.
        Any other stored trial is kept as it is."""
        row = {
            "id": result["id"],
            "study": study,
            "status": result["status"],
            "data_size": spec["data_size"],
            "model_size": json.dumps(spec["model"]["size"], sort_keys=True),
            "seed": spec["seed"],
            "spec": json.dumps(spec, sort_keys=True),
            "result": json.dumps(result),
            "tags": json.dumps(tags or {}, sort_keys=True),
            "finished_at": time.time(),
        }
        for k in (
            "min_dev_error",
            "best_epoch",
            "epochs",
            "final_train_error",
            "test_error",
            "params",
            "train_flops_per_example",
            "train_flops",
            "wall_time",
            "device",
            "error",
        ):
            row[k] = result.get(k)
        sql = (
            f"INSERT INTO trials({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
            f"ON CONFLICT(id) DO UPDATE SET {', '.join(f'{c}=excluded.{c}' for c in _COLUMNS[1:])} "
            "WHERE trials.status = 'failed'"
        )
        cur = _retry(lambda: self.conn.execute(sql, [row[c] for c in _COLUMNS]))
        return cur.rowcount == 1

    def result_index(self, study: str | None = None) -> dict[str, dict]:
        """trial id -> the columns a search decides on, for every finished trial."""
        q = "SELECT id, status, min_dev_error, final_train_error, params FROM trials" + (
            " WHERE study=?" if study else ""
        )
        return {
            r[0]: {"status": r[1], "min_dev_error": r[2], "final_train_error": r[3], "params": r[4]}
            for r in self.conn.execute(q, (study,) if study else ())
        }

    def set_current(self, study: str, ids) -> None:
        """Record which trials make up `study` as configured now (replaces the previous set)."""

        def write():
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.execute("DELETE FROM study_trials WHERE study=?", (study,))
                self.conn.executemany(
                    "INSERT OR IGNORE INTO study_trials(study, id) VALUES (?, ?)", [(study, i) for i in ids]
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

        _retry(write)

    # --- the forecast ledger -------------------------------------------------------------------
    def add_forecasts(self, study: str, entries: list[dict]) -> None:
        """Keep a summary's forecasts (analysis/backtest.ledger_entries); the same forecast from the same
        points is kept once, with the time it was first made."""
        now = time.time()
        rows = [
            (study, json.dumps(e["basis"]), e["data_size"], e["value"], e["lo"], e["hi"], e["form"], now)
            for e in entries
        ]
        _retry(lambda: self.conn.executemany("INSERT OR IGNORE INTO forecasts VALUES (?,?,?,?,?,?,?,?)", rows))

    def forecasts(self, study: str) -> list[dict]:
        """The stored forecasts of `study` (none in a store from before the ledger)."""
        try:
            rows = self.conn.execute(
                "SELECT basis, data_size, value, lo, hi, form, made_at FROM forecasts WHERE study=? ORDER BY made_at",
                (study,),
            ).fetchall()
        except sqlite3.OperationalError:  # a read-only store written before the ledger existed
            return []
        keys = ("basis", "data_size", "value", "lo", "hi", "form", "made_at")
        return [{**dict(zip(keys, r)), "basis": json.loads(r[0])} for r in rows]

    def count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]

    def frame(self, study: str | None = None, *, with_json: bool = False):
        """All trials as a pandas DataFrame, one row per trial (`model_size` knobs as columns)."""
        import pandas as pd

        q = "SELECT * FROM trials"
        if study:
            # Only the study's current trials, when the runner has recorded them (see study_trials).
            q += (
                " WHERE study=? AND (id IN (SELECT id FROM study_trials WHERE study=?) OR NOT EXISTS "
                "(SELECT 1 FROM study_trials WHERE study=?))"
            )
        q += " ORDER BY finished_at, id"
        df = pd.read_sql_query(q, self.conn, params=(study,) * 3 if study else None)
        sizes = pd.DataFrame([json.loads(s) for s in df["model_size"]], index=df.index)
        tags = pd.DataFrame([json.loads(s) for s in df["tags"]], index=df.index)
        specs = [json.loads(s) for s in df["spec"]]
        # A candidate is everything in the spec but the seed and the data size.
        hp = pd.DataFrame(
            [
                {
                    "lr": sp["train"].get("lr"),
                    "weight_decay": sp["train"].get("weight_decay"),
                    "optimizer": sp["train"].get("optimizer"),
                    "batchnorm": sp["model"].get("batchnorm", False),
                    "config": json.dumps(
                        {k: v for k, v in sp.items() if k not in ("seed", "data_size")}, sort_keys=True
                    ),
                }
                for sp in specs
            ],
            index=df.index,
            columns=["lr", "weight_decay", "optimizer", "batchnorm", "config"],
        )
        df = pd.concat([df, hp, sizes.add_prefix("size_"), tags.add_prefix("tag_")], axis=1)
        if not with_json:
            df = df.drop(columns=["spec", "result", "tags"])
        return df


def load_results(folder: str | Path, study: str | None = None):
    """Every trial of a study folder as a pandas DataFrame (one row per trial)."""
    with Store.open_existing(folder) as s:
        return s.frame(study)
