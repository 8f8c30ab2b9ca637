import os
import textwrap
from pathlib import Path

import pytest
import torch

# One torch thread per process: small models train fastest that way, and the suite shares 2 cores.
torch.set_num_threads(1)

# Cache generated data sets inside the test session (never in the user's home in CI).
os.environ.setdefault("SCALINGLAB_CACHE", str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "data"))

TINY = textwrap.dedent("""
    name = "tiny"
    description = "tiny teacher-student study for tests"
    seeds = 2

    [data]
    name = "teacher"
    options = {{ n_train = 2000, n_dev = 500, n_test = 500, dim = 8, hidden = 16, n_classes = 3, noise = 0.1 }}
    sizes = {{ min = 32, max = 512, factor = 2 }}

    [model]
    family = "mlp"
    widths = [8, 32]
    depths = [1]

    [train]
    lr = 0.01
    batch_size = 64
    max_epochs = {epochs}
    patience = 4
    min_steps_per_epoch = 5
""")


@pytest.fixture
def tiny_study(tmp_path):
    """Path of a tiny study file: 5 sizes x 2 widths x 2 seeds = 20 trials of a few 100 ms."""
    p = tmp_path / "tiny.toml"
    p.write_text(TINY.format(epochs=15))
    return p


def write_study(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The smoke preset run once per test session (~8 s on a CPU core): a StudyResult with
    results.sqlite, summary.json and report.html in `.out`."""
    import scalinglab

    return scalinglab.run("smoke", out=tmp_path_factory.mktemp("smoke"))
