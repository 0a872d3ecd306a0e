"""numba kernels of :mod:`hierbayes.logdensity` (compiled once, cached on disk).

Kept apart so that importing hierbayes does not import numba; the layout of
``data`` is documented in :func:`hierbayes.logdensity.pack`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

B_K, B_L, B_COL, B_SD, B_CPC, B_EFF, B_CENTRED, B_CORR = range(8)


@njit(cache=True, nogil=True, error_model="numpy")
def prior_logp_dx(code, x, a, b, c):
    """Log density (up to a constant) of a prior at x and its derivative in x."""
    if code == 0:  # normal(mu, sigma)
        d = (x - a) / b
        return -0.5 * d * d, -d / b
    if code == 1:  # student_t(nu, mu, sigma)
        d = x - b
        s2 = c * c
        return -0.5 * (a + 1.0) * math.log1p(d * d / (a * s2)), -(a + 1.0) * d / (a * s2 + d * d)
    if code == 2:  # cauchy(alpha, beta)
        d = x - a
        return -math.log1p(d * d / (b * b)), -2.0 * d / (b * b + d * d)
    if code == 3:  # half_normal(sigma)
        d = x / a
        return -0.5 * d * d, -d / a
    if code == 4:  # half_student_t(nu, sigma)
        s2 = b * b
        return -0.5 * (a + 1.0) * math.log1p(x * x / (a * s2)), -(a + 1.0) * x / (a * s2 + x * x)
    if code == 5:  # half_cauchy(beta)
        return -math.log1p(x * x / (a * a)), -2.0 * x / (a * a + x * x)
    if code == 6:  # exponential(lam)
        return -a * x, -a
    if code == 7:  # gamma(alpha, beta)
        return (a - 1.0) * math.log(x) - b * x, (a - 1.0) / x - b
    if code == 8:  # inv_gamma(alpha, beta)
        return -(a + 1.0) * math.log(x) - b / x, -(a + 1.0) / x + b / (x * x)
    # lognormal(mu, sigma)
    lx = math.log(x)
    d = (lx - a) / b
    return -lx - 0.5 * d * d, (-1.0 - d / b) / x


@njit(cache=True, nogil=True, error_model="numpy")
def cpc_cholesky(y, K, eta, L, dL):
    """Correlation Cholesky factor from partial correlations, with forward derivatives.

    Fills ``L`` (K x K) and ``dL[m]`` = dL/dy_m; returns the LKJ(eta) log
    density of ``L L'`` plus the log-Jacobian (Stan's cholesky_corr_constrain),
    up to a constant, and writes its gradient in y into ``gy``'s place:
    returned as the second value.
    """
    M = K * (K - 1) // 2
    gy = np.zeros(M)
    L[:, :] = 0.0
    dL[:, :, :] = 0.0
    L[0, 0] = 1.0
    lp = 0.0
    # exponent of log L[i, i] in the LKJ density times Jacobian: K - i + 2 eta - 3
    k = 0
    dsum = np.zeros(M)
    for i in range(1, K):
        s = 0.0
        dsum[:] = 0.0
        for j in range(i):
            z = math.tanh(y[k])
            dz = 1.0 - z * z
            lp += math.log(dz)
            gy[k] += -2.0 * z
            if j == 0:
                v = z
                L[i, j] = v
                dL[k, i, j] = dz
            else:
                root = math.sqrt(1.0 - s)
                v = z * root
                L[i, j] = v
                # Jacobian term 0.5 log(1 - s), s depends on earlier y of this row
                lp += 0.5 * math.log1p(-s)
                for m in range(M):
                    if dsum[m] != 0.0:
                        dL[m, i, j] = -z * dsum[m] / (2.0 * root)
                        gy[m] += -0.5 * dsum[m] / (1.0 - s)
                dL[k, i, j] += dz * root
            for m in range(M):
                if dL[m, i, j] != 0.0:
                    dsum[m] += 2.0 * v * dL[m, i, j]
            s += v * v
            k += 1
        diag = math.sqrt(max(1.0 - s, 1e-300))
        L[i, i] = diag
        expo = K - i + 2.0 * eta - 3.0
        lp += expo * 0.5 * math.log1p(-s)
        for m in range(M):
            if dsum[m] != 0.0:
                dL[m, i, i] = -dsum[m] / (2.0 * diag)
                gy[m] += -expo * 0.5 * dsum[m] / (1.0 - s)
    return lp, gy


@njit(cache=True, nogil=True, error_model="numpy")
def logp_grad(theta, grad, data):
    """Log density at ``theta``; its gradient is written into ``grad``."""
    X, y, idx, Zv, blk, blk_eta, pri_i, pri_f, misc = data
    n, p = X.shape
    G = blk.shape[0]
    grad[:] = 0.0
    lp = 0.0
    eta = np.zeros(n)
    for i in range(n):
        acc = 0.0
        for j in range(p):
            acc += X[i, j] * theta[j]
        eta[i] = acc

    # group effects r, laid out like theta's effect blocks
    r = np.zeros(theta.shape[0])
    Kmax = 1
    for g in range(G):
        Kmax = max(Kmax, blk[g, B_K])
    Mmax = max(Kmax * (Kmax - 1) // 2, 1)
    Ts = np.zeros((G, Kmax, Kmax))
    Ls = np.zeros((G, Kmax, Kmax))
    dLs = np.zeros((G, Mmax, Kmax, Kmax))
    gys = np.zeros((G, Mmax))
    for g in range(G):
        K = blk[g, B_K]
        Lv = blk[g, B_L]
        c0 = blk[g, B_COL]
        osd = blk[g, B_SD]
        oeff = blk[g, B_EFF]
        for a in range(K):
            Ls[g, a, a] = 1.0
        if blk[g, B_CORR] == 1:
            M = K * (K - 1) // 2
            Lc = np.zeros((K, K))
            dL = np.zeros((M, K, K))
            ocpc = blk[g, B_CPC]
            lkj, gy = cpc_cholesky(theta[ocpc:ocpc + M], K, blk_eta[g], Lc, dL)
            lp += lkj
            Ls[g, :K, :K] = Lc
            dLs[g, :M, :K, :K] = dL
            gys[g, :M] = gy
        for a in range(K):
            sd = math.exp(theta[osd + a])
            for b in range(a + 1):
                Ts[g, a, b] = sd * Ls[g, a, b]
        if blk[g, B_CENTRED] == 1:
            for t in range(Lv * K):
                r[oeff + t] = theta[oeff + t]
        else:
            for j in range(Lv):
                for a in range(K):
                    acc = 0.0
                    for b in range(a + 1):
                        acc += Ts[g, a, b] * theta[oeff + j * K + b]
                    r[oeff + j * K + a] = acc
        for i in range(n):
            base = oeff + idx[g, i] * K
            acc = 0.0
            for a in range(K):
                acc += Zv[i, c0 + a] * r[base + a]
            eta[i] += acc

    # likelihood and its gradient in eta
    fam = misc[0]
    g_eta = np.empty(n)
    if fam == 0:
        osig = misc[1]
        sigma = math.exp(theta[osig])
        inv2 = 1.0 / (sigma * sigma)
        ss = 0.0
        for i in range(n):
            e = y[i] - eta[i]
            ss += e * e
            g_eta[i] = e * inv2
        lp += -n * theta[osig] - 0.5 * ss * inv2
        grad[osig] += -n + ss * inv2
    elif fam == 1:
        for i in range(n):
            e = eta[i]
            # log sigmoid(e) = -log1p(exp(-e)), computed stably
            if e > 0:
                log1pexp = e + math.log1p(math.exp(-e))
            else:
                log1pexp = math.log1p(math.exp(e))
            lp += y[i] * e - log1pexp
            g_eta[i] = y[i] - math.exp(e - log1pexp)
    else:
        for i in range(n):
            mu = math.exp(eta[i])
            lp += y[i] * eta[i] - mu
            g_eta[i] = y[i] - mu

    for i in range(n):
        ge = g_eta[i]
        for j in range(p):
            grad[j] += X[i, j] * ge

    g_r = np.zeros(theta.shape[0])
    for g in range(G):
        K = blk[g, B_K]
        Lv = blk[g, B_L]
        c0 = blk[g, B_COL]
        osd = blk[g, B_SD]
        oeff = blk[g, B_EFF]
        for i in range(n):
            base = oeff + idx[g, i] * K
            ge = g_eta[i]
            for a in range(K):
                g_r[base + a] += ge * Zv[i, c0 + a]
        T = Ts[g, :K, :K]
        gT = np.zeros((K, K))
        if blk[g, B_CENTRED] == 1:
            w = np.zeros(K)
            v = np.zeros(K)
            for j in range(Lv):
                base = oeff + j * K
                # w = T^-1 r_j (forward substitution)
                for a in range(K):
                    acc = r[base + a]
                    for b in range(a):
                        acc -= T[a, b] * w[b]
                    w[a] = acc / T[a, a]
                # v = T^-T w (back substitution)
                for a in range(K - 1, -1, -1):
                    acc = w[a]
                    for b in range(a + 1, K):
                        acc -= T[b, a] * v[b]
                    v[a] = acc / T[a, a]
                for a in range(K):
                    lp += -0.5 * w[a] * w[a]
                    grad[base + a] += g_r[base + a] - v[a]
                    for b in range(a + 1):
                        gT[a, b] += v[a] * w[b]
            for a in range(K):
                lp -= Lv * math.log(T[a, a])
                gT[a, a] -= Lv / T[a, a]
        else:
            for j in range(Lv):
                base = oeff + j * K
                for b in range(K):
                    zb = theta[base + b]
                    lp += -0.5 * zb * zb
                    acc = 0.0
                    for a in range(b, K):
                        acc += g_r[base + a] * T[a, b]
                        gT[a, b] += g_r[base + a] * zb
                    grad[base + b] += acc - zb
        # T = diag(sd) L: chain rule to log sd and to L
        for a in range(K):
            sd = math.exp(theta[osd + a])
            acc = 0.0
            for b in range(a + 1):
                acc += gT[a, b] * Ls[g, a, b]
            grad[osd + a] += acc * sd
        if blk[g, B_CORR] == 1:
            M = K * (K - 1) // 2
            ocpc = blk[g, B_CPC]
            for m in range(M):
                acc = gys[g, m]
                for a in range(K):
                    sd = math.exp(theta[osd + a])
                    for b in range(a + 1):
                        acc += gT[a, b] * sd * dLs[g, m, a, b]
                grad[ocpc + m] += acc

    # priors on fixed effects, SDs and sigma; positive ones are sampled on the log scale
    for q in range(pri_i.shape[0]):
        t = pri_i[q, 0]
        if pri_i[q, 2] == 1:
            x = math.exp(theta[t])
            lpq, d = prior_logp_dx(pri_i[q, 1], x, pri_f[q, 0], pri_f[q, 1], pri_f[q, 2])
            lp += lpq + theta[t]
            grad[t] += d * x + 1.0
        else:
            lpq, d = prior_logp_dx(pri_i[q, 1], theta[t], pri_f[q, 0], pri_f[q, 1], pri_f[q, 2])
            lp += lpq
            grad[t] += d
    return lp
