"""How a random-effect block's correlations are named and stored, for both engines and the reports.

A block of ``n`` terms has ``n (n - 1) / 2`` correlations. They are stored as
the strict lower triangle of the correlation matrix, column by column (brms's
order: ``cor_Subject__Intercept__Days``; lme4's order of the correlation rows
of ``as.data.frame(VarCorr(m))``), along the dimension ``<group>__cor`` with
labels ``"<row term>:<column term>"``.

Examples
--------
>>> correlation_pairs(3)
[(1, 0), (2, 0), (2, 1)]
>>> correlation_labels(["(Intercept)", "Days"])
['Days:(Intercept)']
"""

from __future__ import annotations

from typing import Any

import numpy as np


def correlation_pairs(n_terms: int) -> list[tuple[int, int]]:
    """Row and column of each stored correlation: the strict lower triangle, column by column.

    That is brms's order (``cor_g__a__b``, ``cor_g__a__c``, ``cor_g__b__c``) and
    the order of the correlation rows of lme4's ``as.data.frame(VarCorr(m))``.

    Examples
    --------
    >>> correlation_pairs(3)
    [(1, 0), (2, 0), (2, 1)]
    """
    return [(i, j) for j in range(n_terms) for i in range(j + 1, n_terms)]


def correlation_labels(terms: list[str]) -> list[str]:
    """Coordinate labels of a block's stored correlations: ``"<row term>:<column term>"``.

    Terms that themselves hold ``:`` could make two labels alike; then the
    labels are the row and column positions (``"1:0"``), which never clash.

    Examples
    --------
    >>> correlation_labels(["(Intercept)", "Days"])
    ['Days:(Intercept)']
    >>> correlation_labels(["c", "b:c", "a", "a:b"])[:3]  # "a:b" with "c" reads as "a" with "b:c"
    ['1:0', '2:0', '3:0']
    """
    pairs = correlation_pairs(len(terms))
    labels = [f"{terms[i]}:{terms[j]}" for i, j in pairs]
    if len(set(labels)) < len(labels):
        labels = [f"{i}:{j}" for i, j in pairs]
    return labels


def correlation_position(n_terms: int, a: int, b: int) -> int:
    """Where the correlation of terms ``a`` and ``b`` (either order) lies among the stored pairs.

    Examples
    --------
    >>> correlation_position(3, 0, 2), correlation_position(3, 2, 0)
    (1, 1)
    """
    return correlation_pairs(n_terms).index((max(a, b), min(a, b)))


def correlation_matrix(pairs: np.ndarray, n_terms: int) -> np.ndarray:
    """Full correlation matrices, ``(..., n, n)``, from stored pairs ``(..., n (n - 1) / 2)``.

    Examples
    --------
    >>> correlation_matrix(np.array([0.5]), 2).tolist()
    [[1.0, 0.5], [0.5, 1.0]]
    """
    pairs = np.asarray(pairs)
    out = np.broadcast_to(np.eye(n_terms), (*pairs.shape[:-1], n_terms, n_terms)).copy()
    for k, (i, j) in enumerate(correlation_pairs(n_terms)):
        out[..., i, j] = out[..., j, i] = pairs[..., k]
    return out


def correlation_dim(block: Any) -> str:
    """The dimension of a block's stored correlations, e.g. ``"Subject__cor"``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> correlation_dim(SimpleNamespace(group="Subject"))
    'Subject__cor'
    """
    return f"{block.group}__cor"


def varcomp_labels(design: Any) -> dict[str, str]:
    """The name each block's variance parameters carry after ``|``: lme4's ``oldNames = FALSE``
    (as ``confint`` names its rows), for both engines' tables.

    lme4 names by grouping factor, so ``(Days || Subject)`` gives
    ``sd_(Intercept)|Subject`` and ``sd_Days|Subject``; only if that repeats a
    name do the blocks' unique names (``Subject.1``) step in.
    """
    def names(label: dict[str, str]) -> list[str]:
        return [f"{t}|{label[b.group]}" for b in design.blocks for t in b.terms]

    by_factor = {b.group: b.factor for b in design.blocks}
    chosen = by_factor if len(set(names(by_factor))) == len(names(by_factor)) else \
        {b.group: b.group for b in design.blocks}
    return chosen


def sd_name(term: str, label: str) -> str:
    """``sd_(Intercept)|Subject``: a group-level SD in every table (docs/report.md)."""
    return f"sd_{term}|{label}"


def cor_name(later: str, earlier: str, label: str) -> str:
    """``cor_Days.(Intercept)|Subject``: a correlation, the later term first, as lme4 names it."""
    return f"cor_{later}.{earlier}|{label}"
