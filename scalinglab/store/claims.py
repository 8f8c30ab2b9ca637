"""Several runs of one study on one store share the work: claimed trials with heartbeats.

As Optuna's RDB storage does it: each run registers in the `runners` table and beats every
`HEARTBEAT_S` seconds from a thread of its own. Before it trains a unit of trials it claims them, in one
IMMEDIATE transaction: a trial is free when no finished row holds it and nobody alive claims it. A run
is alive while it beats within `GRACE_S` (on the same host: while its pid exists, so a rerun after
`kill -9` takes its own dead claims at once instead of waiting out the grace).

Claims only decide who trains what; the store's primary key still makes a duplicate row impossible.
The worst a stalled heartbeat can do is have one trial trained twice, never stored twice.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable

from scalinglab.store.sqlite import Store, _retry

HEARTBEAT_S = 5.0
# A run that has not beaten for this long is dead (kill -9 on another machine); its claims are free.
GRACE_S = float(os.environ.get("SCALINGLAB_CLAIM_GRACE_S", 30.0))
CHUNK = 500  # ids per IN (...) query, well under SQLite's variable limit


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def live_runs(store: Store, study: str, *, grace_s: float = GRACE_S) -> list[dict]:
    """The runs of `study` alive on `store` now, each with how many trials it has claimed (read-only;
    a store from before claims has none)."""
    here, now = socket.gethostname(), time.time()
    try:
        rows = store.conn.execute(
            "SELECT r.owner, r.host, r.pid, r.heartbeat, (SELECT count(*) FROM claims c WHERE c.owner = r.owner) "
            "FROM runners r WHERE r.study = ?",
            (study,),
        ).fetchall()
    except sqlite3.OperationalError:  # no such table
        return []
    return [
        {"host": host, "pid": pid, "heartbeat_age_s": now - beat, "claimed": n}
        for owner, host, pid, beat, n in rows
        if beat >= now - grace_s and (host != here or _pid_alive(pid))
    ]


class Claims:
    """Claims of one run on `store`, used as a context manager (registers, beats, and on exit releases
    everything it still holds)."""

    def __init__(self, store: Store, study: str, *, heartbeat_s: float = HEARTBEAT_S, grace_s: float = GRACE_S):
        self.store, self.study = store, study
        self.heartbeat_s, self.grace_s = heartbeat_s, grace_s
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.owner = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.last_live = 1  # runs alive at the last `take` (this one included)
        self._stop = threading.Event()
        self._thread = None

    # --- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> Claims:
        self._beat(self.store.conn)
        self._thread = threading.Thread(target=self._beating, name="scalinglab-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        conn = self.store.conn
        # Best effort: a run ending on a full disk keeps its own error; claims left behind free
        # themselves (its pid is gone, its heartbeat stops).
        with contextlib.suppress(sqlite3.Error):
            _retry(lambda: conn.execute("DELETE FROM claims WHERE owner=?", (self.owner,)))
            _retry(lambda: conn.execute("DELETE FROM runners WHERE owner=?", (self.owner,)))

    def _beat(self, conn: sqlite3.Connection) -> None:
        now = time.time()
        _retry(
            lambda: conn.execute(
                "INSERT INTO runners(owner, study, host, pid, started_at, heartbeat) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(owner) DO UPDATE SET heartbeat=excluded.heartbeat",
                (self.owner, self.study, self.host, self.pid, now, now),
            )
        )

    def _beating(self) -> None:
        # its own connection: sqlite3 connections are not shared between threads
        conn = sqlite3.connect(self.store.path, timeout=30, isolation_level=None)
        try:
            while not self._stop.wait(self.heartbeat_s):
                try:
                    self._beat(conn)
                except sqlite3.Error:  # a full disk, say: the run itself will say so; keep trying
                    pass
        finally:
            conn.close()

    # --- claiming --------------------------------------------------------------------------------
    def _live(self, conn: sqlite3.Connection, now: float) -> set[str]:
        live = set()
        for owner, host, pid, beat in conn.execute("SELECT owner, host, pid, heartbeat FROM runners"):
            if owner == self.owner or (beat >= now - self.grace_s and (host != self.host or _pid_alive(pid))):
                live.add(owner)
        return live

    def live_runners(self) -> int:
        """How many runs (this one included) are alive on the store now."""
        return len(self._live(self.store.conn, time.time()) | {self.owner})

    def take(
        self, ids: list[str], pick: Callable[[list[str], int], list[str]], *, retry_failed: bool = False
    ) -> list[str]:
        """Claim some of `ids` (in plan order): the free ones are passed to `pick(free, n_live)`, which
        chooses the share to claim now; returns the claimed ids ([] when all are done or claimed by
        live runs). A stored failed trial counts as free only with `retry_failed`."""
        conn = self.store.conn

        def txn():
            conn.execute("BEGIN IMMEDIATE")  # one claimer at a time: no two runs take the same trial
            try:
                now = time.time()
                live = self._live(conn, now)
                done, held = set(), {}
                for i in range(0, len(ids), CHUNK):
                    part = ids[i : i + CHUNK]
                    marks = ",".join("?" * len(part))
                    for tid, status in conn.execute(f"SELECT id, status FROM trials WHERE id IN ({marks})", part):
                        if status != "failed" or not retry_failed:
                            done.add(tid)
                    held.update(conn.execute(f"SELECT id, owner FROM claims WHERE id IN ({marks})", part))
                taken = {i for i, owner in held.items() if owner != self.owner and owner in live}
                free = [i for i in ids if i not in done and i not in taken]
                self.last_live = len(live)
                chosen = pick(free, len(live)) if free else []
                conn.executemany(
                    "INSERT OR REPLACE INTO claims(id, owner, claimed_at) VALUES (?,?,?)",
                    [(i, self.owner, now) for i in chosen],
                )
                conn.execute("COMMIT")
                return chosen
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        return _retry(txn)

    def release(self, tid: str) -> None:
        """The trial is stored (or given up): nobody needs to wait for it."""
        _retry(lambda: self.store.conn.execute("DELETE FROM claims WHERE id=? AND owner=?", (tid, self.owner)))
