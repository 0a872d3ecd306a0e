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

