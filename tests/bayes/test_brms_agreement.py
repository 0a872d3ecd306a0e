"""Bayesian GLMMs under brms's default priors against brms's own fits of the same models.

References: ``tests/data/r/brms_models.json`` (``tests/r/brms_models.R``, whose header says
how to rerun it): brms 2.18 on four models of ``tests/data/r/glmm_models.json`` (binomial
with trials, Poisson with an offset, negative binomial, Gamma with a log link), 4 chains of
2,500 kept draws each. The priors set here are read from the reference's
``prior_summary`` table, not typed in: ``b`` flat, the centred intercept's
``student_t(3, loc, 2.5)``, the SDs' half ``student_t(3, 0, 2.5)`` and the shape's
``gamma(0.01, 0.01)``, so the two fits target the same posterior. Each posterior mean of a
fixed effect, a group-level SD and the shape must lie within 0.15 posterior SD of brms's;
with 4 x 2,500 draws on both sides the Monte Carlo error of the difference is about 0.03 SD.
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest

import hierbayes as hb
from tests.freq.test_glmer_r import REFS as GLMM_REFS
from tests.freq.test_glmer_r import load_dataset

DATA = Path(__file__).resolve().parents[1] / "data" / "r"
BRMS = {m["id"]: m for m in json.loads((DATA / "brms_models.json").read_text())["models"]}
GLMM = {m["id"]: m for m in GLMM_REFS["models"]}


def brms_priors(ref: dict) -> dict[str, str]:
    """Our priors for brms's ``prior_summary``: each class's default row (flat where empty)."""
    table = ref["priors"]
    priors = {}
    for prior, cls, coef, group in zip(table["prior"], table["class"], table["coef"], table["group"],
                                       strict=True):
        if coef or group:
            continue  # brms's per-coefficient rows inherit the class's prior
        priors[cls] = prior or "flat"
    assert set(priors) <= {"b", "Intercept", "sd", "shape"}, priors
    return priors


@cache
def _fit(model_id: str) -> hb.BayesFit:
    ref = BRMS[model_id]
    glmm = GLMM[ref["glmm_id"]]
    family = hb.get_family(ref["family"], link=ref["link"])
    model = hb.Model(glmm["formula"], load_dataset(ref["dataset"]), family=family, priors=brms_priors(ref))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        return model.fit(draws=2500, tune=1000, chains=4, seed=19, progressbar=False)


def _ours(fit: hb.BayesFit, variable: str) -> np.ndarray:
    """Our draws of one of brms's variables (``b_X``, ``sd_G__T``, ``shape``)."""
    post = fit.posterior
    if variable == "shape":
        return np.asarray(post["shape"]).reshape(-1)
    if variable.startswith("b_"):
        term = variable[2:]
        terms = list(post.coords["fixef_term"])
        term = "(Intercept)" if term == "Intercept" else term
        return np.asarray(post["fixef"])[..., terms.index(term)].reshape(-1)
    group, term = variable[3:].split("__")
    term = "(Intercept)" if term == "Intercept" else term
    terms = list(post.coords[f"{group}__term"])
    return np.asarray(post[f"sd_{group}"])[..., terms.index(term)].reshape(-1)


@pytest.mark.slow
@pytest.mark.parametrize("model_id", list(BRMS))
def test_posterior_means_agree_with_brms(model_id: str) -> None:
    ref = BRMS[model_id]
    fit = _fit(model_id)
    d = fit.diagnostics()
    assert d.max_rhat < 1.01 and d.min_ess_bulk > 400, d
    s = ref["summary"]
    compared = 0
    for var, mean, sd in zip(s["variable"], s["mean"], s["sd"], strict=True):
        if var.startswith("r_"):
            continue
        draws = _ours(fit, var)
        assert abs(draws.mean() - mean) < 0.15 * sd, (var, draws.mean(), mean, sd)
        # the spread as well: a prior on the wrong scale shows in the SD before the mean
        assert abs(draws.std() / sd - 1) < 0.1, (var, draws.std(), sd)
        compared += 1
    assert compared == sum(not v.startswith("r_") for v in s["variable"])


def test_the_priors_read_from_brms_are_its_defaults() -> None:
    pri = brms_priors(BRMS["grouseticks_negbinomial"])
    assert pri == {"b": "flat", "Intercept": "student_t(3, 0.7, 2.5)", "sd": "student_t(3, 0, 2.5)",
                   "shape": "gamma(0.01, 0.01)"}
    model = hb.Model(GLMM["grouseticks_nb_tmb"]["formula"], load_dataset("grouseticks"),
                     family="negbinomial", priors=pri)
    text = str(model.priors)
    assert "flat" in text and "gamma(0.01, 0.01)" in text
