"""The toolkit's methods on the fits hand over to their modules, with the same results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.report.effects import conditional_effects
from hierbayes.report.emmeans import emmeans
from hierbayes.report.equation import equation
from hierbayes.report.hypothesis import hypothesis
from hierbayes.report.r2 import bayes_r2
from hierbayes.report.sensitivity import prior_sensitivity


def test_bayes_methods(sleep_fit):
    pd.testing.assert_frame_equal(sleep_fit.hypothesis("Days > 5").frame,
                                  hypothesis(sleep_fit, "Days > 5").frame)
    pd.testing.assert_frame_equal(sleep_fit.bayes_r2(), bayes_r2(sleep_fit))
    pd.testing.assert_frame_equal(sleep_fit.conditional_effects("Days", plot=False).frame,
                                  conditional_effects(sleep_fit, "Days", plot=False).frame)
    ours = sleep_fit.prior_sensitivity()
    pd.testing.assert_frame_equal(pd.DataFrame(ours), pd.DataFrame(prior_sensitivity(sleep_fit)))
    assert (ours["diagnosis"] == "-").all()  # the default priors are not flagged
    assert str(sleep_fit.equation()) == str(equation(sleep_fit))


def test_compare_has_the_sensitivity_column(sleep_fit, sleep_model):
    table = hb.compare(sleep_fit, sleep_model.fit_reml())
    assert (table["prior_sensitivity"] == "-").all()
    assert "prior_sensitivity" in str(table)


def test_frequentist_methods(sleepstudy):
    reml = hb.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    assert reml.equation().latex == hb.equation(reml).latex
    assert hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy).equation().latex == \
        equation(hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy)).latex
    oats = hb.datasets.load("sleepstudy").assign(week=lambda d: np.where(d["Days"] < 5, "1", "2"))
    fit = hb.lmer("Reaction ~ week + (1 | Subject)", oats)
    pd.testing.assert_frame_equal(fit.emmeans("week").frame, emmeans(fit, "week").frame)
    assert hb.emmeans is emmeans
    with pytest.raises(hb.HierbayesError):
        fit.emmeans("Days")  # a covariate is no factor to average over


def test_kfold_and_power_from_the_front(sleepstudy):
    from hierbayes.report.kfold import kfold

    reml = hb.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
    a = reml.kfold(K=3, group="Subject", seed=1, progressbar=False)
    b = kfold(reml, K=3, group="Subject", seed=1, progressbar=False)
    pd.testing.assert_frame_equal(a.pointwise, b.pointwise)
    assert hb.kfold_compare({"m": a, "m2": b}).loc["m", "elpd_diff"] == 0
    p = hb.power(reml, effect={"Days": 0.0}, n_sims=4, seed=1, progressbar=False)
    assert isinstance(p, hb.PowerResult) and p.table["n_sims"].iloc[0] == 4
