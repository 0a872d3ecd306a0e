"""Simulation from a fitted model: arm::sim's parameter draws and lme4's ``simulate`` responses.

* :func:`simulate_arm` (Gelman and Hill's ``arm::sim``): sigma, fixed effects
  and group effects drawn with theta held at its estimate.
* :func:`simulate_responses` (lme4's ``simulate.merMod``): new responses with
  the fixed effects and variance components at their estimates, new group
  effects (or the fitted modes), and new residuals.

Examples
--------
>>> import numpy as np
>>> import hierbayes as hb
>>> from hierbayes.freq.fit import fit_design
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"), hb.datasets.load("sleepstudy"))
>>> mer = fit_design(d)
>>> sigma, beta, bs = simulate_arm(mer.deviance_function, mer.factor, mer.estimates, 100,
...                                np.random.default_rng(1))
>>> sigma.shape, beta.shape, bs[0].shape
((100,), (100, 2), (100, 18, 2))
>>> simulate_responses(mer, 3, np.random.default_rng(1)).shape
(3, 180)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from hierbayes.freq.deviance import Deviance
from hierbayes.freq.estimates import Estimates, back_solve, split_u
from hierbayes.linalg.blocked import BlockedFactor
from hierbayes.linalg.linpred import linear_predictor

if TYPE_CHECKING:
    from hierbayes.freq.mermod import MerMod


def simulate_arm(dev: Deviance, f: BlockedFactor, est: Estimates, n_sims: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """arm::sim draws: sigma, fixed effects and group effects, theta held at its estimate.

    sigma^2 = pwrss / chi^2(n - p) (the posterior under p(sigma^2) ~ 1/sigma^2),
    then [u, beta] ~ N(modes, sigma^2 (L L')^-1) and b = Lambda u.

    Returns ``sigma`` (n_sims,), ``beta`` (n_sims, p) and per term ``b``
    (n_sims, levels, terms).
    """
    df = dev.n - dev.p
    sigma = np.sqrt(1.0 / rng.gamma(shape=df / 2.0, scale=2.0 / f.r2, size=n_sims))
    total = sum(L * q for L, q in zip(dev.levels, dev.sizes, strict=True)) + dev.p
    draws = back_solve(dev, f, rng.standard_normal((total, n_sims)) * sigma)
    beta = draws[total - dev.p :].T + est.beta
    draws_b = dev.layout.split([np.einsum("ij,ljs->sli", T, u)
                                for T, u in zip(f.T, split_u(dev, draws[: total - dev.p]), strict=True)])
    bs = [d + b[None] for d, b in zip(draws_b, est.b, strict=True)]
    return sigma, beta, bs



def simulated_eta(fit: Any, n: int, rng: np.random.Generator, use_u: bool = False) -> np.ndarray:
    """``(n, nobs)`` linear predictors, offset included, at the fixed effects' estimates with group
    effects new from N(0, the fitted covariance) or (``use_u``) the conditional modes: the part of
    lme4's ``simulate`` that LMMs and GLMMs share."""
    d = fit.design
    effects = []
    for blk, chol, b_hat in zip(d.blocks, fit.covariance_chol(), fit.estimates.b, strict=True):
        if use_u:
            b = np.broadcast_to(b_hat, (n, *b_hat.shape))
        else:
            b = rng.standard_normal((n, blk.n_levels, blk.n_terms)) @ chol.T
        effects.append((blk.Z, blk.index, b))
    eta = linear_predictor(d.X, np.tile(fit.estimates.beta, (n, 1)), effects)
    return eta if d.offset is None else eta + d.offset


def simulate_responses(fit: MerMod, n: int, rng: np.random.Generator, use_u: bool = False) -> np.ndarray:
    """``n`` new response vectors from the fitted model, as lme4's ``simulate.merMod``.

    Fixed effects and variance components stay at their estimates. With
    ``use_u=False`` (lme4's default, ``re.form = NA``) every level gets new
    group effects from N(0, the fitted covariance); with ``use_u=True`` the
    fitted conditional modes are kept. Then the offset and a residual
    N(0, sigma^2 / w) draw (``w`` the prior weights, 1 without) are added, or
    errors with the residual structure's covariance ``sigma^2 Lambda``.

    Returns
    -------
    numpy.ndarray
        ``(n, nobs)``.
    """
    d = fit.design
    y = simulated_eta(fit, n, rng, use_u)
    z = rng.standard_normal(y.shape)
    if not d.residual.is_iid:
        # a residual structure: heteroscedastic and serially correlated errors, L z
        z = d.residual.color(fit.deviance_function.rho(fit.theta), z.T).T
    noise = z * fit.sigma
    # prior weights are precisions: row i's residual SD is sigma / sqrt(w_i)
    y += noise if d.weights is None else noise / np.sqrt(d.weights)
    return y
