"""update(): R's update on every fit and on the Model, keeping what is not changed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import hierbayes as hb


@pytest.fixture(scope="module")
def gpa():
    return hb.datasets.load("gpa")


def test_lmer_update_keeps_data_and_method(gpa):
    fit = hb.lmer("gpa ~ occasion + (1 | student)", gpa, reml=False)
    up = fit.update("~ . + sex")
    assert up.design.formula.formula == "gpa ~ occasion + (1 | student) + sex"
    assert up.reml is False and up.design.data_name == "gpa"
    direct = hb.lmer("gpa ~ occasion + sex + (1 | student)", gpa, reml=False)
    np.testing.assert_allclose(up.fixef()["Estimate"], direct.fixef()["Estimate"], rtol=1e-6)
    assert up.loglik == pytest.approx(direct.loglik, rel=1e-8)
    # the change of method and of the data are arguments too
    assert fit.update(reml=True).reml is True
    half = gpa[gpa["student"].astype(int) <= 100]
    assert fit.update(data=half).nobs == len(half)
    assert gpa.shape == (1200, 10)  # the user's data untouched


def test_update_removes_and_swaps_random_terms(sleepstudy):
    fit = hb.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    swapped = fit.update(". ~ . - (Days | Subject) + (Days || Subject)")
    assert [b.group for b in swapped.design.blocks] == ["Subject", "Subject.1"]
    assert swapped.deviance == pytest.approx(
        hb.lmer("Reaction ~ Days + (Days || Subject)", sleepstudy).deviance, rel=1e-9)
    logged = fit.update("log(.) ~ .")
    assert logged.design.response_label == "log(Reaction)"


def test_glmer_update_keeps_family_and_nagq():
    cbpp = hb.datasets.load("cbpp")
    fit = hb.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                   family="binomial", nAGQ=5)
    up = fit.update("~ . - period")
    assert up.nAGQ == 5 and up.design.family.name == "binomial"
    assert up.design.fixef_names == ["(Intercept)"]
    assert fit.update(nAGQ=1).nAGQ == 1


def test_bayes_update_keeps_priors_and_settings(sleepstudy):
    model = hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy,
                     priors={"b": "normal(0, 20)"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        fit = model.fit(draws=200, tune=200, chains=2, seed=3, progressbar=False)
        up = fit.update("~ . + (0 + Days | Subject)", progressbar=False)
    assert up.design.formula.formula == "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"
    assert (up.info.draws, up.info.tune, up.info.chains, up.info.seed) == (200, 200, 2, 3)
    assert str(up.model.priors.get("b", None, "Days")) == "normal(0, 20)"
    m2 = model.update(priors={"b": "normal(0, 5)"})
    assert str(m2.priors.get("b", None, "Days")) == "normal(0, 5)"
    assert m2.design.formula.formula == model.design.formula.formula


def test_update_errors(sleepstudy, tmp_path):
    fit = hb.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
    with pytest.raises(hb.SettingsError, match="cannot change 'draws'"):
        fit.update(draws=10)
    with pytest.raises(hb.FormulaError, match="must contain '~'"):
        fit.update(". + x")
    with pytest.raises(hb.SettingsError, match="cannot change 'nAGQ'"):
        hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy).update(nAGQ=2)
