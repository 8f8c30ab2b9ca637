"""Your own model: `model = { factory = "my_package.models:make_net", sizes = [{ width = 32 }, ...] }`.

The factory is a function `(size: dict, input_shape: tuple, n_outputs: int) -> torch.nn.Module`, called
once per trial with one of the study's size dicts. It is imported by name: "module:function" (a dotted
attribute path after the colon is allowed). The study loader records in the spec the folder the module
was found in (the study file's folder or the current directory), so spawned worker processes, which
re-import everything, find it too.

Parameters are measured (`sum(p.numel())`) and forward FLOPs per example measured with torch's
`FlopCounterMode` on one batch of zeros (2 x multiply-adds of matmuls and convolutions; elementwise ops
are not counted). The module is wrapped in `FactoryModel`, which adds the `n_params()` and
`forward_flops()` every family has.

A callable given to the Python API that cannot be imported by name (defined in `__main__`, a lambda, a
closure) is kept in this process under a token (`inprocess:<name>:<hash>`); such a study runs in this
process only (workers=1).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from pathlib import Path

import torch
from torch import nn

from scalinglab.errors import UserError

INPROCESS: dict[str, object] = {}  # token -> callable (Python API, not importable by name)
PREFIX = "inprocess:"


def _import(factory: str, sys_path=()):
    if factory.startswith(PREFIX):
        if factory not in INPROCESS:
            raise UserError(
                f"model.factory: given {factory!r}, a callable of another process; allowed: a "
                f"factory importable by name ('module:function') to run in worker processes"
            )
        return INPROCESS[factory]
    from scalinglab.usercode import import_object

    return import_object(factory, sys_path, field="model.factory")


def locate(factory: str, folders) -> list[str]:
    """The folder among `folders` (study file's folder, current directory) that holds the factory's
    top-level module, as a one-element list; [] when it is installed (importable without help)."""
    if factory.startswith(PREFIX):
        return []
    top = factory.partition(":")[0].split(".")[0]
    for f in folders:
        f = Path(f).resolve()
        if (f / f"{top}.py").exists() or (f / top).is_dir():
            return [str(f)]
    return []


def check(factory: str, sys_path=()) -> None:
    """Raise a one-line UserError when the factory cannot be imported (config time, before any write)."""
    _import(factory, sys_path)


def smoke(factory: str, size: dict, input_shape, n_outputs: int, sys_path=()) -> None:
    """Build the model once and run it on a batch of two zero inputs (study load time): a factory
    that raises, returns something other than a Module or gives outputs of the wrong shape is one
    line before anything is written, not a failure found trial by trial."""
    shape = tuple(int(d) for d in input_shape)
    what = f"model.factory: {factory} with size {size}, input shape {shape}, {n_outputs} outputs"
    try:
        net = _import(factory, sys_path)(dict(size), shape, int(n_outputs))
    except UserError:
        raise
    except Exception as e:  # the user's code: any exception is theirs to fix
        raise UserError(f"{what}: raised {type(e).__name__}: {e}") from None
    if not isinstance(net, nn.Module):
        raise UserError(f"{what}: returned a {type(net).__name__}; allowed: a torch.nn.Module")
    err = None
    net.eval()
    for dtype in (torch.float32, torch.int64):  # symbol ids (charlm) are int64
        try:
            with torch.no_grad():
                out = net(torch.zeros((2, *shape), dtype=dtype))
            break
        except Exception as e:
            err = err or e
    else:
        raise UserError(f"{what}: its forward on a batch of 2 zero inputs raised {type(err).__name__}: {err}")
    if not isinstance(out, torch.Tensor) or out.ndim < 2 or tuple(out.shape[:2]) != (2, int(n_outputs)):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(
            f"{what}: its forward on a batch of 2 returned {got}; allowed: logits of shape (2, {n_outputs}, ...)"
        )


def token_for(fn) -> tuple[str, list[str]]:
    """(factory string, sys_path) for a callable of the Python API: 'module:qualname' when it can be
    imported back by name, else an in-process token (see the module docstring)."""
    mod, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if mod and mod != "__main__" and "<" not in qual:
        try:
            m = importlib.import_module(mod)
            obj = m
            for part in qual.split("."):
                obj = getattr(obj, part)
            if obj is fn:
                root = Path(m.__file__).resolve().parents[mod.count(".")] if getattr(m, "__file__", None) else None
                return f"{mod}:{qual}", ([str(root)] if root is not None else [])
        except Exception:
            pass
    try:
        src = inspect.getsource(fn)
    except (OSError, TypeError):
        src = repr(fn)
    token = f"{PREFIX}{getattr(fn, '__name__', 'model')}:{hashlib.sha256(src.encode()).hexdigest()[:12]}"
    INPROCESS[token] = fn
    return token, []


class FactoryModel(nn.Module):
    """The user's module with measured `n_params()` and `forward_flops()`."""

    def __init__(self, net: nn.Module, input_shape, input_dtype=torch.float32):
        super().__init__()
        self.net, self.input_shape, self.input_dtype = net, tuple(input_shape), input_dtype
        self._flops = None

    def forward(self, x):
        return self.net(x)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def forward_flops(self) -> int:
        if self._flops is None:
            from torch.utils.flop_counter import FlopCounterMode

            batch = 2  # per example = total / batch (a batch of 2 keeps batch-norm layers working)
            p = next(self.net.parameters(), None)
            dev = p.device if p is not None else "cpu"
            was = self.net.training
            self.net.eval()  # no batch-norm statistics updated, no dropout drawn from the RNG
            try:
                # float inputs first; symbol ids (charlm) are int64 and fail in a float embedding lookup
                for dtype in dict.fromkeys((self.input_dtype, torch.int64)):
                    try:
                        with torch.no_grad(), FlopCounterMode(display=False) as fc:
                            self.net(torch.zeros((batch, *self.input_shape), dtype=dtype, device=dev))
                        break
                    except (RuntimeError, TypeError):
                        if dtype == torch.int64:
                            raise
            finally:
                self.net.train(was)
            self._flops = round(fc.get_total_flops() / batch)
        return self._flops


def build(factory: str, size: dict, input_shape, n_outputs: int, sys_path=(), input_dtype=torch.float32):
    fn = _import(factory, sys_path)
    net = fn(dict(size), tuple(input_shape), int(n_outputs))
    if not isinstance(net, nn.Module):
        raise TypeError(f"model factory {factory!r} returned a {type(net).__name__}; it must return a torch.nn.Module")
    return FactoryModel(net, input_shape, input_dtype)
