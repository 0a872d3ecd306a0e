"""Hierarchical centring: what the level means of the full model's centred blocks carry.

A centred block samples its group effects ``r_j ~ N(0, T T')`` directly. Where
something else in the linear predictor is constant within each of the block's
levels, it is confounded with the mean of those effects, and the sampler
crawls along the ridge between them. Hierarchical centring (Gelfand, Sahu &
Carlin 1995) samples the level means ``a_j = mu_j + r_j`` instead, with
``a_j ~ N(mu_j, T T')``: the rows read ``a_j`` and leave ``mu_j`` out, and
``mu_j`` becomes the mean of well-determined quantities. It is a shift by a
function of the other parameters (Jacobian 1), so the posterior is the same.
Three things go into ``mu_j``, each chosen here:

* the intercept (:func:`absorbing_block`);
* a nested parent level's value, teachers within schools (:func:`nested_parents`);
* the fixed effects of predictors constant within the block's levels, a
  participant's sex beside ``(1 | participant)`` (:func:`carried_fixed_effects`).

The compiled density (``kernels/full.c``) reads the choices from the block
table (``codes.B_ABSORB``, ``B_PARENT``, ``B_XTERM``), and
:meth:`hierbayes.bayes.pack.Packed.constrain` takes the means off again.

Examples
--------
>>> import warnings, hierbayes as hb
>>> from hierbayes.bayes.centring import carried_fixed_effects
>>> from hierbayes.bayes.pack import pack
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore")  # rows with missing values are dropped
...     m = hb.Model("decision ~ sex + attractive_sc + (1 | iid)", hb.datasets.load("speed_dating"),
...                  family="bernoulli")
>>> packed = pack(m.design, m.priors, centred=[True])
>>> [m.design.fixef_names[j] for j in packed.carried[0].columns]
['sexMale']
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Carried:
    """The fixed effects one block's level means carry.

    Attributes
    ----------
    term
        The block's term whose level means carry them (its intercept), -1 for none.
    columns
        Their columns of the packed fixed-effect matrix (= their positions in the parameter vector).
    values
        ``(levels, len(columns))``: each column's value at each level (0 at a level with no rows).
    """

    term: int = -1
    columns: list[int] = field(default_factory=list)
    values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


def simple_intercept_block(blk) -> bool:
    """Whether a block is a random intercept alone, ``(1 | g)``."""
    return blk.n_terms == 1 and blk.terms[0] == "(Intercept)" and bool(np.all(blk.Z[:, 0] == 1.0))


def intercept_term(blk) -> int:
    """The block's term whose column is all ones (its intercept), or -1."""
    if "(Intercept)" not in blk.terms:
        return -1
    k = blk.terms.index("(Intercept)")
    return k if bool(np.all(blk.Z[:, k] == 1.0)) else -1


def absorbing_block(blocks, centred, intercept) -> tuple[int, int]:
    """The centred block whose level means carry the intercept, and its intercept term.

    With a centred block, the intercept and the mean of that block's effects
    are confounded: the sampler crawls along the ridge (on InstEval, an ESS of
    about 100 for the intercept from 1000 draws). Sampling the level means
    ``a_j = Intercept + r_j`` instead, with ``a_j ~ N(Intercept, sd)``, makes the
    intercept the mean of well-determined quantities. The centred block with
    the fewest levels, where the confounding is strongest, takes it.
    """
    if not intercept:
        return (-1, -1)
    best = (-1, -1)
    for g, blk in enumerate(blocks):
        k = intercept_term(blk)
        if not centred[g] or k < 0:
            continue
        if best[0] < 0 or blk.n_levels < blocks[best[0]].n_levels:
            best = (g, k)
    return best


def nested_parents(blocks, centred) -> list[tuple[int, np.ndarray]]:
    """Per block, a centred parent block its factor is nested in, and the level map.

    When both blocks are centred random intercepts and every level of the
    child's factor lies within one level of the parent's (instructors within
    departments), the child's level values are sampled as ``a_j = a_parent(j) +
    r_j``: the parent's effects then enter the likelihood only through their
    children, which removes the ridge between a parent level and the mean of its
    children's effects. Each parent takes at most one child; the nearest parent
    (most levels) is chosen.
    """
    out: list[tuple[int, np.ndarray]] = [(-1, np.zeros(0, dtype=np.int64)) for _ in blocks]
    taken: set[int] = set()
    order = sorted(range(len(blocks)), key=lambda g: blocks[g].n_levels)
    for g in order:
        if not centred[g] or not simple_intercept_block(blocks[g]):
            continue
        best = -1
        for h in order:
            if h == g or h in taken or not centred[h] or not simple_intercept_block(blocks[h]):
                continue
            if blocks[h].n_levels >= blocks[g].n_levels:
                continue
            pairs = np.unique(np.stack([blocks[g].index, blocks[h].index]), axis=1)
            if pairs.shape[1] != len(np.unique(blocks[g].index)):
                continue  # some child level lies in two parent levels: not nested
            if best < 0 or blocks[h].n_levels > blocks[best].n_levels:
                best = h
        if best >= 0:
            mapping = np.zeros(blocks[g].n_levels, dtype=np.int64)
            mapping[blocks[g].index] = blocks[best].index
            out[g] = (best, mapping)
            taken.add(best)
    return out


def level_values(blk, x: np.ndarray) -> np.ndarray | None:
    """A column's value at each of the block's levels, or None when it varies within one.

    Exact equality: the shift must be the column's own value on every row, or
    the density would change. Levels with no rows get 0.
    """
    values = np.zeros(blk.n_levels)
    values[blk.index] = x
    return values if bool(np.all(values[blk.index] == x)) else None


def carried_fixed_effects(blocks, centred, X: np.ndarray, intercept: bool) -> list[Carried]:
    """Per block, the fixed effects of predictors constant within its levels that its level means carry.

    A predictor constant within each level of a centred block's factor (a
    participant's sex, ``(1 | iid)``) is confounded with that block's effects
    under any diagonal metric: shifting its coefficient by ``d`` and every
    affected level's effect by ``-d x_j`` leaves the rows' linear predictor
    unchanged, and only the prior on the effects resists. Its coefficient then
    mixes slowest of all (speed_dating's ``sexMale``). Putting ``x_j' beta``
    into the level means, ``a_j ~ N(Intercept + x_j' beta, T T')``, with the
    rows' linear predictor leaving those columns out, turns the coefficient
    into a regression of well-determined level means on ``x_j``.

    Each column goes to the centred block with an intercept term (all ones)
    whose levels it is constant within; of several, the one with the fewest
    levels (where it is constant within a school, the school, not its
    teachers). ``X`` is the packed fixed-effect matrix, intercept column first
    when ``intercept``.
    """
    chosen: dict[int, list[tuple[int, np.ndarray]]] = {}
    candidates = sorted((g for g, b in enumerate(blocks) if centred[g] and intercept_term(b) >= 0),
                        key=lambda g: blocks[g].n_levels)
    for j in range(int(intercept), X.shape[1]):
        for g in candidates:
            values = level_values(blocks[g], X[:, j])
            if values is not None:
                chosen.setdefault(g, []).append((j, values))
                break
    out = []
    for g, blk in enumerate(blocks):
        if g not in chosen:
            out.append(Carried())
            continue
        cols = [j for j, _ in chosen[g]]
        out.append(Carried(term=intercept_term(blk), columns=cols,
                           values=np.column_stack([v for _, v in chosen[g]])))
    return out
