"""Power by simulation (issue 22), as simr's powerSim and powerCurve.

The checks that can fail for a wrong answer: the rejection rate under H0 is
the test's size; on a balanced random-intercept design with a within-group
treatment the simulated power of the t test matches the noncentral t's
exactly computed power; a curve rises with the number of groups; extended
data have the levels and labels asked for; a user's test that refits with
``update`` gives the built-in likelihood-ratio test's p-values (so the refit
sees the simulated response, not the planned one); serial and two workers give
the same numbers.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import hierbayes as hb
from hierbayes.report.power import PowerResult, clopper_pearson, default_levels, power
from hierbayes.report.power_design import power_design
from hierbayes.report.power_sim import extend_data


def planned(groups: int, per_group: int) -> pd.DataFrame:
    """``groups`` groups of ``per_group`` rows with a within-group treatment x (half 0, half 1)."""
    x = np.tile(np.arange(per_group) % 2, groups).astype(float)
    return pd.DataFrame({"g": np.repeat(np.arange(groups), per_group), "x": x})


def quiet(**kwargs) -> PowerResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        return power(progressbar=False, **kwargs)


@pytest.fixture(scope="module")
def null_model():
    return power_design("y ~ x + (1 | g)", planned(10, 6), fixef={"(Intercept)": 0, "x": 0},
                        sd={"g": 1.0}, sigma=1.0)


def test_rejection_rate_under_the_null_is_the_size(null_model):
    p = quiet(model=null_model, test="lrt", n_sims=200, seed=11)
    row = p.table.iloc[0]
    assert row["n_sims"] == 200 and row["errors"] == 0
    assert row["conf_low"] <= 0.05 <= row["conf_high"], row
    # the p-values of a valid test are uniform under H0
    assert stats.kstest(p.pvalues["p_value"], "uniform").pvalue > 0.01
    assert p.table.attrs["conf_level"] == 0.95


def test_t_test_power_matches_the_noncentral_t():
    # balanced, x within groups with equal group means: beta_x's GLS estimate is the within
    # estimator, REML's sigma^2 the within mean square, so t ~ t'(N - G - 1, b sqrt(Sxx) / sigma)
    groups, per, b, sigma = 8, 4, 0.8, 1.0
    data = planned(groups, per)
    model = power_design("y ~ x + (1 | g)", data, fixef={"(Intercept)": 10, "x": b},
                         sd={"g": 3.0}, sigma=sigma)
    p = quiet(model=model, test="kenward-roger", n_sims=200, seed=5)
    sxx = float(((data["x"] - data.groupby("g")["x"].transform("mean")) ** 2).sum())
    df, ncp = len(data) - groups - 1, b * np.sqrt(sxx) / sigma
    crit = stats.t.ppf(0.975, df)
    exact = stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp)
    row = p.table.iloc[0]
    assert 0.4 < exact < 0.8  # a test with teeth: power well inside (0, 1)
    assert row["conf_low"] <= exact <= row["conf_high"], (exact, row.to_dict())
    # the estimates are unbiased for the effect
    assert abs(p.pvalues["estimate"].mean() - b) < 4 * sigma / np.sqrt(sxx) / np.sqrt(200)


def test_curve_rises_with_levels_and_extends_the_data():
    data = planned(4, 6)
    # noncentrality 0.7 sqrt(1.5 k): about 1.5, 2.1 and 3.0 at k = 3, 6 and 12 groups
    model = power_design("y ~ x + (1 | g)", data, fixef={"(Intercept)": 0, "x": 0.7},
                         sd={"g": 1.0}, sigma=1.0)
    p = quiet(model=model, along="g", levels=[12, 3, 6], n_sims=60, seed=3)
    t = p.table
    assert t["n_levels"].tolist() == [3, 6, 12]
    assert t["nobs"].tolist() == [18, 36, 72]
    assert np.all(np.diff(t["power"]) > 0), t
    assert t["power"].iloc[-1] > 0.7 > t["power"].iloc[0]
    assert list(p.power.index) == [3, 6, 12]
    text = repr(p)
    assert "by number of levels in g:" in text and "     12: " in text and "- 72 rows" in text
    # the extended data: integers move past the range, strings get make.unique suffixes
    ext = extend_data(data, 10, along="g")
    assert sorted(ext["g"].unique()) == list(range(10)) and len(ext) == 60
    assert (ext.loc[ext["g"] == 9, "x"].to_numpy() == data.loc[data["g"] == 1, "x"]).all()
    named = data.assign(g="s" + data["g"].astype(str))
    assert list(dict.fromkeys(extend_data(named, 6, along="g")["g"])) == [
        "s0", "s1", "s2", "s3", "s0.1", "s1.1"]
    cat = data.assign(g=pd.Categorical(named["g"], categories=["s3", "s2", "s1", "s0"]))
    first = extend_data(cat, 2, along="g")  # the first levels in the categorical's order
    assert set(first["g"]) == {"s3", "s2"}
    assert list(extend_data(cat, 5, along="g")["g"].cat.categories)[:5] == [
        "s3", "s2", "s1", "s0", "s3.1"]


def test_extension_relabels_nested_factors_and_counts_within():
    d = pd.DataFrame({"school": [1, 1, 2, 2], "klass": ["a", "b", "c", "d"],
                      "item": ["i", "j", "i", "j"]})
    ext = extend_data(d, 4, along="school", nested=["klass", "item"])
    # classes are nested in schools: a copied school has new classes; items are crossed
    assert ext["klass"].nunique() == 8 and ext["item"].nunique() == 2
    days = pd.DataFrame({"s": [1, 1, 1, 2, 2, 2], "day": [0, 1, 2, 0, 1, 2]})
    assert extend_data(days, 2, within="s")["day"].tolist() == [0, 1, 0, 1]
    longer = extend_data(days, 5, within="s")
    assert longer.groupby("s").size().tolist() == [5, 5]


def test_serial_and_two_workers_agree(null_model):
    kw = dict(model=null_model, effect={"x": 0.4}, n_sims=16, seed=9, along="g", levels=[5, 10])
    serial = quiet(**kw)
    pooled = quiet(n_jobs=2, **kw)
    pd.testing.assert_frame_equal(serial.pvalues, pooled.pvalues)
    pd.testing.assert_frame_equal(serial.table, pooled.table)


def test_a_fit_with_effect_and_user_tests():
    sleep = hb.datasets.load("sleepstudy")
    fit = hb.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    kw = dict(model=fit, effect={"Days": 3.0}, n_sims=8, seed=4)
    lrt = quiet(test="lrt", **kw)
    assert lrt.effect == 3.0 and lrt.term == "Days"
    text = repr(lrt)
    assert text.startswith("Power for predictor 'Days', (95% confidence interval):\n")
    assert "Effect size for Days is 3.0" in text and "Based on 8 simulations" in text

    def by_update(f):  # ML refits through update(): they must see the simulated response
        return stats.chi2.sf(2 * (f.update(reml=False).loglik
                                  - f.update("~ . - Days", reml=False).loglik), 1)

    mine = quiet(test=by_update, term="Days", **kw)
    np.testing.assert_allclose(mine.pvalues["p_value"], lrt.pvalues["p_value"], rtol=1e-4)
    satt = quiet(test="satterthwaite", **kw)
    via_fixef = quiet(test=lambda f: f.fixef(ddf="satterthwaite").loc["Days", "Pr(>|t|)"],
                      term="Days", **kw)
    np.testing.assert_array_equal(satt.pvalues["p_value"], via_fixef.pvalues["p_value"])
    # variance components replaced: sd and sigma of 0-ish make the effect certain
    sure = quiet(model=fit, effect={"Days": 3.0}, sd={"Subject": 1.0}, sigma=1.0, n_sims=3,
                 seed=1)
    assert sure.power == 1.0


def test_glmer_z_test_on_a_planned_binomial_design():
    data = planned(12, 8).assign(n=10)
    model = power_design("cbind(s, n - s) ~ x + (1 | g)", data, family="binomial",
                         fixef={"(Intercept)": 0.0, "x": 1.0}, sd={"g": 0.5})
    p = quiet(model=model, test="z", n_sims=6, seed=2, along="g", levels=[6, 20])
    assert p.table["nobs"].tolist() == [48, 160]
    assert p.table["errors"].sum() == 0 and p.table["power"].iloc[-1] == 1.0


def test_clopper_pearson_and_plot():
    assert clopper_pearson(0, 10)[0] == 0.0 and clopper_pearson(10, 10)[1] == 1.0
    exact = stats.binomtest(161, 200).proportion_ci(0.95, method="exact")
    np.testing.assert_allclose(clopper_pearson(161, 200), [exact.low, exact.high], rtol=1e-10)
    # simr's tidySeq(3, n, 10): round(seq(3, 18, length = 10)) by hand
    assert default_levels(18) == [3, 5, 6, 8, 10, 11, 13, 15, 16, 18]
    assert default_levels(8) == [3, 4, 5, 6, 7, 8]
    table = pd.DataFrame({"n_levels": [3, 6], "nobs": [18, 36], "n_sims": [10, 10],
                          "successes": [2, 8], "power": [0.2, 0.8],
                          "conf_low": [0.025, 0.44], "conf_high": [0.556, 0.975],
                          "errors": [0, 0], "warnings": [0, 0]})
    res = PowerResult(table, pd.DataFrame(), "x", "lrt", 0.5, 0.05, "g", "number of levels in g",
                      1.0)
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = res.plot()
    assert plt.get_fignums() == before  # built without pyplot: a notebook shows it once
    ax = fig.axes[0]
    assert ax.get_xlabel() == "number of levels in g" and ax.get_ylim() == (0.0, 1.0)
    assert any(np.allclose(line.get_ydata(), 0.8) for line in ax.get_lines())
    ci = res.confint(0.5)
    assert ci.attrs["conf_level"] == 0.5 and (ci["conf_low"].to_numpy() > table["conf_low"]).all()


def test_errors_before_any_work(null_model):
    with pytest.raises(hb.SettingsError, match="not in the fixed part"):
        power(null_model, term="z", n_sims=2, progressbar=False)
    with pytest.raises(hb.SettingsError, match="effect names 'w'"):
        power(null_model, effect={"w": 1.0}, n_sims=2, progressbar=False)
    with pytest.raises(hb.SettingsError, match="grouping factor"):
        power(null_model, along="x", levels=[3], n_sims=2, progressbar=False)
    with pytest.raises(hb.SettingsError, match="at least 2"):
        power(null_model, along="g", levels=[1, 4], n_sims=2, progressbar=False)
    with pytest.raises(hb.SettingsError, match="levels= needs along="):
        power(null_model, levels=[4], n_sims=2, progressbar=False)
    with pytest.raises(hb.SettingsError, match="test must be one of"):
        power(null_model, test="wald", n_sims=2, progressbar=False)
    with pytest.raises(hb.SettingsError, match="picklable"):
        power(null_model, test=lambda f: 0.5, n_jobs=2, n_sims=2, progressbar=False)
    with pytest.raises(hb.SettingsError, match="sd= and cor= name"):
        power(null_model, sd={"h": 1.0}, n_sims=2, progressbar=False)
    binom = power_design("y ~ x + (1 | g)", planned(4, 4), family="binomial",
                         fixef={"(Intercept)": 0, "x": 0}, sd={"g": 1.0})
    with pytest.raises(hb.SettingsError, match="t test of an lmer model"):
        power(binom, test="satterthwaite", n_sims=2, progressbar=False)
    with pytest.raises(hb.SettingsError, match="missing"):
        power_design("y ~ x + (1 | g)", planned(4, 4), fixef={"x": 0}, sd={"g": 1.0}, sigma=1)
    with pytest.raises(hb.SettingsError, match="SD of each term"):
        power_design("y ~ x + (1 | g)", planned(4, 4), fixef={"(Intercept)": 0, "x": 0},
                     sd={}, sigma=1)
    with pytest.raises(hb.SettingsError, match="sigma= is needed"):
        power_design("y ~ x + (1 | g)", planned(4, 4), fixef={"(Intercept)": 0, "x": 0},
                     sd={"g": 1.0})
    # a restriction that loses a condition is refused, not fitted without it
    between = planned(6, 2).assign(t=np.repeat([0, 0, 0, 0, 1, 1], 2))
    m = power_design("y ~ t + (1 | g)", between, fixef={"(Intercept)": 0, "t": 1},
                     sd={"g": 1.0}, sigma=1)
    with pytest.raises(hb.DataError, match="cannot be estimated"):
        power(m, along="g", levels=[3], n_sims=2, progressbar=False)


def subject_sd_is_larger(fit) -> float:
    """0 (a 'rejection') when the subjects' SD is estimated larger than the items'."""
    vc = fit.varcorr().set_index("grp")["sdcor"]
    return 0.0 if vc["s"] > vc["item"] else 1.0


def test_terms_keep_their_parameters_when_lme4_reorders_them():
    # 10 subjects x 6 items: subjects' term first; with 3 subjects lme4 puts items' first
    data = pd.DataFrame([(s, i) for s in range(10) for i in range(6) for _ in range(2)],
                        columns=["s", "item"])
    model = power_design("y ~ 1 + (1 | s) + (1 | item)", data, fixef={"(Intercept)": 0},
                         sd={"s": 3.0, "item": 0.05}, sigma=0.5)
    p = quiet(model=model, test=subject_sd_is_larger, along="s", levels=[3, 10], n_sims=5,
              seed=1)
    assert p.table["power"].tolist() == [1.0, 1.0]


@pytest.mark.slow
def test_agrees_with_simr(sleepstudy):
    # tests/r/power.R: simr's powerSim and powerCurve (on extend()ed data), 1000 simulations each
    ref = json.loads((Path(__file__).resolve().parents[1] / "data" / "r" / "power.json")
                     .read_text())
    fit = hb.lmer(ref["model"], sleepstudy)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-5)
    kw = dict(model=fit, effect=ref["effect"], test="lrt", n_sims=300)
    single = quiet(seed=31, **kw)
    curve = quiet(seed=32, along="Subject", levels=ref["power_curve"]["levels"], **kw)
    rows = [single.table.iloc[0], *(r for _, r in curve.table.iterrows())]
    for row, theirs in zip(rows, [ref["power_sim"], *ref["power_curve"]["points"]], strict=True):
        assert row["nobs"] == theirs["nobs"] and row["errors"] == 0 == theirs["errors"]
        p, q = row["power"], theirs["successes"] / theirs["n_sims"]
        se = np.sqrt(p * (1 - p) / row["n_sims"] + q * (1 - q) / theirs["n_sims"])
        assert abs(p - q) < 3 * se, (row.to_dict(), theirs)
