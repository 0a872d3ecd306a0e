"""The gamma family with a log link: a positive response with a constant coefficient of variation.

``y ~ gamma(shape, rate = shape / mu)``, ``mu = exp(eta)``: brms's
``Gamma(link = "log")`` (its ``shape``, default prior ``gamma(0.01, 0.01)``)
and glmer's ``Gamma(link = "log")``, whose dispersion ``sigma^2`` is
``1 / shape``. R's and brms's ``Gamma()`` default to the inverse link, which
hierbayes lacks, so the link must be given.

Examples
--------
>>> import numpy as np
>>> from hierbayes.families import get_family
>>> fam = get_family("gamma", link="log")
>>> float(fam.loglik(np.array([1.0]), np.array([[0.0]]), np.array([1.0]))[0, 0])
-1.0
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError
from hierbayes.families.base import Family, numeric_response
from hierbayes.families.links import special


class Gamma(Family):
    """``y ~ gamma(shape, shape / exp(eta))``: mean ``exp(eta)``, variance ``mu^2 / shape``."""

    name = "gamma"
    links = ("log",)
    default_link = None
    kernel = "gamma"
    dispersion = "shape"

    def link_required_message(self) -> str:
        """R's ``Gamma()`` defaults to the inverse link; the user must choose the log link."""
        return ("The gamma family needs its link said: family=get_family('gamma', link='log') "
                "(hb.family('gamma', link='log')). R's Gamma() and brms's Gamma() default to the "
                "inverse link, which hierbayes does not support; the log link is R's "
                "Gamma(link = \"log\").")

    def encode_response(self, values: pd.Series, label: str) -> np.ndarray:
        """Positive numbers, as floats.

        Examples
        --------
        >>> FAMILY.encode_response(pd.Series([0.5, 3]), "y")
        array([0.5, 3. ])
        """
        y = numeric_response(values, label, self.name)
        bad = ~(y > 0)
        if bad.any():
            raise DataError(
                f"The response '{label}' has {int(bad.sum())} values that are not positive "
                f"(first: {float(y[bad][0])!r}); the gamma family needs y > 0. Use a hurdle model, "
                "or family='gaussian'.")
        return y

    def intercept_location(self, y: np.ndarray, trials: np.ndarray | None = None) -> float:
        """``log(mean(y))``."""
        return float(np.log(np.mean(y)))

    def dispersion_prior(self, scale: float) -> tuple[str, tuple[float, ...]]:
        """``shape ~ gamma(0.01, 0.01)``, brms's default."""
        return "gamma", (0.01, 0.01)

    def loglik(self, y: np.ndarray, eta: np.ndarray, dispersion: np.ndarray | None = None,
               trials: np.ndarray | None = None,
               weights: np.ndarray | None = None) -> np.ndarray:
        """``k log k - lgamma(k) - k eta + (k - 1) log y - k y exp(-eta)``, ``k`` the shape."""
        k = np.asarray(dispersion, dtype=float)[..., None]
        return (k * np.log(k) - special.gammaln(k) - k * eta + (k - 1) * np.log(y)
                - k * y * np.exp(-eta))

    def draw(self, rng: np.random.Generator, mean: np.ndarray,
             dispersion: np.ndarray | None = None, trials: np.ndarray | None = None,
             weights: np.ndarray | None = None) -> np.ndarray:
        """Gamma draws with shape ``k`` and scale ``mean / k``."""
        k = np.asarray(dispersion, dtype=float)[:, None]
        return rng.gamma(k, mean / k)

    def observe(self, name: str, eta: Any, observed: np.ndarray, dims: str,
                dispersion: Any = None, trials: np.ndarray | None = None,
                weights: np.ndarray | None = None) -> Any:
        """``pm.Gamma(name, alpha=shape, beta=shape / exp(eta))``."""
        import pymc as pm
        import pytensor.tensor as pt

        return pm.Gamma(name, alpha=dispersion, beta=dispersion * pt.exp(-eta),
                        observed=observed, dims=dims)

    def variance(self, mu: np.ndarray, dispersion: float | None = None) -> np.ndarray:
        """``mu^2``."""
        return mu**2

    def deviance_residuals(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray,
                           dispersion: float | None = None) -> np.ndarray:
        """``-2 wt (log(y / mu) - (y - mu) / mu)``."""
        return -2 * wt * (np.log(y / mu) - (y - mu) / mu)

    def aic(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray, deviance: float,
            dispersion: float | None = None) -> float:
        """``-2 sum(wt log dgamma(y, 1 / disp, scale = mu disp)) + 2``, ``disp = dev / sum(wt)``.

        R's ``Gamma()$aic``, which lme4's Laplace criterion uses as it stands: the
        dispersion is the deviance's plug-in, not a parameter of the fit.
        """
        disp = deviance / wt.sum()
        k = 1 / disp
        ll = (k * np.log(k) - special.gammaln(k) - k * np.log(mu) + (k - 1) * np.log(y)
              - k * y / mu)
        return float(-2 * (wt * ll).sum() + 2)

    def mu_start(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """``y``."""
        return np.asarray(y, dtype=float).copy()

    discrete = False

    def cdf(self, y: np.ndarray, mean: np.ndarray, dispersion: np.ndarray | float | None = None,
            trials: np.ndarray | None = None) -> np.ndarray:
        """The gamma CDF with shape ``k`` and scale ``mean / k``."""
        from scipy import stats

        k = np.asarray(dispersion, dtype=float)
        return stats.gamma.cdf(y, k, scale=mean / k)


FAMILY = Gamma("log")
