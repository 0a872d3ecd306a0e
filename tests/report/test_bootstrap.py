"""bootstrap(fun): bootMer of any statistic, boot.ci's intervals, and bootstrapped effect bands."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.freq.bootstrap import boot_intervals
from hierbayes.report.bootstrap import BootResult
from hierbayes.report.plots import plot_effect

matplotlib.use("Agg")
REF = json.loads((Path(__file__).resolve().parents[1] / "data" / "r" / "boot_ci.json").read_text())


@pytest.fixture(scope="module")
def biomass_fit():
    return hb.lmer("Biomass ~ Temp + N + (1 | Site)", hb.datasets.load("biomass"))


@pytest.mark.parametrize("row", REF["intervals"], ids=lambda r: f"{r['type']}-{r['conf']}-{r['index']}")
def test_intervals_as_boot_ci(row):
    t = np.array(REF["t"])
    ends = boot_intervals(np.array(REF["t0"]), t, row["conf"], row["type"])[row["index"] - 1]
    np.testing.assert_allclose(ends, [row["lower"], row["upper"]], rtol=1e-12)


def test_bootstrap_of_predictions_as_seed_003(biomass_fit):
    # seed 003: bootMer(m1, FUN = function(.) predict(., newdata = new_temp, re.form = ~0))
    grid = pd.DataFrame({"Temp": np.linspace(-2, 2, 5), "N": 0.0})
    b = biomass_fit.bootstrap(lambda f: f.predict(grid, re_form="~0"), n_sims=60, seed=2,
                              progressbar=False)
    assert isinstance(b, BootResult) and b.t.shape == (60, 5)
    np.testing.assert_allclose(b.t0.to_numpy(), biomass_fit.predict(grid, re_form="~0").to_numpy())
    again = biomass_fit.bootstrap(lambda f: f.predict(grid, re_form="~0"), n_sims=60, seed=2,
                                  progressbar=False)
    assert b.t.equals(again.t)  # the seed fixes the replicates
    # the replicates' spread is the prediction's sampling SD: close to the Wald SE of x'beta
    X = np.column_stack([np.ones(5), grid["Temp"], grid["N"]])
    wald = np.sqrt(np.einsum("ij,jk,ik->i", X, biomass_fit.vcov().to_numpy(), X))
    ratio = b.summary()["std_error"].to_numpy() / wald
    assert np.all((ratio > 0.7) & (ratio < 1.3)), ratio
    for kind in ("perc", "norm", "basic"):
        ci = b.conf_int(0.9, type=kind)
        assert (ci["conf_low"] < b.t0).all() and (b.t0 < ci["conf_high"]).all(), kind
    assert "Bootstrap Statistics" in repr(b) and "t1*" not in repr(b)


def test_default_statistic_and_named_outputs(sleepstudy):
    fit = hb.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
    b = fit.bootstrap(n_sims=10, seed=1, progressbar=False)
    assert list(b.t.columns) == ["sd_(Intercept)|Subject", "sigma", "(Intercept)", "Days"]
    named = fit.bootstrap(lambda f: {"slope": f.fixef().loc["Days", "Estimate"]}, n_sims=5,
                          seed=1, progressbar=False)
    assert list(named.t.columns) == ["slope"]
    np.testing.assert_allclose(named.t["slope"], b.t["Days"].iloc[:5], rtol=1e-10)
    vector = fit.bootstrap(lambda f: np.array([f.sigma, f.sigma**2]), n_sims=3, seed=1,
                           progressbar=False)
    assert list(vector.t.columns) == ["t1", "t2"]


def test_glmer_bootstrap():
    fit = hb.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                   hb.datasets.load("cbpp"), family="binomial")
    b = fit.bootstrap(lambda f: f.fixef()["Estimate"], n_sims=8, seed=3, progressbar=False)
    assert b.t.shape == (8, 4) and np.isfinite(b.t.to_numpy()).all()


def test_effect_plot_with_a_bootstrap_band(biomass_fit):
    fig = biomass_fit.plot_effect("Temp", n_sims=30, seed=1, interval="boot")
    ax = fig.axes[0]
    assert "parametric bootstrap, 30 refits" in " ".join(t.get_text() for t in ax.get_legend().get_texts())


def test_bootstrap_errors(sleepstudy, sleep_fit):
    fit = hb.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
    with pytest.raises(hb.SettingsError, match="not supported; bootstrap is parametric"):
        fit.bootstrap(n_sims=5, type="nonparametric")
    with pytest.raises(hb.SettingsError, match="picklable"):
        fit.bootstrap(lambda f: f.sigma, n_sims=5, n_jobs=2, progressbar=False)
    with pytest.raises(hb.SettingsError, match="DataFrame"):
        fit.bootstrap(lambda f: f.fixef(), n_sims=5, progressbar=False)
    with pytest.raises(ValueError, match="interval='boot' is for REML/ML"):
        plot_effect(sleep_fit, "Days", interval="boot")
