"""The Gaussian family: a normal response around the linear predictor, with residual SD sigma.

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
    """``y ~ normal(eta, sigma)``, identity link; the one family of the REML engine."""

    name = "gaussian"
    aliases = ("normal",)
    link = "identity"
    kernel = "gaussian"
    dispersion = "sigma"
    dispersion_label = "Residual"
    model_kind = "linear"
    supports_reml = True
    supports_marginal = True

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

    def inverse_link_tensor(self, eta: Any) -> Any:
        """The identity, in PyTensor."""
        return eta

    def prior_scale(self, y: np.ndarray) -> float:
        """``sd(y)``, or 1 for a constant response.

        Examples
        --------
        >>> FAMILY.prior_scale(np.array([1.0, 3.0]))
        1.4142135623730951
        """
        return sample_sd(y) or 1.0

    def intercept_location(self, y: np.ndarray) -> float:
        """``mean(y)``."""
        return float(np.mean(y))

    def dispersion_prior(self, scale: float) -> tuple[str, tuple[float, ...]]:
        """``sigma ~ half_student_t(3, s)``."""
        return "half_student_t", (3, scale)

    def loglik(self, y: np.ndarray, eta: np.ndarray,
               sigma: np.ndarray | None = None) -> np.ndarray:
        """The normal log density of each ``y`` around ``eta`` with SD ``sigma`` (per draw)."""
        sigma = np.asarray(sigma)[..., None]
        return -0.5 * np.log(2 * np.pi) - np.log(sigma) - 0.5 * ((y - eta) / sigma) ** 2

    def draw(self, rng: np.random.Generator, mean: np.ndarray,
             sigma: np.ndarray | None = None) -> np.ndarray:
        """``mean`` plus standard normal draws times each draw's ``sigma``.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> FAMILY.draw(rng, np.zeros((2, 3)), np.array([1.0, 0.0]))[1]
        array([0., 0., 0.])
        """
        return mean + rng.standard_normal(mean.shape) * np.asarray(sigma)[:, None]

    def observe(self, name: str, eta: Any, observed: np.ndarray, dims: str,
                sigma: Any = None) -> Any:
        """``pm.Normal(name, mu=eta, sigma=sigma)``."""
        import pymc as pm

        return pm.Normal(name, mu=eta, sigma=sigma, observed=observed, dims=dims)

    def latent_variance(self, sigma: np.ndarray | None) -> np.ndarray | float | None:
        """``sigma^2``."""
        return np.asarray(sigma) ** 2


FAMILY = Gaussian()
