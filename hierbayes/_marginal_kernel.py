"""numba kernels for Gaussian models with the group effects integrated out.

With ``b = T u``, ``u ~ N(0, I)`` (``T`` block diagonal: each level of block g
carries ``T_g = diag(sd_g) L_g``), ``y ~ N(X beta + Z b, sigma^2 I)`` has the
marginal

    log p(y) = -n log sigma - log|A| / 2 - (r'r / sigma^2 - c' u_hat) / 2 + const,

with ``r = y - X beta``, ``A = T'Z'ZT / sigma^2 + I``, ``c = T'Z'r / sigma^2`` and
``u_hat = A^-1 c``. Everything is computed from cross-products made once
(X'X, X'y, y'y, Z'X, Z'y, Z'Z), so an evaluation costs nothing per row. ``A``
is factored in blocks, as MixedModels.jl does: the first block's levels are
independent K x K blocks, the other blocks form a dense Schur complement.

Gradients (derived in ``docs/sampling.md``):

* beta: ``(X'y - X'X beta - (Z'X)' T u_hat) / sigma^2``;
* log sigma: ``-(n - q + tr A^-1) + (r'r - sigma^2 (u_hat'c + u_hat'u_hat)) / sigma^2``;
* T (per level, summed over a block's levels): ``-(Z'Z T A^-1)_jj / sigma^2 + (Z'alpha)_j u_hat_j'``
  with ``Z'alpha = (Z'r - Z'Z T u_hat) / sigma^2``.
"""

# numba compiles only the legacy np.random API (seeded per thread inside the kernel).
# ruff: noqa: NPY002

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._logdensity_kernel import cpc_cholesky, logp_grad, prior_logp_dx

# per-block table: K, L, offset in u, theta offset of log sd, of cpc, correlated
M_K, M_L, M_OFF, M_SD, M_CPC, M_CORR = range(6)


@njit(cache=True, nogil=True, error_model="numpy")
def _chol_small(A, out):
    """Cholesky of a small SPD matrix into ``out``; False if not positive definite."""
    K = A.shape[0]
    for i in range(K):
        for j in range(i + 1):
            s = A[i, j]
            for k in range(j):
                s -= out[i, k] * out[j, k]
            if i == j:
                if s <= 0.0:
                    return False
                out[i, i] = math.sqrt(s)
            else:
                out[i, j] = s / out[j, j]
        for j in range(i + 1, K):
            out[i, j] = 0.0
    return True


@njit(cache=True, nogil=True, error_model="numpy")
def _factor(theta, mdata, Ts, Ls, dLs, gys):
    """T for every block (and LKJ terms); returns the LKJ log density."""
    (XtX, Xty, yty, ZtX, Zty, G11, G21, G22, blk, blk_eta, pri_i, pri_f, misc) = mdata
    lp = 0.0
    for g in range(blk.shape[0]):
        K = blk[g, M_K]
        Ls[g, :, :] = 0.0
        for a in range(K):
            Ls[g, a, a] = 1.0
        if blk[g, M_CORR] == 1:
            M = K * (K - 1) // 2
            Lc = np.zeros((K, K))
            dL = np.zeros((M, K, K))
            o = blk[g, M_CPC]
            lkj, gy = cpc_cholesky(theta[o:o + M], K, blk_eta[g], Lc, dL)
            lp += lkj
            Ls[g, :K, :K] = Lc
            dLs[g, :M, :K, :K] = dL
            gys[g, :M] = gy
        Ts[g, :, :] = 0.0
        for a in range(K):
            sd = math.exp(theta[blk[g, M_SD] + a])
            for b in range(a + 1):
                Ts[g, a, b] = sd * Ls[g, a, b]
    return lp


@njit(cache=True, nogil=True, error_model="numpy")
def _tvec(Ts, blk, u, out, transpose):
    """out = T u (or T' u) for the block-diagonal T."""
    for g in range(blk.shape[0]):
        K, L, off = blk[g, M_K], blk[g, M_L], blk[g, M_OFF]
        for j in range(L):
            base = off + j * K
            for a in range(K):
                acc = 0.0
                if transpose:
                    for b in range(a, K):
                        acc += Ts[g, b, a] * u[base + b]
                else:
                    for b in range(a + 1):
                        acc += Ts[g, a, b] * u[base + b]
                out[base + a] = acc


@njit(cache=True, nogil=True, error_model="numpy")
def _rest_left(Ts, blk, q1, Mat, out, transpose):
    """out = Tr Mat (or Tr' Mat) for the rest blocks' block-diagonal T; Mat is q2 x m."""
    m = Mat.shape[1]
    for g in range(1, blk.shape[0]):
        K, L, off = blk[g, M_K], blk[g, M_L], blk[g, M_OFF] - q1
        for j in range(L):
            base = off + j * K
            for a in range(K):
                for c in range(m):
                    acc = 0.0
                    if transpose:
                        for b in range(a, K):
                            acc += Ts[g, b, a] * Mat[base + b, c]
                    else:
                        for b in range(a + 1):
                            acc += Ts[g, a, b] * Mat[base + b, c]
                    out[base + a, c] = acc


@njit(cache=True, nogil=True, error_model="numpy")
def _first_right(T1, K1, L1, Mat, out):
    """out = Mat T1blk, T1 repeated over the first block's levels; Mat is m x q1."""
    for r in range(Mat.shape[0]):
        for j in range(L1):
            base = j * K1
            for b in range(K1):
                acc = 0.0
                for a in range(b, K1):
                    acc += Mat[r, base + a] * T1[a, b]
                out[r, base + b] = acc


@njit(cache=True, nogil=True, error_model="numpy")
def _chol_dense(S, out):
    """Cholesky of a dense SPD matrix; False if it is not positive definite."""
    n = S.shape[0]
    out[:, :] = 0.0
    for j in range(n):
        s = S[j, j]
        for k in range(j):
            s -= out[j, k] * out[j, k]
        if not s > 0.0:
            return False
        d = math.sqrt(s)
        out[j, j] = d
        for i in range(j + 1, n):
            t = S[i, j]
            for k in range(j):
                t -= out[i, k] * out[j, k]
            out[i, j] = t / d
    return True


@njit(cache=True, nogil=True, error_model="numpy")
def _lower_solve(L, b, out, transpose):
    """Solve L x = b (or L' x = b) for lower-triangular L."""
    n = L.shape[0]
    if not transpose:
        for i in range(n):
            acc = b[i]
            for k in range(i):
                acc -= L[i, k] * out[k]
            out[i] = acc / L[i, i]
    else:
        for i in range(n - 1, -1, -1):
            acc = b[i]
            for k in range(i + 1, n):
                acc -= L[k, i] * out[k]
            out[i] = acc / L[i, i]


@njit(cache=True, nogil=True, error_model="numpy")
def _system(mdata, Ts, sigma2, L11, W, LS, A21):
    """Factor A = T'GT/sigma^2 + I in blocks, into L11 (L1,K1,K1), W = A21 A11^-1, LS.

    Returns (ok, log det A).
    """
    G11, G21, G22, blk = mdata[5], mdata[6], mdata[7], mdata[8]
    K1, L1 = blk[0, M_K], blk[0, M_L]
    q1 = K1 * L1
    q2 = G22.shape[0]
    T1 = Ts[0, :K1, :K1]
    A = np.empty((K1, K1))
    logdet = 0.0
    for j in range(L1):
        for a in range(K1):
            for b in range(a + 1):
                acc = 0.0
                for k in range(a, K1):
                    for m in range(b, K1):
                        acc += T1[k, a] * G11[j, k, m] * T1[m, b]
                A[a, b] = acc / sigma2 + (1.0 if a == b else 0.0)
                A[b, a] = A[a, b]
        if not _chol_small(A, L11[j]):
            return False, 0.0
        for a in range(K1):
            logdet += 2.0 * math.log(L11[j, a, a])
    if q2 == 0:
        return True, logdet
    # A21 = Tr' G21 T1blk / sigma2
    tmp = np.empty((q2, q1))
    _rest_left(Ts, blk, q1, G21, tmp, True)
    _first_right(T1, K1, L1, tmp, A21)
    A21 /= sigma2
    # W_j = A21_j A11_j^-1, row by row through the level's Cholesky factor
    row = np.empty(K1)
    t = np.empty(K1)
    w = np.empty(K1)
    for j in range(L1):
        base = j * K1
        for r in range(q2):
            for a in range(K1):
                row[a] = A21[r, base + a]
            _lower_solve(L11[j], row, t, False)
            _lower_solve(L11[j], t, w, True)
            for a in range(K1):
                W[r, base + a] = w[a]
    S = np.empty((q2, q2))
    Tr22 = np.empty((q2, q2))
    _rest_left(Ts, blk, q1, G22, Tr22, True)
    _rest_left(Ts, blk, q1, np.ascontiguousarray(Tr22.T), S, True)
    S /= sigma2
    S -= W @ A21.T
    for i in range(q2):
        S[i, i] += 1.0
    if not _chol_dense(S, LS):
        return False, 0.0
    for i in range(q2):
        logdet += 2.0 * math.log(LS[i, i])
    return True, logdet


@njit(cache=True, nogil=True, error_model="numpy")
def _solve(K1, L1, L11, W, LS, c, u):
    """u = A^-1 c with the blocked factors."""
    q1 = K1 * L1
    q2 = LS.shape[0]
    wu = np.zeros(q1)
    if q2 > 0:
        rhs = c[q1:] - W @ c[:q1]
        y = np.empty(q2)
        _lower_solve(LS, rhs, y, False)
        u2 = np.empty(q2)
        _lower_solve(LS, y, u2, True)
        u[q1:] = u2
        wu = W.T @ u2
    t = np.empty(K1)
    x = np.empty(K1)
    for j in range(L1):
        base = j * K1
        _lower_solve(L11[j], c[base:base + K1], t, False)
        _lower_solve(L11[j], t, x, True)
        for a in range(K1):
            u[base + a] = x[a] - wu[base + a]


@njit(cache=True, nogil=True, error_model="numpy")
def _workspace(blk, q2, q1):
    G = blk.shape[0]
    Kmax = 1
    for g in range(G):
        Kmax = max(Kmax, blk[g, M_K])
    Mmax = max(Kmax * (Kmax - 1) // 2, 1)
    K1, L1 = blk[0, M_K], blk[0, M_L]
    return (np.zeros((G, Kmax, Kmax)), np.zeros((G, Kmax, Kmax)), np.zeros((G, Mmax, Kmax, Kmax)),
            np.zeros((G, Mmax)), np.zeros((L1, K1, K1)), np.zeros((q2, q1)), np.zeros((q2, q2)),
            np.zeros((q2, q1)), Kmax)


@njit(cache=True, nogil=True, error_model="numpy")
def logp_grad_marginal(theta, grad, mdata):
    """Marginal log density (group effects integrated out) and its gradient."""
    (XtX, Xty, yty, ZtX, Zty, G11, G21, G22, blk, blk_eta, pri_i, pri_f, misc) = mdata
    grad[:] = 0.0
    n = misc[0]
    osig = misc[1]
    p = XtX.shape[0]
    G = blk.shape[0]
    q = Zty.shape[0]
    K1, L1 = blk[0, M_K], blk[0, M_L]
    q1 = K1 * L1
    q2 = q - q1
    Ts, Ls, dLs, gys, L11, W, LS, A21, Kmax = _workspace(blk, q2, q1)
    lp = _factor(theta, mdata, Ts, Ls, dLs, gys)
    sigma2 = math.exp(2.0 * theta[osig])
    beta = theta[:p]
    XtXb = XtX @ beta if p > 0 else np.zeros(0)
    rr = yty
    for j in range(p):
        rr += beta[j] * (XtXb[j] - 2.0 * Xty[j])
    Ztr = Zty - ZtX @ beta if p > 0 else Zty.copy()
    c = np.empty(q)
    _tvec(Ts, blk, Ztr, c, True)
    c /= sigma2
    ok, logdet = _system(mdata, Ts, sigma2, L11, W, LS, A21)
    if not ok:
        return -np.inf
    u = np.empty(q)
    _solve(K1, L1, L11, W, LS, c, u)
    uc = u @ c
    uu = u @ u
    lp += -n * theta[osig] - 0.5 * logdet - 0.5 * (rr / sigma2 - uc)

    b = np.empty(q)
    _tvec(Ts, blk, u, b, False)
    if p > 0:
        gb = (Xty - XtXb - ZtX.T @ b) / sigma2
        for j in range(p):
            grad[j] += gb[j]

    # A^-1 where the gradient needs it: first block's diagonal blocks, A21 part, S^-1
    T1 = Ts[0, :K1, :K1]
    Sinv = np.zeros((q2, q2))
    SW = np.zeros((q2, q1))
    if q2 > 0:
        LSinv = np.zeros((q2, q2))
        e = np.zeros(q2)
        col = np.empty(q2)
        for i in range(q2):
            e[:] = 0.0
            e[i] = 1.0
            _lower_solve(LS, e, col, False)
            LSinv[:, i] = col
        Sinv = LSinv.T @ LSinv
        SW = Sinv @ W  # = -A^-1 21
    tr = 0.0
    for i in range(q2):
        tr += Sinv[i, i]
    Ainv = np.empty((K1, K1))
    Linv = np.empty((K1, K1))
    ek = np.empty(K1)
    colk = np.empty(K1)
    gT = np.zeros((G, Kmax, Kmax))
    # Z'alpha = (Z'r - G b) / sigma2
    Gb = np.zeros(q)
    for j in range(L1):
        base = j * K1
        for a in range(K1):
            acc = 0.0
            for m in range(K1):
                acc += G11[j, a, m] * b[base + m]
            Gb[base + a] = acc
    if q2 > 0:
        Gb[:q1] += G21.T @ b[q1:]
        Gb[q1:] += G21 @ b[:q1] + G22 @ b[q1:]
    za = (Ztr - Gb) / sigma2
    TrSW = np.zeros((q2, q1))
    if q2 > 0:
        _rest_left(Ts, blk, q1, SW, TrSW, False)  # = -Tr A^-1 21
    GT = np.empty((K1, K1))
    for j in range(L1):
        base = j * K1
        # A11_j^-1 from its factor: columns of L^-T L^-1
        for a in range(K1):
            ek[:] = 0.0
            ek[a] = 1.0
            _lower_solve(L11[j], ek, colk, False)
            _lower_solve(L11[j], colk, Linv[:, a], True)
        for a in range(K1):
            for m in range(K1):
                acc = Linv[a, m]
                for r in range(q2):
                    acc += W[r, base + a] * SW[r, base + m]
                Ainv[a, m] = acc
            tr += Ainv[a, a]
        for a in range(K1):
            for m in range(K1):
                acc = 0.0
                for k in range(m, K1):
                    acc += G11[j, a, k] * T1[k, m]
                GT[a, m] = acc
        for a in range(K1):
            for m in range(a + 1):
                acc = 0.0
                for k in range(K1):
                    acc += GT[a, k] * Ainv[k, m]
                # the rest's part of (G T A^-1)_jj: G12_j Tr A^-1 21_j
                for r in range(q2):
                    acc -= G21[r, base + a] * TrSW[r, base + m]
                gT[0, a, m] += -acc / sigma2 + za[base + a] * u[base + m]
    if q2 > 0:
        GT21 = np.empty((q2, q1))
        _first_right(T1, K1, L1, G21, GT21)
        G22Tr = np.empty((q2, q2))
        # (G22 Tr) = (Tr' G22)'
        tmp = np.empty((q2, q2))
        _rest_left(Ts, blk, q1, G22, tmp, True)
        G22Tr = np.ascontiguousarray(tmp.T)
        for g in range(1, G):
            K, L, off = blk[g, M_K], blk[g, M_L], blk[g, M_OFF]
            for j in range(L):
                r0 = off + j * K - q1
                for a in range(K):
                    for m in range(a + 1):
                        acc = 0.0
                        for cidx in range(q1):
                            acc -= GT21[r0 + a, cidx] * SW[r0 + m, cidx]
                        for k in range(q2):
                            acc += G22Tr[r0 + a, k] * Sinv[k, r0 + m]
                        gT[g, a, m] += -acc / sigma2 + za[q1 + r0 + a] * u[q1 + r0 + m]
    grad[osig] += -(n - q + tr) + (rr - sigma2 * (uc + uu)) / sigma2

    # T_g = diag(sd) L_g: to log sd and the partial correlations
    for g in range(G):
        K = blk[g, M_K]
        osd = blk[g, M_SD]
        for a in range(K):
            sd = math.exp(theta[osd + a])
            acc = 0.0
            for m in range(a + 1):
                acc += gT[g, a, m] * Ls[g, a, m]
            grad[osd + a] += acc * sd
        if blk[g, M_CORR] == 1:
            M = K * (K - 1) // 2
            o = blk[g, M_CPC]
            for mm in range(M):
                acc = gys[g, mm]
                for a in range(K):
                    sd = math.exp(theta[osd + a])
                    for m in range(a + 1):
                        acc += gT[g, a, m] * sd * dLs[g, mm, a, m]
                grad[o + mm] += acc

    for k in range(pri_i.shape[0]):
        t = pri_i[k, 0]
        if pri_i[k, 2] == 1:
            x = math.exp(theta[t])
            lpk, d = prior_logp_dx(pri_i[k, 1], x, pri_f[k, 0], pri_f[k, 1], pri_f[k, 2])
            lp += lpk + theta[t]
            grad[t] += d * x + 1.0
        else:
            lpk, d = prior_logp_dx(pri_i[k, 1], theta[t], pri_f[k, 0], pri_f[k, 1], pri_f[k, 2])
            lp += lpk
            grad[t] += d
    return lp


@njit(cache=True, nogil=True, error_model="numpy")
def draw_effects(thetas, mdata, seed, out):
    """For each row of ``thetas``, draw the group effects b = T u, u ~ N(A^-1 c, A^-1)."""
    (XtX, Xty, yty, ZtX, Zty, G11, G21, G22, blk, blk_eta, pri_i, pri_f, misc) = mdata
    np.random.seed(seed)
    osig = misc[1]
    p = XtX.shape[0]
    q = Zty.shape[0]
    K1, L1 = blk[0, M_K], blk[0, M_L]
    q1 = K1 * L1
    q2 = q - q1
    Ts, Ls, dLs, gys, L11, W, LS, A21, Kmax = _workspace(blk, q2, q1)
    u = np.empty(q)
    c = np.empty(q)
    e = np.empty(q)
    x = np.empty(q)
    rhs = np.empty(K1)
    xk = np.empty(K1)
    for d in range(thetas.shape[0]):
        theta = thetas[d]
        _factor(theta, mdata, Ts, Ls, dLs, gys)
        sigma2 = math.exp(2.0 * theta[osig])
        Ztr = Zty - ZtX @ theta[:p] if p > 0 else Zty.copy()
        _tvec(Ts, blk, Ztr, c, True)
        c /= sigma2
        ok, logdet = _system(mdata, Ts, sigma2, L11, W, LS, A21)
        if not ok:
            out[d, :] = np.nan
            continue
        _solve(K1, L1, L11, W, LS, c, u)
        # noise with covariance A^-1: x = L^-T e for the blocked factor L of A
        for i in range(q):
            e[i] = np.random.normal()
        wx = np.zeros(q1)
        if q2 > 0:
            x2 = np.empty(q2)
            _lower_solve(LS, e[q1:], x2, True)
            x[q1:] = x2
            # L21' x2 = L11^-1 A12 x2 = L11' W' x2
            wx = W.T @ x2
        for j in range(L1):
            base = j * K1
            for a in range(K1):
                acc = 0.0
                for m in range(a, K1):
                    acc += L11[j, m, a] * wx[base + m]
                rhs[a] = e[base + a] - acc
            _lower_solve(L11[j], rhs, xk, True)
            for a in range(K1):
                x[base + a] = xk[a]
        for i in range(q):
            u[i] += x[i]
        b = np.empty(q)
        _tvec(Ts, blk, u, b, False)
        out[d, :] = b


@njit(cache=True, nogil=True, error_model="numpy")
def density(theta, grad, data):
    """The sampler's entry point: ``data = (mode, full, marginal)``; mode 1 is marginal."""
    mode, full, marg = data
    if mode == 1:
        return logp_grad_marginal(theta, grad, marg)
    return logp_grad(theta, grad, full)
