"""Shared fixtures: reference values from R, and fitted models reused across tests.

Fitting takes seconds (nutpie and PyMC compile each model for 15-30 s), so
each fitted model here is built once per session and shared.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

import hierbayes as hb

# Property tests draw the same examples on every run, so main's CI cannot turn
# red by chance; HYPOTHESIS_PROFILE=explore draws new ones to hunt for bugs.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SHARED = Path(os.environ.get("HIERBAYES_SHARED", Path(__file__).resolve().parents[2] / "shared"))

BRMS_PRIORS = {
    "Intercept": "normal(250, 100)",
    "b": "normal(0, 50)",
    "sd": "student_t(3, 0, 50)",
    "sigma": "student_t(3, 0, 50)",
    "cor": "lkj(2)",
}


def _load(name: str) -> dict:
    path = SHARED / "refs" / name
    if not path.exists():
        raise FileNotFoundError(
            f"Reference file {path} is missing: the tests need ../shared/refs beside the "
            "checkout (or HIERBAYES_SHARED pointing at shared/)."
        )
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def lme4_refs() -> dict:
    return _load("lme4.json")


@pytest.fixture(scope="session")
def bayes_refs() -> dict:
    return _load("bayes.json")


@pytest.fixture(scope="session")
def extra_refs() -> dict:
    return _load("extra.json")


@pytest.fixture(scope="session")
def sleepstudy():
    return hb.datasets.load("sleepstudy")


@pytest.fixture(scope="session")
def sleep_model(sleepstudy):
    return hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy)


@pytest.fixture(scope="session")
def sleep_fit(sleep_model):
    """Default priors, enough draws for the accessors' checks; shared by many tests."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        return sleep_model.fit(draws=500, tune=500, chains=4, seed=11, progressbar=False)


# ---- the GLMM families: simulated data with a known truth, and short fits of them ----
# shared by tests/bayes/test_glmm_sampling.py (the truth recovered) and
# tests/report/test_glmm_reports.py (summaries, predictions, LOO)

GLMM_TRUTH = {"(Intercept)": -0.4, "x": 0.7, "sd": 0.6, "shape": 3.0, "sigma": 0.8}


def glmm_data(seed: int = 5, groups: int = 40, per: int = 6) -> pd.DataFrame:
    """``x`` and ``g`` with every family's response drawn from ``GLMM_TRUTH``, plus trials,
    exposures and prior weights."""
    from scipy.special import expit, ndtr

    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per)
    x = rng.normal(size=g.size)
    eta = GLMM_TRUTH["(Intercept)"] + GLMM_TRUTH["x"] * x + rng.normal(0, GLMM_TRUTH["sd"], groups)[g]
    trials = rng.integers(5, 15, g.size)
    expo = rng.uniform(0.5, 4.0, g.size)
    k = GLMM_TRUTH["shape"]
    w = rng.choice([0.5, 1.0, 4.0], g.size)
    mu = np.exp(eta + 1.0)
    return pd.DataFrame({
        "x": x, "g": [f"g{j:02d}" for j in g], "trials": trials, "expo": expo, "log_expo": np.log(expo),
        "w": w,
        "succ": rng.binomial(trials, expit(eta)),
        "prop": rng.binomial(trials, ndtr(eta)) / trials,
        "count": rng.poisson(expo * np.exp(eta)),
        "nb": rng.poisson(rng.gamma(k, mu / k)),
        "pos": rng.gamma(k, mu / k),
        "y": eta + np.log(expo) + rng.normal(size=g.size) * GLMM_TRUTH["sigma"] / np.sqrt(w),
    })


GLMM_MODELS = {
    # name: (formula, family, keywords)
    "binomial": ("cbind(succ, trials - succ) ~ x + (1 | g)", "binomial", {}),
    "probit proportion": ("prop ~ x + (1 | g)", ("binomial", "probit"), {"weights": "trials"}),
    "poisson offset": ("count ~ x + offset(log(expo)) + (1 | g)", "poisson", {}),
    "negbinomial": ("nb ~ x + (1 | g)", "negbinomial", {}),
    "gamma": ("pos ~ x + (1 | g)", ("gamma", "log"), {}),
    "gaussian weights offset": ("y ~ x + (1 | g)", "gaussian", {"weights": "w", "offset": "log_expo"}),
}


@pytest.fixture(scope="session")
def glmm_frame():
    return glmm_data()


@pytest.fixture(scope="session")
def glmm_fits(glmm_frame):
    """Each GLMM model fitted briefly (2 chains x 400 draws after 400), by name."""
    fits = {}
    for name, (formula, family, kw) in GLMM_MODELS.items():
        fam = hb.get_family(*family) if isinstance(family, tuple) else family
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hb.ConvergenceWarning)
            fits[name] = hb.Model(formula, glmm_frame, family=fam, **kw).fit(
                draws=400, tune=400, chains=2, seed=3, progressbar=False)
    return fits
