"""Response families: what values each accepts and how the mean links to the predictor.

Examples
--------
>>> from hierbayes.families import get_family
>>> get_family("binomial").name
'bernoulli'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hierbayes.errors import DataError


@dataclass(frozen=True)
class Family:
    """A response distribution with its link.

    Attributes
    ----------
    name
        ``"gaussian"``, ``"bernoulli"`` or ``"poisson"``.
    link
        ``"identity"``, ``"logit"`` or ``"log"``.
    has_sigma
        Whether there is a residual SD (the ``Residual`` row of varcorr).
    """

    name: str
    link: str
    has_sigma: bool

    def __str__(self) -> str:
        return f"{self.name} ({self.link} link)"

    def encode_response(self, values: pd.Series, label: str) -> np.ndarray:
        """Check the response against the family's support and return it as floats.

        A bernoulli response may be 0/1, boolean, or a factor with two levels,
        whose second level counts as success, as in R's glm.
        """
        if self.name == "bernoulli":
            return _encode_binary(values, label)
        if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
            raise DataError(
                f"The response '{label}' is not numeric (dtype {values.dtype}); the {self.name} "
                "family needs numbers. Convert the column (e.g. with pd.to_numeric) or choose "
                "family='bernoulli' for a two-level outcome."
            )
        y = values.to_numpy(dtype=float)
        if self.name == "poisson":
            bad = (y < 0) | (y != np.round(y))
            if bad.any():
                raise DataError(
                    f"The response '{label}' has {int(bad.sum())} values that are not "
                    "non-negative integers, which the poisson family needs (first: "
                    f"{y[bad][0]!r}). Use family='gaussian' for continuous data."
                )
        return y


def _encode_binary(values: pd.Series, label: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=float)
    if isinstance(values.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(values):
        levels = (
            list(values.cat.categories)
            if isinstance(values.dtype, pd.CategoricalDtype)
            else sorted(values.unique())
        )
        if len(levels) != 2:
            raise DataError(
                f"The response '{label}' has {len(levels)} levels ({levels[:5]}); the bernoulli "
                "family needs two (or 0/1 numbers)."
            )
        return (values == levels[1]).to_numpy(dtype=float)
    y = values.to_numpy(dtype=float)
    bad = ~np.isin(y, [0.0, 1.0])
    if bad.any():
        raise DataError(
            f"The response '{label}' has {int(bad.sum())} values other than 0 and 1 (first: "
            f"{y[bad][0]!r}); the bernoulli family needs 0/1, True/False or a two-level factor."
        )
    return y


FAMILIES = {
    "gaussian": Family("gaussian", "identity", True),
    "bernoulli": Family("bernoulli", "logit", False),
    "poisson": Family("poisson", "log", False),
}
_ALIASES = {"normal": "gaussian", "binomial": "bernoulli", "logistic": "bernoulli"}


def get_family(family: str | Family) -> Family:
    """Look a family up by name (``"gaussian"``, ``"bernoulli"``/``"binomial"``, ``"poisson"``)."""
    if isinstance(family, Family):
        return family
    if not isinstance(family, str):
        raise DataError(f"family must be a name such as 'gaussian', not {family!r}.")
    key = _ALIASES.get(family.lower(), family.lower())
    if key not in FAMILIES:
        raise DataError(
            f"Unknown family '{family}'. Choose one of: {', '.join(FAMILIES)} "
            "('binomial' means bernoulli with a 0/1 response)."
        )
    return FAMILIES[key]
