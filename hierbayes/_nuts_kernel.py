"""NUTS in numba: one chain per call, compiled once and cached on disk.

The sampler is Stan's (Hoffman & Gelman 2014; Betancourt 2017): multinomial
sampling over the trajectory, biased progressive sampling between subtrees,
the generalised U-turn criterion with a diagonal metric, and Stan's warm-up
(dual-averaging step size; a diagonal metric re-estimated in doubling windows
after an initial fast phase). The trajectory is built iteratively: a subtree
of 2**depth leapfrog steps checks its own sub-subtrees for U-turns from
momentum checkpoints, as in numpyro's iterative NUTS, so there is no recursion.

The chain runs with the GIL released (``nogil``), so chains run in parallel
threads; ``progress[chain]`` counts finished iterations for the progress bar.
"""

# numba compiles only the legacy np.random API (seeded per thread inside the kernel).
# ruff: noqa: NPY002

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._marginal_kernel import density as logp_grad

MAX_ENERGY_ERROR = 1000.0


@njit(cache=True, nogil=True, error_model="numpy")
def _kinetic(p, m_inv):
    acc = 0.0
    for i in range(p.shape[0]):
        acc += p[i] * p[i] * m_inv[i]
    return 0.5 * acc


@njit(cache=True, nogil=True, error_model="numpy")
def _is_turning(p_left, p_right, rho, m_inv):
    """Generalised U-turn criterion (Betancourt 2017) with a diagonal metric."""
    a = 0.0
    b = 0.0
    for i in range(rho.shape[0]):
        a += p_left[i] * m_inv[i] * rho[i]
        b += p_right[i] * m_inv[i] * rho[i]
    return a <= 0.0 or b <= 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def _leapfrog(q, p, g, eps, m_inv, data):
    for i in range(q.shape[0]):
        p[i] += 0.5 * eps * g[i]
        q[i] += eps * m_inv[i] * p[i]
    lp = logp_grad(q, g, data)
    for i in range(q.shape[0]):
        p[i] += 0.5 * eps * g[i]
    return lp


@njit(cache=True, nogil=True, error_model="numpy")
def _popcount(n):
    c = 0
    while n:
        c += n & 1
        n >>= 1
    return c


@njit(cache=True, nogil=True, error_model="numpy")
def _trailing_ones(n):
    c = 0
    while n & 1:
        c += 1
        n >>= 1
    return c


@njit(cache=True, nogil=True, error_model="numpy")
def nuts_step(q, lp, g, eps, m_inv, max_depth, data, ws):
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
    q_l[:] = q
    p_l[:] = p
    g_l[:] = g
    q_r[:] = q
    p_r[:] = p
    g_r[:] = g
    rho[:] = p
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
            qc[:] = q_r
            pc[:] = p_r
            gc[:] = g_r
            step = eps
        else:
            qc[:] = q_l
            pc[:] = p_l
            gc[:] = g_l
            step = -eps
        sub_log_w = -np.inf
        lp_sub = 0.0
        sub_rho[:] = 0.0
        turning = False
        n_steps = 1 << depth
        for n in range(n_steps):
            lpc = _leapfrog(qc, pc, gc, step, m_inv, data)
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
                q_sub[:] = qc
                g_sub[:] = gc
                lp_sub = lpc
            sub_log_w = new_log_w
            for i in range(dim):
                sub_rho[i] += pc[i]
            if n % 2 == 0:
                k = _popcount(n)
                ckpt_p[k, :] = pc
                ckpt_rho[k, :] = sub_rho
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
            q_r[:] = qc
            p_r[:] = pc
            g_r[:] = gc
        else:
            q_l[:] = qc
            p_l[:] = pc
            g_l[:] = gc
        if diverged or turning:
            break
        # biased progressive sampling: prefer the new subtree
        if math.log(np.random.random()) < sub_log_w - log_w:
            q_new[:] = q_sub
            g_new[:] = g_sub
            lp_new = lp_sub
        log_w = np.logaddexp(log_w, sub_log_w)
        for i in range(dim):
            rho[i] += sub_rho[i]
        depth += 1
        if _is_turning(p_l, p_r, rho, m_inv):
            break
    q[:] = q_new
    g[:] = g_new
    accept = sum_accept / max(n_leapfrog, 1)
    return lp_new, accept, n_leapfrog, depth, diverged, H0


@njit(cache=True, nogil=True, error_model="numpy")
def _find_step_size(q, lp, g, eps, m_inv, data):
    """Stan's heuristic: double or halve eps until one leapfrog's acceptance crosses 0.8."""
    dim = q.shape[0]
    qc = np.empty(dim)
    pc = np.empty(dim)
    gc = np.empty(dim)
    direction = 0
    for _ in range(100):
        qc[:] = q
        gc[:] = g
        for i in range(dim):
            pc[i] = np.random.normal() / math.sqrt(m_inv[i])
        H0 = -lp + _kinetic(pc, m_inv)
        lpc = _leapfrog(qc, pc, gc, eps, m_inv, data)
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
def run_chain(q0, seed, n_tune, n_draws, target_accept, max_depth, data, draws, stats, metric,
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
    lp = logp_grad(q, g, data)
    m_inv = np.ones(dim)
    ws = np.zeros((9 + 2 * max_depth, dim))
    eps = _find_step_size(q, lp, g, 1.0, m_inv, data)

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
        lp, accept, n_lf, depth, diverged, energy = nuts_step(q, lp, g, eps, m_inv, max_depth, data, ws)
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
                mean[:] = 0.0
                m2[:] = 0.0
                count = 0
                win_start = win_end
                win_size *= 2
                # as Stan: a window that would leave less than its double takes the rest
                if win_start + 2 * win_size >= n_tune - term_buf:
                    win_size = n_tune - term_buf - win_start
                win_end = win_start + win_size
                eps = _find_step_size(q, lp, g, eps, m_inv, data)
                mu = math.log(10.0 * eps)
                h_bar = 0.0
                log_eps_bar = 0.0
                t = 0
            if it + 1 == n_tune:
                eps = math.exp(log_eps_bar)
        else:
            k = it - n_tune
            draws[k, :] = q
            stats[k, 0] = lp
            stats[k, 1] = accept
            stats[k, 2] = n_lf
            stats[k, 3] = depth
            stats[k, 4] = 1.0 if diverged else 0.0
            stats[k, 5] = energy
            stats[k, 6] = eps
        progress[chain] = it + 1
    metric[:] = m_inv
    return eps
