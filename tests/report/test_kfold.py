"""k-fold cross-validation (hierbayes.report.kfold, brms's kfold): the split, each fold's pointwise
elpd against a refit and density computed here by hand, executors, Bayes, glmer, compare, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from scipy.special import expit, logsumexp

import hierbayes as hb
from hierbayes.errors import ConvergenceWarning, DataError, HierbayesWarning, SettingsError
from hierbayes.execution import task_seeds
from hierbayes.report.kfold import (
    KFold,
    kfold,
    kfold_compare,
    kfold_split_grouped,
    kfold_split_random,
    report_warnings,
)

SLOPE = "Reaction ~ Days + (Days | Subject)"
INTERCEPT = "Reaction ~ Days + (1 | Subject)"
SMALL = {"draws": 200, "tune": 300, "chains": 2}


@pytest.fixture(scope="module")
def reml_slope(sleepstudy):
    return hb.lmer(SLOPE, sleepstudy)


@pytest.fixture(scope="module")
def reml_intercept(sleepstudy):
    return hb.lmer(INTERCEPT, sleepstudy)


@pytest.fixture(scope="module")
def cbpp_fit():
    return hb.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                    hb.datasets.load("cbpp"), family="binomial")


def quiet_bayes(formula: str, df: pd.DataFrame, seed: int) -> hb.BayesFit:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return hb.Model(formula, df).fit(draws=300, tune=300, chains=2, seed=seed,
                                          progressbar=False)


# ---------------------------------------------------------------- (1) the split


def test_grouped_split_keeps_levels_balances_them_and_follows_the_seed(sleepstudy):
    subject = sleepstudy["Subject"].to_numpy()
    for K in (2, 4, 5, 18):
        folds = kfold_split_grouped(K, subject, seed=3)
        per_level = pd.Series(folds).groupby(subject).nunique()
        assert (per_level == 1).all()  # no level is split
        levels_per_fold = np.bincount(pd.Series(folds).groupby(subject).first(), minlength=K + 1)[1:]
        assert levels_per_fold.max() - levels_per_fold.min() <= 1 and levels_per_fold.min() >= 1
        assert set(folds) == set(range(1, K + 1))
    a, b = kfold_split_grouped(5, subject, seed=3), kfold_split_grouped(5, subject, seed=3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, kfold_split_grouped(5, subject, seed=4))


def test_random_split_is_balanced_and_deterministic():
    folds = kfold_split_random(7, 100, seed=11)
    sizes = np.bincount(folds)[1:]
    assert len(sizes) == 7 and sizes.max() - sizes.min() <= 1 and sizes.sum() == 100
    assert np.array_equal(folds, kfold_split_random(7, 100, seed=11))
    assert not np.array_equal(folds, kfold_split_random(7, 100, seed=12))


def test_kfold_uses_the_split_and_explicit_folds_override(reml_slope, sleepstudy):
    kf = kfold(reml_slope, K=6, group="Subject", seed=5, progressbar=False)
    assert np.array_equal(kf.folds, kfold_split_grouped(6, sleepstudy["Subject"].to_numpy(), 5))
    assert np.array_equal(kf.pointwise["fold"].to_numpy(), kf.folds)
    # any labels, numbered in sorted order; the same split gives the same numbers
    labels = np.array(["c", "a", "b"])[kf.folds % 3]
    again = kfold(reml_slope, folds=labels, seed=5, progressbar=False)
    assert again.K == 3 and np.array_equal(again.folds, np.unique(labels, return_inverse=True)[1] + 1)


# ---------------------------------------------------------------- (2) REML against a refit by hand


def hand_elpd(df: pd.DataFrame, folds: np.ndarray, k: int, formula: str) -> np.ndarray:
    """Fold k's held-out rows: lmer on the other rows, then N(x'b + z'b_j, s^2) at a seen
    subject, N(x'b, z'Gz + s^2) at a new one, with SciPy's normal density."""
    train, test = df[folds != k], df[folds == k]
    fit = hb.lmer(formula, train)
    beta = fit.fixef()["Estimate"]
    vc = fit.varcorr()
    sd = {(r.var1, r.var2 if isinstance(r.var2, str) else None): r.sdcor
          for r in vc.itertuples() if r.grp == "Subject"}
    sigma = float(vc.loc[vc["grp"] == "Residual", "sdcor"].iloc[0])
    if ("Days", None) in sd:
        sd0, sd1, rho = sd[("(Intercept)", None)], sd[("Days", None)], sd[("(Intercept)", "Days")]
        G = np.array([[sd0**2, rho * sd0 * sd1], [rho * sd0 * sd1, sd1**2]])
    else:
        G = np.array([[sd[("(Intercept)", None)] ** 2]])
    re = fit.ranef()
    out = []
    # zip, not iterrows: a row Series would turn the subject 308 into 308.0
    for y, days, subject in zip(test["Reaction"], test["Days"], test["Subject"].astype(str),
                                strict=True):
        z = np.array([1.0, days])[: len(G)]
        mean = beta["(Intercept)"] + beta["Days"] * days
        mine = re[re["level"] == subject]
        if len(mine):
            b = mine.set_index("term")["Estimate"]
            out.append(stats.norm.logpdf(y, mean + b["(Intercept)"] + b.get("Days", 0.0) * days,
                                         sigma))
        else:
            out.append(stats.multivariate_normal.logpdf(y, mean, z @ G @ z + sigma**2))
    return np.array(out)


@pytest.mark.parametrize("grouped", [True, False])
def test_reml_pointwise_elpd_equals_a_refit_by_hand(reml_slope, sleepstudy, grouped):
    kf = kfold(reml_slope, K=6, group="Subject" if grouped else None, seed=2, progressbar=False)
    for k in range(1, 7):
        got = kf.pointwise.loc[kf.folds == k, "elpd"].to_numpy()
        np.testing.assert_allclose(got, hand_elpd(sleepstudy, kf.folds, k, SLOPE), rtol=1e-9)
    e = kf.pointwise["elpd"].to_numpy()
    assert kf.elpd_kfold == pytest.approx(e.sum())
    assert kf.se == pytest.approx(np.sqrt(len(e) * np.var(e, ddof=1)))
    # plug-in p_kfold: the full fit's conditional log-likelihood at its estimates, less elpd
    lpd = stats.norm.logpdf(sleepstudy["Reaction"], reml_slope.fitted(), reml_slope.sigma)
    assert kf.p_kfold == pytest.approx(lpd.sum() - e.sum())
    assert kf.kfoldic == pytest.approx(-2 * kf.elpd_kfold)
    text = str(kf)
    assert "Based on 6-fold cross-validation." in text
    assert text.splitlines()[3].split() == ["Estimate", "SE"]
    assert text.splitlines()[4].split() == ["elpd_kfold", f"{kf.elpd_kfold:.1f}", f"{kf.se:.1f}"]
    assert kf.estimates.loc["kfoldic", "SE"] == pytest.approx(2 * kf.se)


# ---------------------------------------------------------------- (3) executors


def test_serial_and_two_workers_give_identical_results(reml_slope):
    serial = kfold(reml_slope, K=6, group="Subject", seed=9, progressbar=False)
    pooled = kfold(reml_slope, K=6, group="Subject", seed=9, progressbar=False, n_jobs=2)
    assert np.array_equal(serial.pointwise.to_numpy(), pooled.pointwise.to_numpy())
    assert serial.elpd_kfold == pooled.elpd_kfold


# ---------------------------------------------------------------- (4) Bayes and compare


@pytest.fixture(scope="module")
def bayes_pair(sleepstudy):
    return quiet_bayes(SLOPE, sleepstudy, 3), quiet_bayes(INTERCEPT, sleepstudy, 4)


def test_bayes_kfold_is_brms_and_close_to_reml(bayes_pair, reml_slope, sleepstudy):
    slope, _ = bayes_pair
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", HierbayesWarning)
        kf = kfold(slope, K=3, group="Subject", seed=1, progressbar=False, **SMALL)
    named = {int(str(w.message).split("fold ")[1].split()[0]) for w in caught
             if issubclass(w.category, ConvergenceWarning)}
    assert named == set(kf.warned)
    e = kf.pointwise["elpd"].to_numpy()
    assert np.isfinite(e).all() and kf.method == "bayes"
    reml = kfold(reml_slope, folds=kf.folds, seed=1, progressbar=False)
    assert abs(kf.elpd_kfold - reml.elpd_kfold) < 3 * reml.se
    # p_kfold: the in-sample lpd (log mean over draws of the likelihood) less elpd
    ll = slope.idata.log_likelihood["Reaction"].to_numpy().reshape(-1, 180)
    lpd = logsumexp(ll, axis=0) - np.log(ll.shape[0])
    assert kf.p_kfold == pytest.approx(lpd.sum() - e.sum())
    # fold 1 by hand: the refit with the fold's seed, its draws for the held-out (new) subjects
    rng = np.random.default_rng(task_seeds(1, 3)[0])
    seed = int(rng.integers(0, 2**32))
    test = kf.folds == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        refit = slope.model.update(data=sleepstudy[~test]).fit(seed=seed, progressbar=False,
                                                                **SMALL)
    held = sleepstudy[test]
    eta = refit.predict_draws(held, kind="link", allow_new_levels=True, seed=rng)
    sigma = np.asarray(refit.posterior["sigma"]).reshape(-1, 1)
    by_hand = logsumexp(stats.norm.logpdf(held["Reaction"].to_numpy(), eta, sigma), axis=0) \
        - np.log(eta.shape[0])
    np.testing.assert_allclose(e[test], by_hand, rtol=1e-10)


def test_compare_ranks_random_slopes_first(bayes_pair, reml_slope, reml_intercept):
    # leave-one-subject-out (the split is the same whatever the seed): the margin is > 2 se_diff
    table = kfold_compare({"intercept": reml_intercept, "slope": reml_slope}, K=18,
                          group="Subject", seed=1, progressbar=False)
    assert table.index.tolist() == ["slope", "intercept"]
    assert table.columns.tolist() == ["rank", "elpd_kfold", "p_kfold", "elpd_diff", "se",
                                      "se_diff", "warning", "scale"]
    assert table["rank"].tolist() == [0, 1] and table.loc["slope", "elpd_diff"] == 0
    assert table.loc["intercept", "elpd_diff"] > 2 * table.loc["intercept", "se_diff"]
    one = kfold(reml_intercept, K=18, group="Subject", seed=1, progressbar=False)
    two = kfold(reml_slope, K=18, group="Subject", seed=1, progressbar=False)
    d = two.pointwise["elpd"] - one.pointwise["elpd"]
    assert table.loc["intercept", "elpd_diff"] == pytest.approx(d.sum())
    assert table.loc["intercept", "se_diff"] == pytest.approx(np.sqrt(180 * d.var()))
    # the Bayesian fits, on one shared 3-fold split, rank the same way
    slope, intercept = bayes_pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        bayes = kfold_compare({"intercept": intercept, "slope": slope}, K=3, group="Subject",
                              seed=2, progressbar=False, **SMALL)
    assert bayes.index.tolist() == ["slope", "intercept"]
    assert np.isfinite(bayes["elpd_kfold"]).all()


# ---------------------------------------------------------------- glmer


def test_glmer_new_herds_integrated_out_by_quadrature(cbpp_fit):
    cbpp = hb.datasets.load("cbpp")
    kf = kfold(cbpp_fit, K=5, group="herd", seed=4, progressbar=False)
    e = kf.pointwise["elpd"].to_numpy()
    assert np.isfinite(e).all() and np.isfinite([kf.elpd_kfold, kf.se, kf.p_kfold]).all()
    test = kf.folds == 2
    refit = hb.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp[~test],
                     family="binomial")
    beta = refit.fixef()["Estimate"]
    sd = float(refit.varcorr()["sdcor"].iloc[0])
    by_hand = []
    held = cbpp[test]
    for y, n, period in zip(held["incidence"], held["size"], held["period"].astype(str),
                            strict=True):
        eta = beta["(Intercept)"] + beta.get(f"period{period}", 0.0)

        def density(u, y=y, n=n, eta=eta):
            return stats.binom.pmf(y, n, expit(eta + u)) * stats.norm.pdf(u, 0, sd)

        by_hand.append(np.log(integrate.quad(density, -10 * sd, 10 * sd, epsabs=0,
                                             epsrel=1e-11)[0]))
    np.testing.assert_allclose(e[test], by_hand, rtol=1e-7)


# ---------------------------------------------------------------- (5) errors and warnings


def test_errors_come_before_any_work(reml_slope, sleep_model):
    with pytest.raises(SettingsError, match="K must be an integer of at least 2"):
        kfold(reml_slope, K=1, progressbar=False)
    with pytest.raises(DataError, match="at least 181 rows"):
        kfold(reml_slope, K=181, progressbar=False)
    with pytest.raises(DataError, match="the grouping has 18"):
        kfold(reml_slope, K=19, group="Subject", progressbar=False)
    with pytest.raises(DataError, match="neither a grouping factor"):
        kfold(reml_slope, group="Subjekt", progressbar=False)
    with pytest.raises(DataError, match="one fold id per fitted row"):
        kfold(reml_slope, folds=np.arange(179) % 3, progressbar=False)
    with pytest.raises(DataError, match="splits level"):
        kfold(reml_slope, folds=np.arange(180) % 3, group="Subject", progressbar=False)
    with pytest.raises(DataError, match="single fold id"):
        kfold(reml_slope, folds=np.ones(180), progressbar=False)
    with pytest.raises(DataError, match="not a MerMod"):
        from hierbayes.freq.fit import fit_design

        kfold(fit_design(reml_slope.design), progressbar=False)
    with pytest.raises(DataError, match="not a Model"):
        kfold(sleep_model, progressbar=False)
    with pytest.raises(SettingsError, match="cannot change 'draws'"):
        kfold(reml_slope, progressbar=False, draws=10)
    with pytest.raises(SettingsError, match="seed must be None or a non-negative"):
        kfold(reml_slope, seed=-1, progressbar=False)
    with pytest.raises(SettingsError, match="optimizer must be one of"):
        kfold(reml_slope, optimizer="nelder", progressbar=False)


def test_compare_refuses_other_rows_or_folds(reml_slope, reml_intercept, sleepstudy):
    a = kfold(reml_slope, K=3, group="Subject", seed=1, progressbar=False)
    b = kfold(reml_intercept, K=3, group="Subject", seed=2, progressbar=False)
    with pytest.raises(DataError, match="different folds"):
        kfold_compare({"a": a, "b": b})
    small = kfold(hb.lmer(INTERCEPT, sleepstudy.iloc[:170]), K=3, seed=1, progressbar=False)
    with pytest.raises(DataError, match="same rows"):
        kfold_compare({"a": a, "small": small})
    with pytest.raises(DataError, match="at least two"):
        kfold_compare({"a": a})
    # a KFold's folds are shared with the fits given beside it
    table = kfold_compare({"a": a, "b": reml_intercept}, seed=1, progressbar=False)
    assert set(table.index) == {"a", "b"} and isinstance(a, KFold)


def test_a_fold_that_fails_its_checks_is_named():
    messages = [[], [(ConvergenceWarning, "R-hat above 1.01 for Days.")], [(HierbayesWarning, "x")]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        failed = report_warnings(messages, 3, [60, 60, 60])
    assert failed == [2]
    texts = [str(w.message) for w in caught]
    assert any("fold 2 of 3 (60 rows held out)" in t and "R-hat" in t for t in texts)
    assert any(t == "k-fold, fold 3: x" for t in texts)


def test_fold_errors_name_the_fold(reml_slope, sleepstudy):
    # a factor level present only in the held-out fold cannot be predicted: the error says which fold
    df = sleepstudy.assign(site=np.where(sleepstudy["Subject"].astype(str) == "308", "b", "a"))
    fit = hb.lmer("Reaction ~ Days + site + (1 | Subject)", df)
    with pytest.raises(DataError, match="fold"):
        kfold(fit, K=18, group="Subject", seed=1, progressbar=False)
