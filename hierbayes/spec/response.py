"""The response as the design holds it: successes and trials, prior weights, offsets.

R's glm reads a binomial response three ways (0/1, ``cbind(successes,
failures)``, a proportion with the trials as ``weights``); the design keeps
the successes as ``y`` beside the trials, so the Bayesian likelihood sees
counts, and the family's :meth:`~hierbayes.families.base.Family.glm_response`
turns them back into glm's proportion and prior weights for the frequentist
engine. ``weights=`` and ``offset=`` may name a column or give one value per row.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)"),
...                  hb.datasets.load("cbpp"), family="binomial")
>>> d.y[:3].tolist(), d.trials[:3].tolist()
([2.0, 3.0, 4.0], [14.0, 12.0, 9.0])
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError, FormulaError
from hierbayes.families import Family
from hierbayes.spec.modelframe import ModelFrame


def row_values(value: Any, data: pd.DataFrame, what: str) -> pd.Series | None:
    """``weights=`` or ``offset=`` as a Series on the data's rows: a column name or one value per row.

    Examples
    --------
    >>> row_values("w", pd.DataFrame({"w": [1, 2]}), "weights").tolist()
    [1.0, 2.0]
    """
    if value is None:
        return None
    if isinstance(value, str):
        if value not in data.columns:
            close = difflib.get_close_matches(value, [str(c) for c in data.columns], n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise DataError(f"{what}={value!r} names no column of the data.{hint}")
        out = data[value]
    else:
        arr = np.asarray(value)
        if arr.ndim != 1 or len(arr) != len(data):
            raise DataError(f"{what}= needs one value per row of the data ({len(data)}), "
                            f"not an array of shape {arr.shape}; or give a column name.")
        out = pd.Series(arr, index=data.index)
    if not pd.api.types.is_numeric_dtype(out) or pd.api.types.is_bool_dtype(out):
        raise DataError(f"{what}= must be numeric (dtype {out.dtype}).")
    return out.astype(float)


def check_weights(w: np.ndarray, family: Family, label: str) -> None:
    """Refuse prior weights the family cannot take, or that are negative, infinite or (Gaussian) zero."""
    if not family.takes_weights:
        raise DataError(
            f"weights= is not supported for the {family.name} family (glmer multiplies the "
            "log-likelihood by them there, and hierbayes does not yet). Remove weights=.")
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        raise DataError(f"weights= has {int(bad.sum())} negative or infinite values (first: "
                        f"{float(w[bad][0])!r}); prior weights must be >= 0.")
    if family.residual_sd and (w == 0).any():
        raise DataError(f"weights= has {int((w == 0).sum())} zero weights; a {family.name} "
                        "row with weight 0 has infinite variance. Drop those rows instead.")


def read_response(family: Family, mf: ModelFrame, frame: pd.DataFrame, node: Any, lab: str,
              weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(y, trials, weights)``: the encoded response, and its trials for a binomial family.

    ``cbind(successes, failures)`` gives the successes and their sum as the
    trials; a proportion with ``weights`` (binomial) gives successes
    ``p w`` out of ``w``; otherwise the family encodes the response and the
    weights stay prior weights.
    """
    if weights is not None:
        check_weights(weights, family, lab)
    if node.kind == "call" and node.value == "cbind":
        if not family.takes_trials:
            raise FormulaError(
                f"The response {lab} gives successes and failures, which needs "
                f"family='binomial'; this model's family is {family.name}.")
        if weights is not None:
            raise DataError("With a cbind() response the trials are successes + failures; "
                            "weights= would multiply them (R's glm does), which hierbayes "
                            "refuses as ambiguous. Remove weights=.")
        counts = mf.evaluate(frame, [lab], fit=True)[lab]
        counts = np.asarray(counts, dtype=float)
        y, trials = family.encode_counts(counts[:, 0], counts[:, 1], lab)  # type: ignore[attr-defined]
        return y, trials, None
    values = mf.series(frame, lab, fit=True)
    if family.takes_trials and weights is not None:
        y, trials = family.encode_proportion(values, lab, weights)  # type: ignore[attr-defined]
        return y, trials, None
    return family.encode_response(values, lab), None, weights
