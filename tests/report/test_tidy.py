"""Tidy tables against broom.mixed (``tests/r/tidy.R`` writes ``tests/data/r/tidy.json``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.report.tidy import glance, tidy

REFS = json.loads((Path(__file__).resolve().parents[1] / "data" / "r" / "tidy.json").read_text())


@pytest.fixture(scope="module")
def reml(sleepstudy):
    return hb.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)


@pytest.fixture(scope="module")
def cbpp_fit():
    return hb.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                    hb.datasets.load("cbpp"), family="binomial")


def _broom_term(term: str) -> str:
    # broom.mixed writes sd__(Intercept), cor__(Intercept).Days, sd__Observation; we write the
    # names every table uses (lme4's confint names without the group)
    if term == "sd__Observation":
        return "sigma"
    if term.startswith("cor__"):
        first, second = term[5:].split(".", 1)
        return f"cor_{second}.{first}"
    return term.replace("sd__", "sd_")


def _ref(rows: list[dict]) -> pd.DataFrame:
    out = pd.DataFrame(rows)
    out["term"] = out["term"].map(_broom_term)
    return out.rename(columns=lambda c: c.replace(".", "_"))


def test_fixed_and_ran_pars_as_broom_mixed(reml):
    ours = tidy(reml, conf_int=True)
    ref = _ref(REFS["sleep"]["tidy_wald"])
    assert ours["effect"].tolist() == ref["effect"].tolist()
    assert ours["term"].tolist() == ref["term"].tolist()
    assert ours["group"].tolist()[2:] == ref["group"].tolist()[2:] and ours["group"].iloc[0] is None
    np.testing.assert_allclose(ours["estimate"], ref["estimate"], rtol=2e-5)
    fixed = ours["effect"] == "fixed"
    for col in ("std_error", "statistic", "conf_low", "conf_high"):
        np.testing.assert_allclose(ours.loc[fixed, col], ref.loc[fixed, col], rtol=2e-5)
    assert ours.loc[~fixed, "conf_low"].isna().all()  # Wald: none for the variance parameters
    np.testing.assert_allclose(ours.loc[~fixed, "var_prop"].dropna(), REFS["sleep"]["var_prop"],
                               rtol=5e-5)
    assert ours.attrs["conf_level"] == 0.95


def test_profile_intervals_for_the_variance_parameters(reml):
    ours = tidy(reml, effects="ran_pars", conf_int=True, conf_method="profile")
    ref = _ref(REFS["sleep"]["tidy_profile"]).query("effect == 'ran_pars'")
    np.testing.assert_allclose(ours[["conf_low", "conf_high"]], ref[["conf_low", "conf_high"]],
                               rtol=2e-3)


def test_ran_vals_and_ran_coefs(reml):
    ours = tidy(reml, effects=["ran_vals", "ran_coefs"], conf_int=True)
    vals = ours.query("effect == 'ran_vals'").reset_index(drop=True)
    ref = _ref(REFS["sleep"]["ran_vals"])
    assert vals[["level", "term"]].values.tolist() == ref[["level", "term"]].values.tolist()
    for col in ("estimate", "std_error", "conf_low", "conf_high"):
        np.testing.assert_allclose(vals[col], ref[col], rtol=5e-4, atol=1e-6)
    coefs = ours.query("effect == 'ran_coefs'").reset_index(drop=True)
    ref = pd.DataFrame(REFS["sleep"]["ran_coefs_se"])
    merged = coefs.merge(ref, on=["level", "term"], suffixes=("", "_r"))
    assert len(merged) == 36
    np.testing.assert_allclose(merged["estimate"], merged["estimate_r"], rtol=1e-5)
    np.testing.assert_allclose(merged["std_error"], merged["std_error_r"], rtol=5e-4)
    assert (merged["conf_low"] < merged["estimate"]).all()


def test_lmertest_df_and_p_values(reml):
    ours = tidy(reml, effects="fixed", conf_int=True, ddf="satterthwaite")
    ref = _ref(REFS["sleep"]["lmertest"])
    for col in ("df", "p_value", "conf_low", "conf_high"):
        np.testing.assert_allclose(ours[col], ref[col], rtol=1e-4)


def test_glmer_tidy_and_glance(cbpp_fit):
    ours = tidy(cbpp_fit, conf_int=True)
    ref = _ref(REFS["cbpp"]["tidy"])
    assert ours["term"].tolist() == ref["term"].tolist()
    np.testing.assert_allclose(ours["estimate"], ref["estimate"], rtol=5e-4)
    fixed = ours["effect"] == "fixed"
    for col in ("std_error", "statistic", "p_value", "conf_low", "conf_high"):
        np.testing.assert_allclose(ours.loc[fixed, col], ref.loc[fixed, col], rtol=2e-3)
    g = glance(cbpp_fit).iloc[0]
    r = REFS["cbpp"]["glance"][0]
    assert g["nobs"] == r["nobs"] and g["df_residual"] == r["df.residual"]
    for ours_key, ref_key in (("sigma", "sigma"), ("logLik", "logLik"), ("AIC", "AIC"),
                              ("BIC", "BIC"), ("deviance", "deviance")):
        assert g[ours_key] == pytest.approx(r[ref_key], rel=1e-4), ours_key


def test_glance_reml(reml):
    g = glance(reml).iloc[0]
    r = REFS["sleep"]["glance"][0]
    for ours_key, ref_key in (("sigma", "sigma"), ("logLik", "logLik"), ("AIC", "AIC"),
                              ("BIC", "BIC"), ("REMLcrit", "REMLcrit")):
        assert g[ours_key] == pytest.approx(r[ref_key], rel=1e-6), ours_key
    assert g["nobs"] == 180 and g["df_residual"] == r["df.residual"]


def test_bayes_tidy_reads_the_draws(sleep_fit):
    t = tidy(sleep_fit, effects=["fixed", "ran_pars", "ran_coefs"], conf_int=True, conf_level=0.9)
    draws = sleep_fit.posterior["fixef"][..., 1].ravel()
    days = t.query("effect == 'fixed' and term == 'Days'").iloc[0]
    assert days["estimate"] == pytest.approx(draws.mean())
    assert days["std_error"] == pytest.approx(draws.std(ddof=1))
    assert days["conf_high"] == pytest.approx(np.quantile(draws, 0.95))
    pars = t.query("effect == 'ran_pars'").set_index("term")
    sd = sleep_fit.posterior["sd_Subject"].reshape(-1, 2)
    sigma = sleep_fit.posterior["sigma"].ravel()
    share = sd[:, 0] ** 2 / ((sd**2).sum(axis=1) + sigma**2)
    assert pars.loc["sd_(Intercept)", "var_prop"] == pytest.approx(share.mean())
    assert pars["var_prop"].sum() == pytest.approx(1.0)
    # each row's error and interval are its own parameter's, in confint's row order
    assert pars.loc["sd_Days", "std_error"] == pytest.approx(sd[:, 1].std(ddof=1))
    assert pars.loc["sd_Days", "conf_low"] == pytest.approx(np.quantile(sd[:, 1], 0.05))
    cor = sleep_fit.cor_draws("Subject", "(Intercept)", "Days")
    row = pars.loc["cor_Days.(Intercept)"]
    assert row["estimate"] == pytest.approx(cor.mean())
    assert row["std_error"] == pytest.approx(cor.std(ddof=1))
    assert row["conf_low"] == pytest.approx(np.quantile(cor, 0.05))
    assert row["conf_high"] == pytest.approx(np.quantile(cor, 0.95))
    assert np.isnan(row["var_prop"])
    assert "statistic" not in t.columns  # no t tests in a posterior
    coefs = t.query("effect == 'ran_coefs'")
    assert len(coefs) == 36 and (coefs["std_error"] > 0).all()
    g = glance(sleep_fit).iloc[0]
    assert g["pss"] == 2000 and g["nobs"] == 180 and g["sigma"] == pytest.approx(sigma.mean())


def test_bad_settings(reml, sleep_fit):
    with pytest.raises(hb.SettingsError, match="effects must be one or more of"):
        tidy(reml, effects="random")
    with pytest.raises(hb.SettingsError, match="conf_level"):
        tidy(reml, conf_level=95)
    with pytest.raises(hb.SettingsError, match="conf_method"):
        tidy(reml, conf_int=True, conf_method="exact")
    with pytest.raises(hb.SettingsError, match="Bayesian fit has no t tests"):
        tidy(sleep_fit, ddf="satterthwaite")
