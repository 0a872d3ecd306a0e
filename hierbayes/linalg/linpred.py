"""The linear predictor in NumPy, for one set of estimates or a batch of draws.

``eta = X beta + sum_k sum_j Z_k[:, j] r_k[index_k, j]``: fixed effects, plus
each random-effect term's effects gathered by each row's level. Both engines'
reports (fitted values, predictions, posterior predictive draws, the pointwise
log-likelihood) compute it here, so that a new residual or family changes it in
one place.

Examples
--------
>>> X = np.array([[1.0, 0.0], [1.0, 2.0], [1.0, 4.0]])
>>> Z, index = X, np.array([0, 0, 1])        # intercept and slope vary by level
>>> r = np.array([[1.0, 0.5], [-1.0, 0.0]])  # (levels, terms)
>>> linear_predictor(X, np.array([10.0, 1.0]), [(Z, index, r)]).tolist()
[11.0, 14.0, 13.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Effects = Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None]]


def linear_predictor(X: np.ndarray, beta: np.ndarray, effects: Effects = ()) -> np.ndarray:
    """Fixed effects plus gathered group effects, for each draw.

    Parameters
    ----------
    X
        Fixed-effect matrix, ``(n, p)``.
    beta
        Fixed effects, ``(..., p)``: the leading axes are draws (none for
        point estimates, ``(S,)`` or ``(chains, draws)`` for draws).
    effects
        Per random-effect term, ``(Z, index, r)``: its model matrix ``(n, q)``,
        each row's level ``(n,)`` and the effects ``(..., levels, q)`` with
        ``beta``'s leading axes. A row whose index is negative (a level the fit
        never saw, a block ``re_form`` leaves out) gets nothing from the term,
        and an ``r`` of None adds nothing. New levels' effects are a term of
        their own, indexed by each row's position among the new levels.

    Returns
    -------
    numpy.ndarray
        ``(..., n)``.

    Examples
    --------
    >>> X = np.ones((2, 1))
    >>> beta = np.array([[1.0], [2.0], [3.0]])            # three draws
    >>> r = np.array([[[0.5]], [[0.0]], [[-0.5]]])        # (draws, levels, terms)
    >>> linear_predictor(X, beta, [(X, np.array([0, -1]), r)]).tolist()
    [[1.5, 1.0], [2.0, 2.0], [2.5, 3.0]]
    """
    # BLAS's product first, then each term's effects added row by row in the order the
    # terms come: every caller gets the same bits for the same rows
    eta = beta @ X.T
    for Z, index, r in effects:
        if r is None:
            continue
        seen = index >= 0
        if seen.all():
            eta += np.einsum("...nq,nq->...n", r[..., index, :], Z)
        elif seen.any():
            eta[..., seen] += np.einsum("...nq,nq->...n", r[..., index[seen], :], Z[seen])
    return eta
