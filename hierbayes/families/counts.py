"""What the count families (poisson, negbinomial) share: their response's support.

Examples
--------
>>> import pandas as pd
>>> count_response(pd.Series([0, 3]), "y", "poisson")
array([0., 3.])
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hierbayes.errors import DataError
from hierbayes.families.base import numeric_response


def count_response(values: pd.Series, label: str, family: str) -> np.ndarray:
    """Non-negative whole numbers, as floats; anything else is refused for ``family``."""
    y = numeric_response(values, label, family)
    bad = (y < 0) | (y != np.round(y))
    if bad.any():
        raise DataError(
            f"The response '{label}' has {int(bad.sum())} values that are not "
            f"non-negative integers, which the {family} family needs (first: "
            f"{float(y[bad][0])!r}). Use family='gaussian' (or a gamma family) for continuous data.")
    return y


def count_intercept(y: np.ndarray) -> float:
    """``log(mean(y))``, with the mean kept at least 1e-3 (an all-zero response)."""
    return float(np.log(max(np.mean(y), 1e-3)))
