"""Whole-or-nothing file writes, safe with several writers on one folder."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Write `path` whole or not at all: `write(tmp)` fills a temporary file beside it, which then
    replaces `path` (a rename, atomic on one filesystem). The temporary name is unique to this process
    and thread, so concurrent runs into one folder never write into each other's file; it is removed
    if anything fails. The suffix is kept (`np.savez` and the like look at it)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
