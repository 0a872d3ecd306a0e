"""hierbayes's numba kernels: the log densities and NUTS, compiled once and cached on disk.

One module on purpose: numba's disk cache is invalidated by a change to the
file a function lives in, not by a change to the functions it calls, so
kernels that call one another must share a file to be recompiled together.

Three parts, in order:

1. The model's log density and gradient (:func:`logp_grad`), read from arrays
   laid out by :func:`hierbayes.logdensity.pack`; with optional centred
   blocks, hierarchical centring of the intercept and of nested factors, and
   one random-intercept block integrated out row by row (Gaussian).
2. Gaussian models with every group effect integrated out
   (:func:`logp_grad_marginal`, :func:`draw_effects`).
3. NUTS (:func:`run_chain`).

Part 2. With ``b = T u``, ``u ~ N(0, I)`` (``T`` block diagonal: each level of block g
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

Part 3. NUTS, one chain per call. The sampler is Stan's (Hoffman & Gelman 2014; Betancourt 2017): multinomial
sampling over the trajectory, biased progressive sampling between subtrees,
the generalised U-turn criterion with a diagonal metric, and Stan's warm-up
(dual-averaging step size; a diagonal metric re-estimated in doubling windows
after an initial fast phase). The trajectory is built iteratively: a subtree
of 2**depth leapfrog steps checks its own sub-subtrees for U-turns from
momentum checkpoints, as in numpyro's iterative NUTS, so there is no recursion.

The chain runs with the GIL released (``nogil``), so chains run in parallel
threads; ``progress[chain]`` counts finished iterations for the progress bar.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# numba compiles only the legacy np.random API (seeded per thread inside the kernel).
# ruff: noqa: NPY002


def _inner(fn=None, **extra):
    """numba's njit for kernels called only from other kernels.

    They get no CPython wrapper: unboxing a tuple of a dozen arrays from Python
    objects is code numba would otherwise generate, and compile, for each one.
    """
    opts = dict(cache=True, nogil=True, error_model="numpy", no_cpython_wrapper=True, **extra)
    if fn is None:
        return lambda f: njit(**opts)(f)
    return njit(**opts)(fn)


# ---- part 1: the log density ----

B_K, B_L, B_COL, B_SD, B_CPC, B_EFF, B_CENTRED, B_CORR, B_ONES, B_ABSORB, B_PARENT, B_PMAP, B_SKIP = range(13)


@_inner
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


# Loops rather than array expressions, slice assignments and ``@`` throughout: each of
# those brings numba's broadcasting machinery (with its error-message formatting) or a
# BLAS call into the compiled code, and compiling them cost most of the cold start.
@_inner
def _fill(a, v):
    for i in range(a.shape[0]):
        a[i] = v


@_inner
def _copy(dst, src):
    for i in range(src.shape[0]):
        dst[i] = src[i]


@_inner
def _matvec(A, x, out, transpose):
    """out = A x, or A' x."""
    n, m = A.shape
    if transpose:
        for j in range(m):
            out[j] = 0.0
        for i in range(n):
            xi = x[i]
            for j in range(m):
                out[j] += A[i, j] * xi
    else:
        for i in range(n):
            acc = 0.0
            for j in range(m):
                acc += A[i, j] * x[j]
            out[i] = acc


@_inner
def cpc_cholesky(y, off, K, eta, L, dL, gy):
    """Correlation Cholesky factor from the partial correlations ``y[off:off + K(K-1)/2]``.

    Fills ``L[:K, :K]``, its forward derivatives ``dL[m]`` = dL/dy_m and the
    gradient ``gy`` of the returned value: the LKJ(eta) log density of ``L L'``
    plus the log-Jacobian (Stan's cholesky_corr_constrain), up to a constant.
    """
    M = K * (K - 1) // 2
    for a in range(K):
        for b in range(K):
            L[a, b] = 0.0
            for m in range(M):
                dL[m, a, b] = 0.0
    for m in range(M):
        gy[m] = 0.0
    L[0, 0] = 1.0
    lp = 0.0
    # exponent of log L[i, i] in the LKJ density times Jacobian: K - i + 2 eta - 3
    k = 0
    dsum = np.zeros(M)
    for i in range(1, K):
        s = 0.0
        _fill(dsum, 0.0)
        for j in range(i):
            z = math.tanh(y[off + k])
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
    return lp


@_inner(inline="always")
def _priors(theta, grad, pri_i, pri_f):
    """Priors on fixed effects, SDs and sigma; positive ones are sampled on the log scale."""
    lp = 0.0
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


@_inner(inline="always")
def _chain_T(theta, grad, gT, K, osd, ocpc, corr, L, dL, gy):
    """Gradient in T = diag(sd) L carried to log sd and to the partial correlations."""
    for a in range(K):
        sd = math.exp(theta[osd + a])
        acc = 0.0
        for b in range(a + 1):
            acc += gT[a, b] * L[a, b]
        grad[osd + a] += acc * sd
    if corr == 1:
        for m in range(K * (K - 1) // 2):
            acc = gy[m]
            for a in range(K):
                sd = math.exp(theta[osd + a])
                for b in range(a + 1):
                    acc += gT[a, b] * sd * dL[m, a, b]
            grad[ocpc + m] += acc


@_inner(inline="always")
def _t_arrays(blk):
    """Work arrays for every block's T, L, dL/dcpc and LKJ gradient (K is column 0 of both block tables)."""
    G = blk.shape[0]
    Kmax = 1
    for g in range(G):
        Kmax = max(Kmax, blk[g, 0])
    Mmax = max(Kmax * (Kmax - 1) // 2, 1)
    return (np.zeros((G, Kmax, Kmax)), np.zeros((G, Kmax, Kmax)), np.zeros((G, Mmax, Kmax, Kmax)),
            np.zeros((G, Mmax)), Kmax)


@_inner(inline="always")
def _block_T(theta, g, K, osd, ocpc, corr, eta, Ts, Ls, dLs, gys):
    """T_g = diag(sd) L_g into Ts[g], L_g from partial correlations if correlated; returns the LKJ term."""
    lp = 0.0
    if corr == 1:
        lp = cpc_cholesky(theta, ocpc, K, eta, Ls[g], dLs[g], gys[g])
    else:
        for a in range(K):
            for b in range(K):
                Ls[g, a, b] = 1.0 if a == b else 0.0
    for a in range(K):
        sd = math.exp(theta[osd + a])
        for b in range(K):
            Ts[g, a, b] = sd * Ls[g, a, b] if b <= a else 0.0
    return lp


@_inner
def _build_r(theta, blk, blk_eta, r, Ts, Ls, dLs, gys):
    """Each block's T = diag(sd) L (with LKJ terms) and its group effects r; returns the LKJ log density."""
    lp = 0.0
    G = blk.shape[0]
    for g in range(G):
        K = blk[g, B_K]
        Lv = blk[g, B_L]
        osd = blk[g, B_SD]
        oeff = blk[g, B_EFF]
        lp += _block_T(theta, g, K, osd, blk[g, B_CPC], blk[g, B_CORR], blk_eta[g], Ts, Ls, dLs, gys)
        if oeff < 0:
            continue  # integrated out: no effects in theta
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
    return lp


@_inner(inline="always")
def _first_fixed_column(blk):
    """1 when a centred block carries the intercept in its level means (hierarchical centring), else 0.

    The rows then skip the fixed-effect intercept column (column 0).
    """
    for g in range(blk.shape[0]):
        if blk[g, B_ABSORB] >= 0:
            return 1
    return 0


# Inlined into their callers: a call per row that passes arrays costs more than the row's work.
@_inner(inline="always")
def _eta_row(i, theta, X, j0, p, G, blk, idx, Zv, r):
    e = 0.0
    for j in range(j0, p):
        e += X[i, j] * theta[j]
    for g in range(G):
        if blk[g, B_SKIP] == 1:
            continue
        K = blk[g, B_K]
        base = blk[g, B_EFF] + idx[i, g] * K
        if blk[g, B_ONES] == 1:
            e += r[base]
        else:
            c0 = blk[g, B_COL]
            for a in range(K):
                e += Zv[i, c0 + a] * r[base + a]
    return e


@_inner(inline="always")
def _scatter_row(i, ge, X, j0, p, G, blk, idx, Zv, grad, g_r):
    for j in range(j0, p):
        grad[j] += X[i, j] * ge
    for g in range(G):
        if blk[g, B_SKIP] == 1:
            continue
        K = blk[g, B_K]
        base = blk[g, B_EFF] + idx[i, g] * K
        if blk[g, B_ONES] == 1:
            g_r[base] += ge
        else:
            c0 = blk[g, B_COL]
            for a in range(K):
                g_r[base + a] += ge * Zv[i, c0 + a]


def logp_grad(theta, grad, data):
    """Log density at ``theta``; its gradient is written into ``grad``.

    One pass over the rows computes the linear predictor, the likelihood and
    the gradient's scatter into fixed and group effects: large data sets are
    read once per evaluation, which is what bounds the speed there.
    """
    X, y, idx, Zv, blk, blk_eta, pri_i, pri_f, misc, pmap = data
    n, p = X.shape
    G = blk.shape[0]
    _fill(grad, 0.0)
    lp = 0.0
    j0 = _first_fixed_column(blk)

    Ts, Ls, dLs, gys, Kmax = _t_arrays(blk)
    r = np.zeros(theta.shape[0])
    lp += _build_r(theta, blk, blk_eta, r, Ts, Ls, dLs, gys)

    fam = misc[0]
    osig = misc[1]
    cg = misc[2]  # a random-intercept block integrated out row by row (Gaussian), or -1
    inv2 = 0.0
    if fam == 0:
        sigma = math.exp(theta[osig])
        inv2 = 1.0 / (sigma * sigma)
    ss = 0.0
    g_r = np.zeros(theta.shape[0])
    if cg >= 0:
        Lc_ = blk[cg, B_L]
        S = np.zeros(Lc_)
        cnt = np.zeros(Lc_)
        res = np.empty(n)
    for i in range(n):
        e = _eta_row(i, theta, X, j0, p, G, blk, idx, Zv, r)
        # likelihood and its derivative in the linear predictor
        if fam == 0:
            d = y[i] - e
            ss += d * d
            if cg >= 0:
                # the collapsed block's level sums; the gradient needs them all: second pass
                res[i] = d
                S[idx[i, cg]] += d
                cnt[idx[i, cg]] += 1.0
                continue
            ge = d * inv2
        elif fam == 1:
            # log sigmoid, computed stably
            if e > 0:
                log1pexp = e + math.log1p(math.exp(-e))
            else:
                log1pexp = math.log1p(math.exp(e))
            lp += y[i] * e - log1pexp
            ge = y[i] - math.exp(e - log1pexp)
        else:
            mu = math.exp(e)
            lp += y[i] * e - mu
            ge = y[i] - mu
        _scatter_row(i, ge, X, j0, p, G, blk, idx, Zv, grad, g_r)
    if fam == 0 and cg < 0:
        lp += -n * theta[osig] - 0.5 * ss * inv2
        grad[osig] += -n + ss * inv2
    elif fam == 0:
        # y_j ~ N(eta_j, sigma^2 I + tau^2 11') per level j of the collapsed block:
        # log det = (n_j - 1) log sigma^2 + log D_j, D_j = sigma^2 + n_j tau^2, and
        # the quadratic form is (d'd - tau^2 S_j^2 / D_j) / sigma^2 (Woodbury).
        s2 = sigma * sigma
        tau = Ts[cg, 0, 0]
        t2 = tau * tau
        dsig2 = 0.5 * ss / (s2 * s2)
        dtau2 = 0.0
        c = np.zeros(Lc_)
        for j in range(Lc_):
            if cnt[j] == 0.0:
                continue
            D = s2 + cnt[j] * t2
            lp += -0.5 * ((cnt[j] - 1.0) * math.log(s2) + math.log(D))
            lp += 0.5 * t2 * S[j] * S[j] / (s2 * D)
            dsig2 += -0.5 * ((cnt[j] - 1.0) / s2 + 1.0 / D)
            dsig2 += -0.5 * t2 * S[j] * S[j] * (D + s2) / (s2 * D) ** 2
            dtau2 += -0.5 * cnt[j] / D + 0.5 * S[j] * S[j] / (D * D)
            c[j] = t2 / D
        lp += -0.5 * ss / s2
        grad[osig] += 2.0 * s2 * dsig2
        grad[blk[cg, B_SD]] += 2.0 * t2 * dtau2
        for i in range(n):
            j = idx[i, cg]
            _scatter_row(i, (res[i] - c[j] * S[j]) * inv2, X, j0, p, G, blk, idx, Zv, grad, g_r)

    for g in range(G):
        if g == cg:
            continue
        K = blk[g, B_K]
        Lv = blk[g, B_L]
        osd = blk[g, B_SD]
        oeff = blk[g, B_EFF]
        kabs = blk[g, B_ABSORB]
        parent = blk[g, B_PARENT]
        T = Ts[g, :K, :K]
        gT = np.zeros((K, K))
        if blk[g, B_CENTRED] == 1:
            w = np.zeros(K)
            v = np.zeros(K)
            for j in range(Lv):
                base = oeff + j * K
                # w = T^-1 (r_j - mu e_k) (forward substitution); mu is the intercept if absorbed
                for a in range(K):
                    acc = r[base + a]
                    if a == kabs:
                        acc -= theta[0]
                    if parent >= 0:
                        # nested in a centred parent block: the prior mean is the parent level's value
                        acc -= theta[blk[parent, B_EFF] + pmap[blk[g, B_PMAP] + j]]
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
                if kabs >= 0:
                    grad[0] += v[kabs]
                if parent >= 0:
                    grad[blk[parent, B_EFF] + pmap[blk[g, B_PMAP] + j]] += v[0]
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
        _chain_T(theta, grad, gT, K, osd, blk[g, B_CPC], blk[g, B_CORR], Ls[g], dLs[g], gys[g])

    lp += _priors(theta, grad, pri_i, pri_f)
    return lp


@njit(cache=True, nogil=True, error_model="numpy")
def draw_collapsed(thetas, data, seed, out):
    """Exact draws of the collapsed block's effects: per level, N(tau^2 S_j / D_j, tau^2 sigma^2 / D_j)."""
    np.random.seed(seed)
    X, y, idx, Zv, blk, blk_eta, pri_i, pri_f, misc, pmap = data
    n, p = X.shape
    G = blk.shape[0]
    cg = misc[2]
    osig = misc[1]
    j0 = _first_fixed_column(blk)
    Ts, Ls, dLs, gys, Kmax = _t_arrays(blk)
    Lc = blk[cg, B_L]
    S = np.zeros(Lc)
    cnt = np.zeros(Lc)
    for d in range(thetas.shape[0]):
        theta = thetas[d]
        r = np.zeros(theta.shape[0])
        _build_r(theta, blk, blk_eta, r, Ts, Ls, dLs, gys)
        _fill(S, 0.0)
        _fill(cnt, 0.0)
        for i in range(n):
            j = idx[i, cg]
            S[j] += y[i] - _eta_row(i, theta, X, j0, p, G, blk, idx, Zv, r)
            cnt[j] += 1.0
        s2 = math.exp(2.0 * theta[osig])
        t2 = Ts[cg, 0, 0] ** 2
        for j in range(Lc):
            D = s2 + cnt[j] * t2
            out[d, j] = t2 * S[j] / D + math.sqrt(t2 * s2 / D) * np.random.normal()


# ---- part 2: group effects integrated out ----

# per-block table: K, L, offset in u, theta offset of log sd, of cpc, correlated
M_K, M_L, M_OFF, M_SD, M_CPC, M_CORR = range(6)


@_inner
def _z_resid(Zty, ZtX, theta):
    """Z'(y - X beta), beta the first columns of theta."""
    q, p = ZtX.shape
    out = np.empty(q)
    for i in range(q):
        acc = Zty[i]
        for j in range(p):
            acc -= ZtX[i, j] * theta[j]
        out[i] = acc
    return out


@_inner
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


@_inner
def _factor(theta, mdata, Ts, Ls, dLs, gys):
    """T for every block (and LKJ terms); returns the LKJ log density."""
    (XtX, Xty, yty, ZtX, Zty, G11, G21, G22, blk, blk_eta, pri_i, pri_f, misc) = mdata
    lp = 0.0
    for g in range(blk.shape[0]):
        lp += _block_T(theta, g, blk[g, M_K], blk[g, M_SD], blk[g, M_CPC], blk[g, M_CORR], blk_eta[g],
                       Ts, Ls, dLs, gys)
    return lp


@_inner
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


@_inner
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


@_inner
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


@_inner
def _chol_dense(S, out):
    """Cholesky of a dense SPD matrix; False if it is not positive definite."""
    n = S.shape[0]
    for j in range(n):
        for i in range(j):
            out[i, j] = 0.0
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


@_inner
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


@_inner
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
    for r in range(q2):
        for c in range(q1):
            A21[r, c] /= sigma2
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
    # S = Tr' G22 Tr / sigma2 - W A21' + I, with Tr' G22 Tr = Tr' (Tr' G22)'
    S = np.empty((q2, q2))
    Tr22 = np.empty((q2, q2))
    _rest_left(Ts, blk, q1, G22, Tr22, True)
    Tr22t = np.empty((q2, q2))
    for i in range(q2):
        for k in range(q2):
            Tr22t[i, k] = Tr22[k, i]
    _rest_left(Ts, blk, q1, Tr22t, S, True)
    for i in range(q2):
        for k in range(q2):
            acc = 0.0
            for c in range(q1):
                acc += W[i, c] * A21[k, c]
            S[i, k] = S[i, k] / sigma2 - acc + (1.0 if i == k else 0.0)
    if not _chol_dense(S, LS):
        return False, 0.0
    for i in range(q2):
        logdet += 2.0 * math.log(LS[i, i])
    return True, logdet


@_inner
def _solve(K1, L1, L11, W, LS, c, u):
    """u = A^-1 c with the blocked factors."""
    q1 = K1 * L1
    q2 = LS.shape[0]
    wu = np.zeros(q1)
    if q2 > 0:
        rhs = np.empty(q2)
        for i in range(q2):
            acc = c[q1 + i]
            for k in range(q1):
                acc -= W[i, k] * c[k]
            rhs[i] = acc
        y = np.empty(q2)
        _lower_solve(LS, rhs, y, False)
        u2 = np.empty(q2)
        _lower_solve(LS, y, u2, True)
        for i in range(q2):
            u[q1 + i] = u2[i]
        _matvec(W, u2, wu, True)
    t = np.empty(K1)
    x = np.empty(K1)
    ck = np.empty(K1)
    for j in range(L1):
        base = j * K1
        for a in range(K1):
            ck[a] = c[base + a]
        _lower_solve(L11[j], ck, t, False)
        _lower_solve(L11[j], t, x, True)
        for a in range(K1):
            u[base + a] = x[a] - wu[base + a]


@_inner
def _workspace(blk, q2, q1):
    Ts, Ls, dLs, gys, Kmax = _t_arrays(blk)
    K1, L1 = blk[0, M_K], blk[0, M_L]
    return (Ts, Ls, dLs, gys, np.zeros((L1, K1, K1)), np.zeros((q2, q1)), np.zeros((q2, q2)),
            np.zeros((q2, q1)), Kmax)


def logp_grad_marginal(theta, grad, mdata):
    """Marginal log density (group effects integrated out) and its gradient."""
    (XtX, Xty, yty, ZtX, Zty, G11, G21, G22, blk, blk_eta, pri_i, pri_f, misc) = mdata
    _fill(grad, 0.0)
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
    XtXb = np.empty(p)
    _matvec(XtX, theta, XtXb, False)
    rr = yty
    for j in range(p):
        rr += theta[j] * (XtXb[j] - 2.0 * Xty[j])
    Ztr = _z_resid(Zty, ZtX, theta)
    c = np.empty(q)
    _tvec(Ts, blk, Ztr, c, True)
    for i in range(q):
        c[i] /= sigma2
    ok, logdet = _system(mdata, Ts, sigma2, L11, W, LS, A21)
    if not ok:
        return -np.inf
    u = np.empty(q)
    _solve(K1, L1, L11, W, LS, c, u)
    uc = 0.0
    uu = 0.0
    for i in range(q):
        uc += u[i] * c[i]
        uu += u[i] * u[i]
    lp += -n * theta[osig] - 0.5 * logdet - 0.5 * (rr / sigma2 - uc)

    b = np.empty(q)
    _tvec(Ts, blk, u, b, False)
    if p > 0:
        ztb = np.empty(p)
        _matvec(ZtX, b, ztb, True)
        for j in range(p):
            grad[j] += (Xty[j] - XtXb[j] - ztb[j]) / sigma2

    # A^-1 where the gradient needs it: first block's diagonal blocks, A21 part, S^-1
    T1 = Ts[0, :K1, :K1]
    Sinv = np.zeros((q2, q2))
    SW = np.zeros((q2, q1))
    if q2 > 0:
        LSinv = np.zeros((q2, q2))
        e = np.zeros(q2)
        col = np.empty(q2)
        for i in range(q2):
            _fill(e, 0.0)
            e[i] = 1.0
            _lower_solve(LS, e, col, False)
            for k in range(q2):
                LSinv[k, i] = col[k]
        # S^-1 = LS^-T LS^-1, and SW = S^-1 W = -A^-1 21
        for i in range(q2):
            for k in range(q2):
                acc = 0.0
                for m in range(q2):
                    acc += LSinv[m, i] * LSinv[m, k]
                Sinv[i, k] = acc
        for i in range(q2):
            for k in range(q1):
                acc = 0.0
                for m in range(q2):
                    acc += Sinv[i, m] * W[m, k]
                SW[i, k] = acc
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
    for r in range(q2):
        acc = 0.0
        for k in range(q1):
            Gb[k] += G21[r, k] * b[q1 + r]
            acc += G21[r, k] * b[k]
        for k in range(q2):
            acc += G22[r, k] * b[q1 + k]
        Gb[q1 + r] += acc
    za = np.empty(q)
    for i in range(q):
        za[i] = (Ztr[i] - Gb[i]) / sigma2
    TrSW = np.zeros((q2, q1))
    if q2 > 0:
        _rest_left(Ts, blk, q1, SW, TrSW, False)  # = -Tr A^-1 21
    GT = np.empty((K1, K1))
    for j in range(L1):
        base = j * K1
        # A11_j^-1 from its factor: columns of L^-T L^-1
        for a in range(K1):
            _fill(ek, 0.0)
            ek[a] = 1.0
            _lower_solve(L11[j], ek, colk, False)
            _lower_solve(L11[j], colk, ek, True)
            for m in range(K1):
                Linv[m, a] = ek[m]
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
        # (G22 Tr) = (Tr' G22)'
        tmp = np.empty((q2, q2))
        _rest_left(Ts, blk, q1, G22, tmp, True)
        G22Tr = np.empty((q2, q2))
        for i in range(q2):
            for k in range(q2):
                G22Tr[i, k] = tmp[k, i]
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

    for g in range(G):
        _chain_T(theta, grad, gT[g], blk[g, M_K], blk[g, M_SD], blk[g, M_CPC], blk[g, M_CORR],
                 Ls[g], dLs[g], gys[g])
    lp += _priors(theta, grad, pri_i, pri_f)
    return lp


@njit(cache=True, nogil=True, error_model="numpy")
def draw_effects(thetas, mdata, seed, out):
    """For each row of ``thetas``, draw the group effects b = T u, u ~ N(A^-1 c, A^-1)."""
    (XtX, Xty, yty, ZtX, Zty, G11, G21, G22, blk, blk_eta, pri_i, pri_f, misc) = mdata
    np.random.seed(seed)
    osig = misc[1]
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
        Ztr = _z_resid(Zty, ZtX, theta)
        _tvec(Ts, blk, Ztr, c, True)
        for i in range(q):
            c[i] /= sigma2
        ok, logdet = _system(mdata, Ts, sigma2, L11, W, LS, A21)
        if not ok:
            for i in range(q):
                out[d, i] = np.nan
            continue
        _solve(K1, L1, L11, W, LS, c, u)
        # noise with covariance A^-1: x = L^-T e for the blocked factor L of A
        for i in range(q):
            e[i] = np.random.normal()
        wx = np.zeros(q1)
        if q2 > 0:
            e2 = np.empty(q2)
            for i in range(q2):
                e2[i] = e[q1 + i]
            x2 = np.empty(q2)
            _lower_solve(LS, e2, x2, True)
            for i in range(q2):
                x[q1 + i] = x2[i]
            # L21' x2 = L11^-1 A12 x2 = L11' W' x2
            _matvec(W, x2, wx, True)
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
        _tvec(Ts, blk, u, out[d], False)


@njit(cache=True, nogil=True, error_model="numpy")
def evaluate(fn, theta, grad, data):
    """One call of a compiled density ``fn`` (see :func:`hierbayes.logdensity.density_function`)."""
    return fn(theta, grad, data)


# ---- part 3: NUTS ----

MAX_ENERGY_ERROR = 1000.0


@_inner
def _kinetic(p, m_inv):
    acc = 0.0
    for i in range(p.shape[0]):
        acc += p[i] * p[i] * m_inv[i]
    return 0.5 * acc


@_inner
def _is_turning(p_left, p_right, rho, m_inv):
    """Generalised U-turn criterion (Betancourt 2017) with a diagonal metric."""
    a = 0.0
    b = 0.0
    for i in range(rho.shape[0]):
        a += p_left[i] * m_inv[i] * rho[i]
        b += p_right[i] * m_inv[i] * rho[i]
    return a <= 0.0 or b <= 0.0


@_inner
def _leapfrog(fn, q, p, g, eps, m_inv, data):
    for i in range(q.shape[0]):
        p[i] += 0.5 * eps * g[i]
        q[i] += eps * m_inv[i] * p[i]
    lp = fn(q, g, data)
    for i in range(q.shape[0]):
        p[i] += 0.5 * eps * g[i]
    return lp


@_inner
def _popcount(n):
    c = 0
    while n:
        c += n & 1
        n >>= 1
    return c


@_inner
def _trailing_ones(n):
    c = 0
    while n & 1:
        c += 1
        n >>= 1
    return c


@_inner
def nuts_step(fn, q, lp, g, eps, m_inv, max_depth, data, ws):
    """One NUTS transition from (q, lp, g); the new state is written in place.

    ``ws`` is a work array of shape (9 + 2 * max_depth, dim). Returns
    (accept_stat, n_leapfrog, depth, diverged, energy).
    """
    dim = q.shape[0]
    p = ws[0]
    for i in range(dim):
        p[i] = np.random.normal() / math.sqrt(m_inv[i])
    H0 = -lp + _kinetic(p, m_inv)
    q_l, p_l, g_l = ws[1], ws[2], ws[3]
    q_r, p_r, g_r = ws[4], ws[5], ws[6]
    rho = ws[7]
    sub_rho = ws[8]
    ckpt_p = ws[9:9 + max_depth]
    ckpt_rho = ws[9 + max_depth:9 + 2 * max_depth]
    _copy(q_l, q)
    _copy(p_l, p)
    _copy(g_l, g)
    _copy(q_r, q)
    _copy(p_r, p)
    _copy(g_r, g)
    _copy(rho, p)
    q_new = q.copy()
    g_new = g.copy()
    lp_new = lp
    q_sub = np.empty(dim)
    g_sub = np.empty(dim)
    qc = np.empty(dim)
    pc = np.empty(dim)
    gc = np.empty(dim)
    tmp = np.empty(dim)
    log_w = 0.0  # log of the trajectory's total weight, relative to the start's
    sum_accept = 0.0
    n_leapfrog = 0
    depth = 0
    diverged = False
    while depth < max_depth:
        forward = np.random.random() < 0.5
        if forward:
            _copy(qc, q_r)
            _copy(pc, p_r)
            _copy(gc, g_r)
            step = eps
        else:
            _copy(qc, q_l)
            _copy(pc, p_l)
            _copy(gc, g_l)
            step = -eps
        sub_log_w = -np.inf
        lp_sub = 0.0
        _fill(sub_rho, 0.0)
        turning = False
        n_steps = 1 << depth
        for n in range(n_steps):
            lpc = _leapfrog(fn, qc, pc, gc, step, m_inv, data)
            n_leapfrog += 1
            H = -lpc + _kinetic(pc, m_inv)
            if not math.isfinite(H) or H - H0 > MAX_ENERGY_ERROR:
                diverged = True
                break
            lw = H0 - H
            sum_accept += 1.0 if lw > 0 else math.exp(lw)
            # progressive uniform (multinomial) sampling within the subtree
            new_log_w = np.logaddexp(sub_log_w, lw)
            if math.log(np.random.random()) < lw - new_log_w:
                _copy(q_sub, qc)
                _copy(g_sub, gc)
                lp_sub = lpc
            sub_log_w = new_log_w
            for i in range(dim):
                sub_rho[i] += pc[i]
            if n % 2 == 0:
                k = _popcount(n)
                _copy(ckpt_p[k], pc)
                _copy(ckpt_rho[k], sub_rho)
            else:
                k_max = _popcount(n >> 1)
                k_min = k_max - _trailing_ones(n) + 1
                for k in range(k_max, k_min - 1, -1):
                    # momentum sum of the sub-subtree that starts at checkpoint k
                    for i in range(dim):
                        tmp[i] = sub_rho[i] - ckpt_rho[k, i] + ckpt_p[k, i]
                    if _is_turning(ckpt_p[k], pc, tmp, m_inv):
                        turning = True
                        break
                if turning:
                    break
        if forward:
            _copy(q_r, qc)
            _copy(p_r, pc)
            _copy(g_r, gc)
        else:
            _copy(q_l, qc)
            _copy(p_l, pc)
            _copy(g_l, gc)
        if diverged or turning:
            break
        # biased progressive sampling: prefer the new subtree
        if math.log(np.random.random()) < sub_log_w - log_w:
            _copy(q_new, q_sub)
            _copy(g_new, g_sub)
            lp_new = lp_sub
        log_w = np.logaddexp(log_w, sub_log_w)
        for i in range(dim):
            rho[i] += sub_rho[i]
        depth += 1
        if _is_turning(p_l, p_r, rho, m_inv):
            break
    _copy(q, q_new)
    _copy(g, g_new)
    accept = sum_accept / max(n_leapfrog, 1)
    return lp_new, accept, n_leapfrog, depth, diverged, H0


@_inner
def _find_step_size(fn, q, lp, g, eps, m_inv, data):
    """Stan's heuristic: double or halve eps until one leapfrog's acceptance crosses 0.8."""
    dim = q.shape[0]
    qc = np.empty(dim)
    pc = np.empty(dim)
    gc = np.empty(dim)
    direction = 0
    for _ in range(100):
        _copy(qc, q)
        _copy(gc, g)
        for i in range(dim):
            pc[i] = np.random.normal() / math.sqrt(m_inv[i])
        H0 = -lp + _kinetic(pc, m_inv)
        lpc = _leapfrog(fn, qc, pc, gc, eps, m_inv, data)
        H = -lpc + _kinetic(pc, m_inv)
        delta = H0 - H if math.isfinite(H) else -np.inf
        new_dir = 1 if delta > math.log(0.8) else -1
        if direction == 0:
            direction = new_dir
        elif new_dir != direction:
            break
        eps = eps * 2.0 if direction == 1 else eps * 0.5
        if eps > 1e7 or eps < 1e-10:
            break
    return eps


@njit(cache=True, nogil=True, error_model="numpy")
def run_chain(fn, q0, seed, n_tune, n_draws, target_accept, max_depth, data, draws, stats, metric,
              progress, chain):
    """Warm up and sample one chain.

    ``draws`` (n_draws, dim) receives the kept draws; ``stats`` (n_draws, 7)
    receives lp, accept_stat, n_leapfrog, tree depth, diverged, energy and
    step size; ``metric`` receives the adapted inverse metric (diagonal).
    Returns the final step size.
    """
    np.random.seed(seed)
    dim = q0.shape[0]
    q = q0.copy()
    g = np.zeros(dim)
    lp = fn(q, g, data)
    m_inv = np.ones(dim)
    ws = np.zeros((9 + 2 * max_depth, dim))
    eps = _find_step_size(fn, q, lp, g, 1.0, m_inv, data)

    # Stan's windows: fast init buffer, doubling slow windows, fast term buffer
    init_buf, term_buf, base_win = 75, 50, 25
    if n_tune < init_buf + term_buf + base_win:
        init_buf = int(0.15 * n_tune)
        term_buf = int(0.1 * n_tune)
        base_win = n_tune - init_buf - term_buf
    win_start = init_buf
    win_size = base_win
    win_end = init_buf + win_size
    mean = np.zeros(dim)
    m2 = np.zeros(dim)
    count = 0
    # dual averaging (Hoffman & Gelman 2014), Stan's constants
    mu = math.log(10.0 * eps)
    h_bar = 0.0
    log_eps_bar = 0.0
    t = 0
    gamma, t0, kappa = 0.05, 10.0, 0.75
    for it in range(n_tune + n_draws):
        lp, accept, n_lf, depth, diverged, energy = nuts_step(fn, q, lp, g, eps, m_inv, max_depth, data, ws)
        if it < n_tune:
            t += 1
            h_bar = (1.0 - 1.0 / (t + t0)) * h_bar + (target_accept - accept) / (t + t0)
            log_eps = mu - math.sqrt(t) / gamma * h_bar
            w = t ** (-kappa)
            log_eps_bar = w * log_eps + (1.0 - w) * log_eps_bar
            eps = math.exp(log_eps)
            if it >= win_start and it < win_end and win_end <= n_tune - term_buf:
                count += 1
                for i in range(dim):
                    delta = q[i] - mean[i]
                    mean[i] += delta / count
                    m2[i] += delta * (q[i] - mean[i])
            if it + 1 == win_end and win_end <= n_tune - term_buf:
                for i in range(dim):
                    var = m2[i] / max(count - 1, 1)
                    m_inv[i] = (count / (count + 5.0)) * var + 1e-3 * (5.0 / (count + 5.0))
                _fill(mean, 0.0)
                _fill(m2, 0.0)
                count = 0
                win_start = win_end
                win_size *= 2
                # as Stan: a window that would leave less than its double takes the rest
                if win_start + 2 * win_size >= n_tune - term_buf:
                    win_size = n_tune - term_buf - win_start
                win_end = win_start + win_size
                eps = _find_step_size(fn, q, lp, g, eps, m_inv, data)
                mu = math.log(10.0 * eps)
                h_bar = 0.0
                log_eps_bar = 0.0
                t = 0
            if it + 1 == n_tune:
                eps = math.exp(log_eps_bar)
        else:
            k = it - n_tune
            _copy(draws[k], q)
            stats[k, 0] = lp
            stats[k, 1] = accept
            stats[k, 2] = n_lf
            stats[k, 3] = depth
            stats[k, 4] = 1.0 if diverged else 0.0
            stats[k, 5] = energy
            stats[k, 6] = eps
        progress[chain] = it + 1
    _copy(metric, m_inv)
    return eps
