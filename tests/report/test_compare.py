"""Likelihood-ratio tests (anova) and the Bayes-against-REML comparison."""

from __future__ import annotations

import pytest

import hierbayes as hb


def test_anova_reproduces_lme4(sleepstudy, lme4_refs):
    ref = lme4_refs["anova_sleep"]
    slope = hb.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    noslope = hb.lmer("Reaction ~ 1 + (Days | Subject)", sleepstudy)
    with pytest.warns(hb.HierbayesWarning, match="refitting model"):
        table = hb.anova(slope=slope, noslope=noslope)
    assert list(table.index) == ["noslope", "slope"]  # ordered by number of parameters
    row = table.loc["slope"]
    assert row["Chisq"] == pytest.approx(ref["Chisq"], rel=1e-4)
    assert row["Df"] == ref["Df"]
    assert row["Pr(>Chisq)"] == pytest.approx(ref["p"], rel=1e-4)
    assert table["AIC"].tolist() == pytest.approx(ref["AIC"], rel=1e-6)
    assert table["BIC"].tolist() == pytest.approx(ref["BIC"], rel=1e-6)
    assert table["logLik"].tolist() == pytest.approx(ref["logLik"], rel=1e-6)
    assert "Models:" in str(table) and "noslope: Reaction ~ 1 + (Days | Subject)" in str(table)


def test_anova_refuses_mismatched_inputs(sleepstudy, sleep_fit):
    a = hb.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
    b = hb.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy.iloc[:170])
    with pytest.raises(hb.DataError, match="different numbers of observations"):
        hb.anova(a, b)
    with pytest.raises(hb.DataError, match="hb.loo_compare"):
        hb.anova(a, sleep_fit)
    with pytest.raises(hb.DataError, match="at least two"):
        hb.anova(a)


def test_compare_bayes_with_reml(sleep_fit, sleep_model):
    table = hb.compare(sleep_fit, sleep_model.fit_reml())
    assert list(table.index) == [
        "(Intercept)", "Days", "sd_(Intercept)|Subject", "sd_Days|Subject",
        "cor_Days.(Intercept)|Subject", "sigma"]
    assert {"posterior", "posterior_low", "posterior_high", "REML", "REML_low", "REML_high", "shift",
            "note"} <= set(table.columns)
    fx = sleep_fit.fixef()
    assert table.loc["Days", "posterior"] == pytest.approx(fx.loc["Days", "Estimate"])
    assert table.loc["Days", "REML"] == pytest.approx(10.467286, rel=1e-5)
    for p in table.index:
        row = table.loc[p]
        assert row["REML_low"] < row["REML"] < row["REML_high"], p
        assert row["posterior_low"] < row["posterior"] < row["posterior_high"], p
    # 18 subjects: the posterior SDs sit above the REML estimates, never below them
    assert table.loc["sd_(Intercept)|Subject", "shift"] > 0
    text = str(table)
    assert "Bayes (posterior mean, 95% CrI) against REML" in text
    assert "<table" in table._repr_html_()


def test_compare_flags_a_prior_that_moves_the_estimate(sleepstudy):
    model = hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy, priors={"b": "normal(0, 0.5)"})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        fit = model.fit(draws=300, tune=300, chains=2, seed=1, progressbar=False)
    table = hb.compare(fit, model.fit_reml())
    assert table.loc["Days", "note"] == "REML estimate outside CrI"
    with pytest.raises(hb.DataError, match="same formula"):
        hb.compare(fit, hb.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy))
