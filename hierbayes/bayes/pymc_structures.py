"""The PyMC graph's covariance structures: glmmTMB's diag/cs/ar1 terms and the residual structure.

* A ``diag(x | g)`` term has independent effects, one SD each; ``cs(x | g)``
  one SD per column and one correlation ``rho_<g>`` for every pair (uniform
  prior over ``(-1/(q-1), 1)`` by default); ``ar1(0 + f | g)`` one SD
  ``sdar_<g>`` for every column and correlation ``rho_<g>^|i-j|`` (uniform on
  (-1, 1)). Each reports ``sd_<g>`` per column and ``cor_<g>`` per pair, as
  an unstructured term does, so that every summary reads them alike.
* The residual structure (``sigma=``, ``correlation=``) is brms's: ``sigma``
  the reference rows' SD, ``b_sigma`` the log SD ratios of the sigma
  formula's columns, ``phi`` the AR(1)/CAR(1) parameter. The likelihood is
  that of ``y ~ N(eta, sigma^2 D C D)``, written row by row as the product of
  each row's density given the one before it in its series (the bidiagonal
  whitening of :class:`hierbayes.residuals.SerialCorrelation`), so its sum is
  the exact joint log-likelihood; its draws are made by colouring.

Examples
--------
>>> import numpy as np
>>> T = ar1_cholesky_numpy(0.5, 3)
>>> (T @ T.T).round(3).tolist()
[[1.0, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 1.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hierbayes.residuals import Structured
from hierbayes.spec.design import Design, RandomBlock
from hierbayes.spec.naming import correlation_dim, correlation_pairs


def ar1_cholesky_numpy(phi: float, q: int) -> np.ndarray:
    """The Cholesky factor of the ``q x q`` AR(1) correlation matrix ``phi^|i-j|``."""
    i, j = np.indices((q, q))
    L = np.where(i >= j, np.power(phi, np.maximum(i - j, 0)), 0.0)
    L[:, 1:] *= np.sqrt(1.0 - phi**2)
    return L


def _ar1_cholesky(phi: Any, q: int):
    import pytensor.tensor as pt

    i, j = np.indices((q, q))
    lag = np.maximum(i - j, 0).astype(float)
    mask = (i >= j).astype(float)
    scale = np.where(j > 0, 1.0, 0.0)
    # phi^0 at masked entries keeps the gradient finite at phi = 0
    power = pt.power(phi, lag) * mask
    return power * (scale * pt.sqrt(1.0 - phi**2) + (1.0 - scale))


def structured_effects(blk: RandomBlock, z: Any, priors: Any, scalar_rv: Any, vector_rv: Any):
    """``r_<g>`` of a diag, cs or ar1 term from its standard normal ``z``, with its SDs and correlations."""
    import pymc as pm
    import pytensor.tensor as pt

    g, q, kind = blk.group, blk.n_terms, blk.term.structure
    if kind == "ar1":
        sd1 = scalar_rv(f"sdar_{g}", priors.get("sd", g, blk.terms[0]))
        sd = pm.Deterministic(f"sd_{g}", pt.repeat(sd1, q), dims=blk.term_dim)
    else:
        sd = vector_rv(f"sd_{g}", [priors.get("sd", g, t) for t in blk.terms], dims=blk.term_dim)
    if kind == "diag" or q == 1:
        if q > 1:
            pm.Deterministic(f"cor_{g}", pt.zeros(q * (q - 1) // 2), dims=correlation_dim(blk))
        return pm.Deterministic(f"r_{g}", z * sd, dims=(blk.level_dim, blk.term_dim))
    rho = scalar_rv(f"rho_{g}", priors.get("cor", g))
    if kind == "cs":
        R = rho * pt.ones((q, q)) + (1.0 - rho) * pt.eye(q)
        L = pt.linalg.cholesky(R)
    else:
        L = _ar1_cholesky(rho, q)
        R = L @ L.T
    rows, cols = (list(ix) for ix in zip(*correlation_pairs(q), strict=True))
    pm.Deterministic(f"cor_{g}", R[rows, cols], dims=correlation_dim(blk))
    return pm.Deterministic(f"r_{g}", pt.dot(z, (sd[:, None] * L).T), dims=(blk.level_dim, blk.term_dim))


def residual_rows(res: Structured, sigma: Any, gamma: Any, n: int):
    """Each row's residual SD ``sigma exp(V gamma)`` in the graph (``sigma`` where there is no V)."""
    import pytensor.tensor as pt

    if res.variance is None:
        return sigma * pt.ones(n)
    return sigma * pt.exp(pt.dot(res.variance.V, gamma))


def observe_structured(obs: str, eta: Any, design: Design, priors: Any, scalar_rv: Any,
                       vector_rv: Any) -> None:
    """The residual structure's parameters and the likelihood of ``y`` under it."""
    import pymc as pm
    import pytensor.tensor as pt

    res: Structured = design.residual
    sigma = scalar_rv("sigma", priors.get("sigma"))
    gamma = None
    if res.variance is not None:
        gamma = vector_rv("b_sigma", [priors.get("b_sigma", coef=c) for c in res.variance.names],
                          dims="sigma_term")
    sd_rows = residual_rows(res, sigma, gamma, design.n_obs)
    corr = res.correlation
    if corr is None:
        pm.Normal(obs, eta, sd_rows, observed=design.y, dims="obs")
        return
    phi = scalar_rv("phi", priors.get("ar"))
    has = corr.prev >= 0
    prev = np.where(has, corr.prev, 0)
    # first rows get a dummy lag of 1, masked: phi^0 would have an infinite derivative at 0
    lag = np.where(has, corr.lag, 1.0)
    mask = has.astype(float)

    def logp(value, mu, sd, phi_):
        a = (value - mu) / sd
        r = mask * pt.power(phi_, lag)
        s = pt.sqrt(1.0 - r**2)
        u = (a - r * a[prev]) / s
        return -0.5 * np.log(2 * np.pi) - pt.log(sd) - pt.log(s) - 0.5 * u**2

    def random(mu, sd, phi_, rng=None, size=None):
        z = rng.standard_normal(np.broadcast_shapes(np.shape(mu), size or ()))
        e = np.apply_along_axis(lambda row: corr.color(float(phi_), row), -1, z)
        return mu + sd * e

    pm.CustomDist(obs, eta, sd_rows, phi, logp=logp, random=random, observed=design.y, dims="obs")


def structure_coords(design: Design) -> dict[str, list[str]]:
    """The extra coordinates of a residual variance model (its columns)."""
    res = design.residual
    variance = getattr(res, "variance", None)
    return {"sigma_term": list(variance.names)} if variance is not None else {}
