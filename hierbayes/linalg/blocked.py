"""The blocked Cholesky factor of a linear mixed model's penalised least-squares system.

For relative covariance factors ``T_g`` (one per random-effect term, lower
triangular; ``Lambda = blockdiag(I_{L_g} (x) T_g)``), the factor ``L`` of

    [Lambda'Z'Z Lambda + I   Lambda'Z'X   Lambda'Z'y]
    [X'Z Lambda              X'X          X'y       ]
    [y'Z Lambda              y'X          y'y       ]

is computed in MixedModels.jl's blocks (the cross-products are those of
:class:`hierbayes.linalg.crossprod.CrossProducts`, first term first):

* ``L11``: the first term's block ``T_1'A11 T_1 + I`` is block diagonal, one
  small block per level, factored level by level;
* ``LD1 = Lambda_D' AD1 T_1 L11^-T``: its coupling to the rest, sparse;
* ``LDD``: the dense factor of the Schur complement
  ``Lambda_D' ADD Lambda_D + I_rest - LD1 LD1'`` of the other terms, X and y
  (``Lambda_D = blockdiag(Lambda_2 ... Lambda_k, I_{p+1})``).

From it come ``log|L_Z|^2``, ``log|L_X|^2`` and the penalised residual sum of
squares ``r^2`` (the square of ``LDD``'s last diagonal entry), all that the
profiled deviance needs. Small problems are factored with dense arrays,
large ones (InstEval) with sparse ``LD1``.

Examples
--------
>>> import numpy as np
>>> import hierbayes as hb
>>> from hierbayes.linalg.crossprod import CrossProducts
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("Reaction ~ Days + (1 | Subject)"), hb.datasets.load("sleepstudy"))
>>> chol = BlockedCholesky(CrossProducts.from_blocks(d.blocks, d.X, d.y))
>>> f = chol.factor([np.array([[1.0]])])
>>> f.L11.shape, f.LDD.shape, round(f.r2, 1)
((18, 1, 1), (3, 3), 177417.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from hierbayes.linalg.blocked_native import first_blocks
from hierbayes.linalg.crossprod import DENSE_LIMIT, CrossProducts, WeightedProducts


@dataclass
class BlockedFactor:
    """The blocked Cholesky factor at one set of relative covariance factors.

    Attributes
    ----------
    T
        Per term, the ``p x p`` relative covariance factor it was computed at.
    L11
        ``(levels_1, p_1, p_1)`` lower Cholesky blocks of the first term.
    LD1
        Dense for small problems, sparse for large ones; rows: the other terms, X and y;
        columns: the first term.
    LDD
        Dense lower factor of the other terms, X and y.
    ld_z, ld_x
        ``log|L_Z|^2`` (all random-effect columns) and ``log|L_X|^2``.
    r2
        Penalised residual sum of squares.
    ld_resid
        ``log |Lambda|`` of a residual structure whose whitened rows were
        factored (0 for independent errors), set by the REML deviance.
    """

    T: list[np.ndarray]
    L11: np.ndarray
    LD1: sp.csr_matrix | np.ndarray
    LDD: np.ndarray
    ld_z: float
    ld_x: float
    r2: float
    ld_resid: float = 0.0

    def ld1_row(self, i: int) -> np.ndarray:
        """Row ``i`` of ``LD1`` as a dense vector (``-1``: the response's row), sparse or not."""
        row = self.LD1[i]
        return row.toarray().ravel() if sp.issparse(row) else np.asarray(row)


def is_diagonal(t: np.ndarray) -> bool:
    """Whether a relative covariance factor has no off-diagonal entries."""
    return not np.any(t - np.diag(np.diagonal(t)))


def block_diagonal(blocks: list[np.ndarray], zeros: bool = True) -> sp.csr_matrix:
    """The block-diagonal CSR matrix of stacks of equal-sized square blocks, in order.

    ``blocks`` holds arrays of shape ``(count, q, q)``. With ``zeros`` every entry of every
    block is stored, as SciPy's ``block_diag`` stores dense blocks; without, only the
    non-zeros, as ``kron(identity, csr_matrix(t))`` stores them. Either way products with
    it add the same terms in the same order as with SciPy's matrix, and it is built in one
    pass: ``sp.block_diag`` loops in Python over InstEval's 2,972 one-by-one blocks, twice
    per deviance evaluation, a third of the fit's time.
    """
    rows, cols, vals, offset = [], [], [], 0
    for stack in blocks:
        count, q, _ = stack.shape
        base = offset + q * np.arange(count)
        r = np.broadcast_to(base[:, None, None] + np.arange(q)[None, :, None], stack.shape)
        c = np.broadcast_to(base[:, None, None] + np.arange(q)[None, None, :], stack.shape)
        keep = np.ones(stack.shape, dtype=bool) if zeros else stack != 0
        rows.append(r[keep])
        cols.append(c[keep])
        vals.append(stack[keep])
        offset += count * q
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(offset, offset))


class BlockedCholesky:
    """Factors the penalised least-squares system of fixed cross-products at any ``T``.

    Parameters
    ----------
    cross
        The model's cross-products (or a GLMM's weighted ones,
        :class:`hierbayes.linalg.crossprod.WeightedProducts`, whose ``AD1`` is
        already dense where the factor is computed densely).
    compiled
        The first term's ``T_1`` is diagonal by construction: compute its blocks
        of a dense factor with the compiled kernel
        (:func:`hierbayes.linalg.blocked_native.first_blocks`) instead of
        batched NumPy calls. The REML deviance asks for it where the first
        factor's terms are several scalar terms or a ``diag()`` term (a
        diagonal ``T_1`` of size 2 or more), where the batched calls' per-level
        overhead dominated; its last bits differ from NumPy's, so fits of other
        models keep the NumPy path, whose BOBYQA stops follow lme4's.

    Examples
    --------
    >>> import numpy as np
    >>> import hierbayes as hb
    >>> from hierbayes.linalg.crossprod import CrossProducts
    >>> from hierbayes.spec.design import build_design
    >>> from hierbayes.spec.formula import parse_formula
    >>> d = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"), hb.datasets.load("sleepstudy"))
    >>> chol = BlockedCholesky(CrossProducts.from_blocks(d.blocks, d.X, d.y))
    >>> chol.dense, round(chol.factor([np.eye(2)]).ld_z, 4)
    (True, 126.3956)
    """

    # Below this many entries of [rest of Z, X, y]'Z_1, the factor is computed with dense
    # arrays: scipy.sparse's per-call overhead (about 0.1 ms per product) dominated small
    # problems (sleepstudy: 1.5 ms per evaluation, 0.2 ms dense).
    DENSE_LIMIT = DENSE_LIMIT

    def __init__(self, cross: CrossProducts | WeightedProducts, compiled: bool = False) -> None:
        self.cross = cross
        # plain ints: the factor runs once per deviance evaluation (0.2 ms on sleepstudy)
        self.q_rest, self.p, self.levels = cross.q_rest, cross.p, cross.levels
        m, k = cross.AD1.shape
        # weighted products arrive dense (PIRLS factors a small system several times per
        # evaluation); small unweighted ones are made dense once here
        if isinstance(cross.AD1, np.ndarray):
            self._AD1_dense = cross.AD1.reshape(m, cross.levels[0], cross.sizes[0])
        else:
            self._AD1_dense = (cross.AD1.toarray().reshape(m, cross.levels[0], cross.sizes[0])
                               if m * k <= self.DENSE_LIMIT else None)
        self.compiled = compiled and self._AD1_dense is not None
        # the kernel's work buffer, made once
        self._work = np.empty(cross.sizes[0]) if self.compiled else None

    @property
    def dense(self) -> bool:
        """Whether the factor is computed with dense arrays (a small problem)."""
        return self._AD1_dense is not None

    def _lambda_rest(self, T: list[np.ndarray]) -> sp.csr_matrix:
        """``Lambda_D = blockdiag(I_{L_2} (x) T_2, ..., I_{p+1})``."""
        blocks = [np.broadcast_to(t, (L, *t.shape)) for t, L in
                  zip(T[1:], self.levels[1:], strict=True)]
        blocks.append(np.ones((self.p + 1, 1, 1)))
        return block_diagonal(blocks, zeros=False)

    def factor(self, T: list[np.ndarray]) -> BlockedFactor:
        """The factor at relative covariance factors ``T`` (one per term, first term first).

        Raises
        ------
        numpy.linalg.LinAlgError
            Where the system is not numerically positive definite.
        """
        # Every NumPy shortcut here gives the same bits as the general formulas (the
        # compiled kernel's differ, and it is asked for only where T_1 is diagonal by
        # construction, see the class's ``compiled``). lme4's fits are
        # followed by running its optimiser with its stopping rules, and which point BOBYQA
        # stops at moves with the criterion's last digits: faster batched products and
        # triangular solves, differing by 1e-16 relative, stopped Machines' 3 x 3 fit
        # 2.4e-5 short and left BodyWeight's 1e-4 difference quotients 4% off lme4's.
        cp = self.cross
        T1 = T[0]
        if self.compiled:
            return self._factor_dense(T, None, None, False)
        diagonal = is_diagonal(T1)
        if diagonal:
            # T1 diagonal (a block of scalar terms, a diag() term): the sums of products
            # below hold one non-zero product each, which these elementwise products are
            d = np.diagonal(T1)
            M = d[:, None] * cp.A11 * d[None, :] + np.eye(len(d))
        else:
            M = np.einsum("ji,ljk,kh->lih", T1, cp.A11, T1) + np.eye(T1.shape[0])
        L11 = np.linalg.cholesky(M)
        L11_inv_t = np.linalg.inv(L11).transpose(0, 2, 1)
        if self._AD1_dense is not None:
            return self._factor_dense(T, L11, L11_inv_t, diagonal)
        q_rest = self.q_rest
        if diagonal and all(is_diagonal(t) for t in T[1:]):
            # Every Lambda diagonal (scalar terms, as InstEval's): the products with it are
            # scalings, each entry one product, as the sparse products compute it
            # ((d_i a_ij) e_j), without building or multiplying Lambda (half the time)
            d_rest = np.concatenate([np.tile(np.diagonal(t), L) for t, L in
                                     zip(T[1:], self.levels[1:], strict=True)]
                                    + [np.ones(self.p + 1)])
            d1 = np.tile(np.diagonal(T1), self.levels[0])
            AD1 = cp.AD1
            rows = np.repeat(np.arange(AD1.shape[0]), np.diff(AD1.indptr))
            # copies of the index arrays: eliminate_zeros rewrites them in place
            C = sp.csr_matrix(((d_rest[rows] * AD1.data) * d1[AD1.indices], AD1.indices.copy(),
                               AD1.indptr.copy()), shape=AD1.shape)
            C.eliminate_zeros()  # the sparse product stores no zeros (a theta at 0)
            S = (d_rest[:, None] * cp.ADD) * d_rest[None, :]
        else:
            lam_rest = self._lambda_rest(T)
            lam1 = sp.kron(sp.identity(self.levels[0], format="csr"), sp.csr_matrix(T1))
            C = lam_rest.T @ cp.AD1 @ lam1
            S = np.asarray(lam_rest.T @ cp.ADD @ lam_rest)
        LD1 = (C @ block_diagonal([L11_inv_t])).tocsr()
        # sorted columns, as SciPy's products gave them: LD1 LD1' sums in that order
        LD1.sort_indices()
        S[np.arange(q_rest), np.arange(q_rest)] += 1.0
        S -= (LD1 @ LD1.T).toarray()
        LDD = np.linalg.cholesky(S)
        diag = np.diag(LDD)
        ld_z = 2 * np.log(np.diagonal(L11, axis1=1, axis2=2)).sum() + 2 * np.log(diag[:q_rest]).sum()
        ld_x = 2 * np.log(diag[q_rest : q_rest + self.p]).sum()
        return BlockedFactor(T, L11, LD1, LDD, float(ld_z), float(ld_x), float(diag[-1] ** 2))

    def _factor_dense(self, T: list[np.ndarray], L11: np.ndarray | None, L11_inv_t: np.ndarray | None,
                      diagonal: bool) -> BlockedFactor:
        """:meth:`factor` for small problems (and a GLMM's weighted products), on dense arrays.

        The deviance and PIRLS factor once per evaluation or iteration, so SciPy's
        per-call overheads are avoided: ``Lambda_D`` is assembled in NumPy (SciPy's
        ``block_diag`` took a third of the factor's time), its identity (all of it with
        one random-effect term) is not multiplied out, and ``LD1`` stays dense (making
        it sparse took as long as the factor). Without ``L11`` (a compiled
        factor) the first term's blocks come from the kernel.
        """
        cp = self.cross
        q_rest = self.q_rest
        A = self._AD1_dense
        m = A.shape[0]
        if q_rest:
            lam_rest = np.eye(m)
            k = 0
            for t, L in zip(T[1:], self.levels[1:], strict=True):
                q = t.shape[0]
                lam_rest[k : k + L * q, k : k + L * q] = np.kron(np.eye(L), t)
                k += L * q
            A = np.tensordot(lam_rest.T, A, axes=1)
            S = lam_rest.T @ cp.ADD @ lam_rest
            S[np.arange(q_rest), np.arange(q_rest)] += 1.0
        else:
            S = cp.ADD.copy()
        if L11 is None:
            L11, LD1, ld_11 = first_blocks(np.diagonal(T[0]), cp.A11, A, self._work)
        else:
            C = A * np.diagonal(T[0]) if diagonal else np.einsum("mlj,jk->mlk", A, T[0])
            LD1 = np.einsum("mlj,ljk->mlk", C, L11_inv_t).reshape(m, -1)
            ld_11 = 2 * np.log(np.diagonal(L11, axis1=1, axis2=2)).sum()
        S -= LD1 @ LD1.T
        LDD = np.linalg.cholesky(S)
        diag = np.diag(LDD)
        ld_z = ld_11 + 2 * np.log(diag[:q_rest]).sum()
        ld_x = 2 * np.log(diag[q_rest : q_rest + self.p]).sum()
        return BlockedFactor(T, L11, LD1, LDD, float(ld_z), float(ld_x), float(diag[-1] ** 2))
