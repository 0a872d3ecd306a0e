"""hierbayes's NUTS, warm-up included, on targets whose answers are known exactly.

Means, variances and quantiles must agree with the truth within Monte Carlo
error computed from the draws' own ESS (ArviZ's ``ess(method="mean")`` of the
quantity whose mean is checked): ``|estimate - truth| < Z * sd / sqrt(ess)``.
Each target runs with Stan's warm-up (``curvature=False``) and with hierbayes's
curvature-started metric, as model fits use it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hierbayes.bayes.diagnostics import ess_mean
from hierbayes.bayes.target import PythonTarget, sample_target

Z = 4.5  # about 7e-6 two-sided per check: the module makes about 150 checks
CHAINS, DRAWS, TUNE = 4, 1000, 1000


def check_mean(f_draws: np.ndarray, truth: float, what: str) -> None:
    """The mean of f(draws), (chains, draws), against its known expectation."""
    ess = ess_mean(f_draws)
    se = f_draws.std() / math.sqrt(ess)
    assert abs(f_draws.mean() - truth) < Z * se, f"{what}: {f_draws.mean():.4g} vs {truth:.4g} (se {se:.3g})"


def check_marginal(x: np.ndarray, dist, what: str) -> None:
    """Mean, variance and the 5%, 25%, 50%, 75%, 95% quantiles of one coordinate's draws."""
    mu, var = float(dist.mean()), float(dist.var())
    check_mean(x, mu, f"{what} mean")
    check_mean((x - mu) ** 2, var, f"{what} variance")
    for p in (0.05, 0.25, 0.5, 0.75, 0.95):
        check_mean((x <= dist.ppf(p)).astype(float), p, f"{what} P(x <= q{p:g})")


def run(logp_grad, dim: int, seed: int, curvature: bool, target_accept: float = 0.8, init=None):
    inits = np.zeros((CHAINS, dim)) if init is None else init
    out = sample_target(PythonTarget(logp_grad, dim), inits, draws=DRAWS, tune=TUNE, seed=seed,
                        target_accept=target_accept, curvature=curvature)
    assert not out.stats["diverging"].any()
    return out


FORMS = [pytest.param(False, id="stan-warmup"), pytest.param(True, id="curvature-metric")]


@pytest.mark.parametrize("curvature", FORMS)
def test_independent_gaussians_of_many_scales(curvature):
    mu = np.array([0.0, 1.0, -2.0, 10.0, 0.5, 3.0])
    sd = np.array([1.0, 0.01, 0.3, 5.0, 100.0, 2.0])

    def f(x):
        z = (x - mu) / sd
        return -0.5 * float(z @ z), -z / sd

    out = run(f, len(mu), seed=1, curvature=curvature, init=np.tile(mu + sd, (CHAINS, 1)))
    for i in range(len(mu)):
        check_marginal(out.draws[:, :, i], stats.norm(mu[i], sd[i]), f"x{i}")
    # the adapted metric is the variances (Stan's regularised window estimate)
    np.testing.assert_allclose(out.metric.mean(axis=0), sd**2, rtol=0.35)


@pytest.mark.parametrize("curvature", FORMS)
def test_correlated_gaussian(curvature):
    sd = np.array([1.0, 2.0, 0.5, 3.0])
    corr = np.full((4, 4), 0.9) + 0.1 * np.eye(4)
    cov = corr * np.outer(sd, sd)
    prec = np.linalg.inv(cov)

    def f(x):
        px = prec @ x
        return -0.5 * float(x @ px), -px

    out = run(f, 4, seed=2, curvature=curvature)
    for i in range(4):
        check_marginal(out.draws[:, :, i], stats.norm(0.0, sd[i]), f"x{i}")
    # a cross moment: E[x0 x3] = cov[0, 3]
    check_mean(out.draws[:, :, 0] * out.draws[:, :, 3], cov[0, 3], "E[x0 x3]")


@pytest.mark.parametrize("curvature", FORMS)
def test_funnel_has_its_known_marginal(curvature):
    # v ~ N(0, 1), x_i | v ~ N(0, exp(v / 2)): v's marginal is N(0, 1), E[x_i^2] = E[exp(v)] = e^0.5
    k = 3

    def f(x):
        v, rest = x[0], x[1:]
        ss = float(rest @ rest)
        lp = -0.5 * v * v - 0.5 * ss * math.exp(-v) - 0.5 * k * v
        g = np.empty_like(x)
        g[0] = -v + 0.5 * ss * math.exp(-v) - 0.5 * k
        g[1:] = -rest * math.exp(-v)
        return lp, g

    out = run(f, k + 1, seed=3, curvature=curvature, target_accept=0.95)
    check_marginal(out.draws[:, :, 0], stats.norm(0.0, 1.0), "v")
    for i in range(1, k + 1):
        check_mean(out.draws[:, :, i], 0.0, f"x{i} mean")
        check_mean(out.draws[:, :, i] ** 2, math.exp(0.5), f"x{i} variance")


@pytest.mark.parametrize("curvature", FORMS)
def test_conjugate_posteriors(curvature):
    # beta-binomial: theta ~ Beta(2, 3), 7 successes in 20 -> Beta(9, 16), sampled on the logit scale;
    # gamma-Poisson: lambda ~ Gamma(3, rate 0.5), counts summing to 41 over 12 -> Gamma(44, rate 12.5),
    # sampled on the log scale. Both in one target of two independent coordinates.
    a, b = 2 + 7, 3 + 13
    shape, rate = 3 + 41, 0.5 + 12

    def f(x):
        u, w = x
        with np.errstate(over="ignore"):
            theta = 1 / (1 + np.exp(-u))
            lam = np.exp(w)
        # Jacobians theta (1 - theta) and lambda; log theta = -log(1 + e^-u), stable far out
        lp = -a * np.logaddexp(0.0, -u) - b * np.logaddexp(0.0, u) + shape * w - rate * lam
        return float(lp), np.array([a * (1 - theta) - b * theta, shape - rate * lam])

    out = run(f, 2, seed=4, curvature=curvature)
    theta = 1 / (1 + np.exp(-out.draws[:, :, 0]))
    check_marginal(theta, stats.beta(a, b), "theta")
    check_marginal(np.exp(out.draws[:, :, 1]), stats.gamma(shape, scale=1 / rate), "lambda")


def test_the_checks_can_fail():
    # The tolerance is Monte Carlo error, not a loose band: a target shifted by a few standard
    # errors of its mean fails the check the tests above pass.
    out = run(lambda x: (-0.5 * float(x @ x), -x), 1, seed=5, curvature=False)
    x = out.draws[:, :, 0]
    se = x.std() / math.sqrt(ess_mean(x))
    check_mean(x, 0.0, "x")
    with pytest.raises(AssertionError):
        check_mean(x, x.mean() + 5 * se, "x shifted by 5 se")
