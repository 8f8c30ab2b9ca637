"""fit_curve(form=[...]) chooses among the listed forms by backtest, like auto."""

import numpy as np
import pytest

from scalinglab.errors import UserError
from scalinglab.fit import fit_curve


def test_form_list_chooses_and_reports_scores():
    x = np.geomspace(50, 50 * 2**11, 12)
    rng = np.random.default_rng(0)
    y = (0.8 * x**-0.3 + 0.1) * (1 + 0.01 * rng.standard_normal(x.size))
    f = fit_curve(x, y, form=["m4", "pow_c"], y0=0.75, n_boot=100)
    assert f.form in ("m4", "pow_c") and set(f.scores) == {"m4", "pow_c"}
    assert f.regions["floor_ci"][0] <= 0.1 <= f.regions["floor_ci"][1] + 0.01
    with pytest.raises(UserError, match="form"):
        fit_curve(x, y, form=["nope"])
