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
def test_marginal_arrays_are_the_kernels(name):
    # pack's _cross_products is the marginal kernel's own (hierbayes.bayes, another room):
    # the arrays must be these cross-products' to the last bit, so that draws do not change
    from hierbayes.bayes.pack import _cross_products

    d = design(name)
    Xc, y, blocks = kernel_inputs(d)
    rows = [np.zeros(13, dtype=np.int64) for _ in blocks]
    theirs = _cross_products(Xc, y, blocks, rows, [0.0] * len(blocks), (None, None), None)[:8]
    ours = marginal_arrays(CrossProducts.from_blocks(blocks, Xc, y))
    for field, a, b in zip(ours._fields, ours, theirs, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, field
        np.testing.assert_array_equal(a, b, err_msg=field)
        if isinstance(b, np.ndarray):
            assert a.dtype == b.dtype and a.flags.c_contiguous, field


def test_needs_a_random_effect_term():
    d = design("sleepstudy")
    with pytest.raises(ValueError, match="at least one"):
        CrossProducts.from_blocks([], d.X, d.y)
