"""Short fits of every GLMM family recover the truth they were simulated from (tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import GLMM_MODELS, GLMM_TRUTH

# the gamma's and negative binomial's mean is exp(eta + 1) (conftest.glmm_data)
SHIFT = {"negbinomial": 1.0, "gamma": 1.0}


@pytest.mark.parametrize("name", list(GLMM_MODELS))
def test_each_family_recovers_its_simulated_truth(glmm_fits, name):
    fit = glmm_fits[name]
    # 240 rows in 40 groups: within 4 posterior SDs of the truth, a generous interval that a
    # wrong likelihood (a missing offset, trials or weights; a link or shape mixed up) leaves
    fx = fit.fixef()
    truth = {"(Intercept)": GLMM_TRUTH["(Intercept)"] + SHIFT.get(name, 0.0), "x": GLMM_TRUTH["x"]}
    for term, value in truth.items():
        est, se = fx.loc[term, "Estimate"], fx.loc[term, "Est.Error"]
        assert abs(est - value) < 4 * se, (term, est, se, value)
    sd = fit._flat("sd_g")[:, 0]
    assert abs(sd.mean() - GLMM_TRUTH["sd"]) < 4 * sd.std()
    disp = fit.design.family.dispersion
    if disp is not None:
        # the shape (or sigma) on the log scale, where its posterior is near normal
        draws = np.log(fit._flat(disp))
        assert abs(draws.mean() - np.log(GLMM_TRUTH[disp])) < 4 * draws.std(), disp
    d = fit.diagnostics()
    assert d.max_rhat < 1.05 and d.min_ess_bulk > 100


def test_a_gaussian_with_weights_and_an_offset_integrates_its_effects_out(glmm_fits):
    # the marginal kernel reads the rows scaled by sqrt(w), less the offset: chosen as for any
    # one-factor Gaussian model, and the effects drawn after it recover the truth above
    fit = glmm_fits["gaussian weights offset"]
    assert fit.info.marginal and fit.info.collapsed is None
