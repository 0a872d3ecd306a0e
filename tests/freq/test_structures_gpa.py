"""Seed 001's residual structures on gpa by REML, against nlme (``../shared/refs/extra.json``).

The three ``nlme_gpa`` fits: ``lme(gpa ~ occasion, random = ~ 1 | student)`` plain, with
``weights = varIdent(form = ~ 1 | occasion)`` (here ``sigma="~ factor(occasion)"``) and with
``correlation = corAR1(form = ~ occasion)`` (here ``correlation=hb.ar1(time="occasion")``,
the series being the formula's grouping factor, as nlme takes it).
"""

from __future__ import annotations

import numpy as np
import pytest

import hierbayes as hb

FORMULA = "gpa ~ occasion + (1 | student)"
ARGS = {
    "homoscedastic": {},
    "varIdent": {"sigma": "~ factor(occasion)"},
    "corAR1": {"correlation": hb.ar1(time="occasion")},
}


@pytest.fixture(scope="module")
def gpa():
    return hb.datasets.load("gpa")


@pytest.fixture(scope="module")
def fits(gpa):
    return {k: hb.lmer(FORMULA, gpa, **kw) for k, kw in ARGS.items()}


@pytest.mark.parametrize("name", list(ARGS))
def test_gpa_fits_agree_with_nlme(name, fits, extra_refs):
    ref, fit = extra_refs["nlme_gpa"][name], fits[name]
    assert fit.loglik == pytest.approx(ref["logLik"], rel=1e-6)
    assert fit.aic == pytest.approx(ref["AIC"], rel=1e-6)
    fx = fit.fixef()
    for term, value in ref["fixef"].items():
        assert fx.loc[term, "Estimate"] == pytest.approx(value, abs=1e-4 * ref["fixef_se"][term])
        assert fx.loc[term, "Std. Error"] == pytest.approx(ref["fixef_se"][term], rel=1e-4)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-3)
    vc = fit.varcorr()
    assert vc.loc[vc["grp"] == "student", "sdcor"].item() == pytest.approx(ref["student_sd"], rel=1e-3)
    params = fit.residual_params()
    if "varIdent_sd_ratios" in ref:
        assert list(params.index) == list(ref["varIdent_sd_ratios"])
        np.testing.assert_allclose(params.to_numpy(), list(ref["varIdent_sd_ratios"].values()), rtol=1e-3)
    if "ar1_phi" in ref:
        assert params["phi"] == pytest.approx(ref["ar1_phi"], rel=1e-3)
    if name == "homoscedastic":
        assert params.empty


def test_row_order_does_not_matter(gpa, fits):
    shuffled = gpa.sample(frac=1.0, random_state=3)
    again = hb.lmer(FORMULA, shuffled, sigma="~ factor(occasion)", correlation=hb.ar1(time="occasion"))
    both = hb.lmer(FORMULA, gpa, sigma="~ factor(occasion)", correlation=hb.ar1(time="occasion"))
    assert again.loglik == pytest.approx(both.loglik, rel=1e-9)
    np.testing.assert_allclose(again.residual_params(), both.residual_params(), rtol=1e-4)
    # each row keeps its own fitted value and normalised residual, whatever the order
    pos = gpa.index.get_indexer(shuffled.index)
    np.testing.assert_allclose(again.fitted(), both.fitted()[pos], rtol=1e-5)
    np.testing.assert_allclose(again.normalized_residuals(), both.normalized_residuals()[pos],
                               atol=1e-4)


def test_summary_prints_nlme_blocks(fits):
    text = str(fits["varIdent"].summary())
    assert "Variance function:" in text and "Different standard deviations per stratum" in text
    assert "1.0000000 0.826" in text
    text = str(fits["corAR1"].summary())
    assert "Correlation Structure: AR(1)" in text and "Formula: ~ occasion | student" in text
    assert "0.418" in text


def test_simulate_has_the_structure(fits):
    fit = fits["varIdent"]
    sims = fit.simulate(400, seed=2, use_u=True)
    resid = sims.to_numpy() - fit.fitted()[:, None]
    occ = fit.design.frame["occasion"].to_numpy()
    sd = np.array([resid[occ == k].std() for k in range(6)])
    np.testing.assert_allclose(sd / sd[0], fit.residual_params().to_numpy(), rtol=0.05)
    fit = fits["corAR1"]
    sims = fit.simulate(400, seed=3, use_u=True)
    e = sims.to_numpy() - fit.fitted()[:, None]
    prev = fit.design.residual.correlation.prev
    has = prev >= 0
    r = np.corrcoef(e[has].ravel(), e[prev[has]].ravel())[0, 1]
    assert r == pytest.approx(fit.residual_params()["phi"], abs=0.02)


def test_the_seven_term_workaround_is_nlmes_varident(gpa, extra_refs):
    # the indicator terms give each occasion its own residual variance, as varIdent does
    # (sigma^2 and the six indicator variances are confounded, so the fit warns); its
    # first factor's diagonal blocks are factored by the compiled kernel
    data = gpa.copy()
    for k in range(6):
        data[f"occ{k}"] = (data["occasion"] == k).astype(float)
    terms = " + ".join(f"(0 + occ{k} | student)" for k in range(6))
    with pytest.warns(hb.ConvergenceWarning):
        fit = hb.lmer(f"gpa ~ occasion + (1 | student) + {terms}", data)
    assert fit.deviance_function.compiled
    ref = extra_refs["nlme_gpa"]["varIdent"]
    assert fit.loglik == pytest.approx(ref["logLik"], rel=1e-6)
    fx = fit.fixef()
    for term, value in ref["fixef"].items():
        assert fx.loc[term, "Estimate"] == pytest.approx(value, abs=1e-4 * ref["fixef_se"][term])
        assert fx.loc[term, "Std. Error"] == pytest.approx(ref["fixef_se"][term], rel=1e-4)
