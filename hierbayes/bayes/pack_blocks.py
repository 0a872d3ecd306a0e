"""Each random-effect block's SD and correlation parameters, packed for the kernels and constrained back.

A block's parameters follow its structure (:mod:`hierbayes.spec.covstruct`),
named as the PyMC graph names them (:mod:`hierbayes.bayes.pymc_structures`):

* an unstructured block: ``sd_<g>`` (one log SD per term) and, with two or
  more terms, LKJ's partial correlations ``cpc_<g>``;
* ``diag(x | g)``: ``sd_<g>``, no correlation;
* ``cs(x | g)``: ``sd_<g>`` and one correlation ``rho_<g>``;
* ``ar1(0 + f | g)``: one log SD ``sdar_<g>`` for every term and ``rho_<g>``.

``rho`` is sampled as ``z``, ``rho = lo + (hi - lo) logistic(z)`` with
``(lo, hi)`` its uniform prior's range: PyMC's interval transform. The kernel
reads the block's correlation code (``codes.CORR_*``) and its three
parameters (``codes.PAR_*``: LKJ's eta, rho's range), ``kernels/corrstruct.c``.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.bayes.pack import pack
>>> gpa = hb.datasets.load("gpa").assign(occas=lambda d: d["occasion"].astype(int).astype(str))
>>> m = hb.Model("gpa ~ occasion + ar1(0 + occas | student)", gpa)
>>> packed = pack(m.design, m.priors)
>>> sorted(k for k in packed.layout if k.endswith("_student"))
['eff_student', 'rho_student', 'sdar_student']
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hierbayes.bayes.codes import CORR_AR1, CORR_CS, CORR_LKJ, CORR_NONE
from hierbayes.bayes.native import cpc_cholesky
from hierbayes.bayes.priors import PriorTable
from hierbayes.spec.design import RandomBlock

__all__ = ["block_factor", "corr_code", "has_rho", "interval_start", "sd_layout"]


def corr_code(blk: RandomBlock) -> int:
    """The kernel's code for a block's correlations (``codes.CORR_*``)."""
    kind = blk.term.structure
    if kind == "ar1":
        return CORR_AR1
    if kind == "cs" and blk.n_terms > 1:
        return CORR_CS
    return CORR_LKJ if blk.lkj else CORR_NONE


def has_rho(blk: RandomBlock) -> bool:
    """Whether the block has a structured correlation ``rho_<g>`` (cs or ar1 with two or more terms)."""
    return blk.term.structure in ("cs", "ar1") and blk.n_terms > 1


def sd_layout(blk: RandomBlock) -> tuple[str, tuple[int, ...], list[str]]:
    """Name, shape and terms (whose SD priors apply) of a block's log SDs."""
    if blk.term.structure == "ar1":
        return f"sdar_{blk.group}", (), list(blk.terms[:1])
    return f"sd_{blk.group}", (blk.n_terms,), list(blk.terms)


def interval_start(lo: float, hi: float) -> float:
    """Where a parameter uniform on ``(lo, hi)`` starts, unconstrained: at 0 where the range
    allows, else at the nearer tenth of the range from its end."""
    w = hi - lo
    mid = min(max(0.0, lo + 0.1 * w), hi - 0.1 * w)
    return float(np.log((mid - lo) / (hi - mid)))


def correlation_params(blk: RandomBlock, priors: PriorTable) -> tuple[list[float], int]:
    """The block's ``codes.PAR_*`` doubles (eta, lo, hi) and how many correlation parameters it has."""
    K = blk.n_terms
    if blk.lkj:
        return [float(priors.get("cor", blk.group).params["eta"]), -1.0, 1.0], K * (K - 1) // 2
    if has_rho(blk):
        p = priors.get("cor", blk.group).params
        return [1.0, float(p["lower"]), float(p["upper"])], 1
    return [1.0, -1.0, 1.0], 0


def block_factor(blk: RandomBlock, par: list[float], take: Callable[[str], np.ndarray],
                 lead: tuple[int, ...]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """A block's constrained draws: its named parameters, ``sd`` per term and ``L`` (``..., K, K``)."""
    g, K = blk.group, blk.n_terms
    out: dict[str, np.ndarray] = {}
    name, _, _ = sd_layout(blk)
    if blk.term.structure == "ar1":
        out[name] = np.exp(take(name))
        sd = np.repeat(out[name][..., None], K, axis=-1)
    else:
        sd = np.exp(take(name))
    out[f"sd_{g}"] = sd
    if blk.lkj:
        out[f"cpc_{g}"] = cpc = take(f"cpc_{g}")
        L = cpc_cholesky(cpc, K)
    elif has_rho(blk):
        lo, hi = par[1], par[2]
        rho = lo + (hi - lo) / (1.0 + np.exp(-take(f"rho_{g}")))
        out[f"rho_{g}"] = rho
        R = structured_correlation(blk.term.structure, rho, K)
        L = np.linalg.cholesky(R)
    else:
        L = np.broadcast_to(np.eye(K), (*lead, K, K))
    if blk.correlated:
        out[f"cor_{g}"] = L @ np.swapaxes(L, -1, -2)
    return out, sd, L


def structured_correlation(kind: str, rho: np.ndarray, K: int) -> np.ndarray:
    """Correlation matrices ``(..., K, K)`` of a cs or ar1 term at each ``rho``."""
    rho = np.asarray(rho, dtype=float)[..., None, None]
    i, j = np.indices((K, K))
    if kind == "cs":
        return np.where(i == j, 1.0, rho)
    return np.power(rho, np.abs(i - j))
