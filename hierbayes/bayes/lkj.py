"""LKJ prior on a correlation matrix, sampled through unconstrained partial correlations.

PyMC's ``LKJCholeskyCov`` samples the packed Cholesky factor of the covariance,
whose off-diagonal entries must shrink with the SDs: a funnel that NUTS
under-explores (on the prior alone it misses mass near zero SDs). Stan instead
separates the SDs (log scale) from the Cholesky factor of the correlation
matrix, reached from ``n(n-1)/2`` unconstrained reals ``y`` through canonical
partial correlations ``z = tanh(y)``. This module does the same in PyMC: a
``CustomDist`` over ``y`` whose density is the LKJ density of the implied
correlation matrix times the Jacobian (Stan's ``cholesky_corr_constrain``),
with an exact random draw (the onion method) for prior predictive sampling.

Examples
--------
>>> import numpy as np, pymc as pm
>>> from hierbayes.bayes.lkj import lkj_corr_cholesky
>>> with pm.Model():
...     y, L = lkj_corr_cholesky("cpc", n=3, eta=2.0)
>>> np.allclose(L.eval({y: np.zeros(3)}), np.eye(3))
True
"""

from __future__ import annotations

import numpy as np


def _lkj_log_norm(eta: float, n: int) -> float:
    """Log of the LKJ(eta) density's constant: density = exp(this) * det(C)**(eta - 1).

    Lewandowski, Kurowicka & Joe (2009), eq. 16: the constant is the product over
    k = 1..n-1 of 2**((2 eta - 2 + n - k)(n - k)) * B(b_k, b_k)**(n - k), with
    b_k = eta + (n - k - 1) / 2.
    """
    from scipy.special import betaln

    total = 0.0
    for k in range(1, n):
        b = eta + (n - k - 1) / 2.0
        total += (2 * eta - 2 + n - k) * (n - k) * np.log(2.0) + (n - k) * betaln(b, b)
    return -total


def cpc_to_cholesky(y, n: int):
    """Cholesky factor of a correlation matrix from unconstrained ``y`` (PyTensor).

    Returns ``(L, log_diag, log_jac)``: the factor, ``log L[i, i]`` for each
    row, and the log-Jacobian of ``y -> L`` (off-diagonal entries), as Stan's
    ``cholesky_corr_constrain`` computes it.
    """
    import pytensor.tensor as pt

    z = pt.tanh(y)
    log_jac = pt.sum(pt.log1p(-(z**2)))
    rows = [[pt.constant(1.0)] + [pt.constant(0.0)] * (n - 1)]
    log_diag = [pt.constant(0.0)]
    k = 0
    for i in range(1, n):
        row = []
        sum_sq = pt.constant(0.0)
        for j in range(i):
            if j == 0:
                value = z[k]
            else:
                value = z[k] * pt.sqrt(1.0 - sum_sq)
                log_jac = log_jac + 0.5 * pt.log1p(-sum_sq)
            row.append(value)
            sum_sq = sum_sq + value**2
            k += 1
        row.append(pt.sqrt(1.0 - sum_sq))
        log_diag.append(0.5 * pt.log1p(-sum_sq))
        rows.append(row + [pt.constant(0.0)] * (n - 1 - i))
    L = pt.stack([pt.stack(r) for r in rows])
    return L, pt.stack(log_diag), log_jac


def _onion_corr(rng: np.random.Generator, n: int, eta: float) -> np.ndarray:
    """One correlation matrix from LKJ(eta) by the onion method (Lewandowski et al. 2009)."""
    beta = eta - 1.0 + n / 2.0
    r12 = 2.0 * rng.beta(beta, beta) - 1.0
    P = np.eye(n)
    P[0, 1] = r12
    P[1, 1] = np.sqrt(1.0 - r12**2)
    for m in range(2, n):
        beta -= 0.5
        y = rng.beta(m / 2.0, beta)
        w = rng.normal(size=m)
        w /= np.linalg.norm(w)
        P[:m, m] = np.sqrt(y) * w
        P[m, m] = np.sqrt(1.0 - y)
    return P.T @ P


def corr_to_cpc(C: np.ndarray) -> np.ndarray:
    """Unconstrained ``y`` of a correlation matrix (inverse of :func:`cpc_to_cholesky`)."""
    n = C.shape[0]
    L = np.linalg.cholesky(C)
    out = []
    for i in range(1, n):
        sum_sq = 0.0
        for j in range(i):
            z = L[i, j] / np.sqrt(1.0 - sum_sq)
            out.append(np.arctanh(np.clip(z, -1 + 1e-15, 1 - 1e-15)))
            sum_sq += L[i, j] ** 2
    return np.array(out)


def lkj_corr_cholesky(name: str, n: int, eta: float):
    """Add an LKJ(eta) correlation prior to the current PyMC model; return its Cholesky factor.

    The free variable ``name`` holds the ``n(n-1)/2`` unconstrained partial
    correlations; the returned tensor is the lower-triangular factor ``L``
    with ``L L'`` the correlation matrix.
    """
    import pymc as pm

    if n < 2:
        raise ValueError("an LKJ prior needs a block of at least two terms")
    k = n * (n - 1) // 2
    eta = float(eta)
    log_norm = _lkj_log_norm(eta, n)
    exponents = np.array([n - i + 2.0 * eta - 3.0 for i in range(n)])

    def logp(value, eta_param, template):
        _, log_diag, log_jac = cpc_to_cholesky(value, n)
        return log_norm + (exponents * log_diag).sum() + log_jac

    def random(eta_param, template, rng=None, size=None):
        rng = rng if rng is not None else np.random.default_rng()
        batch = tuple(size) if size is not None else ()
        draws = [corr_to_cpc(_onion_corr(rng, n, eta)) for _ in range(int(np.prod(batch)))]
        return np.asarray(draws).reshape((*batch, k))

    # The zero template only tells PyMC the support's length (k) through the signature.
    y = pm.CustomDist(name, eta, np.zeros(k), logp=logp, random=random,
                      signature="(),(k)->(k)", dtype="float64")
    L, _, _ = cpc_to_cholesky(y, n)
    return y, L
