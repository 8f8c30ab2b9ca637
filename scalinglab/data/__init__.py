"""Data sets by name, and the nested subsets a study trains on.

`load(name, options)` returns a `Dataset` with a train pool and disjoint dev and test sets.
"""

# Importing the modules registers their data sets (arrays: your own data; charlm: the character LM;
# speech and translation: Hestness' other two domains; glyphs: 2-D images for a ResNet; parity: the
# depth-vs-width question).
from scalinglab.data import arrays, charlm, digits, glyphs, mnist1d_data, parity, speech, teacher, translation
from scalinglab.data.registry import DATASETS, Dataset, load, pool_size, register
from scalinglab.data.subsets import nested_sizes, stratified_order

__all__ = ["DATASETS", "Dataset", "load", "nested_sizes", "pool_size", "register", "stratified_order"]
