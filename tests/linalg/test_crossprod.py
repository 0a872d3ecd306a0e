"""The blocked cross-products of [Z X y]: against dense products, and against the marginal kernel's."""

from __future__ import annotations

import numpy as np
import pytest

import hierbayes as hb
from hierbayes.linalg.crossprod import CrossProducts, marginal_arrays, sparse_z
from hierbayes.spec.design import build_design
from hierbayes.spec.formula import parse_formula

MODELS = {
    "sleepstudy": "Reaction ~ Days + (Days | Subject)",
    "pupils": "achievement ~ sex + ses + (1 | primary_school_id) + (1 | secondary_school_id)",
    "nurses": "stress ~ age + sex + experience + treatment + wardtype + hospsize + (1 | hospital/ward)",
}


def design(name: str):
    return build_design(parse_formula(MODELS[name]), hb.datasets.load(name))


def dense_products(blocks, X, y) -> np.ndarray:
    W = np.column_stack([*(sparse_z(b).toarray() for b in blocks), X, y])
    return W.T @ W


@pytest.mark.parametrize("name", list(MODELS))
def test_blocks_are_the_dense_cross_products(name):
    d = design(name)
    cp = CrossProducts.from_blocks(d.blocks, d.X, d.y)
    full = dense_products(d.blocks, d.X, d.y)
    q1 = cp.q1
    scale = np.abs(full).max()
    A11 = np.zeros((q1, q1))
    p1 = cp.sizes[0]
    for lv in range(cp.levels[0]):
        A11[lv * p1 : (lv + 1) * p1, lv * p1 : (lv + 1) * p1] = cp.A11[lv]
    np.testing.assert_allclose(A11, full[:q1, :q1], rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(cp.AD1.toarray(), full[q1:, :q1], rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(cp.ADD, full[q1:, q1:], rtol=0, atol=1e-12 * scale)
    assert cp.q_rest == sum(L * k for L, k in zip(cp.levels[1:], cp.sizes[1:], strict=True))


@pytest.mark.parametrize("name", list(MODELS))
def test_with_response_is_a_fresh_build(name):
    d = design(name)
    y = np.random.default_rng(1).normal(size=d.n_obs)
    new = CrossProducts.from_blocks(d.blocks, d.X, d.y).with_response(y)
    fresh = CrossProducts.from_blocks(d.blocks, d.X, y)
    np.testing.assert_array_equal(new.A11, fresh.A11)
    np.testing.assert_allclose(new.AD1.toarray(), fresh.AD1.toarray(), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(new.ADD, fresh.ADD, rtol=1e-13, atol=1e-10)


def kernel_inputs(d):
    """pack's centred X and block order (the block with the most effects first)."""
    names = d.fixef_names
    slopes = [j for j, n in enumerate(names) if n != "(Intercept)"]
    Xc = d.X.copy()
    Xc[:, slopes] -= d.X[:, slopes].mean(axis=0)
    blocks = d.blocks
    order = list(range(len(blocks)))
    first = max(order, key=lambda g: blocks[g].n_levels * blocks[g].n_terms)
    order = [first] + [g for g in order if g != first]
    return np.array(Xc, order="C"), np.array(d.y, order="C"), [blocks[g] for g in order]


@pytest.mark.parametrize("name", list(MODELS))
def test_the_marginal_kernel_reads_these_products(name):
    # the marginal kernel's arrays are sliced from the same cross-products the REML deviance
    # factors; X'X, X'y and y'y are dense products (so its draws kept their last bits)
    from hierbayes.bayes.pack import pack
    from hierbayes.bayes.priors import resolve_priors

    d = design(name)
    packed = pack(d, resolve_priors(d), marginal=True)
    Xc, y, blocks = kernel_inputs(d)
    assert [b.group for b in blocks] == [d.blocks[g].group for g in packed.order]
    ours = marginal_arrays(CrossProducts.from_blocks(blocks, Xc, y))
    full = dense_products(blocks, Xc, y)
    q, p = sum(b.n_levels * b.n_terms for b in blocks), Xc.shape[1]
    scale = np.abs(full).max()
    np.testing.assert_allclose(ours.ZtX, full[:q, q:q + p], rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(ours.Zty, full[:q, -1], rtol=0, atol=1e-12 * scale)
    np.testing.assert_array_equal(ours.XtX, Xc.T @ Xc)
    for field in ours._fields:
        a, b = np.asarray(getattr(ours, field)), np.asarray(getattr(packed.data, field))
        np.testing.assert_array_equal(a, b, err_msg=field)
        if isinstance(getattr(packed.data, field), np.ndarray):
            assert b.dtype == np.float64 and b.flags.c_contiguous, field


def test_needs_a_random_effect_term():
    d = design("sleepstudy")
    with pytest.raises(ValueError, match="at least one"):
        CrossProducts.from_blocks([], d.X, d.y)
