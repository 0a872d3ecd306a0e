"""The blocked Cholesky: the REML engine's (linalg.blocked) and the marginal kernel's agree.

The Bayesian marginal kernel (bayes/kernels/marginal.c) factors the same blocked
system inside its gradient; the REML deviance factors it with
hierbayes.linalg.blocked. At the ML estimate of the fixed effects for given
variance components, the marginal log-likelihood is minus half the ML deviance
at that sigma, so differences of the kernel's log density between two points,
with near-flat priors and the log-scale Jacobians taken off, must equal
differences of the deviance.
"""

from __future__ import annotations

import numpy as np
import pytest

import hierbayes as hb
from hierbayes.bayes.pack import pack
from hierbayes.freq.deviance import Deviance
from hierbayes.freq.estimates import estimates

FLAT = {"Intercept": "normal(0, 1e8)", "b": "normal(0, 1e8)", "sd": "half_normal(1e8)",
        "sigma": "half_normal(1e8)"}
MODELS = {
    "sleepstudy": "Reaction ~ Days + (1 | Subject)",
    "sleepstudy_uncorrelated": "Reaction ~ Days + (Days || Subject)",
    "pupils": "achievement ~ sex + ses + (1 | primary_school_id) + (1 | secondary_school_id)",
    "nurses": "stress ~ age + sex + experience + treatment + wardtype + hospsize + (1 | hospital/ward)",
}


def kernel_point(packed, model, beta, sds, sigma) -> np.ndarray:
    """The kernel's unconstrained vector: centred intercept, slopes, log SDs, log sigma."""
    theta = np.zeros(packed.dim)
    slopes = packed.slopes
    if packed.intercept:
        j0 = packed.fixef_intercept_pos
        theta[packed.layout["Intercept"][0]] = beta[j0] + beta[slopes] @ packed.x_means
    if slopes:
        off, _ = packed.layout["b"]
        theta[off:off + len(slopes)] = beta[slopes]
    for blk, sd in zip(model.design.blocks, sds, strict=True):
        off, (k,) = packed.layout[f"sd_{blk.group}"]
        theta[off:off + k] = np.log(sd)
    theta[packed.layout["sigma"][0]] = np.log(sigma)
    return theta


@pytest.mark.parametrize("name", list(MODELS))
def test_marginal_kernel_and_reml_factor_agree(name):
    data = hb.datasets.load(name.split("_")[0])
    model = hb.Model(MODELS[name], data, priors=FLAT)
    packed = pack(model.design, model.priors, marginal=True)
    dev = Deviance(model.design, reml=False)
    rng = np.random.default_rng(3)
    values = []
    for _ in range(3):
        rel = rng.uniform(0.2, 1.5, dev.n_theta)  # each block's SD relative to sigma
        sigma = float(rng.uniform(0.5, 2.0) * np.std(model.design.y))
        f = dev.factor(rel)
        beta = estimates(dev, f, cond_var=False).beta
        sds = [rel[k:k + blk.n_terms] * sigma for k, blk in zip(
            np.cumsum([0] + [b.n_terms for b in model.design.blocks[:-1]]), model.design.blocks,
            strict=True)]
        lp, _ = packed.logp_grad(kernel_point(packed, model, beta, sds, sigma))
        jacobian = float(np.sum(np.log(np.concatenate(sds))) + np.log(sigma))
        values.append((lp - jacobian, -0.5 * dev.objective(f, sigma**2)))
    (k0, d0), *rest = values
    for k, d in rest:
        assert k - k0 == pytest.approx(d - d0, rel=1e-9, abs=1e-7)
