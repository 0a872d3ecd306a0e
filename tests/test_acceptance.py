"""Issue 3's statistical acceptance: agreement with brms and with lme4 (slow, still run in CI)."""

from __future__ import annotations

import numpy as np
import pytest

import hierbayes as hb
from tests.conftest import BRMS_PRIORS


@pytest.mark.slow
def test_sleepstudy_agrees_with_brms(sleepstudy, bayes_refs):
    ref = {r["variable"]: r for r in bayes_refs["brms_sleep"]["summary"].values()}
    model = hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy, priors=BRMS_PRIORS)
    # 20,000 draws: our Monte Carlo error on the 97.5% quantile of sd_Days is then about 0.05
    # posterior SD, small beside the 0.09 of brms's own 4,000-draw reference.
    fit = model.fit(draws=5000, tune=1000, chains=4, seed=1, progressbar=False)
    draws = {
        "b_Intercept": fit._flat("fixef")[:, 0],
        "b_Days": fit._flat("fixef")[:, 1],
        "sd_Subject__Intercept": fit._flat("sd_Subject")[:, 0],
        "sd_Subject__Days": fit._flat("sd_Subject")[:, 1],
        "cor_Subject__Intercept__Days": fit._flat("cor_Subject")[:, 0],
        "sigma": fit._flat("sigma"),
    }
    for name, d in draws.items():
        r = ref[name]
        assert abs(d.mean() - r["mean"]) < 0.15 * r["sd"], name
        assert abs(np.quantile(d, 0.025) - r["2.5%"]) < 0.25 * r["sd"], name
        assert abs(np.quantile(d, 0.975) - r["97.5%"]) < 0.25 * r["sd"], name
    diag = fit.diagnostics()
    assert diag.divergences == 0
    assert diag.max_rhat <= 1.01


@pytest.mark.slow
@pytest.mark.parametrize("key", ["gpa_slope", "nurses_nested", "nurses_slash", "pupils_crossed"])
def test_default_priors_agree_with_lme4(key, lme4_refs):
    ref = lme4_refs[key]
    data = hb.datasets.load(ref["data"].removesuffix(".csv"))
    fit = hb.Model(ref["formula"], data).fit(draws=1000, tune=1000, chains=4, seed=1, progressbar=False)
    fx = fit.fixef()
    for name, value in ref["fixef"].items():
        assert abs(fx.loc[name, "Estimate"] - value) < 0.25 * ref["fixef_se"][name], name
    vc = fit.varcorr(point="median")
    assert list(zip(vc["grp"], vc["var1"], vc["var2"], strict=True)) == [
        (r["grp"], r["var1"], r["var2"]) for r in ref["varcorr"]
    ]
    for ours, theirs in zip(vc.itertuples(), ref["varcorr"], strict=True):
        if theirs["var2"] is None and theirs["grp"] != "Residual":
            assert abs(ours.sdcor / theirs["sdcor"] - 1) < 0.20, (theirs["grp"], theirs["var1"])
    assert fit.diagnostics().divergences == 0
