"""Shared fixtures: reference values from R, and fitted models reused across tests.

Fitting takes seconds (nutpie and PyMC compile each model for 15-30 s), so
each fitted model here is built once per session and shared.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

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
