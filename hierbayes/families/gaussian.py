"""The Gaussian family: a normal response around the linear predictor, with residual SD sigma.

Prior weights are precisions, as lmer's: row ``i`` has SD ``sigma / sqrt(w_i)``.

Examples
--------
>>> import numpy as np
>>> FAMILY.loglik(np.array([1.0]), np.array([[1.0]]), np.array([1.0])).round(6)
array([[-0.918939]])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hierbayes.families.base import Family, numeric_response, sample_sd


class Gaussian(Family):
    """``y ~ normal(eta, sigma / sqrt(w))``, identity link; the one family of the REML engine."""

    name = "gaussian"
    aliases = ("normal",)
    links = ("identity",)
    default_link = "identity"
    kernel = "gaussian"
    dispersion = "sigma"
    residual_sd = True
    dispersion_label = "Residual"
    model_kind = "linear"
    supports_reml = True
    supports_marginal = True
    takes_weights = True

    @property
    def canonical(self) -> bool:
        """True: the identity is the Gaussian's canonical link."""
        return True

    def encode_response(self, values: pd.Series, label: str) -> np.ndarray:
        """Any numeric or boolean column, as floats.

        Examples
        --------
        >>> FAMILY.encode_response(pd.Series([1, 2.5]), "y")
        array([1. , 2.5])
        """
        return numeric_response(values, label, self.name)

    def inverse_link(self, eta: np.ndarray) -> np.ndarray:
        """The identity: the mean is the linear predictor (the same array)."""
        return eta

    def prior_scale(self, y: np.ndarray) -> float:
        """``sd(y)``, or 1 for a constant response.

        Examples
        --------
        >>> FAMILY.prior_scale(np.array([1.0, 3.0]))
        1.4142135623730951
        """
        return sample_sd(y) or 1.0

    def intercept_location(self, y: np.ndarray, trials: np.ndarray | None = None) -> float:
        """``mean(y)``."""
        return float(np.mean(y))

    def dispersion_prior(self, scale: float) -> tuple[str, tuple[float, ...]]:
        """``sigma ~ half_student_t(3, s)``."""
        return "half_student_t", (3, scale)

    def loglik(self, y: np.ndarray, eta: np.ndarray, dispersion: np.ndarray | None = None,
               trials: np.ndarray | None = None,
               weights: np.ndarray | None = None) -> np.ndarray:
        """The normal log density of each ``y`` around ``eta`` with SD ``sigma / sqrt(w)``."""
        sigma = np.asarray(dispersion)[..., None]
        if weights is None:
            # these operations in this order: LOO stays bit-identical to earlier releases
            return -0.5 * np.log(2 * np.pi) - np.log(sigma) - 0.5 * ((y - eta) / sigma) ** 2
        return (-0.5 * np.log(2 * np.pi) - np.log(sigma) + 0.5 * np.log(weights)
                - 0.5 * weights * ((y - eta) / sigma) ** 2)

    def draw(self, rng: np.random.Generator, mean: np.ndarray,
             dispersion: np.ndarray | None = None, trials: np.ndarray | None = None,
             weights: np.ndarray | None = None) -> np.ndarray:
        """``mean`` plus standard normal draws times each draw's ``sigma / sqrt(w)``.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> FAMILY.draw(rng, np.zeros((2, 3)), np.array([1.0, 0.0]))[1]
        array([0., 0., 0.])
        """
        sd = np.asarray(dispersion)[:, None]
        if weights is not None:
            sd = sd / np.sqrt(weights)
        return mean + rng.standard_normal(mean.shape) * sd

    def observe(self, name: str, eta: Any, observed: np.ndarray, dims: str,
                dispersion: Any = None, trials: np.ndarray | None = None,
                weights: np.ndarray | None = None) -> Any:
        """``pm.Normal(name, mu=eta, sigma=sigma / sqrt(w))``."""
        import pymc as pm

        sd = dispersion if weights is None else dispersion / np.sqrt(weights)
        return pm.Normal(name, mu=eta, sigma=sd, observed=observed, dims=dims)

    def latent_variance(self, dispersion: np.ndarray | None) -> np.ndarray | float | None:
        """``sigma^2``."""
        return np.asarray(dispersion) ** 2

    def variance(self, mu: np.ndarray, dispersion: float | None = None) -> np.ndarray:
        """1."""
        return np.ones_like(mu)

    def deviance_residuals(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray,
                           dispersion: float | None = None) -> np.ndarray:
        """``wt (y - mu)^2``."""
        return wt * (y - mu) ** 2

    def aic(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray, deviance: float,
            dispersion: float | None = None) -> float:
        """``n (log(2 pi dev / n) + 1) + 2 - sum(log wt)``, as R's ``gaussian()$aic``."""
        n = len(mu)
        return float(n * (np.log(2 * np.pi * deviance / n) + 1) + 2 - np.log(wt).sum())

    def mu_start(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """``y``."""
        return np.asarray(y, dtype=float).copy()

    discrete = False

    def cdf(self, y: np.ndarray, mean: np.ndarray, dispersion: np.ndarray | float | None = None,
            trials: np.ndarray | None = None) -> np.ndarray:
        """The normal CDF (unit prior weights)."""
        from scipy import stats

        return stats.norm.cdf(y, mean, dispersion)


FAMILY = Gaussian()
