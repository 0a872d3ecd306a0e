"""Covariance structures of a random-effect term, as glmmTMB writes them: ``us``, ``diag``, ``cs``, ``ar1``.

A term ``(x | g)`` has an unstructured covariance (``us``: every SD and
correlation free; lme4's). glmmTMB's other structures, written around the
bar (``diag(x | g)``, ``cs(0 + f | g)``, ``ar1(0 + f | g)``), constrain the
``q x q`` covariance ``Sigma`` of a level's effects:

* ``diag``: independent effects, ``q`` SDs;
* ``cs``: heterogeneous compound symmetry, ``q`` SDs and one correlation
  ``rho`` common to every pair, ``-1/(q-1) < rho < 1`` (glmmTMB's ``cs``);
* ``ar1``: one SD and correlation ``phi^|i-j|`` between columns ``i`` and
  ``j`` (glmmTMB's ``ar1``; the columns are the levels of a time factor, in
  order, and the term has no intercept).

Each structure maps its parameters to the relative covariance factor ``T``
(``Sigma = sigma^2 T T'``) that the REML deviance factors: for the
frequentist engine the parameters are the relative SDs (bounded below by 0)
and, for ``cs`` and ``ar1``, the correlation's unconstrained value.

Examples
--------
>>> import numpy as np
>>> s = get_structure("ar1")
>>> d = s.describe(np.array([2.0, np.arctanh(0.5)]), 3)
>>> s.n_params(3), np.round(d["sd"], 12).tolist(), round(d["rho"], 12)
(2, [2.0, 2.0, 2.0], 0.5)
>>> T = s.relative_factor(np.array([1.0, np.arctanh(0.5)]), 3)
>>> (T @ T.T).round(3).tolist()
[[1.0, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 1.0]]
"""

from __future__ import annotations

import numpy as np

STRUCTURES = ("us", "diag", "cs", "ar1")


def _logistic(z: float) -> float:
    return float(1.0 / (1.0 + np.exp(-z)))


class Structure:
    """A covariance structure: its parameters (``n_params``) and the relative factor they give.

    The first ``n_sd`` parameters are relative SDs (bounded below by 0); the rest
    are unconstrained (correlations through a transform). ``us`` is lme4's
    column-wise lower triangle of ``T`` itself.
    """

    name = "us"
    label = "unstructured"

    def n_params(self, q: int) -> int:
        return q * (q + 1) // 2

    def sd_entries(self, q: int) -> np.ndarray:
        """Which parameters are bounded below by 0: ``T``'s diagonal for ``us``, the SDs otherwise."""
        rows, cols = [], []
        for j in range(q):
            for i in range(j, q):
                rows.append(i)
                cols.append(j)
        return np.array(rows) == np.array(cols)

    def start(self, q: int) -> np.ndarray:
        """Where fits start: identity ``T`` (lme4's), correlations 0."""
        return self.sd_entries(q).astype(float)

    def relative_factor(self, params: np.ndarray, q: int) -> np.ndarray:
        T = np.zeros((q, q))
        k = 0
        for j in range(q):
            for i in range(j, q):
                T[i, j] = params[k]
                k += 1
        return T

    def correlation(self, params: np.ndarray, q: int) -> float | None:
        """The structure's one correlation parameter (``cs``, ``ar1``), or None."""
        return None

    def describe(self, params: np.ndarray, q: int) -> dict:
        """Relative SDs of the columns, and the correlation parameter where there is one."""
        T = self.relative_factor(params, q)
        out: dict = {"sd": np.sqrt(np.sum(T**2, axis=1)).tolist()}
        rho = self.correlation(params, q)
        if rho is not None:
            out["rho"] = rho
        return out


class Diagonal(Structure):
    """``diag``: independent effects, one SD each."""

    name = "diag"
    label = "diagonal"

    def n_params(self, q: int) -> int:
        return q

    def sd_entries(self, q: int) -> np.ndarray:
        return np.ones(q, dtype=bool)

    def relative_factor(self, params: np.ndarray, q: int) -> np.ndarray:
        return np.diag(np.abs(params[:q]))


class CompoundSymmetry(Structure):
    """``cs``: one SD per column and one correlation for every pair (glmmTMB's heterogeneous cs)."""

    name = "cs"
    label = "compound symmetry"

    def n_params(self, q: int) -> int:
        return q + (1 if q > 1 else 0)

    def sd_entries(self, q: int) -> np.ndarray:
        return np.arange(self.n_params(q)) < q

    def start(self, q: int) -> np.ndarray:
        # rho = 0 sits at logistic(z) = (1/(q-1)) / (1 + 1/(q-1)) = 1/q
        z = [np.log(1.0 / (q - 1))] if q > 1 else []
        return np.concatenate([np.ones(q), z])

    def correlation(self, params: np.ndarray, q: int) -> float | None:
        if q < 2:
            return None
        low = -1.0 / (q - 1)
        return low + (1.0 - low) * _logistic(float(params[q]))

    def relative_factor(self, params: np.ndarray, q: int) -> np.ndarray:
        sd = np.abs(params[:q])
        rho = self.correlation(params, q) or 0.0
        R = np.full((q, q), rho)
        np.fill_diagonal(R, 1.0)
        return sd[:, None] * np.linalg.cholesky(R)


class AutoRegressive(Structure):
    """``ar1``: one SD, correlation ``phi^|i-j|`` between columns ``i`` and ``j``."""

    name = "ar1"
    label = "AR(1)"

    def n_params(self, q: int) -> int:
        return 2 if q > 1 else 1

    def sd_entries(self, q: int) -> np.ndarray:
        return np.arange(self.n_params(q)) < 1

    def start(self, q: int) -> np.ndarray:
        return np.array([1.0, 0.0][: self.n_params(q)])

    def correlation(self, params: np.ndarray, q: int) -> float | None:
        return float(np.tanh(params[1])) if q > 1 else None

    def relative_factor(self, params: np.ndarray, q: int) -> np.ndarray:
        phi = self.correlation(params, q) or 0.0
        i, j = np.indices((q, q))
        # the Cholesky factor of phi^|i-j|: column 0 is phi^i, the others phi^(i-j) sqrt(1 - phi^2)
        L = np.where(i >= j, np.power(phi, np.maximum(i - j, 0)), 0.0)
        L[:, 1:] *= np.sqrt(1.0 - phi**2)
        return abs(float(params[0])) * L


_ALL = {s.name: s for s in (Structure(), Diagonal(), CompoundSymmetry(), AutoRegressive())}


def get_structure(name: str) -> Structure:
    """The structure called ``name`` (one of :data:`STRUCTURES`)."""
    return _ALL[name]
