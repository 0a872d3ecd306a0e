"""The negative binomial family (NB2): counts with variance ``mu + mu^2 / shape``, log link.

As glmer.nb (its ``theta``), glmmTMB's ``nbinom2`` (whose ``sigma()`` is this
shape) and brms's ``negbinomial`` (its ``shape``, with brms's default prior
``gamma(0.01, 0.01)``). The shape is estimated.

Examples
--------
>>> import numpy as np
>>> float(FAMILY.loglik(np.array([2.0]), np.array([[0.0]]), np.array([1e8]))[0, 0].round(6))
-1.693147
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hierbayes.families.base import Family
from hierbayes.families.counts import count_intercept, count_response
from hierbayes.families.links import special


class NegBinomial(Family):
    """``y ~ NB2(mu = exp(eta), shape)``: ``Var(y) = mu + mu^2 / shape``."""

    name = "negbinomial"
    aliases = ("negative_binomial", "nbinom2", "negbin")
    links = ("log",)
    default_link = "log"
    kernel = "negbinomial"
    dispersion = "shape"

    def encode_response(self, values: pd.Series, label: str) -> np.ndarray:
        """Non-negative whole numbers, as floats."""
        return count_response(values, label, self.name)

    def intercept_location(self, y: np.ndarray, trials: np.ndarray | None = None) -> float:
        """``log(mean(y))``."""
        return count_intercept(y)

    def dispersion_prior(self, scale: float) -> tuple[str, tuple[float, ...]]:
        """``shape ~ gamma(0.01, 0.01)``, brms's default."""
        return "gamma", (0.01, 0.01)

    def loglik(self, y: np.ndarray, eta: np.ndarray, dispersion: np.ndarray | None = None,
               trials: np.ndarray | None = None,
               weights: np.ndarray | None = None) -> np.ndarray:
        """``lgamma(y + k) - lgamma(k) - lgamma(y + 1) + k log(k / (k + mu)) + y log(mu / (k + mu))``."""
        k = np.asarray(dispersion, dtype=float)[..., None]
        log_mu = eta
        log_k_mu = np.logaddexp(np.log(k), eta)  # log(k + mu)
        return (special.gammaln(y + k) - special.gammaln(k) - special.gammaln(y + 1)
                + k * (np.log(k) - log_k_mu) + y * (log_mu - log_k_mu))

    def draw(self, rng: np.random.Generator, mean: np.ndarray,
             dispersion: np.ndarray | None = None, trials: np.ndarray | None = None,
             weights: np.ndarray | None = None) -> np.ndarray:
        """NB2 draws: Poisson with a gamma(shape, mean / shape) mean."""
        k = np.asarray(dispersion, dtype=float)[:, None]
        return rng.poisson(rng.gamma(k, mean / k)).astype(float)

    def observe(self, name: str, eta: Any, observed: np.ndarray, dims: str,
                dispersion: Any = None, trials: np.ndarray | None = None,
                weights: np.ndarray | None = None) -> Any:
        """``pm.NegativeBinomial(name, mu=exp(eta), alpha=shape)``."""
        import pymc as pm

        return pm.NegativeBinomial(name, mu=self.inverse_link_tensor(eta), alpha=dispersion,
                                   observed=observed, dims=dims)

    def variance(self, mu: np.ndarray, dispersion: float | None = None) -> np.ndarray:
        """``mu + mu^2 / shape``."""
        return mu + mu**2 / dispersion

    def deviance_residuals(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray,
                           dispersion: float | None = None) -> np.ndarray:
        """``2 wt (y log(y / mu) - (y + k) log((y + k) / (mu + k)))``, as MASS's ``negative.binomial``."""
        k = dispersion
        return 2 * wt * (special.xlogy(y, y) - special.xlogy(y, mu)
                         - (y + k) * np.log((y + k) / (mu + k)))

    def aic(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray, deviance: float,
            dispersion: float | None = None) -> float:
        """``-2 sum log dnbinom(y, size = k, mu)`` (lme4's ``negativeBinomialDist::aic``, unweighted)."""
        k = float(dispersion)  # type: ignore[arg-type]
        ll = (special.gammaln(k + y) - special.gammaln(k) - special.gammaln(y + 1)
              + k * np.log(k) + special.xlogy(y, mu) - (k + y) * np.log(k + mu))
        return float(-2 * ll.sum())

    def mu_start(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """``y + (y == 0) / 6``, as MASS's ``negative.binomial()$initialize``."""
        return y + (y == 0) / 6

    def cdf(self, y: np.ndarray, mean: np.ndarray, dispersion: np.ndarray | float | None = None,
            trials: np.ndarray | None = None) -> np.ndarray:
        """The NB2 CDF with size ``shape``."""
        from scipy import stats

        k = np.asarray(dispersion, dtype=float)
        return stats.nbinom.cdf(y, k, k / (k + mean))


FAMILY = NegBinomial()
