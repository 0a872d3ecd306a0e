"""The blocked Cholesky factor against a dense Cholesky of the whole system, dense against sparse."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.linalg import block_diag

from hierbayes.freq.deviance import Deviance
from hierbayes.linalg.blocked import BlockedCholesky
from hierbayes.linalg.crossprod import CrossProducts, sparse_z

from .test_crossprod import MODELS, design


def random_T(sizes, rng) -> list[np.ndarray]:
    return [np.tril(rng.uniform(0.2, 1.5, size=(q, q))) for q in sizes]


def dense_factor(d, T):
    """log|L_Z|^2, log|L_X|^2 and r^2 from one dense Cholesky of the whole system."""
    Z = np.column_stack([sparse_z(b).toarray() for b in d.blocks])
    lam = block_diag(*[np.kron(np.eye(b.n_levels), t) for b, t in zip(d.blocks, T, strict=True)])
    W = np.column_stack([Z @ lam, d.X, d.y])
    A = W.T @ W
    q = Z.shape[1]
    A[np.arange(q), np.arange(q)] += 1.0
    diag = np.diag(np.linalg.cholesky(A))
    p = d.X.shape[1]
    return 2 * np.log(diag[:q]).sum(), 2 * np.log(diag[q : q + p]).sum(), diag[-1] ** 2


@pytest.mark.parametrize("name", list(MODELS))
def test_factor_is_the_dense_cholesky(name):
    d = design(name)
    chol = BlockedCholesky(CrossProducts.from_blocks(d.blocks, d.X, d.y))
    T = random_T([b.n_terms for b in d.blocks], np.random.default_rng(2))
    f = chol.factor(T)
    ld_z, ld_x, r2 = dense_factor(d, T)
    assert f.ld_z == pytest.approx(ld_z, rel=1e-10)
    assert f.ld_x == pytest.approx(ld_x, rel=1e-10)
    assert f.r2 == pytest.approx(r2, rel=1e-9)


@pytest.mark.parametrize("name", list(MODELS))
def test_sparse_path_agrees_with_dense(name, monkeypatch):
    d = design(name)
    cp = CrossProducts.from_blocks(d.blocks, d.X, d.y)
    T = random_T(cp.sizes, np.random.default_rng(3))
    dense = BlockedCholesky(cp)
    monkeypatch.setattr(BlockedCholesky, "DENSE_LIMIT", 0)
    sparse = BlockedCholesky(cp)
    assert dense.dense and not sparse.dense
    a, b = dense.factor(T), sparse.factor(T)
    for name_ in ("ld_z", "ld_x", "r2"):
        assert getattr(a, name_) == pytest.approx(getattr(b, name_), rel=1e-12)
    np.testing.assert_allclose(a.LDD, b.LDD, rtol=1e-10, atol=1e-10)
    assert isinstance(a.LD1, np.ndarray) and sp.issparse(b.LD1)
    np.testing.assert_allclose(a.LD1, b.LD1.toarray(), rtol=1e-10, atol=1e-12)


def test_the_deviance_reads_its_factor_from_here():
    d = design("sleepstudy")
    dev = Deviance(d)
    theta = np.array([0.9, 0.1, 0.2])
    f = BlockedCholesky(CrossProducts.from_blocks(d.blocks, d.X, d.y)).factor(dev.T(theta))
    assert dev.objective(f) == dev(theta)



def scipy_sparse_factor(chol: BlockedCholesky, T: list[np.ndarray]):
    """The sparse path as SciPy's block_diag and kron products write it (before block_diagonal
    and the diagonal scalings): the fast path must give the same bits, since BOBYQA's stops,
    and so lme4's agreement, move with the criterion's last digits."""
    cp = chol.cross
    L11 = np.linalg.cholesky(np.einsum("ji,ljk,kh->lih", T[0], cp.A11, T[0])
                             + np.eye(T[0].shape[0]))
    inv_t = np.linalg.inv(L11).transpose(0, 2, 1)
    parts = [sp.kron(sp.identity(L, format="csr"), sp.csr_matrix(t))
             for t, L in zip(T[1:], chol.levels[1:], strict=True)]
    lam_rest = sp.block_diag([*parts, sp.identity(chol.p + 1, format="csr")], format="csr")
    lam1 = sp.kron(sp.identity(chol.levels[0], format="csr"), sp.csr_matrix(T[0]))
    LD1 = ((lam_rest.T @ cp.AD1 @ lam1) @ sp.block_diag(list(inv_t), format="csr")).tocsr()
    S = np.asarray(lam_rest.T @ cp.ADD @ lam_rest)
    S[np.arange(chol.q_rest), np.arange(chol.q_rest)] += 1.0
    S -= (LD1 @ LD1.T).toarray()
    return LD1, np.linalg.cholesky(S)


@pytest.mark.parametrize(("name", "T"), [
    ("pupils", [np.array([[0.6]]), np.array([[0.37]])]),          # every Lambda diagonal
    ("pupils", [np.array([[0.6]]), np.array([[0.0]])]),           # a theta on its bound
    ("nurses", [np.array([[1.3]]), np.array([[0.8]])]),
    ("sleepstudy", [np.array([[0.9, 0.0], [0.2, 0.3]])]),             # a vector term
])
def test_sparse_path_gives_scipys_bits(name, T, monkeypatch):
    d = design(name)
    monkeypatch.setattr(BlockedCholesky, "DENSE_LIMIT", 0)
    chol = BlockedCholesky(CrossProducts.from_blocks(d.blocks, d.X, d.y))
    f = chol.factor(T)
    LD1, LDD = scipy_sparse_factor(chol, T)
    assert np.array_equal(f.LDD, LDD)
    assert np.array_equal(f.LD1.toarray(), LD1.toarray())
    assert (f.LD1.indices == LD1.indices).all()
    # the model's own cross-products are left as they were (the scalings copy their indices)
    assert chol.cross.AD1.has_canonical_format and chol.cross.AD1.nnz == np.diff(
        chol.cross.AD1.indptr).sum()


def test_block_diagonal_is_scipys():
    from hierbayes.linalg.blocked import block_diagonal

    rng = np.random.default_rng(4)
    stacks = [np.tril(rng.normal(size=(5, 2, 2))), np.ones((3, 1, 1)), rng.normal(size=(2, 3, 3))]
    stacks[0][1] = 0.0
    blocks = [b for s in stacks for b in s]
    # dense blocks: every entry stored, zeros too, as SciPy's block_diag stores them
    ours, theirs = block_diagonal(stacks), sp.block_diag(blocks, format="csr")
    assert ours.nnz == theirs.nnz == 41
    assert np.array_equal(ours.toarray(), theirs.toarray())
    # zeros=False: the non-zeros only, as kron(identity, csr_matrix(t)) stores them
    sparse = sp.block_diag([sp.csr_matrix(b) for b in blocks], format="csr")
    ours = block_diagonal(stacks, zeros=False)
    assert ours.nnz == sparse.nnz == 33
    assert np.array_equal(ours.toarray(), sparse.toarray())
