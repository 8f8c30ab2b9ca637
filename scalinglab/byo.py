"""Bring your own data and model: what a study file's `data`/`aux`/`model` tables need before validation.

- `data = { kind = "arrays", path = "data.npz" }`: `kind` is an alias of `name`; the arrays options
  (`path`, `label_column`, `image_size`, ...) may be written in `data` itself or in `data.options`;
  a relative `path` is resolved against the study file's folder (the current directory for a preset
  or a string), so trial specs and summary.json hold the absolute path.
- `data = { kind = "indices", pool_size = N, stratify = "labels.npy", unit = "sentences" }` with
  `train.function` or `train.command`: the user's own pool and trainer; `model.family` becomes "user"
  and `train.base_dir` the study file's folder.
- `model = { factory = "pkg.mod:fn", sizes = [...] }`: family "factory"; `sys_path` records the folder
  (study file's folder, else the current directory) that holds the module, for spawned workers.
"""

from __future__ import annotations

import os
from pathlib import Path

from scalinglab.errors import UserError

ARRAY_KEYS = ("path", "label_column", "image_size", "grayscale", "dev_fraction", "test_fraction")


def _data_table(d, table: str, base: Path, where: str):
    if not isinstance(d, dict):
        return d
    d = dict(d)
    if "kind" in d:
        if "name" in d:
            raise UserError(
                f"{where}: {table}.kind: given {d['kind']!r} and name {d['name']!r}; "
                f"allowed: one of them (kind is an alias of name)"
            )
        d["name"] = d.pop("kind")
    opts = dict(d.get("options") or {}) if isinstance(d.get("options", {}), dict) else d.get("options")
    for k in ARRAY_KEYS:
        if k in d:
            if isinstance(opts, dict) and k in opts:
                raise UserError(
                    f"{where}: {table}.{k}: given both as {table}.{k} and {table}.options.{k}; allowed: one of them"
                )
            opts[k] = d.pop(k)
    if d.get("name") == "indices" and isinstance(opts, dict):  # the user's own pool (data/indices.py)
        for k in ("pool_size", "stratify", "unit"):
            if k in d:
                opts[k] = d.pop(k)
        if isinstance(opts.get("stratify"), str) and opts["stratify"]:
            p = Path(opts["stratify"]).expanduser()
            opts["stratify"] = str((p if p.is_absolute() else base / p).resolve())
    if isinstance(opts, dict):
        if d.get("name") == "arrays" and isinstance(opts.get("path"), str) and opts["path"]:
            p = Path(opts["path"]).expanduser()
            opts["path"] = str((p if p.is_absolute() else base / p).resolve())
        if opts or "options" in d:
            d["options"] = opts
    return d


def resolve(raw: dict, base_dir=None, where: str = "study") -> dict:
    """A copy of the raw study dict with aliases applied and user paths made absolute."""
    if not isinstance(raw, dict):
        return raw
    base = Path(base_dir).resolve() if base_dir is not None else Path.cwd()
    raw = dict(raw)
    for table in ("data", "aux"):
        if table in raw:
            raw[table] = _data_table(raw[table], table, base, where)
    t = raw.get("train")
    user = isinstance(t, dict) and ("function" in t or "command" in t)
    if user:  # your own trainer (train/user.py)
        raw["train"] = {**t, "base_dir": str(base)}
    d = raw.get("data")
    if user or (isinstance(d, dict) and d.get("name") == "indices"):  # (indices without a trainer: config says so)
        m = raw.get("model")
        if isinstance(m, dict) and "family" not in m and "factory" not in m:
            raw["model"] = {**m, "family": "user"}
    m = raw.get("model")
    if isinstance(m, dict) and isinstance(m.get("factory"), str):
        from scalinglab.models.factory import locate

        m = dict(m)
        m.setdefault("family", "factory")
        if "sys_path" not in m:
            m["sys_path"] = locate(m["factory"], dict.fromkeys([base, Path(os.getcwd())]))
        raw["model"] = m
    return raw
