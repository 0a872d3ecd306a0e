"""refit_many: one model over outcomes, subsets and formulas, the same on every executor."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import hierbayes as hb
from hierbayes.report.many import refit_many


@pytest.fixture(scope="module")
def sleep2(sleepstudy):
    return sleepstudy.assign(logR=np.log(sleepstudy["Reaction"]),
                             half=np.where(sleepstudy["Days"] < 5, "early", "late"))


def test_outcomes_subsets_and_formulas_equal_direct_fits(sleep2):
    fit = hb.lmer("Reaction ~ Days + (1 | Subject)", sleep2, reml=False)
    fits = refit_many(fit, outcomes=["logR"], subsets={"early": sleep2["half"] == "early"},
                      formulas=["~ . + (0 + Days | Subject)"], progressbar=False)
    assert list(fits) == ["logR", "early", "~ . + (0 + Days | Subject)"]
    direct = hb.lmer("logR ~ Days + (1 | Subject)", sleep2, reml=False)
    assert fits["logR"].loglik == pytest.approx(direct.loglik, rel=1e-10) and not fits["logR"].reml
    early = hb.lmer("Reaction ~ Days + (1 | Subject)", sleep2[sleep2["half"] == "early"], reml=False)
    assert fits["early"].loglik == pytest.approx(early.loglik, rel=1e-10)
    assert fits["~ . + (0 + Days | Subject)"].design.formula.formula == \
        "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"
    pooled = refit_many(fit, outcomes=["logR"], subsets={"early": sleep2["half"] == "early"},
                        formulas=["~ . + (0 + Days | Subject)"], n_jobs=2, progressbar=False)
    for name in fits:
        assert pooled[name].loglik == fits[name].loglik


def test_bayesian_refits_are_seeded_by_the_call(sleep2):
    model = hb.Model("Reaction ~ Days + (1 | Subject)", sleep2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        fit = model.fit(draws=100, tune=100, chains=1, seed=1, progressbar=False)
        a = refit_many(fit, outcomes=["logR"], seed=4, progressbar=False, check=False)
        b = refit_many(fit, outcomes=["logR"], seed=4, n_jobs=2, progressbar=False, check=False)
    draws = a["logR"].posterior["fixef"]
    np.testing.assert_array_equal(draws, b["logR"].posterior["fixef"])
    assert a["logR"].design.response_label == "logR" and a["logR"].info.draws == 100
    assert 0.01 < float(draws[..., 1].mean()) < 0.06  # the log scale's slope


def test_errors(sleep2):
    fit = hb.lmer("Reaction ~ Days + (1 | Subject)", sleep2)
    with pytest.raises(hb.DataError, match="not a column"):
        refit_many(fit, outcomes=["nope"], progressbar=False)
    with pytest.raises(hb.SettingsError, match="boolean mask"):
        refit_many(fit, subsets={"x": [1, 2]}, progressbar=False)
    with pytest.raises(hb.SettingsError, match="Give outcomes="):
        refit_many(fit, progressbar=False)
    with pytest.raises(hb.DataError, match="no rows"):
        refit_many(fit, subsets={"none": sleep2["Days"] > 100}, progressbar=False)
