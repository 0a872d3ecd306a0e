"""A Gaussian residual structure packed for the compiled density, and its draws constrained back.

The parameters follow ``log sigma`` in the vector: the sigma formula's
coefficients ``b_sigma`` (log SD ratios, each with its prior row), then
``phi``'s unconstrained value ``z``, ``phi = lo + (hi - lo) logistic(z)``
with ``(lo, hi)`` the bounds of its uniform prior, whose Jacobian the kernel
adds (``kernels/residual.c``). A structured model has no collapsed block and
no marginal form: its errors are not exchangeable within a level.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.bayes.pack import pack
>>> m = hb.Model("gpa ~ occasion + (1 | student)", hb.datasets.load("gpa"), correlation=hb.ar1(time="occasion"))
>>> packed = pack(m.design, m.priors)
>>> packed.layout["phi"], packed.data.residual.phi_lo
((204, ()), -1.0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hierbayes.bayes.arrays import ResidualArrays
from hierbayes.bayes.pack_blocks import interval_start
from hierbayes.bayes.priors import PriorTable
from hierbayes.residuals import Structured
from hierbayes.spec.design import Design


def pack_residual(design: Design, priors: PriorTable, off: int, layout: dict,
                  add_prior: Callable[[int, Any, bool], None], start: list[float],
                  scale: list[float]) -> tuple[ResidualArrays, int]:
    """Lay out ``b_sigma`` and ``phi`` from position ``off``; returns the kernel's arrays and the next position."""
    res = design.residual
    if not isinstance(res, Structured):
        return ResidualArrays(), off
    V, gamma_at, phi_at, lo, hi = np.zeros((design.n_obs, 0)), -1, -1, -1.0, 1.0
    prev, lag = np.zeros(0, dtype=np.int64), np.zeros(0)
    if res.variance is not None:
        V = res.variance.V
        gamma_at = off
        layout["b_sigma"] = (off, (V.shape[1],))
        for name in res.variance.names:
            p = priors.get("b_sigma", coef=name)
            add_prior(off, p, False)
            start.append(0.0)
            scale.append(0.1)
            off += 1
    if res.correlation is not None:
        p = priors.get("ar")
        lo, hi = float(p.params["lower"]), float(p.params["upper"])
        phi_at = off
        layout["phi"] = (off, ())
        start.append(interval_start(lo, hi))
        scale.append(0.5)
        off += 1
        prev = np.ascontiguousarray(res.correlation.prev, dtype=np.int64)
        lag = np.ascontiguousarray(res.correlation.lag, dtype=float)
    return ResidualArrays(V=np.ascontiguousarray(V, dtype=float), gamma_at=gamma_at, phi_at=phi_at,
                          phi_lo=lo, phi_hi=hi, prev=prev, lag=lag), off


def constrain_residual(data: ResidualArrays, take: Callable[[str], np.ndarray],
                       layout: dict) -> dict[str, np.ndarray]:
    """``b_sigma`` and ``phi`` from the unconstrained draws."""
    out: dict[str, np.ndarray] = {}
    if "b_sigma" in layout:
        out["b_sigma"] = take("b_sigma")
    if "phi" in layout:
        z = take("phi")
        out["phi"] = data.phi_lo + (data.phi_hi - data.phi_lo) / (1.0 + np.exp(-z))
    return out
