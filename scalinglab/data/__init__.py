"""Data sets by name, and the nested subsets a study trains on.

`load(name, options)` returns a `Dataset` with a train pool and disjoint dev and test sets.
"""

from scalinglab.data.registry import DATASETS, Dataset, load, pool_size, register
from scalinglab.data.subsets import nested_sizes, stratified_order

# Importing the modules registers their data sets.
from scalinglab.data import digits, mnist1d_data, teacher  # noqa: F401,E402
from scalinglab.data import arrays, charlm  # noqa: F401,E402  (your own data; character LM)

__all__ = ["DATASETS", "Dataset", "load", "pool_size", "register", "nested_sizes", "stratified_order"]
