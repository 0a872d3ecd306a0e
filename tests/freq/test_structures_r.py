"""Residual and covariance structures by REML and ML against nlme and glmmTMB.

References: ``tests/data/r/structures_models.json``, made by ``tests/r/structures_models.R``
(its header says how to rerun it): nlme's ``lme`` with ``varIdent``, ``varExp``, ``corAR1``
(with gaps, and shuffled rows), ``corCAR1`` on unequal spacing, and the two together; glmmTMB's
``ar1()``, ``cs()``, ``diag()`` and ``us()`` terms, by ML and REML. Limits (issue 20): logLik
within 1e-6 relative, fixed effects and their SEs within 1e-4, SD ratios, phi and SDs within 1e-3.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from tests.conftest import SHARED

DATA = Path(__file__).resolve().parents[1] / "data" / "r"
REFS = json.loads((DATA / "structures_models.json").read_text())
MODELS = {m["id"]: m for m in REFS["models"]}

# each reference fit as hierbayes writes it: formula, data, sigma= and correlation=
GPA = "gpa ~ occasion + (1 | student)"
BW = "weight ~ Time * Diet + (1 | Rat)"
ORTHO = "distance ~ age + Sex + (1 | Subject)"
CALLS = {
    "gpa_homo_reml": (GPA, "gpa", {}),
    "gpa_varident_reml": (GPA, "gpa", {"sigma": "~ occas"}),
    "gpa_varident_ml": (GPA, "gpa", {"sigma": "~ occas"}),
    "gpa_ar1_reml": (GPA, "gpa", {"correlation": hb.ar1(time="occasion")}),
    "gpa_varident_ar1_reml": (GPA, "gpa", {"sigma": "~ occas", "correlation": hb.ar1(time="occasion")}),
    "gpa_varident_ar1_ml": (GPA, "gpa", {"sigma": "~ occas", "correlation": hb.ar1(time="occasion")}),
    "gpa_gaps_ar1_reml": (GPA, "gpa_gaps", {"correlation": hb.ar1(time="occasion")}),
    "gpa_gaps_shuffled_ar1_reml": (GPA, "gpa_gaps_shuffled", {"correlation": hb.ar1(time="occasion")}),
    "orthodont_varident_reml": (ORTHO, "Orthodont", {"sigma": "~ Sex"}),
    "orthodont_varident_ml": (ORTHO, "Orthodont", {"sigma": "~ Sex"}),
    "orthodont_varexp_reml": (ORTHO, "Orthodont", {"sigma": "~ age"}),
    "ovary_ar1_reml": ("follicles ~ sin2pi + cos2pi + (1 | Mare)", "Ovary", {"correlation": hb.ar1()}),
    "bodyweight_car1_reml": (BW, "BodyWeight", {"correlation": hb.car1(group="Rat", time="Time")}),
    "bodyweight_car1_ml": (BW, "BodyWeight", {"correlation": hb.car1(group="Rat", time="Time")}),
    "bodyweight_varident_car1_reml": (BW, "BodyWeight", {"sigma": "~ Diet",
                                                          "correlation": hb.car1(group="Rat", time="Time")}),
    "gpa_tmb_ar1_ml": ("gpa ~ occasion + ar1(0 + occas | student) + (1 | student)", "gpa", {}),
    "gpa_tmb_ar1_reml": ("gpa ~ occasion + ar1(0 + occas | student) + (1 | student)", "gpa", {}),
    "gpa_tmb_ar1_noint_ml": ("gpa ~ occasion + ar1(0 + occas | student)", "gpa", {}),
    "gpa_tmb_diag_ml": ("gpa ~ occasion + (1 | student) + diag(0 + occas | student)", "gpa", {}),
    "machines_tmb_cs_ml": ("score ~ Machine + cs(0 + Machine | Worker)", "Machines", {}),
    "machines_tmb_cs_reml": ("score ~ Machine + cs(0 + Machine | Worker)", "Machines", {}),
    "machines_tmb_diag_reml": ("score ~ Machine + diag(0 + Machine | Worker)", "Machines", {}),
    "sleep_tmb_us_reml": ("Reaction ~ Days + us(Days | Subject)", "sleepstudy", {}),
    "sleep_tmb_diag_ml": ("Reaction ~ Days + diag(Days | Subject)", "sleepstudy", {}),
}
# the seed's diag(0 + occas | student) + (1 | student) leaves the residual SD unidentified
# beside six SDs (glmmTMB's note): only logLik and the per-occasion total variance are checked
RIDGE = {"gpa_tmb_diag_ml"}


def load_dataset(name: str) -> pd.DataFrame:
    """A dataset as R had it, factors as Categoricals with R's levels."""
    meta = REFS["datasets"][name]
    columns = meta["columns"]
    path = SHARED / meta["file"] if meta.get("shared") else DATA / meta["file"]
    dtypes = {col: str if c["type"] == "factor" else float for col, c in columns.items()}
    frame = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values=["NA"])
    if meta.get("shared"):  # gpa: R made occas = factor(occasion), replacing the file's text column
        frame["occas"] = frame["occasion"].astype(int).astype(str)
    for col, c in columns.items():
        if c["type"] == "factor":
            frame[col] = pd.Categorical(frame[col], categories=c["levels"], ordered=c["ordered"])
        elif col not in frame:  # a column R made (gpa's occas)
            raise AssertionError(f"{name} lacks {col}")
    assert len(frame) == meta["nrow"]
    return frame


@cache
def fitted(model_id: str):
    formula, data, kw = CALLS[model_id]
    frame = load_dataset(data)
    return hb.lmer(formula, frame, reml=MODELS[model_id]["method"] == "REML", **kw)


def test_every_reference_fit_is_checked():
    assert set(CALLS) == set(MODELS)


@pytest.mark.parametrize("model_id", list(CALLS))
def test_loglik_and_fixed_effects(model_id):
    ref, fit = MODELS[model_id], fitted(model_id)
    assert fit.nobs == ref["nobs"]
    assert fit.loglik == pytest.approx(ref["logLik"], rel=1e-6)
    fx = fit.fixef()
    assert list(fx.index) == ref["fixef_names"]
    est, se = fx["Estimate"].to_numpy(), fx["Std. Error"].to_numpy()
    r_est = np.array([ref["fixef"][n] for n in ref["fixef_names"]])
    # glmmTMB's own SEs carry the variance parameters' uncertainty; lme4's and nlme's (ours)
    # are conditional on them, which the script also computes from glmmTMB's fit
    se_key = "fixef_se_conditional" if ref["engine"] == "glmmTMB" else "fixef_se"
    r_se = np.array([ref[se_key][n] for n in ref["fixef_names"]])
    assert np.all(np.abs(est - r_est) <= 1e-4 * np.maximum(np.abs(r_est), r_se)), (est, r_est)
    np.testing.assert_allclose(se, r_se, rtol=1e-4)


@pytest.mark.parametrize("model_id", [k for k in CALLS if k not in RIDGE])
def test_variance_parameters(model_id):
    ref, fit = MODELS[model_id], fitted(model_id)
    vc = fit.varcorr()
    theirs = ref["varcorr"]
    ours_sd = vc["sdcor"].to_numpy(dtype=float)[: len(theirs["sdcor"])]
    np.testing.assert_allclose(ours_sd, np.array(theirs["sdcor"], dtype=float), rtol=1e-3, atol=1e-3 * fit.sigma)
    params = fit.residual_params()
    vs = ref.get("varStruct")
    if vs is not None and vs["class"] == "varIdent":
        assert vs["reference_level"] == params.index[0]
        for level, ratio in vs["sd_ratio"].items():
            assert params[level] == pytest.approx(ratio, rel=1e-3)
    elif vs is not None:
        assert params[fit.design.residual.variance.names[0]] == pytest.approx(vs["coef"]["expon"], abs=1e-3 * abs(vs["coef"]["expon"]) + 1e-5)
    cs = ref.get("corStruct")
    if cs is not None:
        assert params["phi"] == pytest.approx(cs["phi"], rel=1e-3)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-3)


def test_the_unidentified_diag_term_has_glmmtmbs_total_variances():
    ref, fit = MODELS["gpa_tmb_diag_ml"], fitted("gpa_tmb_diag_ml")
    # per occasion: the intercept's variance + that occasion's + the residual's
    cov = fit.covariance()
    names = [b.group for b in fit.design.blocks]
    diag = cov[names.index("student.1")].diagonal()
    total = diag + cov[names.index("student")][0, 0] + fit.sigma**2
    sd = np.array(ref["varcorr"]["sdcor"], dtype=float)
    r_total = sd[1:7] ** 2 + sd[0] ** 2 + ref["sigma"] ** 2
    np.testing.assert_allclose(total, r_total, rtol=1e-3)


@pytest.mark.parametrize("model_id", ["gpa_varident_ar1_reml", "gpa_gaps_ar1_reml", "orthodont_varexp_reml"])
def test_residuals_as_nlme_gives_them(model_id):
    # with a correlation, on rows sorted by group, where nlme's normalised residuals are per series
    # (tests/r/structures_models.R's notes$nlme_row_order); without one they are Pearson's
    ref, fit = MODELS[model_id], fitted(model_id)
    assert ref["rows_sorted_by_group"] or ref["corStruct"] is None
    # the fitted values follow the estimates, which agree to 1e-4
    np.testing.assert_allclose(fit.fitted(), ref["fitted"], rtol=1e-4)
    np.testing.assert_allclose(fit.pearson_residuals() / fit.sigma, ref["resid_pearson"], atol=2e-3)
    np.testing.assert_allclose(fit.normalized_residuals(), ref["resid_normalized"], atol=2e-3)


def test_shuffled_rows_give_the_same_fit():
    a, b = fitted("gpa_gaps_ar1_reml"), fitted("gpa_gaps_shuffled_ar1_reml")
    assert a.loglik == pytest.approx(b.loglik, rel=1e-9)
    np.testing.assert_allclose(a.residual_params(), b.residual_params(), rtol=1e-5)
