"""glmmTMB's cs() and ar1() terms in the compiled kernel: PyMC's density, the integrated likelihood, the draws."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import hierbayes as hb
from hierbayes.bayes.pack import pack
from hierbayes.bayes.pymc_structures import ar1_cholesky_numpy
from tests.bayes.test_logdensity import assert_equals_pymc

AR1 = "gpa ~ occasion + ar1(0 + occas | student) + (1 | student)"
CS = "gpa ~ occasion + cs(0 + occas | student)"
CS_INT = "gpa ~ occasion + (1 | student) + cs(0 + occas | student)"


@pytest.fixture(scope="module")
def gpa():
    # four occasions keep the terms small; a few rows dropped leave students with gaps
    gpa = hb.datasets.load("gpa")
    gpa = gpa[gpa["occasion"] < 4]
    gpa = gpa[(gpa["student"].astype(int) * 5 + gpa["occasion"]) % 11 != 0]
    return gpa.assign(occas=gpa["occasion"].astype(int).astype(str))


CASES = [
    (AR1, None),
    (CS, None),
    (CS_INT, None),
    (AR1, {"cor": "uniform(-0.5, 0.95)", "sd[student, occas0]": "half_normal(0.5)"}),
    (CS, {"cor": "uniform(0, 0.9)"}),
]


@pytest.mark.parametrize(("formula", "priors"), CASES, ids=["ar1", "cs", "cs_intercept", "ar1_priors", "cs_priors"])
def test_structured_terms_density_and_gradient_equal_pymc(gpa, formula, priors):
    model = hb.Model(formula, gpa, priors=priors)
    packed = pack(model.design, model.priors, collapse=False)
    assert_equals_pymc(model, packed, points=5, noise=0.4, seed=2)


def _structured_R(kind: str, rho: float, K: int) -> np.ndarray:
    if kind == "ar1":
        L = ar1_cholesky_numpy(rho, K)
        return L @ L.T
    return (1 - rho) * np.eye(K) + rho * np.ones((K, K))


def _dense_loglik(design, post) -> float:
    """log N(y | X beta, sigma^2 I + sum Z (I x Sigma_g) Z') from the constrained parameters."""
    V = post["sigma"] ** 2 * np.eye(design.n_obs)
    for blk in design.blocks:
        K = blk.n_terms
        sd = post[f"sd_{blk.group}"]
        R = np.eye(K)
        if f"rho_{blk.group}" in post:
            R = _structured_R(blk.term.structure, float(post[f"rho_{blk.group}"]), K)
        Zf = np.zeros((design.n_obs, blk.n_levels * K))
        for i, lev in enumerate(blk.index):
            Zf[i, lev * K:(lev + 1) * K] = blk.Z[i]
        V += Zf @ np.kron(np.eye(blk.n_levels), np.outer(sd, sd) * R) @ Zf.T
    r = design.y - design.X @ post["fixef"]
    return float(-0.5 * np.linalg.slogdet(V)[1] - 0.5 * r @ np.linalg.solve(V, r))


@pytest.mark.parametrize("formula", [AR1, CS_INT])
def test_marginal_density_is_the_integrated_likelihood(gpa, formula):
    model = hb.Model(formula, gpa)
    marg = pack(model.design, model.priors, marginal=True)
    full = pack(model.design, model.priors, collapse=False)
    assert len(marg.groups) == 2  # a structured term is amalgamated with no other block
    rng = np.random.default_rng(3)
    gaps = []
    for seed in range(3):
        theta = marg.initial_point(seed) + rng.normal(0, 0.3, marg.dim)
        post = {k: np.asarray(v)[0, 0] for k, v in marg.constrain(theta[None, None], seed=1).items()}
        # the priors' and transforms' terms: the full density with every effect at 0, less its
        # likelihood there
        theta_full = np.zeros(full.dim)
        for name, (off, shape) in marg.layout.items():
            size = int(np.prod(shape)) if shape else 1
            theta_full[full.layout[name][0]:full.layout[name][0] + size] = theta[off:off + size]
        resid = model.design.y - model.design.X @ post["fixef"]
        sigma = post["sigma"]
        prior_part = full.logp_grad(theta_full)[0] - (-model.design.n_obs * np.log(sigma)
                                                      - 0.5 * resid @ resid / sigma**2)
        gaps.append(marg.logp_grad(theta)[0] - _dense_loglik(model.design, post) - prior_part)
    assert np.ptp(gaps) < 1e-8


def test_constrained_draws_are_the_structures(gpa):
    model = hb.Model(AR1, gpa, priors={"cor": "uniform(-0.5, 0.95)"})
    packed = pack(model.design, model.priors)
    theta = packed.initial_point(1) + np.random.default_rng(4).normal(0, 0.5, packed.dim)
    post = packed.constrain(theta[None, None], seed=1)
    z = theta[packed.layout["rho_student"][0]]
    rho = -0.5 + 1.45 / (1 + np.exp(-z))
    assert post["rho_student"][0, 0] == pytest.approx(rho, rel=1e-12)
    np.testing.assert_allclose(post["cor_student"][0, 0], _structured_R("ar1", rho, 4), atol=1e-12)
    sd = np.exp(theta[packed.layout["sdar_student"][0]])
    np.testing.assert_allclose(post["sd_student"][0, 0], np.full(4, sd), rtol=1e-12)
    # the effects are the non-centred z coloured by T = sd L
    L = ar1_cholesky_numpy(rho, 4)
    np.testing.assert_allclose(post["r_student"][0, 0], post["z_student"][0, 0] @ (sd * L).T, atol=1e-12)


@pytest.mark.parametrize("formula", [AR1, CS])
def test_structured_terms_sample_with_the_compiled_kernel(gpa, formula):
    model = hb.Model(formula, gpa)
    assert model.own_sampler_obstacle() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error", hb.HierbayesWarning)  # no move to nutpie on the PyMC graph
        fit = model.fit(draws=200, tune=200, chains=2, seed=3, progressbar=False, check=False)
    assert fit.info.sampler == "hierbayes"
    post = fit.posterior
    rho = np.asarray(post["rho_student"])
    assert rho.shape == (2, 200)
    low = -1.0 if "ar1" in formula else -1.0 / 3
    assert np.all((rho > low) & (rho < 1))
    assert post["sd_student"].shape == (2, 200, 4) and post["cor_student"].shape == (2, 200, 6)
    if "ar1" in formula:
        np.testing.assert_array_equal(np.asarray(post["sd_student"])[..., 3], np.asarray(post["sdar_student"]))
        # cor pairs (1,0), (2,0), (2,1), ...: the lag-2 pair is rho squared
        np.testing.assert_allclose(np.asarray(post["cor_student"])[..., 1], rho**2, rtol=1e-10)
    else:
        np.testing.assert_allclose(np.asarray(post["cor_student"]), np.repeat(rho[..., None], 6, -1), rtol=1e-10)
