"""Fitted means, dispersion estimates and randomized quantile residuals of any fit.

What the residual plots read, for Bayesian, REML and glmer fits alike, without
matplotlib: a fit whose ``posterior`` is a
:class:`~hierbayes.bayes.posterior.Posterior` is Bayesian (posterior means of
each row's mean, the posterior median of the dispersion), any other is an ML or
REML fit (its fitted values and estimates).

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.report.fitted import quantile_residuals
>>> df = hb.datasets.load("cbpp")
>>> fit = hb.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", df, family="binomial")
>>> mean, r = quantile_residuals(fit, seed=1)
>>> r.shape
(56,)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hierbayes.bayes.posterior import Posterior


def is_bayes(fit: Any) -> bool:
    """Whether a fit holds posterior draws (a Bayesian fit) rather than REML or ML estimates."""
    return isinstance(getattr(fit, "posterior", None), Posterior)


def gaussian(fit: Any) -> bool:
    """Whether the fit's family is the Gaussian (residuals are ``y`` minus the fit)."""
    return fit.design.family.name == "gaussian"


def fitted_mean(fit: Any) -> np.ndarray:
    """Each row's fitted mean with its group effects (a Bayesian fit's posterior mean)."""
    if is_bayes(fit):
        return fit.predict(kind="mean", seed=0)["Estimate"].to_numpy()
    return fit.fitted()


def dispersion_estimate(fit: Any) -> float | None:
    """The family's dispersion at its estimate (a Bayesian fit's posterior median)."""
    name = fit.design.family.dispersion
    if name is None:
        return None
    if is_bayes(fit):
        return float(np.median(np.asarray(fit.posterior[name])))
    if fit.dispersion is None and fit.design.family.name == "gamma":
        return 1.0 / fit.sigma**2  # glmer's Gamma scale: the shape is 1 / sigma^2
    return float(fit.dispersion)


def quantile_residuals(fit: Any, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fitted means and randomized quantile residuals (Dunn and Smyth 1996) of a GLMM.

    Each row's residual is ``qnorm(u)`` with ``u`` uniform between ``F(y - 1)``
    and ``F(y)`` (``F(y)`` itself for a continuous family) at the fitted mean
    (with group effects) and dispersion; under the right model they are
    standard normal, for 0/1 data as for counts, where deviance and Pearson
    residuals fall in bands. A Bayesian fit plugs in its posterior mean of each
    row's mean and its posterior median of the dispersion.
    """
    d = fit.design
    fam = d.family
    mean = fitted_mean(fit)  # a binomial's probability
    disp = dispersion_estimate(fit)
    hi = fam.cdf(d.y, mean, disp, d.trials)
    lo = fam.cdf(d.y - 1, mean, disp, d.trials) if fam.discrete else hi
    u = lo + np.random.default_rng(seed).random(len(hi)) * (hi - lo)
    from scipy import stats

    return mean, stats.norm.ppf(np.clip(u, 1e-12, 1 - 1e-12))
