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

from hierbayes.errors import DataError
from hierbayes.families.base import Family, numeric_response


class Poisson(Family):
    """``y ~ poisson(exp(eta))``; no dispersion."""

    name = "poisson"
    link = "log"
    kernel = "poisson"

    def encode_response(self, values: pd.Series, label: str) -> np.ndarray:
        """Non-negative whole numbers, as floats.

        Examples
        --------
        >>> FAMILY.encode_response(pd.Series([0, 3]), "y")
        array([0., 3.])
        """
        y = numeric_response(values, label, self.name)
        bad = (y < 0) | (y != np.round(y))
        if bad.any():
            raise DataError(
                f"The response '{label}' has {int(bad.sum())} values that are not "
                "non-negative integers, which the poisson family needs (first: "
                f"{y[bad][0]!r}). Use family='gaussian' for continuous data."
            )
        return y

    def inverse_link(self, eta: np.ndarray) -> np.ndarray:
        """``exp(eta)``."""
        return np.exp(eta)

    def inverse_link_tensor(self, eta: Any) -> Any:
        """``exp(eta)``, in PyTensor."""
        import pytensor.tensor as pt

        return pt.exp(eta)

    def intercept_location(self, y: np.ndarray) -> float:
        """``log(mean(y))``, with the mean kept at least 1e-3 (an all-zero response)."""
        return float(np.log(max(np.mean(y), 1e-3)))

    def loglik(self, y: np.ndarray, eta: np.ndarray,
               sigma: np.ndarray | None = None) -> np.ndarray:
        """``y eta - exp(eta) - log(y!)``."""
        from scipy.special import gammaln

        return y * eta - np.exp(eta) - gammaln(y + 1)

    def draw(self, rng: np.random.Generator, mean: np.ndarray,
             sigma: np.ndarray | None = None) -> np.ndarray:
        """Poisson draws with the given means, as floats."""
        return rng.poisson(mean).astype(float)

    def observe(self, name: str, eta: Any, observed: np.ndarray, dims: str,
                sigma: Any = None) -> Any:
        """``pm.Poisson(name, mu=exp(eta))``."""
        import pymc as pm

        return pm.Poisson(name, mu=self.inverse_link_tensor(eta), observed=observed, dims=dims)


FAMILY = Poisson()
