"""The compiled density under a residual structure (``kernels/residual.c``) against the PyMC graph.

Rows shuffled and series with gaps: the kernel reads each row's predecessor in its series.
"""

from __future__ import annotations

import numpy as np
import pytest

import hierbayes as hb
from hierbayes.bayes.pack import pack
from tests.bayes.test_logdensity import assert_equals_pymc


@pytest.fixture(scope="module")
def gappy():
    gpa = hb.datasets.load("gpa")
    keep = (gpa["student"].astype(int) * 7 + gpa["occasion"]) % 9 != 0
    return gpa[keep].sample(frac=1.0, random_state=4)


CASES = [
    {"sigma": "~ factor(occasion)"},
    {"correlation": hb.ar1(time="occasion")},
    {"sigma": "~ factor(occasion)", "correlation": hb.ar1(time="occasion")},
    {"sigma": "~ occasion", "correlation": hb.car1(time="occasion")},
    {"sigma": "~ occasion", "correlation": hb.ar1(time="occasion"), "priors": {"ar": "uniform(-0.5, 0.9)",
                                                         "b_sigma": "normal(0, 2)"}},
]


@pytest.mark.parametrize("kw", CASES, ids=["varident", "ar1", "varident_ar1", "varexp_car1", "priors"])
def test_structured_density_and_gradient_equal_pymc(gappy, kw):
    model = hb.Model("gpa ~ occasion + (1 | student)", gappy, **kw)
    packed = pack(model.design, model.priors)
    assert packed.collapsed == -1 and not packed.marginal
    assert_equals_pymc(model, packed, points=6, noise=0.3, seed=1)


def test_structured_models_sample_with_the_compiled_kernel(gappy):
    import warnings

    model = hb.Model("gpa ~ occasion + (1 | student)", gappy, correlation=hb.ar1(time="occasion"))
    assert model.own_sampler_obstacle() is None and not model.use_marginal()
    with warnings.catch_warnings():
        warnings.simplefilter("error", hb.HierbayesWarning)  # no move to another sampler
        fit = model.fit(draws=150, tune=150, chains=2, seed=2, progressbar=False, check=False)
    assert fit.info.sampler == "hierbayes"
    phi = np.asarray(fit.posterior["phi"])
    assert phi.shape == (2, 150) and np.all((phi > -1) & (phi < 1))
