"""Grouping factors: each row's level as an integer code, with the levels' labels as R prints them.

Examples
--------
>>> import pandas as pd
>>> codes, levels = factor_codes(pd.DataFrame({"g": ["b", "a", "b"]}), ("g",))
>>> codes.tolist(), levels
([1, 0, 1], ['a', 'b'])
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hierbayes.errors import DataError
from hierbayes.spec.modelframe import distinct_labels

__all__ = ["factor_codes"]


def factor_codes(frame: pd.DataFrame, columns: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """Integer codes and level labels of a grouping factor (an interaction if several columns).

    Levels follow R: a categorical's own order, else sorted values; an
    interaction ``a:b`` varies its first factor slowest and keeps only levels
    that occur. Two different values that print alike (``1`` and ``"1"``), or
    two combinations whose ``a:b`` labels coincide, are refused: they would
    become one printed label for two groups.
    """
    codes, sizes, labels = [], [], []
    for col in columns:
        values = frame[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            cats = values.cat.categories
            c = values.cat.codes.to_numpy()
        else:
            try:
                c, cats = pd.factorize(values, sort=True)
            except TypeError:
                raise DataError(
                    f"The grouping factor '{col}' mixes values of different types "
                    f"({sorted({type(v).__name__ for v in values})}); convert it to one type "
                    "first (e.g. df[col].astype(str)).") from None
        codes.append(c.astype(np.int64))
        sizes.append(len(cats))
        labels.append(distinct_labels(list(cats), f"The grouping factor '{col}'"))
    flat = np.ravel_multi_index(codes, sizes) if len(codes) > 1 else codes[0]
    used, index = np.unique(flat, return_inverse=True)
    parts = np.unravel_index(used, sizes) if len(codes) > 1 else (used,)
    levels = [":".join(labels[k][p[i]] for k, p in enumerate(parts)) for i in range(len(used))]
    if len(set(levels)) < len(levels):
        dup = next(lv for lv in levels if levels.count(lv) > 1)
        raise DataError(
            f"The grouping factor '{':'.join(columns)}' has two different combinations of "
            f"levels that both read as '{dup}' (a level contains ':'), so their groups would "
            "share one label. Remove ':' from the level names first.")
    return index.astype(np.int64).ravel(), levels
