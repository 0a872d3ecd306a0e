"""The reparameterisation policy: which form of the model the sampler moves over.

Before sampling, hierbayes chooses per random-effect block whether its group
effects are centred or not (:func:`choose_centring`), and for gaussian models
whether to integrate them out (the marginal kernel) by a rough cost
(:func:`marginal_cost`) and the nesting of the blocks
(:func:`first_block_nested`). :func:`supported` says when the compiled density
cannot express the priors at all.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.bayes.policy import choose_centring
>>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> choose_centring(m.design)
[True]
"""

from __future__ import annotations

import numpy as np

from hierbayes.bayes.codes import PRIOR_CODES
from hierbayes.bayes.priors import PriorTable
from hierbayes.spec.design import Design


def supported(priors: PriorTable) -> str | None:
    """Why the compiled density cannot express these priors, or None when it can."""
    for e in priors.entries:
        if e.cls == "cor":
            continue
        if e.prior.dist not in PRIOR_CODES:
            return f"the prior {e.prior} on {e.cls} (only PyMC's sampler path handles it)"
    return None


def marginal_cost(design: Design) -> float:
    """Rough flops of one marginal evaluation: first block level by level, the rest dense."""
    if not design.blocks:
        return 0.0
    first = max(design.blocks, key=lambda b: b.n_levels * b.n_terms)
    q1 = first.n_levels * first.n_terms
    q2 = sum(b.n_levels * b.n_terms for b in design.blocks) - q1
    return first.n_levels * first.n_terms**3 + 2.0 * q2 * q2 * q1 + q2**3


def first_block_nested(design: Design) -> bool:
    """Whether every level of the largest block lies within one level of each other block.

    Nested designs (wards within hospitals) couple their blocks through one
    entry per level, so the marginal form's Schur complement is cheap to use;
    crossed ones (pupils' primary and secondary schools) fill it.
    """
    if len(design.blocks) < 2:
        return True
    first = max(design.blocks, key=lambda b: b.n_levels * b.n_terms)
    for other in design.blocks:
        if other is first:
            continue
        pairs = np.unique(np.stack([first.index, other.index]), axis=1)
        if pairs.shape[1] != len(np.unique(first.index)):
            return False
    return True


def term_ratios(blk, resid: np.ndarray) -> list[float] | None:
    """Per term of a block, how much its levels' rows say against the spread of its effects.

    Each level's own least-squares coefficients (residuals on the block's
    columns) scatter by the effects' variance plus their sampling variance;
    the moment estimate of the first over the typical second is the term's
    ratio. None when fewer than three levels have rows enough for their own fit.
    """
    q = blk.n_terms
    coefs, samp, rss, dof = [], [], 0.0, 0
    order = np.argsort(blk.index, kind="stable")
    bounds = np.searchsorted(blk.index[order], np.arange(blk.n_levels + 1))
    for k in range(blk.n_levels):
        rows = order[bounds[k] : bounds[k + 1]]
        if len(rows) <= q:
            continue
        Z = blk.Z[rows]
        ZtZ = Z.T @ Z
        if np.linalg.cond(ZtZ) > 1e10:
            continue
        inv = np.linalg.inv(ZtZ)
        b = inv @ (Z.T @ resid[rows])
        r = resid[rows] - Z @ b
        rss += float(r @ r)
        dof += len(rows) - q
        coefs.append(b)
        samp.append(np.diag(inv))
    if len(coefs) < 3 or dof == 0:
        return None
    s2 = rss / dof
    coefs, samp = np.array(coefs), s2 * np.array(samp)
    between = np.maximum(coefs.var(axis=0, ddof=1) - samp.mean(axis=0), 0.0)
    return list(between / np.median(samp, axis=0))


def choose_centring(design: Design, threshold: float = 1.0) -> list[bool]:
    """Per block, centre its group effects when the data say more than the prior.

    A level's effect is informed by its rows in proportion to ``n_j sd^2 /
    sigma^2`` (data precision over prior precision). Where that is large for
    the typical level, the centred form samples well and the non-centred one
    has a funnel-like coupling between ``z`` and ``sd``; where it is small the
    reverse holds (Papaspiliopoulos, Roberts & Skold 2007; Betancourt &
    Girolami 2013). Before sampling, SDs are unknown, so the ratio uses a
    cheap moment guess: the block's share of the residual variance of the
    response after the fixed effects, split evenly over the blocks.

    A block of several terms (an intercept and slopes) is centred only when
    every term is well informed (:func:`term_ratios`): centring a block whose
    slope SD is small beside what its rows can resolve put a funnel on that SD,
    and the full model's divergences in SBC all came from such blocks.

    Bernoulli and Poisson models use the same moments of the response: on the
    response scale, a level's mean varies between levels by about ``(V sd)^2``
    (``V = mu (1 - mu)`` or ``mu``, the delta method) and a row by ``V`` within,
    so their ratio times the rows per level is ``n_j V sd^2``, the same data
    precision (``n_j V``, the Fisher information of the link-scale effect) over
    prior precision (``1 / sd^2``).
    """
    if not design.blocks:
        return []
    X, y = design.X, np.asarray(design.y, dtype=float)
    beta, *_ = np.linalg.lstsq(X, y, rcond=None) if X.shape[1] else (np.zeros(0),)
    resid = y - X @ beta if X.shape[1] else y - y.mean()
    out = []
    for blk in design.blocks:
        if blk.n_terms > 1:
            ratios = term_ratios(blk, resid)
            if ratios is not None:
                out.append(bool(min(ratios) > threshold))
                continue
        counts = np.bincount(blk.index, minlength=blk.n_levels).astype(float)
        # between-level share of the residual variance, by a one-way ANOVA on this factor
        means = np.bincount(blk.index, weights=resid, minlength=blk.n_levels) / np.maximum(counts, 1)
        within = resid - means[blk.index]
        s2_within = float(within @ within) / max(len(y) - blk.n_levels, 1)
        n_bar = float(np.median(counts))
        s2_between = max(float(np.var(means[counts > 0], ddof=1)) - s2_within / n_bar, 0.0)
        ratio = n_bar * s2_between / max(s2_within, 1e-300)
        out.append(bool(ratio > threshold))
    return out
