"""The Bernoulli family: a 0/1 response with logit link (R's ``binomial`` for 0/1 data).

Examples
--------
>>> import numpy as np
>>> FAMILY.inverse_link(np.array([0.0]))
array([0.5])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError
from hierbayes.families.base import Family


class Bernoulli(Family):
    """``y ~ bernoulli(inv_logit(eta))``; no dispersion."""

    name = "bernoulli"
    aliases = ("binomial", "logistic")
    alias_note = "'binomial' means bernoulli with a 0/1 response"
    link = "logit"
    kernel = "bernoulli"

    def encode_response(self, values: pd.Series, label: str) -> np.ndarray:
        """0/1 numbers, booleans, or a factor with two levels, whose second level counts as success.

        As in R's glm; a non-numeric column's levels are its sorted values.

        Examples
        --------
        >>> FAMILY.encode_response(pd.Series(["no", "yes", "no"]), "y")
        array([0., 1., 0.])
        """
        if pd.api.types.is_bool_dtype(values):
            return values.to_numpy(dtype=float)
        if isinstance(values.dtype, pd.CategoricalDtype) or \
                not pd.api.types.is_numeric_dtype(values):
            levels = (
                list(values.cat.categories)
                if isinstance(values.dtype, pd.CategoricalDtype)
                else sorted(values.unique())
            )
            if len(levels) != 2:
                raise DataError(
                    f"The response '{label}' has {len(levels)} levels ({levels[:5]}); the "
                    "bernoulli family needs two (or 0/1 numbers)."
                )
            return (values == levels[1]).to_numpy(dtype=float)
        y = values.to_numpy(dtype=float)
        bad = ~np.isin(y, [0.0, 1.0])
        if bad.any():
            raise DataError(
                f"The response '{label}' has {int(bad.sum())} values other than 0 and 1 (first: "
                f"{y[bad][0]!r}); the bernoulli family needs 0/1, True/False or a two-level "
                "factor."
            )
        return y

    def inverse_link(self, eta: np.ndarray) -> np.ndarray:
        """The inverse logit, ``1 / (1 + exp(-eta))``."""
        from scipy.special import expit

        return expit(eta)

    def inverse_link_tensor(self, eta: Any) -> Any:
        """The inverse logit, in PyTensor."""
        import pytensor.tensor as pt

        return pt.sigmoid(eta)

    def intercept_location(self, y: np.ndarray) -> float:
        """0 on the logit scale (a probability of one half)."""
        return 0.0

    def loglik(self, y: np.ndarray, eta: np.ndarray,
               sigma: np.ndarray | None = None) -> np.ndarray:
        """``log p(y | eta)``, computed stably from the logit."""
        # log p = -log(1 + exp(-eta)) for y = 1, -log(1 + exp(eta)) for y = 0
        return -np.logaddexp(0.0, np.where(y == 1, -eta, eta))

    def draw(self, rng: np.random.Generator, mean: np.ndarray,
             sigma: np.ndarray | None = None) -> np.ndarray:
        """1 where a uniform draw falls below the mean, else 0.

        Examples
        --------
        >>> FAMILY.draw(np.random.default_rng(0), np.array([[0.0, 1.0]]))
        array([[0., 1.]])
        """
        return (rng.random(mean.shape) < mean).astype(float)

    def observe(self, name: str, eta: Any, observed: np.ndarray, dims: str,
                sigma: Any = None) -> Any:
        """``pm.Bernoulli(name, logit_p=eta)``."""
        import pymc as pm

        return pm.Bernoulli(name, logit_p=eta, observed=observed, dims=dims)

    def latent_variance(self, sigma: np.ndarray | None) -> np.ndarray | float | None:
        """``pi^2 / 3``, the variance of the standard logistic distribution."""
        return np.pi**2 / 3


FAMILY = Bernoulli()
