"""lmer with prior weights and offsets (``weights=``, ``offset()`` terms, ``offset=``) against lme4.

References: the lmer models of ``tests/data/r/glmm_models.json`` (``tests/r/glmm_models.R``):
sleepstudy with prior weights ``w = 1 + (Days %% 3)`` by REML and ML, and with ``Days`` as an
offset in the formula and as the ``offset=`` argument (whose values lme4's ``predict`` leaves
out on new rows; ours needs them given, so the comparison passes zeros).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb

DATA = Path(__file__).resolve().parents[1] / "data" / "r"
REFS = {m["id"]: m for m in json.loads((DATA / "glmm_models.json").read_text())["models"]
        if m["engine"] == "lmer"}
ARGS = {"sleep_weights_reml": {"weights": "w"}, "sleep_weights_ml": {"weights": "w", "reml": False},
        "sleep_offset": {}, "sleep_offset_arg": {"offset": "Days"}}


@cache
def _data() -> pd.DataFrame:
    df = pd.read_csv(DATA / "sleepstudy_weights.csv.gz")
    df["Subject"] = pd.Categorical(df["Subject"].astype(str),
                                   categories=sorted(df["Subject"].astype(str).unique()))
    return df


@cache
def _fit(model_id: str) -> hb.LmerFit:
    return hb.lmer(REFS[model_id]["formula"], _data(), **ARGS[model_id])


@pytest.mark.parametrize("model_id", list(ARGS))
def test_against_lme4(model_id: str) -> None:
    ref = REFS[model_id]
    fit = _fit(model_id)
    assert abs(fit.loglik - ref["logLik"]) < 1e-6 * abs(ref["logLik"])
    if ref["reml"]:
        assert abs(fit.deviance - ref["REMLcrit"]) < 1e-6 * ref["REMLcrit"]
    np.testing.assert_allclose(fit.fixef()["Estimate"], ref["fixef"], rtol=1e-6)
    np.testing.assert_allclose(fit.fixef()["Std. Error"], ref["fixef_se"], rtol=1e-6)
    np.testing.assert_allclose(fit.varcorr()["sdcor"], ref["varcorr"]["sdcor"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fit.ranef()["Estimate"], ref["ranef"]["condval"], rtol=0, atol=1e-4)
    new = _data().iloc[:5]
    # lme4 predicts an offset= model's new rows without their offset: zero here, to compare
    off = {"offset": np.zeros(len(new))} if "offset" in ARGS[model_id] else {}
    np.testing.assert_allclose(fit.predict(new, **off), ref["predict_newdata"]["response"], rtol=1e-8)
    np.testing.assert_allclose(fit.predict(new, re_form="~0", **off),
                               ref["predict_newdata"]["response_population"], rtol=1e-8)
    np.testing.assert_allclose(fit.fitted()[:10], ref["fitted"]["response"], rtol=1e-8)
    q = np.quantile(fit.pearson_residuals() / fit.sigma, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(q, list(ref["scaled_residuals"].values()), rtol=1e-5)


def test_offset_in_formula_or_argument_is_one_model() -> None:
    a, b = _fit("sleep_offset"), _fit("sleep_offset_arg")
    np.testing.assert_allclose(a.fixef(), b.fixef(), rtol=1e-10)
    np.testing.assert_allclose(a.fitted(), b.fitted(), rtol=1e-10)
    # the formula's offset() is evaluated on new rows; an offset= model needs the new rows'
    # offset given (lme4 silently drops it, predicting a different model)
    new = _data().iloc[:5]
    np.testing.assert_allclose(a.predict(new), b.predict(new, offset="Days"), rtol=1e-10)
    np.testing.assert_allclose(a.predict(new), b.predict(new, offset=new["Days"].to_numpy()), rtol=1e-10)
    with pytest.raises(hb.DataError, match="fitted with offset="):
        b.predict(new)
    with pytest.raises(hb.DataError, match="fitted with offset="):
        b.predict_interval(new)


def test_weights_scale_the_simulated_noise() -> None:
    fit = _fit("sleep_weights_ml")
    w = fit.design.weights
    sims = fit.simulate(400, seed=5, use_u=True).to_numpy()
    resid_sd = (sims - fit.fitted()[:, None]).std(axis=1)
    # row i's residual SD is sigma / sqrt(w_i): weight-3 rows spread sqrt(3) times less than weight-1 rows
    ratio = resid_sd[w == 1].mean() / resid_sd[w == 3].mean()
    assert ratio == pytest.approx(np.sqrt(3), rel=0.05)


def test_refit_and_profile_with_weights() -> None:
    fit = _fit("sleep_weights_ml")
    again = fit.refit(fit.design.y)
    assert again.loglik == pytest.approx(fit.loglik, rel=1e-9)
    wald = fit.confint(method="wald")
    assert wald.loc["Days"].tolist() == pytest.approx(
        [fit.fixef().loc["Days", "Estimate"] - 1.959964 * fit.fixef().loc["Days", "Std. Error"],
         fit.fixef().loc["Days", "Estimate"] + 1.959964 * fit.fixef().loc["Days", "Std. Error"]], rel=1e-6)
