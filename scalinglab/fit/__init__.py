"""Fitting engine of scalinglab: scaling laws with honest uncertainty (pure NumPy / SciPy).

from scalinglab.fit import fit_curve
res = fit_curve(x, err, form="auto")      # choose the law by extrapolation
print(res.report()); res.predict([1e7], interval=0.9)
"""

from scalinglab.fit.curve import fit_curve, fit_model_size
from scalinglab.fit.engine import FitError
from scalinglab.fit.joint import JointFit, fit_joint
from scalinglab.fit.laws import CURVE_FORMS, LAWS
from scalinglab.fit.result import CurveFit, Prediction

__all__ = [
    "CURVE_FORMS",
    "LAWS",
    "CurveFit",
    "FitError",
    "JointFit",
    "Prediction",
    "fit_curve",
    "fit_joint",
    "fit_model_size",
]
