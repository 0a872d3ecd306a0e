"""GlmerFit, the report over a glmer fit: summary, accessors, predictions, simulations, intervals,
LRTs and the side-by-side comparison with a Bayesian fit.

Numbers from R are lme4 1.1.31's (``tests/data/r/glmm_models.json``, made by
``tests/r/glmm_models.R``, and the anova and profile calls quoted where used).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb

REFS = {m["id"]: m for m in json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "r" / "glmm_models.json").read_text())["models"]}
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    return hb.datasets.load("cbpp")


@pytest.fixture(scope="module")
def fit(cbpp) -> hb.GlmerFit:
    return hb.glmer(CBPP, cbpp, family="binomial")


def test_summary_reads_as_glmers(fit) -> None:
    ref = REFS["cbpp_cbind"]["summary_text"]
    text = str(fit.summary()).splitlines()
    # the header, the family line, the AIC table and the random effects' names, as R prints them
    assert text[:7] == [line.rstrip() for line in ref[:7]]
    assert text[7:9] == [line.rstrip() for line in ref[7:9]]
    assert any(line.startswith(" herd   (Intercept)") for line in text)
    assert "Fixed effects:" in text and "Correlation of Fixed Effects:" in text
    fx = fit.summary().fixed
    assert fx.columns.tolist() == ["Estimate", "Std. Error", "z value", "Pr(>|z|)"]
    # the correlation table's heads, R's abbreviate()
    assert text[text.index("Correlation of Fixed Effects:") + 1].split() == ["(Intr)", "perid2", "perid3"]


def test_agq_and_gamma_headers(cbpp) -> None:
    agq = hb.glmer(CBPP, cbpp, family="binomial", nAGQ=10)
    assert str(agq.summary()).splitlines()[:2] == [
        "Generalized linear mixed model fit by maximum likelihood (Adaptive",
        "  Gauss-Hermite Quadrature, nAGQ = 10) [glmerMod]"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)  # as lme4 (max|grad| 0.00202)
        gam = hb.glmer("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"),
                       family=hb.get_family("gamma", link="log"))
    assert gam.family_line() == " Family: Gamma  ( log )"
    assert gam.fixef().columns[2] == "t value"
    vc = gam.varcorr()
    assert vc["grp"].tolist() == ["Subject", "Residual"]
    assert vc["sdcor"].iloc[1] == pytest.approx(gam.sigma)


def test_accessors(fit) -> None:
    ref = REFS["cbpp_cbind"]
    fx = fit.fixef()
    np.testing.assert_allclose(fx["z value"], ref["fixef_stat"], rtol=1e-3)
    np.testing.assert_allclose(fx["Pr(>|z|)"], ref["fixef_p"], rtol=1e-3)
    assert fit.vcov().shape == (4, 4)
    re = fit.ranef(cond_var=False)
    assert re.columns.tolist() == ["group", "term", "level", "Estimate"]
    co = fit.coef()
    first = co[(co["level"] == "1") & (co["term"] == "(Intercept)")]["Estimate"].iloc[0]
    assert first == pytest.approx(fx.loc["(Intercept)", "Estimate"] + re["Estimate"].iloc[0])
    assert fit.loglik == pytest.approx(ref["logLik"], rel=1e-6)
    assert fit.bic == pytest.approx(ref["BIC"], rel=1e-6)
    assert fit.deviance == pytest.approx(ref["deviance"], rel=1e-5)   # deviance(): the residuals' sum


def test_predict_new_levels_and_errors(fit, cbpp) -> None:
    new = pd.DataFrame({"period": ["1", "2"], "herd": ["1", "99"], "incidence": [0, 0], "size": [1, 1]})
    link = fit.predict(new)
    # a herd the fit never saw gets the population prediction, as lme4's allow.new.levels
    population = fit.predict(new, re_form="~0")
    assert link.iloc[1] == pytest.approx(population.iloc[1])
    assert link.iloc[0] != pytest.approx(population.iloc[0])
    resp = fit.predict(new, type="response")
    np.testing.assert_allclose(resp, 1 / (1 + np.exp(-link)))
    with pytest.raises(hb.DataError):
        fit.predict(new, allow_new_levels=False)
    with pytest.raises(hb.DataError):
        fit.predict(new, type="mean")


def test_offset_terms_replayed_on_newdata() -> None:
    ref = REFS["insurance_offset"]
    ins = pd.read_csv(Path(__file__).resolve().parents[1] / "data" / "r" / "Insurance.csv.gz")
    ins["Age"] = pd.Categorical(ins["Age"], categories=["<25", "25-29", "30-35", ">35"], ordered=True)
    ins["District"] = ins["District"].astype(str)
    ins["Group"] = ins["Group"].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        g = hb.glmer("Claims ~ Age + offset(log(Holders)) + (1 | District:Group)", ins, family="poisson")
    assert g.loglik == pytest.approx(ref["logLik"], rel=1e-6)
    # predict() evaluates offset(log(Holders)) on the new rows, as lme4's
    np.testing.assert_allclose(g.predict(ins.head(5), type="response"), ref["predict_newdata"]["response"],
                               rtol=1e-4)
    with pytest.raises(hb.DataError, match="offset"):
        g.predict(ins.head(5).drop(columns="Holders"))


def test_simulate_and_refit(fit, cbpp) -> None:
    sims = fit.simulate(3, seed=1)
    assert sims.shape == (56, 3)
    assert sims.equals(fit.simulate(3, seed=1))
    y = sims.to_numpy()
    assert ((y >= 0) & (y <= cbpp["size"].to_numpy()[:, None]) & (y == np.round(y))).all()
    kept = fit.simulate(200, seed=2, use_u=True).to_numpy().mean(axis=1)
    # with the fitted modes kept, the mean of many draws is each row's fitted mean times its trials
    np.testing.assert_allclose(kept, fit.fitted() * cbpp["size"], atol=0.6)
    again = fit.refit(fit.design.y)
    # as lme4's refit, PIRLS starts at beta = 0 rather than at the first stage's eta, and it
    # stops at its relative tolerance, 1e-7: the criterion moves at that level (2e-6 on cbpp)
    assert again.loglik == pytest.approx(fit.loglik, rel=1e-5)
    np.testing.assert_allclose(again.estimates.beta, fit.estimates.beta, rtol=1e-3)


def test_confint_wald_and_boot(fit) -> None:
    wald = fit.confint(method="wald")
    assert wald.index.tolist() == ["sd_(Intercept)|herd", "(Intercept)", "period2", "period3", "period4"]
    assert wald.iloc[0].isna().all()
    # lme4: confint(m, method = "Wald")
    np.testing.assert_allclose(wald.loc["period2"], [-1.586089, -0.3977606], rtol=1e-4)
    boot = fit.confint(method="boot", n_sims=20, seed=3, progressbar=False)
    assert boot.attrs["replicates"].shape == (20, 5)
    assert boot.equals(fit.confint(method="boot", n_sims=20, seed=3, progressbar=False))
    assert (boot["conf_low"] < boot["conf_high"]).all()


@pytest.mark.slow
def test_confint_profile(fit) -> None:
    # lme4: confint(m, oldNames = FALSE) (profile)
    prof = fit.confint(method="profile")
    expected = [[0.3460732, 1.0999746], [-1.9012120, -0.9477540], [-1.6167833, -0.4077631],
                [-1.8010244, -0.5115361], [-2.5007506, -0.8007553]]
    np.testing.assert_allclose(prof.to_numpy(), expected, rtol=1e-4)


def test_anova_between_glmer_fits(fit, cbpp) -> None:
    null = hb.glmer("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", cbpp, family="binomial")
    table = hb.anova(null, fit)
    # lme4: anova(m0, m): Chisq 25.60994 on 3 df, deviance (-2 logLik) 184.0531328
    assert table["Chisq"].iloc[1] == pytest.approx(25.60994, rel=1e-5)
    assert table["Df"].iloc[1] == 3
    assert table["deviance"].iloc[1] == pytest.approx(184.0531328, rel=1e-8)
    agq = hb.glmer(CBPP, cbpp, family="binomial", nAGQ=10)
    with pytest.raises(hb.DataError, match="nAGQ"):
        hb.anova(null, agq)
    lmm = hb.lmer("incidence ~ period + (1 | herd)", cbpp)
    with pytest.raises(hb.DataError, match="glmer fits"):
        hb.anova(lmm, fit)


def test_refusals(cbpp) -> None:
    with pytest.raises(hb.DataError, match="single, scalar"):
        hb.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | period)", cbpp,
                 family="binomial", nAGQ=5)
    with pytest.raises(hb.DataError, match="hb.lmer"):
        hb.glmer("incidence ~ period + (1 | herd)", cbpp, family="gaussian")
    with pytest.raises(hb.DataError, match="nAGQ"):
        hb.glmer(CBPP, cbpp, family="binomial", nAGQ=101)


def test_model_fit_laplace_is_hb_glmer(cbpp, fit) -> None:
    m = hb.Model(CBPP, cbpp, family="binomial")
    g = m.fit_laplace()
    assert isinstance(g, hb.GlmerFit)
    np.testing.assert_array_equal(g.estimates.beta, fit.estimates.beta)


@pytest.mark.slow
def test_compare_with_bayes() -> None:
    contra = pd.read_csv(Path(__file__).resolve().parents[1] / "data" / "r" / "Contraception.csv.gz")
    contra["district"] = contra["district"].astype(str)
    m = hb.Model("use ~ age + urban + (1 | district)", contra, family="bernoulli")
    g = m.fit_laplace()
    assert g.loglik == pytest.approx(REFS["contraception_laplace"]["logLik"], rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = m.fit(draws=500, tune=500, chains=2, seed=4, progressbar=False)
    table = hb.compare(post, g)
    assert table.index.tolist() == [*g.design.fixef_names, "sd_(Intercept)|district"]
    assert table.loc["age", "ML"] == pytest.approx(g.fixef().loc["age", "Estimate"])
    sd = table.loc["sd_(Intercept)|district"]
    assert sd["ML_low"] < sd["ML"] < sd["ML_high"]
    # 60 districts: the posterior and the Laplace fit agree within a posterior SD
    assert (table["shift"].abs() < 1).all()


def test_caterpillar(fit) -> None:
    import matplotlib

    matplotlib.use("Agg")
    fig = fit.plot_caterpillar()
    ax = fig.axes[0]
    assert ax.get_title() == "herd: (Intercept)"
    assert len(ax.get_yticklabels()) == 15
