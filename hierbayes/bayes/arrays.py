"""The arrays the compiled log densities read: the full density's rows and the marginal's cross-products.

:func:`hierbayes.bayes.pack.pack` lays a model out as one of these;
:class:`hierbayes.bayes.native.NativeModel` points the kernels' ``Model``
record (``kernels/hb.h``) at them and keeps them alive.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.bayes.pack import pack
>>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> data = pack(m.design, m.priors, collapse=False).data
>>> isinstance(data, FullArrays), data.X.shape, data.offset is None
(True, (180, 2), True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ResidualArrays:
    """A Gaussian residual structure as the full density reads it (``kernels/residual.c``).

    Attributes
    ----------
    V
        ``(n, nv)`` the sigma formula's columns (intercept dropped).
    gamma_at
        Position of their coefficients in the parameter vector (-1: none).
    phi_at
        Position of phi's unconstrained value (-1: no correlation).
    phi_lo, phi_hi
        phi's range: its uniform prior's bounds.
    prev, lag
        ``(n,)`` the row before each in its series (-1: a first row) and the time since it.
    """

    V: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    gamma_at: int = -1
    phi_at: int = -1
    phi_lo: float = -1.0
    phi_hi: float = 1.0
    prev: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    lag: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def nv(self) -> int:
        return self.V.shape[1] if self.V.size else 0


@dataclass(frozen=True)
class FullArrays:
    """What the full log density reads: the rows, the block table and the priors.

    Attributes
    ----------
    X
        ``(n, p)`` fixed-effect design, intercept column first, slopes centred.
    y
        ``(n,)`` response (binomial: the successes).
    index
        ``(n, G)`` int32: each row's level in each block.
    Z
        ``(n, sum K)``: the blocks' columns side by side.
    blocks
        ``(G, codes.B_N)`` int64 block table (columns ``codes.B_*``).
    block_par
        ``(G, codes.PAR_N)`` per block: its LKJ shape (1 when unused), and a cs or ar1
        term's correlation range ``(lo, hi)``, its uniform prior's (``(-1, 1)`` when unused).
    prior_index, prior_params
        ``(npri, codes.PRI_N)`` int64 rows (parameter, prior code, positive) and
        ``(npri, 3)`` parameters.
    family
        The response family's kernel code (``codes.FAMILY_CODES``).
    disp_at
        Position of the family's log dispersion (log sigma, log shape) in the
        parameter vector, -1 without one.
    collapsed
        The random-intercept block integrated out row by row, -1 for none.
    parent_map
        int32, the nested-centred blocks' level maps, concatenated (``codes.B_PMAP``).
    carried_columns
        int64, the positions in the parameter vector of the fixed effects that
        centred blocks' level means carry, block after block (``codes.B_XAT``).
    carried_values
        Per such block, level by level, those columns' values at its levels
        (constant within a level), concatenated (``codes.B_XVAL``).
    link
        The link's code (``codes.LINK_CODES``).
    offset, trials, weights
        ``(n,)`` each, or None: the linear predictor's known part, the binomial
        trials (None: one each), the Gaussian prior weights (None: all one).
    distinct, distinct_counts
        The negative binomial's response values, distinct and ascending, and
        how many rows take each (empty for other families).
    log_y_sum
        The gamma family's sum of ``log y`` (0 for other families).
    residual
        A Gaussian residual structure (:class:`ResidualArrays`; empty: none).
    """

    X: np.ndarray
    y: np.ndarray
    index: np.ndarray
    Z: np.ndarray
    blocks: np.ndarray
    block_par: np.ndarray
    prior_index: np.ndarray
    prior_params: np.ndarray
    family: int
    disp_at: int
    collapsed: int
    parent_map: np.ndarray
    carried_columns: np.ndarray
    carried_values: np.ndarray
    link: int = 0
    offset: np.ndarray | None = None
    trials: np.ndarray | None = None
    weights: np.ndarray | None = None
    distinct: np.ndarray = field(default_factory=lambda: np.zeros(0))
    distinct_counts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    log_y_sum: float = 0.0
    residual: ResidualArrays = field(default_factory=ResidualArrays)


@dataclass(frozen=True)
class MarginalArrays:
    """What the marginal log density reads: cross-products made once, blocks first-block first.

    A model with prior weights has its rows scaled by their square roots, and
    one with an offset has it taken from the response, before the products.

    Attributes
    ----------
    XtX, Xty, yty
        ``X'X``, ``X'y`` and ``y'y`` of the centred fixed-effect design.
    ZtX, Zty
        ``Z'X`` and ``Z'y``, ``q`` rows.
    G11, G21, G22
        ``Z'Z`` in blocks: the first block's per-level ``K x K`` blocks
        ``(L1, K1, K1)``, the rest against the first ``(q2, q1)``, the rest
        against itself ``(q2, q2)``.
    blocks
        ``(G, codes.M_N)`` int64 block table (columns ``codes.M_*``).
    block_par, prior_index, prior_params
        As :class:`FullArrays`.
    n_obs
        Number of rows.
    sigma_at
        Position of log sigma in the parameter vector.
    """

    XtX: np.ndarray
    Xty: np.ndarray
    yty: float
    ZtX: np.ndarray
    Zty: np.ndarray
    G11: np.ndarray
    G21: np.ndarray
    G22: np.ndarray
    blocks: np.ndarray
    block_par: np.ndarray
    prior_index: np.ndarray
    prior_params: np.ndarray
    n_obs: int
    sigma_at: int
