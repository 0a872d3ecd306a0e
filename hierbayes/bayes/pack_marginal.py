"""The marginal kernel's data: the cross-products of the rows, in blocks, and the blocks amalgamated.

:func:`hierbayes.bayes.pack.pack` with ``marginal=True`` hands the design here:
:func:`whitened` takes the offset from the response and scales the rows by
their prior weights' square roots, :func:`amalgamated` joins the terms on one
grouping factor that have no free correlations, and :func:`cross_products`
lays out ``X'X``, ``X'y``, ``y'y``, ``Z'X``, ``Z'y`` and ``Z'Z``
(:mod:`hierbayes.linalg.crossprod`'s) with the kernel's block table.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.bayes.pack import pack
>>> m = hb.Model("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", hb.datasets.load("sleepstudy"))
>>> pack(m.design, m.priors, marginal=True).groups
[[0, 1]]
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hierbayes.bayes.arrays import MarginalArrays
from hierbayes.bayes.codes import (
    B_CORR,
    B_CPC,
    B_SD,
    CORR_NONE,
    M_CORR,
    M_CPC,
    M_K,
    M_L,
    M_N,
    M_OFF,
    M_SD,
    PAR_N,
)
from hierbayes.linalg.crossprod import CrossProducts, marginal_arrays
from hierbayes.spec.design import Design

__all__ = ["amalgamated", "cross_products", "whitened"]


def whitened(design: Design, Xc: np.ndarray, y: np.ndarray, blocks: list) -> tuple:
    """``(Xc, y, blocks)`` for the marginal kernel's products: the response less the offset, every
    row scaled by the square root of its prior weight. The likelihood is then the unweighted one
    of these rows, up to the constant ``0.5 sum log w``."""
    if design.offset is not None:
        y = y - design.offset
    if design.weights is None:
        return Xc, y, blocks
    root = np.sqrt(design.weights)
    return (Xc * root[:, None], y * root,
            [dataclasses.replace(b, Z=b.Z * root[:, None]) for b in blocks])


def amalgamated(blocks: list, rows: list) -> list[list[int]]:
    """The marginal kernel's blocks: runs of the design's blocks on one grouping factor.

    Adjacent blocks on the same factor (same levels, row by row) whose terms
    have no free correlations, ``(1 | g) + (0 + x | g)`` or ``diag()``, with
    their log SDs side by side in the parameter vector, become one block with
    diagonal ``T``: factored level by level together, rather than all but the
    first in the dense Schur complement.

    """
    out: list[list[int]] = []
    for g, b in enumerate(blocks):
        if out and rows[g][B_CORR] == CORR_NONE:
            prev = blocks[out[-1][-1]]
            if (rows[out[-1][-1]][B_CORR] == CORR_NONE and prev.factor == b.factor and np.array_equal(prev.index, b.index)
                    and rows[g][B_SD] == rows[out[-1][-1]][B_SD] + prev.n_terms):
                out[-1].append(g)
                continue
        out.append([g])
    return out


def cross_products(Xc, y, blocks, rows, pars, pri, misc, corr) -> MarginalArrays:
    """The marginal kernel's data: X'X, X'y, y'y, Z'X, Z'y and Z'Z in blocks (first block first).

    The products are :mod:`hierbayes.linalg.crossprod`'s, the same that the
    REML deviance factors; this adds the kernel's block table, priors and sizes.
    """
    sizes = [b.n_levels * b.n_terms for b in blocks]
    offsets = np.concatenate(([0], np.cumsum(sizes)))[:-1]
    table = np.zeros((len(blocks), M_N), dtype=np.int64)
    for g, (b, row) in enumerate(zip(blocks, rows, strict=True)):
        table[g, [M_K, M_L, M_OFF, M_SD, M_CPC, M_CORR]] = [
            b.n_terms, b.n_levels, offsets[g], row[B_SD], row[B_CPC], corr[g]]
    m = marginal_arrays(CrossProducts.from_blocks(blocks, Xc, y))
    return MarginalArrays(
        XtX=m.XtX, Xty=m.Xty, yty=m.yty, ZtX=m.ZtX, Zty=m.Zty, G11=m.G11, G21=m.G21, G22=m.G22,
        blocks=table, block_par=np.array(pars, dtype=float).reshape(-1, PAR_N), prior_index=pri[0],
        prior_params=pri[1], n_obs=int(misc[0]), sigma_at=int(misc[1]))
