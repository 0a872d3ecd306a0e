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
        # LKJ and phi's uniform are the kernel's transforms, not prior rows
        if e.cls in ("cor", "ar"):
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


def response_scale(design: Design) -> tuple[np.ndarray, np.ndarray | None]:
    """Each row's response as the centring test reads it, and its weight (None: all one).

    A binomial row with ``n`` trials is its proportion of successes with weight
    ``n`` (its variance is ``V / n``); a Gaussian row's prior weight is its
    precision. An offset is taken from the response where it adds (identity
    link) and divides it out where it multiplies the mean (log link: an
    exposure ``t``, with weight ``t^2 V(m) / V(t m)`` at the mean rate ``m``,
    which is ``t`` for Poisson counts and 1 for the gamma's constant
    coefficient of variation; the negative binomial is taken at its Poisson
    limit). Weighted, the rows' variance about their mean is one unit's, as
    the one-way ANOVA below assumes.

    Examples
    --------
    >>> import hierbayes as hb
    >>> d = hb.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...              hb.datasets.load("cbpp"), family="binomial").design
    >>> y, w = response_scale(d)
    >>> bool((w == d.trials).all()), float(y.max()) <= 1.0
    (True, True)
    """
    y = np.asarray(design.y, dtype=float)
    w = None
    if design.trials is not None:
        w = np.asarray(design.trials, dtype=float)
        y = np.divide(y, w, out=np.zeros_like(y), where=w > 0)
    elif design.weights is not None:
        w = np.asarray(design.weights, dtype=float)
    if design.offset is not None:
        link = design.family.link.name
        if link == "identity":
            y = y - design.offset
        elif link == "log":
            t = np.exp(design.offset)
            y = y / t
            m = max(float(np.sum(design.y)) / float(np.sum(t)), 1e-12)
            fam = design.family
            share = t**2 * fam.variance(np.array(m), np.inf) / fam.variance(t * m, np.inf)
            w = share if w is None else w * share
    return y, w


def term_ratios(blk, resid: np.ndarray, root: np.ndarray | None = None) -> list[float] | None:
    """Per term of a block, how much its levels' rows say against the spread of its effects.

    Each level's own least-squares coefficients (residuals on the block's
    columns) scatter by the effects' variance plus their sampling variance;
    the moment estimate of the first over the typical second is the term's
    ratio. None when fewer than three levels have rows enough for their own fit.
    ``root`` is the rows' square-root weights: weighted least squares, by rows scaled.
    """
    q = blk.n_terms
    coefs, samp, rss, dof = [], [], 0.0, 0
    order = np.argsort(blk.index, kind="stable")
    bounds = np.searchsorted(blk.index[order], np.arange(blk.n_levels + 1))
    for k in range(blk.n_levels):
        rows = order[bounds[k] : bounds[k + 1]]
        if len(rows) <= q:
            continue
        Z, e = (blk.Z[rows], resid[rows]) if root is None else \
            (blk.Z[rows] * root[rows, None], resid[rows] * root[rows])
        ZtZ = Z.T @ Z
        if np.linalg.cond(ZtZ) > 1e10:
            continue
        inv = np.linalg.inv(ZtZ)
        b = inv @ (Z.T @ e)
        r = e - Z @ b
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


MIN_LEVELS_CENTRED = 10


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

    Other families use the same moments of the response: on the response
    scale, a level's mean varies between levels by about ``(mu_eta sd)^2``
    (``mu_eta = d mu / d eta``: ``mu (1 - mu)`` for the logit, ``mu`` for the
    log link; the delta method) and a row by ``Var(y)`` within, so their ratio
    times the rows per level is ``n_j mu_eta^2 sd^2 / Var(y)``, the data
    precision (``n_j mu_eta^2 / Var(y)``, the Fisher information of the
    link-scale effect: ``n_j V`` for the Bernoulli and Poisson, ``n_j shape``
    for the gamma) over prior precision (``1 / sd^2``). The ANOVA's within
    variance is the data's own, overdispersion included (negative binomial).
    Rows count by their weight (:func:`response_scale`): a binomial row with
    ``n`` trials as ``n`` Bernoulli rows, an exposure as its Poisson information.

    A factor with fewer than :data:`MIN_LEVELS_CENTRED` levels is never
    centred, however informative its rows: so few levels say little about the
    SD, whose posterior then reaches down to 0, where a centred block is a
    funnel. On 12 simulated logistic data sets of 5 groups of 40 rows (group SD
    1), the centred form had divergences in 7, the non-centred in none.
    """
    if not design.blocks:
        return []
    X = design.X
    y, w = response_scale(design)
    root = None if w is None else np.sqrt(w)
    Xs, ys = (X, y) if root is None else (X * root[:, None], y * root)
    beta, *_ = np.linalg.lstsq(Xs, ys, rcond=None) if X.shape[1] else (np.zeros(0),)
    if X.shape[1]:
        resid = y - X @ beta
    else:
        resid = y - (y.mean() if w is None else float(w @ y) / float(w.sum()))
    out = []
    for blk in design.blocks:
        if blk.n_levels < MIN_LEVELS_CENTRED:
            out.append(False)
            continue
        if blk.n_terms > 1:
            ratios = term_ratios(blk, resid, root)
            if ratios is not None:
                out.append(bool(min(ratios) > threshold))
                continue
        if w is None:
            counts = np.bincount(blk.index, minlength=blk.n_levels).astype(float)
            # between-level share of the residual variance, by a one-way ANOVA on this factor
            means = np.bincount(blk.index, weights=resid, minlength=blk.n_levels) / np.maximum(counts, 1)
            within = resid - means[blk.index]
            s2_within = float(within @ within) / max(len(y) - blk.n_levels, 1)
        else:
            # weighted: a level's weight is its rows' total, the within variance one unit's
            counts = np.bincount(blk.index, weights=w, minlength=blk.n_levels)
            means = np.bincount(blk.index, weights=w * resid, minlength=blk.n_levels) / \
                np.where(counts > 0, counts, 1.0)
            within = resid - means[blk.index]
            s2_within = float(within @ (w * within)) / max(len(y) - blk.n_levels, 1)
        n_bar = float(np.median(counts))
        s2_between = max(float(np.var(means[counts > 0], ddof=1)) - s2_within / n_bar, 0.0)
        ratio = n_bar * s2_between / max(s2_within, 1e-300)
        out.append(bool(ratio > threshold))
    return out
