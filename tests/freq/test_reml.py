"""The REML/ML engine against lme4: every public lmer fit, singular fits, the stages alone."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.freq.deviance import Deviance
from hierbayes.freq.optimize import canonical_theta, optimize_theta
from hierbayes.spec.design import build_design
from hierbayes.spec.formula import parse_formula

from .test_r_models import MODELS as R_MODELS
from .test_r_models import load_dataset

GAUSSIAN = [
    "sleep_slope", "sleep_int", "sleep_null", "sleep_uncorr", "sleep_slope_only", "sleep_slope_ml",
    "sleep_noslope_ml", "gpa_int", "gpa_slope", "gpa_sex", "nurses_nested", "nurses_slash",
    "pupils_crossed", "biomass",
]


def close(ours: float, theirs: float, rel: float, near_zero: float = 1e-5) -> bool:
    """Relative agreement, or absolute agreement for values near zero."""
    return abs(ours - theirs) <= max(rel * abs(theirs), near_zero if abs(theirs) < 1e-3 else 0.0)


@pytest.fixture(scope="module")
def fits(lme4_refs):
    out = {}
    for key in GAUSSIAN:
        r = lme4_refs[key]
        out[key] = hb.lmer(r["formula"], hb.datasets.load(r["data"].removesuffix(".csv")), reml=r["reml"])
    return out


def test_covers_every_public_lmer_fit(lme4_refs):
    public = [k for k, v in lme4_refs.items() if isinstance(v, dict) and v.get("family") == "gaussian"]
    assert sorted(public) == sorted(GAUSSIAN)


@pytest.mark.parametrize("key", GAUSSIAN)
def test_agrees_with_lme4(key, fits, lme4_refs):
    r, fit = lme4_refs[key], fits[key]
    assert fit.reml == r["reml"]
    for ours, theirs in [(fit.deviance, r["criterion"]), (fit.loglik, r["logLik"]),
                         (fit.aic, r["AIC"]), (fit.bic, r["BIC"])]:
        assert close(ours, theirs, 1e-6), (ours, theirs)
    fx = fit.fixef()
    for name, value in r["fixef"].items():
        assert close(fx.loc[name, "Estimate"], value, 1e-4), name
        assert close(fx.loc[name, "Std. Error"], r["fixef_se"][name], 1e-4), name
    assert close(fit.sigma, r["sigma"], 1e-4)
    vc = fit.varcorr()
    assert list(zip(vc.grp, vc.var1, vc.var2, strict=True)) == [(v["grp"], v["var1"], v["var2"]) for v in r["varcorr"]]
    for ours, theirs in zip(vc.itertuples(), r["varcorr"], strict=True):
        assert close(ours.vcov, theirs["vcov"], 1e-4), theirs
        assert close(ours.sdcor, theirs["sdcor"], 1e-4), theirs
    np.testing.assert_allclose(fit.theta, r["theta"], rtol=1e-4, atol=1e-5)
    assert fit.nobs == r["nobs"] and fit.ngrps() == r["ngrps"]
    assert fit.is_singular() == r["singular"]
    re = fit.ranef().set_index(["group", "term", "level"])
    ref = pd.DataFrame(r["ranef"]).set_index(["group", "term", "level"])
    assert len(re) == len(ref)
    joined = ref.join(re, how="left")
    assert joined["Estimate"].notna().all()
    np.testing.assert_allclose(joined["Estimate"], joined["value"], atol=1e-3)
    np.testing.assert_allclose(joined["Cond.SD"], joined["sd"], atol=1e-3)


def test_deviance_function_alone_reproduces_lme4_criterion(lme4_refs):
    """lme4's mkLmerDevfun equivalent: at lme4's theta our objective is lme4's criterion."""
    for key in ("sleep_slope", "pupils_crossed", "nurses_slash", "sleep_slope_ml"):
        r = lme4_refs[key]
        design = build_design(parse_formula(r["formula"]), hb.datasets.load(r["data"].removesuffix(".csv")))
        dev = Deviance(design, reml=r["reml"])
        assert dev(np.array(r["theta"])) == pytest.approx(r["criterion"], rel=1e-10)


def test_optimisation_record(fits):
    opt = fits["sleep_slope"].opt
    assert opt.optimizer == "bobyqa" and "BOBYQA" in opt.message
    assert opt.f_final < opt.f_initial and 10 < opt.evaluations < 500
    np.testing.assert_array_equal(opt.initial, [1.0, 0.0, 1.0])
    assert "final theta" in str(opt)


def test_lbfgsb_reaches_the_same_optimum(lme4_refs, sleepstudy):
    r = lme4_refs["sleep_slope"]
    design = build_design(parse_formula(r["formula"]), sleepstudy)
    opt = optimize_theta(Deviance(design), optimizer="lbfgsb")
    assert opt.f_final == pytest.approx(r["criterion"], rel=1e-9)


@pytest.mark.parametrize("model_id", list(R_MODELS))
def test_lbfgsb_reaches_lme4_on_the_r_models(model_id):
    # Bounded at zero, L-BFGS-B stopped on 7 of these at false zero variances (criteria up to
    # 6.8 above lme4's: the gradient of the even deviance is zero on the bound); it must reach
    # lme4's criterion wherever lme4 converged, and at least as low where it did not (Sitka:
    # 54 lower).
    ref = R_MODELS[model_id]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.HierbayesWarning)
        data = load_dataset(ref["dataset"])
        fit = hb.lmer(ref["formula"], data, reml=ref["reml"], optimizer="lbfgsb")
    tol = 1e-6 * abs(ref["criterion"])
    assert fit.deviance <= ref["criterion"] + tol, (fit.deviance, ref["criterion"])
    if ref["converged"]:
        assert fit.deviance >= ref["criterion"] - tol, (fit.deviance, ref["criterion"])
    assert np.all(fit.theta[fit.deviance_function.lower == 0] >= 0)


def test_canonical_theta_folds_negative_diagonals():
    design = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"), hb.datasets.load("sleepstudy"))
    dev = Deviance(design)
    theta = np.array([-0.9, 0.02, -0.2])  # both columns of T negated
    folded = canonical_theta(dev, theta)
    np.testing.assert_array_equal(folded, [0.9, -0.02, 0.2])
    assert dev(folded) == pytest.approx(dev(theta), rel=1e-12)


def test_singular_fit_is_reported():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(10), 5)
    df = pd.DataFrame({"y": rng.normal(size=50), "g": g})  # no group variance at all
    fit = hb.lmer("y ~ 1 + (1 | g)", df)
    assert fit.theta[0] < 1e-4
    assert fit.is_singular()
    assert "boundary (singular) fit" in str(fit.summary())


def test_summary_reads_like_lmer(fits):
    text = str(fits["sleep_slope"].summary())
    for piece in ["Linear mixed model fit by REML", "REML criterion at convergence: 1743.6",
                  "Scaled residuals:", "Random effects:", "Subject  (Intercept)", "Residual",
                  "Number of obs: 180, groups:  Subject, 18", "Fixed effects:", "t value",
                  "Correlation of Fixed Effects:", "(Intr)", "-0.138"]:
        assert piece in text, piece
    ml = str(fits["sleep_slope_ml"].summary())
    assert "maximum likelihood" in ml and "1763.9" in ml and "AIC" in ml


def test_accessors(fits, lme4_refs):
    fit = fits["sleep_slope"]
    co = fit.coef()
    re = fit.ranef()
    merged = co.merge(re, on=["group", "term", "level"], suffixes=("_coef", "_re"))
    beta = fit.fixef()["Estimate"]
    np.testing.assert_allclose(merged["Estimate_coef"], merged["Estimate_re"] + beta[merged["term"]].to_numpy())
    v = fit.vcov()
    assert np.allclose(np.sqrt(np.diag(v)), fit.fixef()["Std. Error"])
    np.testing.assert_allclose(fit.fitted() + fit.residuals(), fit.design.y)


def test_model_fits_reml_and_ml(sleep_model, lme4_refs):
    assert sleep_model.fit_reml().deviance == pytest.approx(lme4_refs["sleep_slope"]["criterion"], rel=1e-9)
    assert sleep_model.fit_ml().deviance == pytest.approx(lme4_refs["sleep_slope_ml"]["criterion"], rel=1e-9)


def test_refuses_non_gaussian_and_no_random_terms(sleepstudy):
    with pytest.raises(hb.DataError, match="no random-effect term"):
        hb.lmer("Reaction ~ Days", sleepstudy)
    df = sleepstudy.assign(slow=(sleepstudy.Reaction > 300).astype(int))
    design = build_design(parse_formula("slow ~ Days + (1 | Subject)"), df, family="bernoulli")
    with pytest.raises(hb.DataError, match="gaussian"):
        Deviance(design)


def test_sim_reproduces_arm_sim(fits):
    import json

    from tests.conftest import SHARED

    ref = json.loads((SHARED / "refs" / "extra.json").read_text())["arm_sim"]["sleep_slope"]
    sims = fits["sleep_slope"].sim(n_sims=4000, seed=1)
    targets = {"(Intercept)": sims.fixef["(Intercept)"].to_numpy(), "Days": sims.fixef["Days"].to_numpy()}
    refs = {**ref["fixef"], "sigma": ref["sigma"]}
    targets["sigma"] = sims.sigma
    for name, draws in targets.items():
        r = refs[name]
        assert abs(draws.mean() - r["mean"]) < 0.1 * r["sd"], name
        assert abs(np.quantile(draws, 0.025) - r["q2.5"]) < 0.15 * r["sd"], name
        assert abs(np.quantile(draws, 0.975) - r["q97.5"]) < 0.15 * r["sd"], name


def test_sim_is_reproducible_and_centred(fits):
    fit = fits["sleep_slope"]
    a, b = fit.sim(n_sims=500, seed=7), fit.sim(n_sims=500, seed=7)
    np.testing.assert_array_equal(a.fixef, b.fixef)
    np.testing.assert_array_equal(a.ranef["Subject"], b.ranef["Subject"])
    summary = fit.sim(n_sims=4000, seed=2).summary()
    assert set(summary["kind"]) == {"fixef", "sigma", "ranef", "coef"}
    re = summary[summary.kind == "ranef"].set_index(["term", "level"])["mean"]
    modes = fit.ranef().set_index(["term", "level"])["Estimate"]
    cond_sd = fit.ranef().set_index(["term", "level"])["Cond.SD"]
    assert (abs(re - modes[re.index]) < 0.1 * cond_sd[re.index]).all()
    with pytest.raises(ValueError, match="n_sims"):
        fit.sim(n_sims=0)
