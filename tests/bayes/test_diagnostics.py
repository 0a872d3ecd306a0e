"""R-hat and ESS computed in NumPy agree with ArviZ."""

from __future__ import annotations

import numpy as np
import pytest

from hierbayes.bayes.diagnostics import ess_bulk, ess_tail, rhat


@pytest.mark.parametrize("shape", [(4, 1000), (2, 501), (1, 300), (4, 7)])
def test_agree_with_arviz(shape):
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).cumsum(axis=1) * 0.1 + rng.normal(size=shape)
    x[0] += 0.2
    if shape[0] > 1:
        assert rhat(x) == pytest.approx(float(az.rhat(x)), rel=1e-10)
    else:
        assert np.isnan(rhat(x))
    assert ess_bulk(x) == pytest.approx(float(az.ess(x, method="bulk")), rel=1e-10)
    assert ess_tail(x) == pytest.approx(float(az.ess(x, method="tail")), rel=1e-10)


def test_ties_and_constants():
    az = pytest.importorskip("arviz")
    x = np.round(np.random.default_rng(1).normal(size=(4, 500)), 1)
    assert rhat(x) == pytest.approx(float(az.rhat(x)), rel=1e-10)
    assert ess_bulk(x) == pytest.approx(float(az.ess(x, method="bulk")), rel=1e-10)
    assert ess_bulk(np.ones((2, 50))) == 100


def test_a_stuck_chain_is_flagged():
    x = np.random.default_rng(2).normal(size=(4, 500))
    x[3] += 3
    assert rhat(x) > 1.3


def test_constant_chains_give_nan_rhat_quietly():
    import warnings

    az = pytest.importorskip("arviz")
    x = np.full((4, 100), 2.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert np.isnan(rhat(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # ArviZ divides 0 by 0
        assert np.isnan(float(az.rhat(x)))
