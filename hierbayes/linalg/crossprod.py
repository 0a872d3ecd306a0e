"""The cross-products of ``[Z X y]`` in MixedModels.jl's blocked form, built once per model.

A mixed model's penalised least squares needs only the cross-products of the
random-effect columns ``Z = [Z_1 ... Z_k]``, the fixed-effect columns ``X`` and
the response ``y``. As in MixedModels.jl (Bates et al., the ``A`` blocks of
``LinearMixedModel``), they are kept in three blocks around the first
random-effect term ``Z_1``, which goes first because it has the most levels:

* ``A11 = Z_1'Z_1``: block diagonal, one ``p_1 x p_1`` block per level (each row
  of ``Z_1`` has its ``p_1`` values in one level's columns), stored as
  ``(levels_1, p_1, p_1)``;
* ``AD1 = D'Z_1`` with ``D = [Z_2 ... Z_k, X, y]``: sparse;
* ``ADD = D'D``: dense and small (InstEval: 1,142 + 2 + 1 columns beside the
  2,972 levels of the first term).

Columns of each ``Z_g`` are level-major (a level's ``p_g`` columns together),
as lme4's. Both engines read their arrays from here: the REML deviance
(:class:`hierbayes.freq.deviance.Deviance`, through
:class:`hierbayes.linalg.blocked.BlockedCholesky`) and, sliced by
:func:`marginal_arrays`, the Bayesian marginal kernel's X'X, X'y, y'y, Z'X,
Z'y and Z'Z blocks. A GLMM's PIRLS needs the same products with row weights
for each of its iterations, ``[Z X z]'W[Z X z]``: :class:`Reweighter` builds
their structure once and :meth:`Reweighter.products` fills in each
iteration's numbers (:class:`WeightedProducts`).

Examples
--------
>>> import numpy as np
>>> import hierbayes as hb
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"), hb.datasets.load("sleepstudy"))
>>> cp = CrossProducts.from_blocks(d.blocks, d.X, d.y)
>>> cp.A11.shape, cp.AD1.shape, cp.ADD.shape  # 18 subjects; D = [X, y]
((18, 2, 2), (3, 36), (3, 3))
>>> bool(np.isclose(cp.ADD[-1, -1], d.y @ d.y))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

#: Below this many entries of ``AD1`` (``[rest of Z, X, y]'Z_1``) the blocked Cholesky factor is
#: computed with dense arrays (:class:`hierbayes.linalg.blocked.BlockedCholesky`).
DENSE_LIMIT = 200_000


def sparse_z(block: Any) -> sp.csr_matrix:
    """``Z`` of one random-effect term, ``n x (levels p)``, columns level-major as lme4's.

    Parameters
    ----------
    block
        A :class:`hierbayes.spec.design.RandomBlock` (anything with ``Z``
        ``(n, p)``, ``index`` ``(n,)`` and ``n_levels``).

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> b = SimpleNamespace(Z=np.array([[1.0, 2.0], [1.0, 3.0]]), index=np.array([1, 0]), n_levels=2)
    >>> sparse_z(b).toarray()
    array([[0., 0., 1., 2.],
           [1., 3., 0., 0.]])
    """
    n, p = block.Z.shape
    rows = np.repeat(np.arange(n), p)
    cols = (block.index[:, None] * p + np.arange(p)).ravel()
    return sp.csr_matrix((block.Z.ravel(), (rows, cols)), shape=(n, block.n_levels * p))


class BlockSizes:
    """The column counts of the blocks, from ``sizes`` (terms per block) and ``levels``."""

    sizes: tuple[int, ...]
    levels: tuple[int, ...]

    @property
    def q1(self) -> int:
        """Columns of ``Z_1``: levels times terms of the first term."""
        return self.levels[0] * self.sizes[0]

    @property
    def q_rest(self) -> int:
        """Columns of ``Z_2 ... Z_k``: the rows of ``D`` before X."""
        return sum(L * q for L, q in zip(self.levels[1:], self.sizes[1:], strict=True))


@dataclass(frozen=True)
class CrossProducts(BlockSizes):
    """``[Z X y]'[Z X y]`` in blocks around the first random-effect term.

    Attributes
    ----------
    A11
        ``(levels_1, p_1, p_1)``: per level of the first term, ``Z_1l' Z_1l``.
    AD1
        ``D'Z_1``, sparse, ``(q_rest + p + 1) x (levels_1 p_1)``, where
        ``D = [Z_2 ... Z_k, X, y]``.
    ADD
        ``D'D``, dense, ``(q_rest + p + 1) x (q_rest + p + 1)``.
    Z1, D
        ``Z_1`` and ``D`` themselves (sparse), kept for :meth:`with_response`.
    sizes, levels
        Terms and levels of each random-effect term, first term first.
    p
        Columns of X.

    Examples
    --------
    >>> import hierbayes as hb
    >>> from hierbayes.spec.design import build_design
    >>> from hierbayes.spec.formula import parse_formula
    >>> f = "achievement ~ sex + ses + (1 | primary_school_id) + (1 | secondary_school_id)"
    >>> d = build_design(parse_formula(f), hb.datasets.load("pupils"))
    >>> cp = CrossProducts.from_blocks(d.blocks, d.X, d.y)
    >>> cp.levels, cp.q_rest, cp.p   # D = [Z_2 (30 secondary schools), X (7 columns), y]
    ((50, 30), 30, 7)
    """

    A11: np.ndarray
    AD1: sp.csr_matrix
    ADD: np.ndarray
    Z1: sp.csr_matrix
    D: sp.csr_matrix
    sizes: tuple[int, ...]
    levels: tuple[int, ...]
    p: int

    @classmethod
    def from_blocks(cls, blocks: Sequence[Any], X: np.ndarray, y: np.ndarray) -> CrossProducts:
        """The cross-products of ``[Z X y]``, with ``blocks[0]`` as the first (factored) term.

        Parameters
        ----------
        blocks
            Random-effect terms (:class:`hierbayes.spec.design.RandomBlock`),
            at least one, in the order their columns take in ``Z``. The REML
            deviance passes the design's order (most levels first); the
            Bayesian marginal kernel puts the block with the most effects first.
        X
            ``(n, p)`` fixed-effect columns (the marginal kernel's are centred).
        y
            ``(n,)`` response.
        """
        if not blocks:
            raise ValueError("CrossProducts needs at least one random-effect term.")
        first = blocks[0]
        p1, L1 = first.n_terms, first.n_levels
        A11 = np.zeros((L1, p1, p1))
        np.add.at(A11, first.index, first.Z[:, :, None] * first.Z[:, None, :])
        Z1 = sparse_z(first)
        rest = [sparse_z(b) for b in blocks[1:]]
        XY = np.column_stack([X, y])
        D = sp.hstack([*rest, sp.csr_matrix(XY)], format="csr")
        return cls(A11=A11, AD1=(D.T @ Z1).tocsr(), ADD=(D.T @ D).toarray(), Z1=Z1, D=D,
                   sizes=tuple(b.n_terms for b in blocks), levels=tuple(b.n_levels for b in blocks),
                   p=X.shape[1])

    def with_response(self, y: np.ndarray) -> CrossProducts:
        """The same cross-products for another response, recomputing only those with y.

        Only the last row of ``AD1`` (``y'Z_1``) and the last row and column of
        ``ADD`` (``D'y``) change; ``Z'Z``, ``Z'X`` and ``X'X`` are reused.

        Examples
        --------
        >>> import numpy as np
        >>> import hierbayes as hb
        >>> from hierbayes.spec.design import build_design
        >>> from hierbayes.spec.formula import parse_formula
        >>> d = build_design(parse_formula("Reaction ~ Days + (1 | Subject)"), hb.datasets.load("sleepstudy"))
        >>> cp = CrossProducts.from_blocks(d.blocks, d.X, d.y).with_response(2 * d.y)
        >>> bool(np.isclose(cp.ADD[-1, -1], 4 * d.y @ d.y))
        True
        """
        y = np.asarray(y, dtype=float)
        D = sp.hstack([self.D[:, :-1], sp.csr_matrix(y[:, None])], format="csr")
        AD1 = sp.vstack([self.AD1[:-1], sp.csr_matrix(self.Z1.T @ y)], format="csr")
        dy = D.T @ y
        ADD = self.ADD.copy()
        ADD[-1, :] = dy
        ADD[:, -1] = dy
        return CrossProducts(A11=self.A11, AD1=AD1, ADD=ADD, Z1=self.Z1, D=D, sizes=self.sizes,
                             levels=self.levels, p=self.p)


class MarginalProducts(NamedTuple):
    """The Bayesian marginal kernel's cross-products, as ``hierbayes.bayes.pack`` lays them out.

    ``Z = [Z_1, Z_2 ... Z_k]`` (first block first, each level-major), ``q_1``
    columns in ``Z_1`` and ``q_2`` in the rest.
    """

    XtX: np.ndarray  # (p, p)
    Xty: np.ndarray  # (p,)
    yty: float
    ZtX: np.ndarray  # (q_1 + q_2, p)
    Zty: np.ndarray  # (q_1 + q_2,)
    G11: np.ndarray  # (levels_1, p_1, p_1): Z_1'Z_1, per level
    G21: np.ndarray  # (q_2, q_1): [Z_2 ... Z_k]'Z_1
    G22: np.ndarray  # (q_2, q_2): [Z_2 ... Z_k]'[Z_2 ... Z_k]


def marginal_arrays(cp: CrossProducts) -> MarginalProducts:
    """The marginal kernel's X'X, X'y, y'y, Z'X, Z'y and Z'Z blocks, sliced from ``cp``.

    With ``D = [Z_2 ... Z_k, X, y]``, ``q_2 = cp.q_rest`` and ``p = cp.p``::

        G11 = A11                      XtX = X'X   (ADD[q_2:q_2+p, q_2:q_2+p])
        G21 = AD1[:q_2]                Xty = X'y   (ADD[q_2:q_2+p, -1])
        G22 = ADD[:q_2, :q_2]          yty = y'y   (ADD[-1, -1])
        ZtX = [AD1[q_2:q_2+p]' ; ADD[:q_2, q_2:q_2+p]]
        Zty = [AD1[-1]'        ; ADD[:q_2, -1]]

    Build ``cp`` from the blocks in the kernel's order (the block with the
    most effects first) and the kernel's centred X. The Z blocks are slices.
    X'X, X'y and y'y are recomputed from the X and y columns of ``D`` with
    dense (BLAS) products, as the kernel has always had them: ``ADD``'s
    sparse sums agree to rounding only (1e-15 relative), and a last-bit
    change in X'X would change every posterior draw. The arrays are fresh
    C-ordered float copies, as the kernels read them through raw pointers.

    Examples
    --------
    >>> import numpy as np
    >>> import hierbayes as hb
    >>> from hierbayes.spec.design import build_design
    >>> from hierbayes.spec.formula import parse_formula
    >>> d = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"), hb.datasets.load("sleepstudy"))
    >>> m = marginal_arrays(CrossProducts.from_blocks(d.blocks, d.X, d.y))
    >>> m.ZtX.shape, m.G21.shape, bool(np.array_equal(m.XtX, d.X.T @ d.X))
    ((36, 2), (0, 36), True)
    """
    q2, p = cp.q_rest, cp.p
    xs = slice(q2, q2 + p)

    def c(a: Any) -> np.ndarray:
        return np.array(a, dtype=float, order="C")

    AD1 = cp.AD1
    XY = cp.D[:, q2:].toarray()
    X, y = c(XY[:, :p]), c(XY[:, p])
    ZtX = np.vstack([AD1[xs].toarray().T, cp.ADD[:q2, xs]])
    Zty = np.concatenate([AD1[-1].toarray().ravel(), cp.ADD[:q2, -1]])
    return MarginalProducts(XtX=c(X.T @ X), Xty=c(X.T @ y), yty=float(y @ y), ZtX=c(ZtX), Zty=c(Zty),
                          G11=c(cp.A11), G21=c(AD1[:q2].toarray()), G22=c(cp.ADD[:q2, :q2]))


@dataclass(frozen=True)
class WeightedProducts(BlockSizes):
    """``[Z X y]'W[Z X y]`` in :class:`CrossProducts`' blocks, for one set of row weights.

    The same blocks as :class:`CrossProducts` (``A11``, ``AD1``, ``ADD``, with
    ``D = [Z_2 ... Z_k, X, y]``), without the matrices they came from. ``AD1``
    is a dense ``(q_rest + p + 1, q_1)`` array where the blocked factor is
    computed densely (at most :data:`DENSE_LIMIT` entries), else sparse.
    """

    A11: np.ndarray
    AD1: np.ndarray | sp.csr_matrix
    ADD: np.ndarray
    sizes: tuple[int, ...]
    levels: tuple[int, ...]
    p: int


class Reweighter:
    """The weighted cross-products ``[Z X y]'W[Z X y]`` for any row weights and response.

    A GLMM's penalised iteratively reweighted least squares (PIRLS) factors
    the weighted system once per iteration, with new weights and a new
    working response each time, as MixedModels.jl reweights its
    ``LinearMixedModel``. The sparsity of the products does not change, so
    what does not depend on the weights is built here once: the first term's
    level-sum operator (each row to its level), ``Z_1``'s values, the other
    terms' sparse ``Z`` and ``X``.

    Parameters
    ----------
    blocks
        Random-effect terms, first (factored) term first, as for
        :meth:`CrossProducts.from_blocks`.
    X
        ``(n, p)`` fixed-effect columns; ``(n, 0)`` for none (PIRLS for the
        conditional modes alone, with ``X beta`` in the offset).

    Examples
    --------
    >>> import numpy as np
    >>> import hierbayes as hb
    >>> from hierbayes.spec.design import build_design
    >>> from hierbayes.spec.formula import parse_formula
    >>> d = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"), hb.datasets.load("sleepstudy"))
    >>> w = np.linspace(0.5, 2.0, d.n_obs)
    >>> wp = Reweighter(d.blocks, d.X).products(w, d.y)
    >>> s = np.sqrt(w)
    >>> bool(np.isclose(wp.ADD[-1, -1], (s * d.y) @ (s * d.y)))
    True
    """

    def __init__(self, blocks: Sequence[Any], X: np.ndarray) -> None:
        if not blocks:
            raise ValueError("Reweighter needs at least one random-effect term.")
        first = blocks[0]
        n = len(first.index)
        self.n = n
        self.sizes = tuple(b.n_terms for b in blocks)
        self.levels = tuple(b.n_levels for b in blocks)
        self.p = X.shape[1]
        self.Z1 = np.asarray(first.Z, dtype=float)
        # row i -> its level of the first term: level sums are one sparse product
        self.G = sp.csr_matrix((np.ones(n), (first.index, np.arange(n))), shape=(first.n_levels, n))
        self.rest = (sp.hstack([sparse_z(b) for b in blocks[1:]], format="csr")
                     if len(blocks) > 1 else None)
        self.Z1_sparse = sparse_z(first) if self.rest is not None else None
        self.X = np.asarray(X, dtype=float)
        q1 = self.levels[0] * self.sizes[0]
        q_rest = self.rest.shape[1] if self.rest is not None else 0
        self.q_rest = q_rest
        self.dense = (q_rest + self.p + 1) * q1 <= DENSE_LIMIT

    def products(self, w: np.ndarray, y: np.ndarray) -> WeightedProducts:
        """The cross-products of ``[Z X y]`` with row weights ``w`` (``W = diag(w)``).

        Parameters
        ----------
        w
            ``(n,)`` non-negative row weights (PIRLS: the squared working weights).
        y
            ``(n,)`` response (PIRLS: the working response).
        """
        n, p1 = self.Z1.shape
        L1 = self.levels[0]
        Zw = self.Z1 * w[:, None]
        A11 = np.asarray(self.G @ (Zw[:, :, None] * self.Z1[:, None, :]).reshape(n, p1 * p1))
        A11 = A11.reshape(L1, p1, p1)
        XY = np.column_stack([self.X, y])
        # [X y]'W Z_1, level by level: for each of the first term's columns j, the level sums
        # of w z_j [X y]; laid out (columns of [X y], levels, j) as AD1's level-major columns
        xy_1 = np.stack([np.asarray(self.G @ (XY * Zw[:, j : j + 1])) for j in range(p1)], axis=2)
        xy_1 = xy_1.transpose(1, 0, 2).reshape(XY.shape[1], L1 * p1)
        XYw = XY * w[:, None]
        xy_xy = XY.T @ XYw
        if self.rest is None:
            AD1: np.ndarray | sp.csr_matrix = xy_1 if self.dense else sp.csr_matrix(xy_1)
            ADD = xy_xy
        else:
            Rw = sp.csr_matrix(self.rest.multiply(w[:, None]))
            r_1 = (Rw.T @ self.Z1_sparse).tocsr()
            r_r = (Rw.T @ self.rest).toarray()
            r_xy = np.asarray(self.rest.T @ XYw)
            ADD = np.block([[r_r, r_xy], [r_xy.T, xy_xy]])
            AD1 = (np.vstack([r_1.toarray(), xy_1]) if self.dense
                   else sp.vstack([r_1, sp.csr_matrix(xy_1)], format="csr"))
        return WeightedProducts(A11=A11, AD1=AD1, ADD=ADD, sizes=self.sizes, levels=self.levels,
                                p=self.p)
