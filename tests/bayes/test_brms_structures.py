"""Residual structures in the Bayesian engine against brms: ``sigma ~ occas`` and ``ar(time, gr)``.

References: ``tests/data/r/brms_structures.json`` (``tests/r/brms_structures.R``, whose header
says how to rerun it): brms 2.18 on gpa, 4 chains of 2,500 kept draws.

* ``gpa_sigma``: ``bf(gpa ~ occasion + (1 | student), sigma ~ occas)``, here
  ``sigma="~ occas"``. brms's ``b_sigma_occas<k>`` are our ``b_sigma`` and its
  ``sigma_occas0`` our ``sigma``.
* ``gpa_ar1``: ``ar(time = occasion, gr = student, cov = TRUE)``, here
  ``correlation=hb.ar1(group="student", time="occasion")``. brms's ``ar[1]`` is our ``phi``;
  its ``sigma`` is the SD of the AR(1) innovations, so our (nlme's) marginal ``sigma`` is its
  ``sigma_marginal`` (the script's note).

The priors are brms's, read from its ``prior_summary``, where the parameterisations agree
(``b`` and ``b_sigma`` flat, the intercept's and the SDs' student-t, ``ar``'s uniform). They
cannot agree on the residual SD: brms puts ``student_t(3, 0, 2.5)`` on the centred log-SD
intercept (``gpa_sigma``) or on the innovation SD (``gpa_ar1``), we put ours on the
reference rows' SD. Ours is then ``lognormal(0, 2.5)`` (a normal on log sigma, as vague as
brms's), resp. brms's half-t on the marginal SD; with 1,200 rows either prior moves the
means by under 0.03 posterior SD. Each posterior mean must lie within 0.15 posterior SD of
brms's (the Monte Carlo error of the difference is about 0.03 SD), each posterior SD within 10%.
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest

import hierbayes as hb
from tests.freq.test_structures_r import load_dataset

DATA = Path(__file__).resolve().parents[1] / "data" / "r"
BRMS = {m["id"]: m for m in json.loads((DATA / "brms_structures.json").read_text())["models"]}
ARGS = {
    "gpa_sigma": ({"sigma": "~ occas"}, {"sigma": "lognormal(0, 2.5)", "b_sigma": "flat"}),
    "gpa_ar1": ({"correlation": hb.ar1(group="student", time="occasion")},
                {"sigma": "student_t(3, 0, 2.5)", "ar": "uniform(-1, 1)"}),
}


def brms_priors(ref: dict) -> dict[str, str]:
    """The class-level rows of brms's prior_summary that mean the same here."""
    table = ref["priors"]
    out = {}
    for prior, cls, coef, group, dpar in zip(table["prior"], table["class"], table["coef"],
                                             table["group"], table["dpar"], strict=True):
        if coef or group or dpar or cls in ("ar", "sigma"):
            continue
        out[cls] = prior or "flat"
    assert set(out) == {"b", "Intercept", "sd"}, out
    return out


@cache
def _fit(model_id: str) -> hb.BayesFit:
    kw, extra = ARGS[model_id]
    model = hb.Model("gpa ~ occasion + (1 | student)", load_dataset("gpa"),
                     priors={**brms_priors(BRMS[model_id]), **extra}, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        return model.fit(draws=2500, tune=1000, chains=4, seed=20, progressbar=False)


def _ours(fit: hb.BayesFit, variable: str) -> np.ndarray | None:
    post = fit.posterior

    def flat(name: str) -> np.ndarray:
        v = np.asarray(post[name])
        return v.reshape(v.shape[0] * v.shape[1], *v.shape[2:])

    if variable in ("b_Intercept", "b_occasion"):
        return flat("fixef")[:, ["b_Intercept", "b_occasion"].index(variable)]
    if variable == "sd_student__Intercept":
        return flat("sd_student")[:, 0]
    if variable.startswith("b_sigma_occas"):
        names = list(fit.design.residual.variance.names)
        return flat("b_sigma")[:, names.index(variable[len("b_sigma_"):])]
    if variable in ("sigma_occas0", "sigma_marginal"):
        return flat("sigma")
    if variable.startswith("sigma_occas"):  # occasion k's SD: sigma times its ratio
        names = list(fit.design.residual.variance.names)
        return flat("sigma") * np.exp(flat("b_sigma")[:, names.index(variable[len("sigma_"):])])
    if variable == "ar[1]":
        return flat("phi")
    return None  # brms's own parameterisation (b_sigma_Intercept, the innovation sigma)


@pytest.mark.slow
@pytest.mark.parametrize("model_id", list(BRMS))
def test_posterior_means_agree_with_brms(model_id):
    ref = BRMS[model_id]
    fit = _fit(model_id)
    assert fit.info.sampler == "hierbayes"
    d = fit.diagnostics()
    assert d.max_rhat < 1.01 and d.min_ess_bulk > 400, d
    s = ref["summary"]
    compared = []
    for var, mean, sd in zip(s["variable"], s["mean"], s["sd"], strict=True):
        draws = _ours(fit, var)
        if draws is None:
            continue
        assert abs(draws.mean() - mean) < 0.15 * sd, (var, draws.mean(), mean, sd)
        assert abs(draws.std() / sd - 1) < 0.1, (var, draws.std(), sd)
        compared.append(var)
    assert len(compared) == (14 if model_id == "gpa_sigma" else 5), compared
