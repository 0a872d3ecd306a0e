"""Marginal means and contrasts (``hierbayes.report.emmeans``) against R's emmeans 1.8.

The references come from ``tests/r/emmeans_models.R`` (its header says how to rerun it):
22 emmeans() calls on seven lmer and glmer models of the data that ``tests/r/lmer_models.R``
and ``tests/r/glmm_models.R`` wrote, each with its contrasts, in
``tests/data/r/emmeans_models.json``. The acceptance line: the means, SEs, df and interval
ends, and the contrasts' estimates, SEs, df, interval ends, t or z ratios and p-values, to
1e-4 relative. Estimates and interval ends are compared relative to the larger of their size
and their SE (an estimate near zero is not held tighter than its precision); p-values below
1e-6 to 1e-10 absolute, where R's ``ptukey`` and SciPy's studentized range are themselves
no more accurate.

The Bayesian means are checked against ``X_grid @ beta`` draws computed here by hand, and
against the REML means (within 3 posterior SDs, a check that could fail).
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.errors import DataError, SettingsError
from hierbayes.freq.ddf import LinearFunctions, kenward_roger, satterthwaite
from hierbayes.report.emm_contrasts import _poly, p_adjust
from hierbayes.report.emmeans import emmeans

from ..freq.test_r_models import load_dataset

DATA = Path(__file__).resolve().parents[1] / "data" / "r"
REFS = json.loads((DATA / "emmeans_models.json").read_text())
MODELS = {m["id"]: m for m in REFS["models"]}
CASES = {c["id"]: c for c in REFS["cases"]}
GLMM_DATA = json.loads((DATA / "glmm_models.json").read_text())["datasets"]


def _dataset(name: str) -> pd.DataFrame:
    if name != "cbpp":
        return load_dataset(name)
    meta = GLMM_DATA[name]
    frame = pd.read_csv(DATA / meta["file"], dtype={"herd": str, "period": str})
    for col in ("herd", "period"):
        frame[col] = pd.Categorical(frame[col], categories=meta["columns"][col]["levels"])
    return frame


@cache
def _fit(model_id: str):
    m = MODELS[model_id]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = _dataset(m["dataset"])
        if m["engine"] == "lmer":
            return hb.lmer(m["formula"], data)
        return hb.glmer(m["formula"], data, family="binomial")


def _arr(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _close(ours, ref, scale, rtol: float = 1e-4, what: str = "") -> None:
    ours, ref = np.asarray(ours, dtype=float), _arr(ref)
    assert np.array_equal(np.isnan(ours), np.isnan(ref)), f"{what}: NaN where R has NA differs"
    ok = ~np.isnan(ref)
    bad = np.abs(ours[ok] - ref[ok]) > rtol * np.asarray(scale, dtype=float)[ok]
    assert not bad.any(), f"{what}: ours {ours[ok][bad]} against R's {ref[ok][bad]}"


def _df(ours: pd.Series, ref: list) -> None:
    ref = _arr(ref)
    inf = np.isinf(ours.to_numpy())
    # R writes Inf as null; a non-estimable row is NA in R and NaN here
    assert np.all(inf | np.isnan(ours.to_numpy()) == np.isnan(ref))
    _close(np.where(inf, np.nan, ours), ref, np.abs(ref), what="df")


def _compare(frame: pd.DataFrame, ref: dict, estimate: str) -> None:
    se = _arr(ref["SE"])
    size = np.fmax(np.abs(_arr(ref["estimate"])), se)
    for col, values in ref["columns"].items():
        if isinstance(values[0], str):
            assert frame[col].astype(str).tolist() == values, col
        else:
            np.testing.assert_allclose(frame[col].to_numpy(dtype=float), values, rtol=1e-12)
    _close(frame[estimate], ref["estimate"], size, what=estimate)
    _close(frame["std_error"], ref["SE"], se, what="SE")
    _df(frame["df"], ref["df"])
    _close(frame["conf_low"], ref["lower"], size, what="conf_low")
    _close(frame["conf_high"], ref["upper"], size, what="conf_high")


MESSAGES = ("P value adjustment", "Conf-level adjustment", "Degrees-of-freedom method",
            "Results are averaged", "Confidence level used", "Results are given on")


def _messages(lines: list[str]) -> list[str]:
    return sorted(m for m in lines if m.startswith(MESSAGES))


@pytest.mark.parametrize("case_id", list(CASES))
def test_matches_r_emmeans(case_id):
    case = CASES[case_id]
    kw = {k: case[k] for k in ("lmer_df", "at", "weights") if case[k] is not None}
    emm = emmeans(_fit(case["model"]), case["specs"], by=case["by"] or None, type=case["type"], **kw)
    _compare(emm.frame, case["emmeans"], "emmean")
    assert _messages(emm.notes) == _messages(case["emmeans"]["mesg"])
    assert emm.frame.attrs["conf_level"] == 0.95
    for ref in case["contrasts"]:
        con = emm.contrast(ref["method"], adjust=ref["adjust"])
        f = con.frame
        assert f["contrast"].tolist() == ref["columns"]["contrast"]
        _compare(f, ref, "estimate")
        stat = ref["ratio_name"].replace(".", "_")
        _close(f[stat], ref["ratio"], np.fmax(np.abs(_arr(ref["ratio"])), 1e-2), what=stat)
        p = _arr(ref["p_value"])
        _close(f["p_value"], ref["p_value"], np.where(p < 1e-6, 1e-6, p), what="p-value")
        assert _messages(con.notes) == _messages(ref["mesg"]), ref["method"]


def test_the_methods_emmeans_names():
    oats = CASES["oats_variety_by_nitro_kr"]
    fit = _fit(oats["model"])
    pairs = emmeans(fit, "~ Variety | nitro").pairs()
    assert pairs.frame.equals(emmeans(fit, "Variety", by="nitro").pairs(adjust="tukey").frame)
    assert list(pairs.frame.columns) == ["contrast", "nitro", "estimate", "std_error", "df",
                                         "conf_low", "conf_high", "t_ratio", "p_value"]
    text = str(pairs)
    assert text.startswith("nitro = 0.0:\n contrast ")
    assert "P value adjustment: tukey method for comparing a family of 3 estimates" in text
    assert "<table" in pairs._repr_html_()
    rev = emmeans(fit, "Variety", by="nitro").pairs(reverse=True).frame
    np.testing.assert_allclose(rev["estimate"].iloc[0], -pairs.frame["estimate"].iloc[0])
    copy = pairs.to_frame()
    copy.iloc[0, 2] = 0.0
    assert pairs.frame.iloc[0, 2] != 0.0 and copy.attrs["adjust"] == "tukey"
    # by=None in contrast: one family of all 12 means
    assert len(emmeans(fit, "Variety", by="nitro").pairs(by=None).frame) == 66


def test_poly_and_p_adjust():
    # orthogonal polynomial coefficients for 5 equally spaced levels (Fisher and Yates's table)
    assert _poly(5, 4).tolist() == [[-2, -1, 0, 1, 2], [2, -1, -2, -1, 2], [-1, 2, 0, -2, 1],
                                    [1, -4, 6, -4, 1]]
    # p.adjust's methods from their definitions, on the sorted p-values; NaN stays NaN
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.012])
    q = np.sort(p[~np.isnan(p)])
    n, j = 4, np.arange(1, 5)
    holm = [max(min(1, (n - k + 1) * q[k - 1]) for k in j[:i]) for i in j]
    hoch = [min(min(1, (n - k + 1) * q[k - 1]) for k in j[i - 1:]) for i in j]
    bh = [min(min(1, n / k * q[k - 1]) for k in j[i - 1:]) for i in j]
    by = [min(1, b * np.sum(1 / j)) for b in bh]
    order = np.argsort(p[~np.isnan(p)])
    for method, want in (("holm", holm), ("hochberg", hoch), ("fdr", bh), ("BY", by)):
        got = p_adjust(p, method, n)
        assert np.isnan(got[3])
        np.testing.assert_allclose(got[~np.isnan(p)][order], want, rtol=1e-14, err_msg=method)
    np.testing.assert_allclose(p_adjust(p, "bonferroni", 6), [0.06, 0.24, 0.18, np.nan, 0.072])


def test_linear_functions_give_the_coefficient_tables():
    # the general L beta of ddf.py gives back the per-coefficient tables unchanged
    fit = _fit("oats")
    eye = np.eye(fit.design.X.shape[1])
    for method, table in (("kenward-roger", kenward_roger), ("satterthwaite", satterthwaite)):
        ours = LinearFunctions(fit, method).table(eye)
        ref = table(fit)
        np.testing.assert_allclose(ours["std_error"], ref["Std. Error"], rtol=1e-12)
        np.testing.assert_allclose(ours["df"], ref["df"], rtol=1e-10)
        np.testing.assert_allclose(ours["estimate"], ref["Estimate"], rtol=1e-12)


def test_grid_values_and_weights():
    sleep = hb.datasets.load("sleepstudy")
    sleep = sleep.assign(late=(sleep["Days"] > 4).astype(float))
    fit = hb.lmer("Reaction ~ late + Days + (1 | Subject)", sleep)
    # a number with two values keeps them (cov.keep = "2"); Days sits at its mean
    emm = emmeans(fit, "late").frame
    beta = fit.estimates.beta
    np.testing.assert_allclose(emm["emmean"], [beta[0] + beta[2] * 4.5, beta[0] + beta[1] + beta[2] * 4.5])
    assert emm["late"].tolist() == [0.0, 1.0]
    at = emmeans(fit, "Days", by="late", at={"Days": [0, 9]}).frame
    np.testing.assert_allclose(at["emmean"], [beta[0], beta[0] + 9 * beta[2],
                                              beta[0] + beta[1], beta[0] + beta[1] + 9 * beta[2]])
    # the frozen transforms replay: poly()'s basis at the grid's Days
    poly = hb.lmer("Reaction ~ poly(Days, 2) + (1 | Subject)", sleep)
    grid = emmeans(poly, "Days", at={"Days": [0.0, 4.5, 9.0]}).frame["emmean"]
    np.testing.assert_allclose(grid, poly.predict(pd.DataFrame({"Days": [0.0, 4.5, 9.0]}),
                                                  re_form="~0"), rtol=1e-12)
    # an at= on a factor keeps the levels given, in that order
    oats = emmeans(_fit("oats"), "nitro", at={"nitro": [0.6, 0.0]}).frame
    assert oats["nitro"].tolist() == [0.6, 0.0]


def test_offsets_enter_the_means():
    sleep = hb.datasets.load("sleepstudy")
    fit = hb.lmer("Reaction ~ Days + offset(Days) + (1 | Subject)", sleep)
    f = emmeans(fit, "Days", at={"Days": [1.0, 2.0]}).frame
    beta = fit.estimates.beta
    np.testing.assert_allclose(f["emmean"], [beta[0] + beta[1] + 1, beta[0] + 2 * beta[1] + 2])
    arg = hb.lmer("Reaction ~ Days + (1 | Subject)", sleep, offset="Days")
    with pytest.raises(DataError, match="fitted with offset="):
        emmeans(arg, "Days", at={"Days": [1.0]})
    np.testing.assert_allclose(emmeans(arg, "Days", at={"Days": [1.0]}, offset=0).frame["emmean"],
                               arg.estimates.beta.sum())


def test_default_df_method_falls_back_as_emmeans():
    ml = hb.lmer("yield ~ Variety + (1 | Block)", load_dataset("Oats"), reml=False)
    assert emmeans(ml, "Variety").frame.attrs["df_method"] == "satterthwaite"
    with pytest.raises(DataError, match="REML"):
        emmeans(ml, "Variety", lmer_df="kenward-roger")
    assert np.isinf(emmeans(ml, "Variety", lmer_df="z").frame["df"]).all()


# ---- Bayesian fits -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ergo_fits():
    data = load_dataset("ergoStool")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bayes = hb.Model("effort ~ Type + (1 | Subject)", data).fit(
            draws=300, tune=300, chains=2, seed=3, progressbar=False)
    return bayes, hb.lmer("effort ~ Type + (1 | Subject)", data)


def test_bayesian_means_are_the_draws_of_x_beta(ergo_fits):
    bayes, _ = ergo_fits
    beta = np.asarray(bayes.posterior["fixef"]).reshape(-1, 4)
    X = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1]], dtype=float)
    draws = beta @ X.T  # T1..T4, treatment contrasts
    emm = emmeans(bayes, "Type")
    f = emm.frame
    assert list(f.columns) == ["Type", "emmean", "std_error", "conf_low", "conf_high"]
    np.testing.assert_allclose(emm.draws().to_numpy(), draws, rtol=1e-12)
    assert emm.draws().columns.tolist() == ["T1", "T2", "T3", "T4"]
    np.testing.assert_allclose(f["emmean"], draws.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(f["std_error"], draws.std(axis=0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(f["conf_low"], np.quantile(draws, 0.025, axis=0), rtol=1e-12)
    np.testing.assert_allclose(f["conf_high"], np.quantile(draws, 0.975, axis=0), rtol=1e-12)
    med = emmeans(bayes, "Type", point="median", interval="hpd", level=0.9).frame
    np.testing.assert_allclose(med["emmean"], np.median(draws, axis=0), rtol=1e-12)
    for j in range(4):  # the HPD interval: the shortest window of 270 sorted draws (coda's)
        s = np.sort(draws[:, j])
        k = np.argmin(s[540:] - s[:-540])
        assert (med["conf_low"][j], med["conf_high"][j]) == (s[k], s[k + 540])
    pairs = emm.pairs()
    diff = draws[:, 0] - draws[:, 1]
    assert pairs.frame["contrast"].iloc[0] == "T1 - T2" and "p_value" not in pairs.frame
    np.testing.assert_allclose(pairs.frame["estimate"].iloc[0], diff.mean(), rtol=1e-12)
    assert "Point estimate displayed: mean" in str(pairs)


def test_bayesian_means_agree_with_reml(ergo_fits):
    bayes, reml = ergo_fits
    for b, r in ((emmeans(bayes, "Type"), emmeans(reml, "Type")),
                 (emmeans(bayes, "Type").pairs(), emmeans(reml, "Type").pairs())):
        name = "estimate" if "estimate" in b.frame else "emmean"
        gap = np.abs(b.frame[name] - r.frame[name]) / b.frame["std_error"]
        assert (gap < 3).all(), gap
        assert (b.frame["std_error"] / r.frame["std_error"]).between(0.5, 2).all()


def test_bayesian_covariate_at_values(sleep_fit):
    beta = np.asarray(sleep_fit.posterior["fixef"]).reshape(-1, 2)
    f = emmeans(sleep_fit, "Days", at={"Days": [0, 9]}).frame
    np.testing.assert_allclose(f["emmean"], [beta[:, 0].mean(), (beta[:, 0] + 9 * beta[:, 1]).mean()])


def test_bayesian_binomial_on_the_response_scale():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = hb.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                       hb.datasets.load("cbpp"), family="binomial").fit(
            draws=300, tune=300, chains=2, seed=5, progressbar=False)
    beta = np.asarray(fit.posterior["fixef"]).reshape(-1, 4)
    eta = beta @ np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1]], dtype=float).T
    emm = emmeans(fit, "period", type="response")
    np.testing.assert_allclose(emm.frame["emmean"], (1 / (1 + np.exp(-eta))).mean(axis=0))
    odds = emm.pairs()
    assert odds.frame["contrast"].iloc[0] == "period1 / period2"
    np.testing.assert_allclose(odds.frame["estimate"].iloc[0], np.exp(eta[:, 0] - eta[:, 1]).mean())


# ---- errors --------------------------------------------------------------------------------


def test_errors_say_what_to_do(ergo_fits):
    oats = _fit("oats")
    with pytest.raises(DataError, match=r"numeric covariate.*at=\{'Days'"):
        emmeans(hb.lmer("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy")), "Days")
    with pytest.raises(DataError, match="Name the data column: 'nitro'"):
        emmeans(oats, "factor(nitro)")
    with pytest.raises(DataError, match="groups the random effects.*factors are: Variety, nitro"):
        emmeans(oats, "Block")
    with pytest.raises(DataError, match="by names 'zz'"):
        emmeans(oats, "Variety", by="zz")
    with pytest.raises(DataError, match="not among its levels"):
        emmeans(oats, "Variety", at={"nitro": [0.3]})
    with pytest.raises(DataError, match="needs one or more finite numbers"):
        emmeans(_fit("orthodont"), "age", at={"age": ["young"]})
    with pytest.raises(DataError, match="gives no values"):
        emmeans(oats, "Variety", at={"Variety": []})
    with pytest.raises(DataError, match="does not use"):
        emmeans(oats, "Variety", at={"yield": [1]})
    with pytest.raises(SettingsError, match="hb.lmer, hb.glmer or Model.fit"):
        emmeans(oats.design, "Variety")
    with pytest.raises(SettingsError, match="lmer_df is for lmer fits"):
        emmeans(_fit("cbpp"), "period", lmer_df="satterthwaite")
    with pytest.raises(SettingsError, match="weights must be"):
        emmeans(oats, "Variety", weights="bogus")
    with pytest.raises(SettingsError, match="level must be"):
        emmeans(oats, "Variety", level=95)
    with pytest.raises(SettingsError, match="named twice"):
        emmeans(oats, "Variety", by="Variety")
    with pytest.raises(SettingsError, match="transformation log"):
        emmeans(hb.lmer("log(Reaction) ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy")),
                "Days", at={"Days": [1]}, type="response")
    emm = emmeans(oats, "Variety")
    with pytest.raises(SettingsError, match="needs 3 finite coefficients"):
        emm.contrast({"a": [1, -1]})
    with pytest.raises(SettingsError, match="Unknown contrast method"):
        emm.contrast("tukeyy")
    with pytest.raises(SettingsError, match="Unknown adjust"):
        emm.pairs(adjust="scheffe")
    with pytest.raises(SettingsError, match="for Bayesian fits"):
        emm.draws()
    with pytest.raises(SettingsError, match="nothing to adjust"):
        emmeans(ergo_fits[0], "Type").pairs(adjust="tukey")
    with pytest.raises(SettingsError, match="for Bayesian fits"):
        emmeans(oats, "Variety", interval="hpd")
