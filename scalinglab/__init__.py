"""scalinglab: measure learning curves and model-size laws, fit them with honest uncertainty, decide.

Python API (the CLI is a thin layer over it):
    scalinglab.load_results(dir)           # every trial of a study folder as a DataFrame
    scalinglab.fit_curve(x, y, form="auto")  # a learning-curve fit with intervals
    scalinglab.fit_joint(N, D, L)          # L(N, D) = E + A/N^alpha + B/D^beta
    scalinglab.run("smoke", out="runs/smoke")  # a preset or study file, as `scalinglab run`
    scalinglab.StudyResult("runs/smoke")   # a study folder's trials, summary and fits (notebook display)
    scalinglab.Study(data=(x, y), model=make_net, sizes=[...], model_sizes=[...]).run()  # your own data/model
"""

__version__ = "0.1.0"

from scalinglab.errors import UserError
from scalinglab.store import load_results


def __getattr__(name):
    # The fitting engine and study API are imported on first use: `import scalinglab` stays light.
    if name in ("fit_curve", "fit_joint", "fit_model_size"):
        from scalinglab import fit

        return getattr(fit, name)
    if name == "load_study":
        from scalinglab import config

        return config.load_study
    if name in ("run", "StudyResult"):  # run a preset or study file from Python; a study folder's results
        from scalinglab import api

        return getattr(api, name)
    if name == "Study":  # the scikit-learn-style API (scalinglab/api.py); the config class is config.Study
        from scalinglab.api import Study

        return Study
    raise AttributeError(f"module 'scalinglab' has no attribute {name!r}")


__all__ = [
    "Study",
    "StudyResult",
    "UserError",
    "__version__",
    "fit_curve",
    "fit_joint",
    "fit_model_size",
    "load_results",
    "load_study",
    "run",
]
