"""What a fit reports at the optimum: fixed effects, sigma, conditional modes and their variances.

From the blocked Cholesky factor at the optimal theta
(:class:`hierbayes.linalg.blocked.BlockedFactor`), as lme4's ``mkMerMod``
extracts them: the y row of the factor, solved back (:func:`back_solve`),
gives the spherical random effects ``u`` and the fixed effects ``beta``; the
conditional modes are ``b = Lambda u``; ``sigma^2 = r^2 / dof``;
``vcov(beta) = sigma^2 (L_X L_X')^-1``; and the conditional variances of the
modes (lme4's ``condVar``) are :func:`conditional_variances`.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.freq.deviance import Deviance
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"), hb.datasets.load("sleepstudy"))
>>> dev = Deviance(d)
>>> est = estimates(dev, dev.factor([0.9667, 0.0152, 0.2309]))
>>> est.beta.round(2).tolist(), est.b[0].shape
([251.41, 10.47], (18, 2))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import solve_triangular

from hierbayes.freq.deviance import Deviance
from hierbayes.linalg.blocked import BlockedFactor


@dataclass
class Estimates:
    """Everything a fit reports, computed at the optimum.

    Attributes
    ----------
    beta, vcov_beta
        Fixed effects and their covariance matrix.
    sigma
        Residual standard deviation.
    u, b
        Per term, ``(levels, terms)`` spherical random effects and conditional modes
        (the terms of one grouping factor amalgamated in the factor, split here).
    cond_var
        Per term, ``(levels, terms, terms)`` conditional covariances of the modes (or None).
    """

    beta: np.ndarray
    vcov_beta: np.ndarray
    sigma: float
    u: list[np.ndarray]
    b: list[np.ndarray]
    cond_var: list[np.ndarray] | None = None


def back_solve(dev: Deviance, f: BlockedFactor, rhs: np.ndarray) -> np.ndarray:
    """Solve ``R x = rhs`` with ``R = L'`` the upper factor of the [u, beta] system.

    ``rhs`` has one column per right-hand side and rows ordered as the
    spherical random effects (first term level-major, then the other terms),
    then the fixed effects. The y row of the factor gives the conditional
    modes and beta; standard normal columns give draws from N(0, (L L')^-1).
    """
    rhs = np.asarray(rhs, dtype=float).reshape(rhs.shape[0], -1)
    L1, p1 = dev.levels[0], dev.sizes[0]
    q1, q_rest, p = L1 * p1, dev.q_rest, dev.p
    LDD = f.LDD
    r1, rr, rx = rhs[:q1], rhs[q1 : q1 + q_rest], rhs[q1 + q_rest :]
    x_x = solve_triangular(LDD[q_rest : q_rest + p, q_rest : q_rest + p], rx, lower=True, trans="T") if p else rx
    x_r = (solve_triangular(LDD[:q_rest, :q_rest], rr - LDD[q_rest : q_rest + p, :q_rest].T @ x_x,
                            lower=True, trans="T") if q_rest else rr)
    r1 = r1 - f.LD1[:-1].T @ np.vstack([x_r, x_x])
    k = rhs.shape[1]
    x_1 = np.linalg.solve(f.L11.transpose(0, 2, 1), r1.reshape(L1, p1, k))
    return np.vstack([x_1.reshape(q1, k), x_r, x_x])


def split_u(dev: Deviance, u: np.ndarray) -> list[np.ndarray]:
    """Cut stacked spherical effects (q, ...) into per-term (levels, p, ...) arrays."""
    out, k = [], 0
    for L, q in zip(dev.levels, dev.sizes, strict=True):
        out.append(u[k : k + L * q].reshape(L, q, *u.shape[1:]))
        k += L * q
    return out


def estimates(dev: Deviance, f: BlockedFactor, cond_var: bool = True) -> Estimates:
    """Fixed effects, sigma, conditional modes (and their conditional variances) at a factor."""
    p = dev.p
    l_y = np.concatenate([f.ld1_row(-1), f.LDD[-1, :-1]])
    sol = back_solve(dev, f, l_y[:, None])[:, 0]
    beta = sol[len(sol) - p :]
    sigma2 = f.r2 / dev.dof
    if p:
        L_XX = f.LDD[dev.q_rest : dev.q_rest + p, dev.q_rest : dev.q_rest + p]
        L_XX_inv = solve_triangular(L_XX, np.eye(p), lower=True)
        vcov = sigma2 * L_XX_inv.T @ L_XX_inv
    else:
        vcov = np.zeros((0, 0))
    us = split_u(dev, sol[: len(sol) - p])
    bs = dev.layout.split([u @ T.T for u, T in zip(us, f.T, strict=True)])
    cv = dev.layout.split(conditional_variances(dev, f, sigma2), square=True) if cond_var else None
    return Estimates(beta, vcov, float(np.sqrt(sigma2)), dev.layout.split(us), bs, cv)


def conditional_variances(dev: Deviance, f: BlockedFactor, sigma2: float) -> list[np.ndarray]:
    """Conditional variances of the modes: diagonal blocks of sigma^2 Lambda (L_Z L_Z')^-1 Lambda'.

    As lme4's ranef(condVar = TRUE): conditional on the fixed effects.
    """
    q_rest = dev.q_rest
    L1, p1 = dev.levels[0], dev.sizes[0]
    L11_inv = np.linalg.inv(f.L11)  # (L1, p1, p1)
    first = np.einsum("lji,ljk->lik", L11_inv, L11_inv)  # L11^-T L11^-1 per level
    out = []
    if q_rest:
        L_rr = f.LDD[:q_rest, :q_rest]
        L_r1 = f.LD1[:q_rest]
        # W = -L_rr^-1 L_r1 L11^-1, columns of the first term's part of L_Z^-1 below its block
        L_r1_L11inv = L_r1 @ sp.block_diag(list(L11_inv), format="csr")
        # a small problem's factor keeps LD1 dense (hierbayes.linalg.blocked), a large one's sparse
        L_r1_L11inv = L_r1_L11inv.toarray() if sp.issparse(L_r1_L11inv) else np.asarray(L_r1_L11inv)
        W = solve_triangular(L_rr, L_r1_L11inv, lower=True)
        Wb = W.reshape(q_rest, L1, p1)
        first = first + np.einsum("rli,rlj->lij", Wb, Wb)
        V = solve_triangular(L_rr, np.eye(q_rest), lower=True)
    out.append(first)
    k = 0
    for L, q in zip(dev.levels[1:], dev.sizes[1:], strict=True):
        Vb = V[:, k : k + L * q].reshape(q_rest, L, q)
        out.append(np.einsum("rli,rlj->lij", Vb, Vb))
        k += L * q
    return [sigma2 * np.einsum("ij,ljk,hk->lih", T, c, T) for T, c in zip(f.T, out, strict=True)]

