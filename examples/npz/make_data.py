"""Write data.npz next to this file: a small 3-class problem (x: 2000 x 16 float32, y: labels 0..2).

    python examples/npz/make_data.py && scalinglab run examples/npz/study.toml --out runs/npz

Your own file only needs arrays `x` (examples, features...) and `y` (one label per example); add
`x_dev`, `y_dev`, `x_test`, `y_test` to fix the dev and test sets (else they are split off, stratified).
"""

from pathlib import Path

import numpy as np

rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 16)).astype(np.float32)
w = rng.normal(size=(16, 3))
y = np.argmax(np.tanh(x @ w) + 0.3 * rng.normal(size=(2000, 3)), axis=1)  # a little label noise
out = Path(__file__).resolve().parent / "data.npz"
np.savez(out, x=x, y=y)  # plain arrays: scalinglab reads them with allow_pickle=False
print(f"wrote {out} ({out.stat().st_size // 1024} KB)")
