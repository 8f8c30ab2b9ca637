"""Importing the user's code by name ("module:function"): model factories and trainer functions.

A module that lives in the study file's folder is loaded from that file, under its own name, and the
folder is *appended* to `sys.path` (so the module's own `import helpers` finds its siblings, while an
installed package always wins over a same-named file). A file there named like an installed module
(`pandas.py`) is refused instead of being executed in its place: putting the folder at the front of
`sys.path`, as we once did, ran such a file whenever scalinglab later imported the real package.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

from scalinglab.errors import UserError


def _local_file(top: str, folders) -> Path | None:
    for f in folders:
        f = Path(f)
        for p in (f / f"{top}.py", f / top / "__init__.py"):
            if p.exists():
                return p.resolve()
    return None


_OURS: dict[str, Path] = {}  # modules this process loaded from study folders, by name
_APPENDED: set[str] = set()  # study folders this process appended to sys.path


def _load_local(top: str, path: Path, field: str, ref: str):
    existing = sys.modules.get(top)
    if existing is not None and _OURS.get(top) != path and top in _OURS:
        existing = None  # another study folder's module of the same name (one process, several studies)
        for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
            del sys.modules[name]
    if existing is not None:
        if Path(getattr(existing, "__file__", "") or "").resolve() == path:
            return existing
        raise UserError(
            f"{field}: given {ref!r}; {path} is named like the module {top!r} that is already "
            f"imported from {getattr(existing, '__file__', 'built-in')}; allowed: rename your file"
        )
    # what `import top` gives without any study folder (those we appended to sys.path)
    other = importlib.machinery.PathFinder.find_spec(
        top, [p for p in sys.path if p not in _APPENDED]
    )  # what `import top` gives without the study folder
    if other is not None and other.origin and Path(other.origin).resolve() != path:
        raise UserError(
            f"{field}: given {ref!r}; {path} is named like the installed module {top!r} "
            f"({other.origin}); allowed: rename your file so it does not shadow it"
        )
    pkg = path.name == "__init__.py"
    spec = importlib.util.spec_from_file_location(
        top, path, submodule_search_locations=[str(path.parent)] if pkg else None
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[top] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(top, None)
        raise
    _OURS[top] = path
    return module


def import_object(ref: str, folders=(), field: str = "function"):
    """The object named by `ref` ("module:attr", attr may be dotted), looked up first in `folders`.

    Raises a one-line UserError naming `field` for a malformed name, a module that fails to import,
    a missing attribute or an object that is not callable."""
    mod_name, sep, attr = ref.partition(":")
    if not sep or not mod_name or not attr:
        raise UserError(f"{field}: given {ref!r}; allowed: 'module:function', e.g. 'my_train:train'")
    folders = [str(Path(f).resolve()) for f in folders]
    top = mod_name.split(".")[0]
    try:
        local = _local_file(top, folders)
        if local is not None:
            for f in folders:
                if f not in sys.path:
                    sys.path.append(f)
                    _APPENDED.add(f)
            _load_local(top, local, field, ref)
        obj = importlib.import_module(mod_name)
    except UserError:
        raise
    except BaseException as e:  # ImportError, or anything the user's module raises on import
        if isinstance(e, KeyboardInterrupt):
            raise
        raise UserError(
            f"{field}: given {ref!r}; importing {mod_name!r} failed ({type(e).__name__}: {e}); "
            f"searched {', '.join(folders) or 'sys.path'}"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserError(f"{field}: given {ref!r}; module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UserError(f"{field}: given {ref!r}; {attr!r} is a {type(obj).__name__}, not callable")
    return obj
