"""The fit: InferenceData contents, lmer-style summary, accessors and their consistency."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytest


def test_idata_groups_and_coords(sleep_fit):
    idata = sleep_fit.idata
    assert {"posterior", "sample_stats", "observed_data", "log_likelihood"} <= set(idata.groups())
    post = idata.posterior
    assert list(post["fixef"].coords["fixef_term"].values) == ["(Intercept)", "Days"]
    assert post["r_Subject"].sizes == {"chain": 4, "draw": 500, "Subject__level": 18, "Subject__term": 2}
    assert list(post["r_Subject"].coords["Subject__level"].values[:2]) == ["308", "309"]
    assert idata.log_likelihood["Reaction"].shape == (4, 500, 180)
    assert np.allclose(idata.observed_data["Reaction"], sleep_fit.design.y)


def test_pointwise_loglik_matches_pymc(sleep_fit):
    sub = sleep_fit.idata.sel(draw=slice(0, 20))
    with sleep_fit.model.pymc_model:
        ref = pm.compute_log_likelihood(sub.copy(), progressbar=False, extend_inferencedata=False)
    np.testing.assert_allclose(sub.log_likelihood["Reaction"], ref["Reaction"], rtol=1e-8)


def test_summary_reads_like_lmer(sleep_fit):
    text = str(sleep_fit.summary())
    for piece in [
        "Bayesian linear mixed model fit by NUTS (hierbayes; 4 chains x 500 draws",
        "Formula: Reaction ~ Days + (Days | Subject)",
        "Data: sleepstudy",
        "posterior means",
        "Random effects:",
        "Groups", "Name", "Variance", "Std.Dev.", "Corr",
        "Residual",
        "Group-level SDs and correlations, sigma:", "sd_(Intercept)|Subject",
        "cor_Days.(Intercept)|Subject",
        "Number of obs: 180, groups:  Subject, 18",
        "Fixed effects:",
        "Estimate", "Est.Error", "l-95% CI", "u-95% CI", "R-hat", "ESS-bulk",
        "divergences; max R-hat",
    ]:
        assert piece in text, piece
    lines = text.splitlines()
    vc = sleep_fit.varcorr()
    cor = vc.query("var2 == 'Days'")
    # lme4's random-effects table: the correlation to 2 decimals beside the Days SD
    days = next(line for line in lines if line.strip().startswith("Days"))
    assert days.split()[-1] == f"{cor['sdcor'].iloc[0]:.2f}"
    row = next(line for line in lines if line.startswith("cor_Days.(Intercept)|Subject")).split()
    values = [float(v) for v in row[1:5]]
    assert values == pytest.approx([cor[c].iloc[0] for c in ("sdcor", "Est.Error", "conf_low",
                                                             "conf_high")], abs=1e-4)
    assert "medians" in str(sleep_fit.summary(point="median"))
    assert "l-90% CI" in str(sleep_fit.summary(prob=0.9))


def test_summary_html(sleep_fit):
    html = sleep_fit.summary()._repr_html_()
    assert "<table" in html and "Fixed effects" in html and "(Intercept)" in html


def test_fixef_matches_draws(sleep_fit):
    fx = sleep_fit.fixef()
    assert list(fx.columns) == ["Estimate", "Est.Error", "conf_low", "conf_high"]
    assert fx.attrs["conf_level"] == 0.95
    draws = sleep_fit.idata.posterior["fixef"].sel(fixef_term="Days").to_numpy().ravel()
    assert fx.loc["Days", "Estimate"] == pytest.approx(draws.mean())
    assert fx.loc["Days", "conf_high"] == pytest.approx(np.quantile(draws, 0.975))
    assert fx.loc["Days", "Estimate"] == pytest.approx(10.47, abs=1.0)


def test_ranef_and_coef(sleep_fit):
    re = sleep_fit.ranef()
    assert len(re) == 36 and set(re["term"]) == {"(Intercept)", "Days"}
    assert abs(re.groupby("term")["Estimate"].mean()).max() < 5  # centred on zero
    co = sleep_fit.coef()
    fx = sleep_fit.fixef()
    merged = co.merge(re, on=["group", "term", "level"], suffixes=("_coef", "_ranef"))
    merged["fixef"] = fx.loc[merged["term"], "Estimate"].to_numpy()
    np.testing.assert_allclose(merged["Estimate_coef"], merged["Estimate_ranef"] + merged["fixef"], rtol=1e-9)
    assert sleep_fit.ranef(group="Subject").shape == re.shape
    with pytest.raises(KeyError, match="No grouping factor 'Animal'"):
        sleep_fit.ranef(group="Animal")


def test_varcorr_rows_and_values(sleep_fit, lme4_refs):
    vc = sleep_fit.varcorr()
    rows = [(r["grp"], r["var1"], r["var2"]) for r in lme4_refs["sleep_slope"]["varcorr"]]
    assert list(zip(vc["grp"], vc["var1"], vc["var2"], strict=True)) == rows
    sd = sleep_fit.idata.posterior["sd_Subject"].to_numpy().reshape(-1, 2)
    assert vc.loc[0, "sdcor"] == pytest.approx(sd[:, 0].mean())
    assert vc.loc[0, "vcov"] == pytest.approx((sd[:, 0] ** 2).mean())
    assert -1 < vc.loc[2, "sdcor"] < 1
    assert isinstance(vc, pd.DataFrame)


def test_diagnostics(sleep_fit):
    d = sleep_fit.diagnostics()
    assert d.draws == 2000
    assert set(d.table.index) == {
        "(Intercept)", "Days", "sd_(Intercept)|Subject", "sd_Days|Subject",
        "cor_Days.(Intercept)|Subject", "sigma"}
    assert d.max_rhat < 1.05 and d.min_ess_bulk > 100


def test_correlations_are_stored_as_pairs_that_arviz_summarises(sleep_fit):
    import arviz as az

    cor = sleep_fit.idata.posterior["cor_Subject"]
    assert cor.dims == ("chain", "draw", "Subject__cor")
    assert list(cor.coords["Subject__cor"].values) == ["Days:(Intercept)"]
    np.testing.assert_array_equal(sleep_fit.cor_draws("Subject", "Days", "(Intercept)"),
                                  cor.to_numpy().reshape(-1))
    summary = az.summary(sleep_fit.idata)
    assert len(summary) > 50 and not summary["r_hat"].isna().any(), \
        summary.index[summary["r_hat"].isna()].tolist()
    assert summary.loc["cor_Subject[Days:(Intercept)]", "r_hat"] < 1.05


def test_arviz_trace_plot_runs_on_the_whole_posterior(sleep_fit):
    import warnings

    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ArviZ: more variables than max_subplots
        axes = az.plot_trace(sleep_fit.idata)
    titles = {ax.get_title() for ax in np.ravel(axes)}
    assert titles == set(sleep_fit.idata.posterior.data_vars), titles
    plt.close("all")
