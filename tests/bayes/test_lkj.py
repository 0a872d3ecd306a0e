"""The LKJ correlation prior through unconstrained partial correlations."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from scipy import integrate, stats

from hierbayes.bayes.lkj import (
    _lkj_log_norm,
    _onion_corr,
    corr_to_cpc,
    cpc_to_cholesky,
    lkj_corr_cholesky,
)


def test_two_by_two_density_is_exact():
    """For n = 2, (r + 1) / 2 ~ Beta(eta, eta); with r = tanh(y) add log(1 - r^2)."""
    for eta in (1.0, 2.0, 4.5):
        with pm.Model() as m:
            lkj_corr_cholesky("cpc", n=2, eta=eta)
        logp = m.compile_logp()
        for y in (-1.3, 0.0, 0.7):
            r = np.tanh(y)
            expected = stats.beta(eta, eta).logpdf((r + 1) / 2) - np.log(2) + np.log1p(-(r**2))
            assert logp({"cpc": np.array([y])}) == pytest.approx(expected, rel=1e-10)


def test_three_by_three_density_integrates_to_one():
    eta, n = 2.0, 3
    with pm.Model() as m:
        lkj_corr_cholesky("cpc", n=n, eta=eta)
    logp = m.compile_logp()
    # Integrate over the cube of partial correlations z = tanh(y) in (-1, 1)^3.
    def density(z1, z2, z3):
        z = np.array([z1, z2, z3])
        y = np.arctanh(z)
        return np.exp(logp({"cpc": y})) / np.prod(1 - z**2)
    total, _ = integrate.nquad(density, [(-1, 1)] * 3, opts={"epsabs": 1e-6})
    assert total == pytest.approx(1.0, abs=1e-3)


def test_normalising_constant_for_eta_one():
    # Uniform over 3x3 correlation matrices: the set has volume pi^2 / 2.
    assert np.exp(-_lkj_log_norm(1.0, 3)) == pytest.approx(np.pi**2 / 2)


def test_round_trip_and_forward_draws():
    rng = np.random.default_rng(1)
    for n in (2, 3, 5):
        C = _onion_corr(rng, n, 1.5)
        L, _, _ = cpc_to_cholesky(corr_to_cpc(C), n)
        np.testing.assert_allclose(L.eval() @ L.eval().T, C, atol=1e-10)
    eta, n = 2.0, 4
    draws = np.array([_onion_corr(rng, n, eta)[0, 3] for _ in range(4000)])
    beta = eta - 1 + n / 2
    assert stats.kstest((draws + 1) / 2, stats.beta(beta, beta).cdf).pvalue > 0.01
    with pm.Model() as m:
        lkj_corr_cholesky("cpc", n=3, eta=2.0)
    assert pm.draw(m["cpc"], draws=5, random_seed=1).shape == (5, 3)


@pytest.mark.slow
def test_nuts_recovers_the_prior_marginals():
    """NUTS on the prior alone gives the half-t SDs and Beta-marginal correlations.

    PyMC's LKJCholeskyCov failed this (its funnel hides small SDs: 25% quantile 19.4 for 17.5).
    """
    import nutpie

    n, eta = 3, 2.0
    with pm.Model() as m:
        _, L = lkj_corr_cholesky("cpc", n=n, eta=eta)
        pm.HalfStudentT("sd", nu=3, sigma=50.0, shape=n)
        pm.Deterministic("C", L @ L.T)
    trace = nutpie.sample(nutpie.compile_pymc_model(m), draws=5000, tune=1000, chains=4, seed=1,
                          progress_bar=False)
    assert int(trace.sample_stats["diverging"].sum()) == 0
    sd = trace.posterior["sd"].to_numpy().reshape(-1, n)
    exact = stats.t(3, scale=50).ppf(0.5 + np.array([0.25, 0.5]) / 2)
    np.testing.assert_allclose(np.quantile(sd, [0.25, 0.5]), exact, rtol=0.05)
    C = trace.posterior["C"].to_numpy().reshape(-1, n, n)
    beta = eta - 1 + n / 2
    exact_r = 2 * stats.beta(beta, beta).ppf([0.1, 0.9]) - 1
    for i, j in ((0, 1), (0, 2), (1, 2)):
        np.testing.assert_allclose(np.quantile(C[:, i, j], [0.1, 0.9]), exact_r, atol=0.03)


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_the_kernels_transform_is_the_pymc_models(n):
    # one CPC -> Cholesky transform serves the sampler and the posterior (kernels/lkj.c);
    # at random points, batched, it equals the PyMC model's to rounding
    import pytensor
    import pytensor.tensor as pt

    from hierbayes.bayes.native import cpc_cholesky

    m = n * (n - 1) // 2
    y = pt.vector("y")
    L_pymc = pytensor.function([y], cpc_to_cholesky(y, n)[0])
    rng = np.random.default_rng(n)
    points = np.concatenate([rng.normal(0, 1, (40, m)), rng.normal(0, 3, (10, m))])
    L = cpc_cholesky(points.reshape(5, 10, m), n)
    assert L.shape == (5, 10, n, n)
    for point, got in zip(points, L.reshape(-1, n, n), strict=True):
        np.testing.assert_allclose(got, L_pymc(point), rtol=0, atol=1e-12)
        np.testing.assert_allclose(np.diag(got @ got.T), 1.0, atol=1e-12)
    # and the inverse transform takes it back
    np.testing.assert_allclose(corr_to_cpc(L[0, 0] @ L[0, 0].T), points[0], atol=1e-9)


def test_the_kernels_transform_checks_its_shape():
    from hierbayes.bayes.native import cpc_cholesky

    np.testing.assert_array_equal(cpc_cholesky(np.zeros((3, 0)), 1), np.ones((3, 1, 1)))
    with pytest.raises(ValueError, match="3 x 3 correlations take 3 partial correlations"):
        cpc_cholesky(np.zeros(2), 3)
