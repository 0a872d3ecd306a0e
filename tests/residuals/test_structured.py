"""The residual structures against dense matrices: whitening, colouring and log-determinants."""

from __future__ import annotations

import numpy as np
import pytest

from hierbayes.residuals import LogLinearSD, SerialCorrelation, Structured


def _series(kind: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(6), 7)
    if kind == "ar1":  # integer times with gaps
        times = np.concatenate([np.sort(rng.choice(12, 7, replace=False)) for _ in range(6)])
    else:
        times = np.concatenate([np.sort(rng.uniform(0, 10, 7)) for _ in range(6)])
    perm = rng.permutation(len(codes))  # rows need not be sorted
    return codes[perm], times[perm].astype(float)


def _dense(res: Structured, rho: np.ndarray) -> np.ndarray:
    n = len(res.correlation.codes)
    C = res.correlation.matrix(res.phi(rho), np.arange(n))
    d = res.sd_ratios(rho)
    d = np.ones(n) if d is None else d
    return d[:, None] * C * d[None, :]


@pytest.mark.parametrize("kind", ["ar1", "car1"])
def test_whitening_and_log_det_match_the_dense_covariance(kind):
    codes, times = _series(kind)
    rng = np.random.default_rng(1)
    V = rng.standard_normal((len(codes), 2))
    res = Structured("sigma", LogLinearSD(V, ["a", "b"], "~ a + b"),
                     SerialCorrelation(kind, "g", "t", codes, times))
    phi = -0.6 if kind == "ar1" else 0.7
    rho = np.array([0.3, -0.2, res.correlation.unconstrained(phi)])
    Lam = _dense(res, rho)
    e = rng.standard_normal(len(codes))
    w = res.whiten(rho, e)
    # |L^-1 e|^2 = e' Lambda^-1 e for any square root L of Lambda
    assert w @ w == pytest.approx(e @ np.linalg.solve(Lam, e), rel=1e-10)
    assert res.log_det(rho, len(e)) == pytest.approx(np.linalg.slogdet(Lam)[1], rel=1e-10)
    # colouring inverts whitening, and its covariance is Lambda
    assert np.allclose(res.whiten(rho, res.color(rho, e)), e, atol=1e-12)
    L = res.color(rho, np.eye(len(e)))
    assert np.allclose(L @ L.T, Lam, atol=1e-12)


def test_varident_ratios_are_keyed_by_level_with_the_reference_at_one():
    V = np.array([[0, 0], [1, 0], [0, 1.0]])
    res = Structured("sigma", LogLinearSD(V, ["f1", "f2"], "~ f", "f", ["a", "b", "c"]))
    nat = res.natural(np.log([2.0, 0.5]))
    assert nat == pytest.approx({"a": 1.0, "b": 2.0, "c": 0.5})
    assert res.sd_ratios(np.log([2.0, 0.5])).tolist() == pytest.approx([1.0, 2.0, 0.5])


def test_first_rows_are_not_whitened_against_another_series():
    c = SerialCorrelation("ar1", "g", "t", codes=np.array([1, 0, 1, 0]), times=np.array([0, 0, 1, 1.0]))
    assert c.prev.tolist() == [-1, -1, 0, 1]
    out = c.whiten(0.5, np.array([1.0, 2.0, 3.0, 4.0]))
    s = np.sqrt(0.75)
    assert out.tolist() == pytest.approx([1.0, 2.0, (3 - 0.5) / s, (4 - 1.0) / s])


@pytest.mark.parametrize("kind", ["ar1", "car1"])
def test_loo_loglik_is_the_conditional_normal_density(kind):
    codes, times = _series(kind, seed=4)
    rng = np.random.default_rng(5)
    V = rng.standard_normal((len(codes), 1))
    res = Structured("sigma", LogLinearSD(V, ["a"], "~ a"), SerialCorrelation(kind, "g", "t", codes, times))
    sigma, gamma, phi = np.array([1.3, 0.7]), np.array([[0.2], [-0.4]]), np.array([0.55, 0.8])
    e = rng.standard_normal((2, len(codes)))
    got = res.loo_loglik(e, sigma, gamma, phi)
    for s in range(2):
        rho = np.array([gamma[s, 0], res.correlation.unconstrained(phi[s])])
        Sigma = sigma[s] ** 2 * _dense(res, rho)
        P = np.linalg.inv(Sigma)
        mean = e[s] - (P @ e[s]) / np.diag(P)
        want = -0.5 * np.log(2 * np.pi / np.diag(P)) - 0.5 * np.diag(P) * (e[s] - mean) ** 2
        np.testing.assert_allclose(got[s], want, rtol=1e-9, atol=1e-12)


def test_error_draws_have_the_structure():
    codes, times = _series("ar1", seed=6)
    res = Structured("sigma", correlation=SerialCorrelation("ar1", "g", "t", codes, times))
    rng = np.random.default_rng(7)
    S = 20000
    e = res.draw_errors(rng, np.full(S, 2.0), None, np.full(S, 0.6))
    rho = np.array([res.correlation.unconstrained(0.6)])
    Sigma = 4.0 * _dense(res, rho)
    np.testing.assert_allclose(np.cov(e.T), Sigma, atol=0.12)
