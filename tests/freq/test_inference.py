"""Frequentist inference on REML fits (issue 8): df, p-values, intervals, ICC, marginal covariance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.freq import bootstrap
from hierbayes.freq.bootstrap import percentile
from hierbayes.freq.ddf import hessian, jacobian
from hierbayes.freq.params import param_names

from .test_r_models import MODELS as R_MODELS
from .test_r_models import REFS as R_REFS
from .test_r_models import load_dataset

FITS = {"sleep_int": "Reaction ~ Days + (1 | Subject)", "sleep_slope": "Reaction ~ Days + (Days | Subject)"}


@pytest.fixture(scope="module")
def fits(sleepstudy):
    return {k: hb.lmer(f, sleepstudy) for k, f in FITS.items()}


@pytest.fixture(scope="module")
def lmertest(extra_refs):
    return extra_refs["lmerTest"]


@pytest.mark.parametrize("key", list(FITS))
def test_satterthwaite_matches_lmertest(fits, lmertest, key):
    ref = lmertest[key]["satterthwaite"]
    table = fits[key].fixef(ddf="satterthwaite")
    assert list(table.columns) == ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    np.testing.assert_allclose(table["df"], ref["df"], atol=0.01)
    np.testing.assert_allclose(table["t value"], ref["t"], rtol=1e-4)
    np.testing.assert_allclose(table["Pr(>|t|)"], ref["p"], rtol=1e-3)


@pytest.mark.parametrize("key", list(FITS))
def test_kenward_roger_matches_pbkrtest(fits, lmertest, key):
    ref = lmertest[key]["kenward_roger"]
    table = fits[key].fixef(ddf="kenward-roger")
    np.testing.assert_allclose(table["df"], ref["df"], atol=0.05)
    np.testing.assert_allclose(table["Std. Error"], ref["se"], rtol=1e-4)
    np.testing.assert_allclose(table["t value"], ref["t"], rtol=1e-4)


def test_kenward_roger_adjusts_the_se_when_unbalanced(sleepstudy):
    # balanced sleepstudy leaves the SEs as they are; dropping rows makes Phi_A differ from Phi
    fit = hb.lmer(FITS["sleep_slope"], sleepstudy.drop(index=[0, 1, 2, 3, 4, 29, 30, 31, 32, 99]))
    kr = fit.fixef(ddf="kenward-roger")
    plain = fit.fixef()
    assert (kr["Std. Error"] > plain["Std. Error"] * (1 + 1e-4)).all()
    assert (kr["df"] > 10).all() and (kr["df"] < 20).all()


def test_z_and_summary(fits):
    fit = fits["sleep_slope"]
    z = fit.fixef(ddf="z")
    assert list(z.columns) == ["Estimate", "Std. Error", "z value", "Pr(>|z|)"]
    assert z.loc["Days", "Pr(>|z|)"] == pytest.approx(2 * (1 - __import__("scipy").stats.norm.cdf(6.771481)), rel=1e-4)
    text = str(fit.summary(ddf="satterthwaite"))
    assert "t-tests use Satterthwaite's method" in text
    assert "Pr(>|t|)" in text and "3.26e-06" in text and "< 2e-16" in text
    with pytest.raises(ValueError, match="ddf must be one of"):
        fit.fixef(ddf="containment")


def test_numerical_derivatives_are_accurate():
    def f(x):
        return np.exp(x[0]) * np.sin(x[1]) + x[0] ** 2 * x[1] ** 3

    x = np.array([0.3, 1.2])
    H = hessian(f, x)
    exact = np.array([[np.exp(0.3) * np.sin(1.2) + 2 * 1.2**3, np.exp(0.3) * np.cos(1.2) + 6 * 0.3 * 1.2**2],
                      [np.exp(0.3) * np.cos(1.2) + 6 * 0.3 * 1.2**2, -np.exp(0.3) * np.sin(1.2) + 6 * 0.09 * 1.2]])
    np.testing.assert_allclose(H, exact, rtol=1e-7)
    J = jacobian(lambda v: np.array([v[0] * v[1], v[1] ** 2]), x)
    np.testing.assert_allclose(np.column_stack(J), [[1.2, 0.3], [0.0, 2.4]], rtol=1e-9)


def test_parameter_names_as_lme4(extra_refs, sleepstudy):
    ref = extra_refs["confint"]["sleep_slope"]
    fit = hb.lmer(FITS["sleep_slope"], sleepstudy)
    assert param_names(fit.design) == ref["profile"]["param"]
    uncorr = hb.lmer("Reaction ~ Days + (Days || Subject)", sleepstudy)
    assert param_names(uncorr.design)[:2] == ["sd_(Intercept)|Subject", "sd_Days|Subject"]


def test_wald_intervals(fits, extra_refs):
    ref = extra_refs["confint"]["sleep_slope"]["Wald"]
    ci = fits["sleep_slope"].confint(method="wald")
    assert list(ci.columns) == ["conf_low", "conf_high"] and ci.attrs["conf_level"] == 0.95
    assert ci.iloc[:4].isna().all().all()  # lme4 gives NA for the variance components
    np.testing.assert_allclose(ci.iloc[4:, 0], ref["lower"][4:], rtol=1e-6)
    np.testing.assert_allclose(ci.iloc[4:, 1], ref["upper"][4:], rtol=1e-6)
    ci90 = fits["sleep_slope"].confint(method="wald", level=0.9)
    assert list(ci90.columns) == ["conf_low", "conf_high"] and ci90.attrs["conf_level"] == 0.9
    assert (ci90.iloc[4:, 1] < ci.iloc[4:, 1]).all()


@pytest.fixture(scope="module")
def profile_ci(fits):
    return fits["sleep_slope"].confint(method="profile")


def test_profile_intervals_match_lme4(profile_ci, extra_refs):
    ref = extra_refs["confint"]["sleep_slope"]["profile"]
    assert list(profile_ci.index) == ref["param"]
    np.testing.assert_allclose(profile_ci.iloc[:, 0], ref["lower"], rtol=1e-3)
    np.testing.assert_allclose(profile_ci.iloc[:, 1], ref["upper"], rtol=1e-3)


def test_profile_of_a_reml_fit_is_the_ml_profile(sleepstudy, profile_ci):
    # lme4 profiles the ML deviance even for REML fits; so do we
    ml = hb.lmer(FITS["sleep_slope"], sleepstudy, reml=False).confint(method="profile")
    np.testing.assert_allclose(ml.to_numpy(), profile_ci.to_numpy(), rtol=1e-6)


def test_profile_stops_at_a_bound():
    # an SD estimated at 0 (singular fit): its lower endpoint is the bound, as lme4's
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"g": np.repeat(np.arange(8), 6), "y": rng.normal(size=48)})
    fit = hb.lmer("y ~ 1 + (1 | g)", df)
    assert fit.is_singular()
    ci = fit.confint(method="profile")
    assert ci.loc["sd_(Intercept)|g", "conf_low"] == 0.0
    assert 0 < ci.loc["sd_(Intercept)|g", "conf_high"] < 1


def test_profile_at_a_singular_fit_matches_lme4():
    # Dyestuff2: the Batch SD is estimated at 0. The intercept's profile refits theta from a
    # warm start at 1e-9, where the even deviance has zero slope; started there alone, the
    # interval was 4.31535 to 7.01585 against the exact 4.31284 to 7.01836.
    ref = R_REFS["profile_dyestuff2"]
    fit = hb.lmer(R_MODELS["dyestuff2_singular"]["formula"], load_dataset("Dyestuff2"))
    assert fit.is_singular()
    ci = fit.confint(method="profile")
    assert list(ci.index) == ref["param"]
    assert ci.iloc[0, 0] == 0.0 == ref["lower"][0]
    np.testing.assert_allclose(ci.iloc[1:, 0], ref["lower"][1:], rtol=1e-4)
    np.testing.assert_allclose(ci.iloc[:, 1], ref["upper"], rtol=1e-4)
    # against the exact ends R finds by refitting with the intercept as an offset
    np.testing.assert_allclose(ci.loc["(Intercept)"], ref["intercept_exact"], rtol=1e-6)


def test_percentile_is_boots_interpolation():
    t = np.arange(1.0, 100.0)  # 99 replicates: (R + 1) * 0.025 = 2.5 is between order stats 2 and 3
    lo, hi = percentile(t, np.array([0.025, 0.975]))
    assert 2.0 < lo < 3.0 and 97.0 < hi < 98.0
    assert percentile(np.arange(1.0, 40.0), np.array([0.025]))[0] == 1.0  # (R+1)a = 1: the minimum


@pytest.mark.slow
def test_bootstrap_intervals(fits, extra_refs):
    ref = extra_refs["confint"]["sleep_slope"]["boot"]
    fit = fits["sleep_slope"]
    ci = fit.confint(method="boot", n_sims=500, seed=1, progressbar=False)
    again = fit.confint(method="boot", n_sims=500, seed=1, progressbar=False, n_jobs=2)
    pd.testing.assert_frame_equal(ci, again)  # same seed, same intervals, whatever n_jobs
    assert ci.attrs["replicates"].shape == (500, 6)
    lo, hi = np.array(ref["lower"]), np.array(ref["upper"])
    width = hi - lo
    assert (np.abs(ci.iloc[:, 0] - lo) < 0.15 * width).all(), ((ci.iloc[:, 0] - lo) / width).round(3)
    assert (np.abs(ci.iloc[:, 1] - hi) < 0.15 * width).all(), ((ci.iloc[:, 1] - hi) / width).round(3)
    other = fit.confint(method="boot", n_sims=50, seed=2, progressbar=False)
    assert not other.equals(fit.confint(method="boot", n_sims=50, seed=3, progressbar=False))


def test_confint_rejects_bad_arguments(fits):
    with pytest.raises(ValueError, match="method must be"):
        fits["sleep_int"].confint(method="bca")
    with pytest.raises(ValueError, match="level must lie"):
        fits["sleep_int"].confint(method="wald", level=95)
    with pytest.raises(ValueError, match="n_sims"):
        fits["sleep_int"].confint(method="boot", n_sims=1)


def test_icc(extra_refs, fits):
    ref = extra_refs["icc"]
    assert fits["sleep_int"].icc()["Subject"] == pytest.approx(ref["sleep_int"]["icc"], rel=1e-4)
    gpa = hb.lmer(ref["gpa_int"]["formula"], hb.datasets.load("gpa"))
    assert gpa.icc()["student"] == pytest.approx(ref["gpa_int"]["icc"], rel=1e-4)
    with pytest.raises(hb.DataError, match="random-intercept terms only.*marginal_cov"):
        fits["sleep_slope"].icc()
    nested = hb.lmer("stress ~ age + (1 | hospital/ward)", hb.datasets.load("nurses")).icc()
    assert list(nested.index) == ["ward:hospital", "hospital"] and nested.sum() < 1


def test_marginal_covariance(extra_refs, fits):
    ref = extra_refs["marginal_cov_sleep_slope"]
    V = fits["sleep_slope"].marginal_cov(group="Subject", level=308)
    assert V.shape == (10, 10)
    np.testing.assert_allclose(V.to_numpy(), np.array(ref["V"]), rtol=1e-4)
    np.testing.assert_allclose(V.to_numpy(), V.to_numpy().T)
    # a random-intercept model: compound symmetry, off-diagonal = the ICC times the diagonal
    Vi = fits["sleep_int"].marginal_cov("Subject", "309").to_numpy()
    icc = fits["sleep_int"].icc()["Subject"]
    assert Vi[0, 1] / Vi[0, 0] == pytest.approx(icc, rel=1e-12)
    with pytest.raises(hb.DataError, match="no level 999"):
        fits["sleep_slope"].marginal_cov("Subject", 999)


def test_bayesian_icc(sleepstudy):
    fit = hb.Model(FITS["sleep_int"], sleepstudy).fit(draws=500, tune=500, chains=2, seed=2,
                                                      progressbar=False)
    icc = fit.icc()
    reml = hb.lmer(FITS["sleep_int"], sleepstudy).icc()["Subject"]
    row = icc.loc["Subject"]
    assert row["conf_low"] < reml < row["conf_high"]
    assert 0 < row["conf_low"] and row["conf_high"] < 1


def test_bootstrap_counts_refit_convergence_failures_in_one_warning(fits, monkeypatch):
    import warnings

    real = bootstrap.refit  # the engine's refit (hierbayes.freq.fit.refit), as the bootstrap calls it
    calls = {"n": 0}

    def refit(fit, y, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] % 3 == 0:  # every third refit fails its check, for certain
            warnings.warn("Model failed to converge", hb.ConvergenceWarning, stacklevel=2)
        return real(fit, y, *args, **kwargs)

    monkeypatch.setattr(bootstrap, "refit", refit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reps = bootstrap.bootstrap(fits["sleep_int"], n_sims=12, seed=1, progressbar=False)
    conv = [w for w in caught if issubclass(w.category, hb.ConvergenceWarning)]
    assert len(conv) == 1 and "4 of 12 bootstrap refits" in str(conv[0].message)
    assert reps.attrs["convergence_failures"] == 4 and reps.shape[0] == 12


def test_varcomp_wald_of_a_negative_correlation_warns_nothing():
    # biomass's Site intercept and Temp slope correlate at -0.20: only SDs are logged
    import warnings

    from hierbayes.freq.wald import varcomp_wald

    m = hb.lmer("Biomass ~ Temp + N + (1 + Temp | Site)", hb.datasets.load("biomass"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = varcomp_wald(m.deviance_function, m.varcorr(), 0.95)
    cor = table[table["var2"].notna()].iloc[0]
    assert cor["lower"] < cor["estimate"] < 0 < cor["upper"] < 1
