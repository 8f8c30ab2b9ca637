"""Execution backends. They only decide *where* `run_trial` runs; they never write the store.

Interface: `backend.map(specs, device) -> iterator of (spec, result)` in completion order.
"""

from scalinglab.backends.local import InProcessBackend, ProcessPoolBackend, make_backend

__all__ = ["InProcessBackend", "ProcessPoolBackend", "make_backend"]
