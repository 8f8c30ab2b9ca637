"""The results store: one SQLite file per study folder (`results.sqlite`)."""

from scalinglab.store.sqlite import Store, load_results

__all__ = ["Store", "load_results"]
