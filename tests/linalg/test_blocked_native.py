"""The compiled factor kernel (linalg/kernels/blocked.c) against the NumPy factor, and its load checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.errors import HierbayesError
from hierbayes.freq.deviance import Deviance
from hierbayes.linalg import blocked_native
from hierbayes.linalg.blocked import BlockedCholesky
from hierbayes.spec.design import build_design
from hierbayes.spec.formula import parse_formula


def _sleep() -> pd.DataFrame:
    df = hb.datasets.load("sleepstudy").copy()
    df["dayf"] = df["Days"].astype(str)
    for k in range(3):
        df[f"d{k}"] = (df["Days"] % 3 == k).astype(float)
    return df


SCALARS = "Reaction ~ Days + (1 | Subject) + (0 + d0 | Subject) + (0 + d1 | Subject) + (0 + d2 | Subject)"
CASES = {
    "scalar terms on one factor": (SCALARS, True),
    "the same and a crossed factor": (SCALARS + " + (1 | dayf)", True),
    "a diag() term": ("Reaction ~ Days + diag(Days | Subject)", True),
    "(x || g)": ("Reaction ~ Days + (Days || Subject)", True),
    "correlated": ("Reaction ~ Days + (Days | Subject)", False),
    "one scalar term": ("Reaction ~ Days + (1 | Subject)", False),
}


def _deviance(formula: str) -> Deviance:
    return Deviance(build_design(parse_formula(formula), _sleep()))


@pytest.mark.parametrize("name", list(CASES))
def test_the_kernel_is_asked_for_where_T1_is_diagonal_by_construction(name):
    formula, compiled = CASES[name]
    dev = _deviance(formula)
    assert dev.compiled is compiled and dev.cholesky.compiled is compiled


@pytest.mark.parametrize("name", [n for n, (_, c) in CASES.items() if c])
def test_the_compiled_factor_is_numpys(name):
    dev = _deviance(CASES[name][0])
    rng = np.random.default_rng(3)
    numpy_chol = BlockedCholesky(dev.cross)
    for _ in range(3):
        theta = dev.theta0 * rng.uniform(0.1, 3.0, size=dev.theta0.shape)
        T = dev.layout.T(dev.T(theta))
        a, b = dev.cholesky.factor(T), numpy_chol.factor(T)
        for x, y in [(a.ld_z, b.ld_z), (a.ld_x, b.ld_x), (a.r2, b.r2)]:
            assert x == pytest.approx(y, rel=1e-12)
        np.testing.assert_allclose(a.L11, b.L11, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a.LD1, b.LD1, rtol=1e-11, atol=1e-9 * np.abs(b.LD1).max())
        np.testing.assert_allclose(a.LDD, b.LDD, rtol=1e-10, atol=1e-9 * np.abs(b.LDD).max())
    if name == "the same and a crossed factor":
        assert dev.q_rest > 0


def test_a_block_that_is_not_positive_definite_is_a_linalg_error():
    A11 = np.array([[[1.0, 0.0], [0.0, 1.0]], [[-4.0, 0.0], [0.0, 1.0]]])
    with pytest.raises(np.linalg.LinAlgError, match="level 1"):
        blocked_native.first_blocks(np.ones(2), A11, np.zeros((1, 2, 2)), np.empty(2))


def test_the_seven_term_fit_matches_the_numpy_factors_fit():
    dev = _deviance(SCALARS)
    theta = dev.theta0 * 0.7
    assert dev(theta) == pytest.approx(
        dev.objective(BlockedCholesky(dev.cross).factor(dev.layout.T(dev.T(theta)))), rel=1e-13)
    fit = hb.lmer(SCALARS, _sleep())
    assert np.isfinite(fit.loglik)


def test_a_library_built_from_other_sources_is_refused(tmp_path):
    (tmp_path / "blocked.c").write_text("/* edited since the build */\n")
    with pytest.raises(HierbayesError, match="built from other versions"):
        blocked_native.open_library(blocked_native.library_path(), sources=tmp_path)


def test_the_installed_library_has_this_modules_abi():
    lib = blocked_native.load()
    assert lib.hb_blocked_abi() == blocked_native.ABI
