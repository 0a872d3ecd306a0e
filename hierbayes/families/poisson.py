"""The Poisson family: a count response with log link.

Examples
--------
>>> import numpy as np
>>> FAMILY.loglik(np.array([0.0]), np.array([[0.0]]))
array([[-1.]])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hierbayes.families.base import Family
from hierbayes.families.counts import count_intercept, count_response
from hierbayes.families.links import special


class Poisson(Family):
    """``y ~ poisson(exp(eta))``; no dispersion."""

    name = "poisson"
    links = ("log",)
    default_link = "log"
    kernel = "poisson"

    @property
    def canonical(self) -> bool:
        """True: the log is the Poisson's canonical link."""
        return True

    def encode_response(self, values: pd.Series, label: str) -> np.ndarray:
        """Non-negative whole numbers, as floats.

        Examples
        --------
        >>> FAMILY.encode_response(pd.Series([0, 3]), "y")
        array([0., 3.])
        """
        return count_response(values, label, self.name)

    def intercept_location(self, y: np.ndarray, trials: np.ndarray | None = None) -> float:
        """``log(mean(y))``, with the mean kept at least 1e-3 (an all-zero response)."""
        return count_intercept(y)

    def loglik(self, y: np.ndarray, eta: np.ndarray, dispersion: np.ndarray | None = None,
               trials: np.ndarray | None = None,
               weights: np.ndarray | None = None) -> np.ndarray:
        """``y eta - exp(eta) - log(y!)``."""
        return y * eta - np.exp(eta) - special.gammaln(y + 1)

    def draw(self, rng: np.random.Generator, mean: np.ndarray,
             dispersion: np.ndarray | None = None, trials: np.ndarray | None = None,
             weights: np.ndarray | None = None) -> np.ndarray:
        """Poisson draws with the given means, as floats."""
        return rng.poisson(mean).astype(float)

    def observe(self, name: str, eta: Any, observed: np.ndarray, dims: str,
                dispersion: Any = None, trials: np.ndarray | None = None,
                weights: np.ndarray | None = None) -> Any:
        """``pm.Poisson(name, mu=exp(eta))``."""
        import pymc as pm

        return pm.Poisson(name, mu=self.inverse_link_tensor(eta), observed=observed, dims=dims)

    def variance(self, mu: np.ndarray, dispersion: float | None = None) -> np.ndarray:
        """``mu``."""
        return mu

    def deviance_residuals(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray,
                           dispersion: float | None = None) -> np.ndarray:
        """``2 wt (y log(y / mu) - (y - mu))``, with 0 log 0 = 0."""
        return 2 * wt * (special.xlogy(y, y) - special.xlogy(y, mu) - (y - mu))

    def aic(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray, deviance: float,
            dispersion: float | None = None) -> float:
        """``-2 sum(wt log dpois(y, mu))``."""
        return float(-2 * (wt * (special.xlogy(y, mu) - mu - special.gammaln(y + 1))).sum())

    def mu_start(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """``y + 0.1``, as R's ``poisson()$initialize``."""
        return y + 0.1

    def cdf(self, y: np.ndarray, mean: np.ndarray, dispersion: np.ndarray | float | None = None,
            trials: np.ndarray | None = None) -> np.ndarray:
        """The Poisson CDF."""
        from scipy import stats

        return stats.poisson.cdf(y, mean)


FAMILY = Poisson()
