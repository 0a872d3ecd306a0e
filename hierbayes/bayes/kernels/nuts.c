/* nuts.c: NUTS as Stan runs it, one chain per call; and hb_logp, the density for Python.
 *
 * Hoffman & Gelman 2014; Betancourt 2017: multinomial sampling, biased
 * progressive sampling between subtrees, the generalised U-turn criterion
 * with a diagonal metric, and Stan's warm-up (dual averaging; a diagonal
 * metric re-estimated in doubling windows). Trajectories are built
 * iteratively: a subtree checks its own sub-subtrees for U-turns from
 * momentum checkpoints (numpyro's iterative NUTS), so there is no recursion.
 *
 * ctypes releases the GIL during a call, so chains run in parallel threads;
 * each checks a stop flag at every leapfrog step, so Ctrl-C ends a fit at
 * once. A chain allocates its work buffers (work.c) once, before its first
 * evaluation; Python's hb_logp calls share one (hb_work_new).
 */
#include "hb.h"

/* ---- the density either way ---- */

double density(const Model *d, const double *theta, double *grad, Work *wk) {
    return d->mode == MODE_MARGINAL ? logp_marg(d, theta, grad, &wk->m) : logp_full(d, theta, grad, &wk->f);
}

/* Work for hb_logp, allocated once for many calls from Python (NULL, with
 * *status HB_NOMEM, HB_BAD_FAMILY, HB_BAD_MODE or HB_BAD_MODEL, if it cannot
 * be); hb_work_free frees it. */
Work *hb_work_new(const Model *d, int *status) {
    Work *w = malloc(sizeof(Work));
    if (w == NULL) {
        *status = HB_NOMEM;
        return NULL;
    }
    *status = work_alloc(w, d);
    if (*status != HB_OK) {
        work_free(w);
        free(w);
        return NULL;
    }
    return w;
}

void hb_work_free(Work *w) {
    if (w == NULL) return;
    work_free(w);
    free(w);
}

/* The log density at theta, its gradient into grad, with work from hb_work_new
 * for this record (one call at a time per work). */
double hb_logp(const Model *d, Work *w, const double *theta, double *grad) { return density(d, theta, grad, w); }

/* ---- NUTS ---- */

#define MAX_ENERGY_ERROR 1000.0

static double kinetic(const double *p, const double *m_inv, int64_t dim) {
    double acc = 0.0;
    for (int64_t i = 0; i < dim; i++) acc += p[i] * p[i] * m_inv[i];
    return 0.5 * acc;
}

/* Generalised U-turn criterion (Betancourt 2017) with a diagonal metric. */
static int is_turning(const double *p_left, const double *p_right, const double *rho, const double *m_inv,
                      int64_t dim) {
    double a = 0.0, b = 0.0;
    for (int64_t i = 0; i < dim; i++) {
        a += p_left[i] * m_inv[i] * rho[i];
        b += p_right[i] * m_inv[i] * rho[i];
    }
    return a <= 0.0 || b <= 0.0;
}

static double leapfrog(const Model *d, Work *wk, double *q, double *p, double *g, double eps, const double *m_inv) {
    int64_t dim = d->dim;
    for (int64_t i = 0; i < dim; i++) {
        p[i] += 0.5 * eps * g[i];
        q[i] += eps * m_inv[i] * p[i];
    }
    double lp = density(d, q, g, wk);
    for (int64_t i = 0; i < dim; i++) p[i] += 0.5 * eps * g[i];
    return lp;
}

static int popcount(uint64_t n) {
    int c = 0;
    while (n) {
        c += (int)(n & 1);
        n >>= 1;
    }
    return c;
}

static int trailing_ones(uint64_t n) {
    int c = 0;
    while (n & 1) {
        c++;
        n >>= 1;
    }
    return c;
}

static double logaddexp(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    double m = a > b ? a : b;
    return m + log1p(exp(-fabs(a - b)));
}

#define COPY(dst, src) memcpy((dst), (src), dim * sizeof(double))

typedef struct {
    double lp, accept, energy;
    int64_t n_leapfrog, depth;
    int diverged, stopped;
} Transition;

/* One NUTS transition from (q, lp, g); the new state is written in place.
 * ws holds (18 + 2 * max_depth) * dim doubles. The trajectory ends early, with
 * stopped set, once *stop is non-zero: a tree of depth 10 on a large data set
 * takes seconds, and Ctrl-C should not wait for it. */
static Transition nuts_step(const Model *d, Work *wk, Rng *rng, double *q, double lp, double *g, double eps,
                            const double *m_inv, int64_t max_depth, double *ws, volatile const int32_t *stop) {
    int64_t dim = d->dim;
    double *p = ws, *q_l = ws + dim, *p_l = ws + 2 * dim, *g_l = ws + 3 * dim;
    double *q_r = ws + 4 * dim, *p_r = ws + 5 * dim, *g_r = ws + 6 * dim;
    double *rho = ws + 7 * dim, *sub_rho = ws + 8 * dim, *q_new = ws + 9 * dim, *g_new = ws + 10 * dim;
    double *q_sub = ws + 11 * dim, *g_sub = ws + 12 * dim, *qc = ws + 13 * dim, *pc = ws + 14 * dim;
    double *gc = ws + 15 * dim, *tmp = ws + 16 * dim, *old_near = ws + 17 * dim;
    double *ckpt_p = ws + 18 * dim, *ckpt_rho = ws + (18 + max_depth) * dim;
    for (int64_t i = 0; i < dim; i++) p[i] = rng_normal(rng) / sqrt(m_inv[i]);
    double H0 = -lp + kinetic(p, m_inv, dim);
    COPY(q_l, q);
    COPY(p_l, p);
    COPY(g_l, g);
    COPY(q_r, q);
    COPY(p_r, p);
    COPY(g_r, g);
    COPY(rho, p);
    COPY(q_new, q);
    COPY(g_new, g);
    double lp_new = lp;
    double log_w = 0.0; /* log of the trajectory's total weight, relative to the start's */
    double sum_accept = 0.0;
    int64_t n_leapfrog = 0, depth = 0;
    int diverged = 0, stopped = 0;
    while (depth < max_depth) {
        int forward = rng_uniform(rng) < 0.5;
        double step;
        if (forward) {
            COPY(qc, q_r);
            COPY(pc, p_r);
            COPY(gc, g_r);
            step = eps;
        } else {
            COPY(qc, q_l);
            COPY(pc, p_l);
            COPY(gc, g_l);
            step = -eps;
        }
        double sub_log_w = -INFINITY, lp_sub = 0.0;
        memset(sub_rho, 0, dim * sizeof(double));
        int turning = 0;
        uint64_t n_steps = (uint64_t)1 << depth;
        for (uint64_t n = 0; n < n_steps; n++) {
            if (*stop) {
                stopped = 1;
                break;
            }
            double lpc = leapfrog(d, wk, qc, pc, gc, step, m_inv);
            n_leapfrog++;
            double H = -lpc + kinetic(pc, m_inv, dim);
            if (!isfinite(H) || H - H0 > MAX_ENERGY_ERROR) {
                diverged = 1;
                break;
            }
            double lw = H0 - H;
            sum_accept += lw > 0 ? 1.0 : exp(lw);
            /* progressive uniform (multinomial) sampling within the subtree */
            double new_log_w = logaddexp(sub_log_w, lw);
            if (log(rng_uniform(rng)) < lw - new_log_w) {
                COPY(q_sub, qc);
                COPY(g_sub, gc);
                lp_sub = lpc;
            }
            sub_log_w = new_log_w;
            for (int64_t i = 0; i < dim; i++) sub_rho[i] += pc[i];
            if (n % 2 == 0) {
                int k = popcount(n);
                COPY(ckpt_p + k * dim, pc);
                COPY(ckpt_rho + k * dim, sub_rho);
            } else {
                int k_max = popcount(n >> 1);
                int k_min = k_max - trailing_ones(n) + 1;
                for (int k = k_max; k >= k_min; k--) {
                    /* momentum sum of the sub-subtree that starts at checkpoint k */
                    for (int64_t i = 0; i < dim; i++) tmp[i] = sub_rho[i] - ckpt_rho[k * dim + i] + ckpt_p[k * dim + i];
                    if (is_turning(ckpt_p + k * dim, pc, tmp, m_inv, dim)) {
                        turning = 1;
                        break;
                    }
                }
                if (turning) break;
            }
        }
        /* the old tree's end next to the new subtree, for the checks across the join */
        COPY(old_near, forward ? p_r : p_l);
        if (forward) {
            COPY(q_r, qc);
            COPY(p_r, pc);
            COPY(g_r, gc);
        } else {
            COPY(q_l, qc);
            COPY(p_l, pc);
            COPY(g_l, gc);
        }
        if (diverged || turning || stopped) break;
        /* biased progressive sampling: prefer the new subtree */
        if (log(rng_uniform(rng)) < sub_log_w - log_w) {
            COPY(q_new, q_sub);
            COPY(g_new, g_sub);
            lp_new = lp_sub;
        }
        log_w = logaddexp(log_w, sub_log_w);
        for (int64_t i = 0; i < dim; i++) rho[i] += sub_rho[i];
        depth++;
        if (is_turning(p_l, p_r, rho, m_inv, dim)) break;
        /* Stan's checks across the join (since Stan 2.26): the old tree with the new
         * subtree's first state, and the new subtree with the old tree's near end.
         * ckpt_p[0] is the subtree's first state; pc its last. */
        const double *old_far = forward ? p_l : p_r;
        for (int64_t i = 0; i < dim; i++) tmp[i] = rho[i] - sub_rho[i] + ckpt_p[i];
        if (is_turning(old_far, ckpt_p, tmp, m_inv, dim)) break;
        for (int64_t i = 0; i < dim; i++) tmp[i] = sub_rho[i] + old_near[i];
        if (is_turning(old_near, pc, tmp, m_inv, dim)) break;
    }
    COPY(q, q_new);
    COPY(g, g_new);
    Transition t;
    t.lp = lp_new;
    t.accept = sum_accept / (double)(n_leapfrog > 0 ? n_leapfrog : 1);
    t.n_leapfrog = n_leapfrog;
    t.depth = depth;
    t.diverged = diverged;
    t.stopped = stopped;
    t.energy = H0;
    return t;
}

/* Stan's heuristic: double or halve eps until one leapfrog's acceptance crosses 0.8. */
static double find_step_size(const Model *d, Work *wk, Rng *rng, const double *q, double lp, const double *g, double eps,
                             const double *m_inv, double *ws) {
    int64_t dim = d->dim;
    double *qc = ws, *pc = ws + dim, *gc = ws + 2 * dim;
    int direction = 0;
    for (int it = 0; it < 100; it++) {
        COPY(qc, q);
        COPY(gc, g);
        for (int64_t i = 0; i < dim; i++) pc[i] = rng_normal(rng) / sqrt(m_inv[i]);
        double H0 = -lp + kinetic(pc, m_inv, dim);
        double lpc = leapfrog(d, wk, qc, pc, gc, eps, m_inv);
        double H = -lpc + kinetic(pc, m_inv, dim);
        double delta = isfinite(H) ? H0 - H : -INFINITY;
        int new_dir = delta > log(0.8) ? 1 : -1;
        if (direction == 0)
            direction = new_dir;
        else if (new_dir != direction)
            break;
        eps = direction == 1 ? eps * 2.0 : eps * 0.5;
        if (eps > 1e7 || eps < 1e-10) break;
    }
    return eps;
}

/* The first metric, before any draws: where the log density's curvature at the
 * start is above 1 (the diagonal of -H, from finite differences of the
 * gradient along random +-1 probes: E[v (H v)] = diag H), the inverse metric
 * takes its reciprocal; elsewhere it stays 1. A unit metric on a model whose
 * log sigma has curvature 2n (n rows) forces a step size of about 1/sqrt(2n)
 * and trajectories of hundreds of steps through the first windows. */
static void initial_metric(const Model *d, Work *wk, Rng *rng, const double *q, const double *g,
                           double *m_inv, double *ws) {
    int64_t dim = d->dim;
    double *qc = ws, *gc = ws + dim, *v = ws + 2 * dim, *diag = ws + 3 * dim;
    const int probes = 8;
    const double h = 1e-5;
    for (int64_t i = 0; i < dim; i++) diag[i] = 0.0;
    for (int k = 0; k < probes; k++) {
        for (int64_t i = 0; i < dim; i++) {
            v[i] = rng_uniform(rng) < 0.5 ? -1.0 : 1.0;
            qc[i] = q[i] + h * v[i];
        }
        density(d, qc, gc, wk);
        for (int64_t i = 0; i < dim; i++) diag[i] += -v[i] * (gc[i] - g[i]) / h / probes;
    }
    for (int64_t i = 0; i < dim; i++) m_inv[i] = isfinite(diag[i]) && diag[i] > 1.0 ? 1.0 / diag[i] : 1.0;
}

/* Warm up and sample one chain. draws (n_draws x dim) receives the kept
 * draws; stats (n_draws x STAT_N) lp, accept_stat, n_leapfrog, tree depth,
 * diverged, energy and step size; metric the adapted inverse metric
 * (diagonal); *step_out the final step size. progress[chain] counts finished
 * iterations. The chain stops within one leapfrog step once *stop is non-zero
 * (set by native.py when sampling is interrupted). Returns HB_OK; HB_NOMEM if
 * memory ran out; HB_STOPPED if stopped, with draws incomplete; HB_BAD_* for a
 * record the kernels cannot evaluate (nothing run). */
/* Stan's windowed adaptation schedule (stan/mcmc/windowed_adaptation.hpp): a fast
 * initial buffer (75 iterations), slow windows that double from 25, and a fast
 * terminal buffer (50), scaled to 15% / 75% / 10% of warm-up when it is shorter
 * than 150; none below 20 iterations. A window ends the slow phase when the one
 * after it would end past the terminal buffer: Stan's compute_next_window tests
 * the next window's last iteration plus twice its size. Writes [start, end)
 * pairs to out (at most max pairs) and returns how many. */
int64_t hb_windows(int64_t n_tune, int64_t *out, int64_t max) {
    if (n_tune < 20) return 0;
    int64_t init_buf = 75, term_buf = 50, base_win = 25;
    if (init_buf + term_buf + base_win > n_tune) {
        init_buf = (int64_t)(0.15 * n_tune);
        term_buf = (int64_t)(0.1 * n_tune);
        base_win = n_tune - (init_buf + term_buf);
    }
    int64_t last = n_tune - term_buf - 1, size = base_win, start = init_buf;
    int64_t next = init_buf + base_win - 1, n = 0; /* next: the window's last iteration */
    while (n < max) {
        out[2 * n] = start;
        out[2 * n + 1] = next + 1;
        n++;
        if (next >= last) break;
        start = next + 1;
        size *= 2;
        next = next + size;
        if (next != last && next + 2 * size >= last + 1) next = last;
    }
    return n;
}

int hb_run_chain(const Model *d, const double *q0, uint64_t seed, int64_t n_tune, int64_t n_draws,
                 double target_accept, int64_t max_depth, double *draws, double *stats, double *metric,
                 volatile int64_t *progress, int64_t chain, double *step_out, volatile const int32_t *stop) {
    int64_t dim = d->dim;
    Rng rng;
    rng_seed(&rng, seed);
    double *q = malloc(dim * sizeof(double)), *g = calloc(dim, sizeof(double));
    double *m_inv = malloc(dim * sizeof(double)), *mean = calloc(dim, sizeof(double));
    double *m2 = calloc(dim, sizeof(double));
    double *ws = calloc((18 + 2 * max_depth) * dim, sizeof(double));
    Work wk;
    int status = work_alloc(&wk, d);
    if (status == HB_OK && (!q || !g || !m_inv || !mean || !m2 || !ws)) status = HB_NOMEM;
    if (status != HB_OK) goto done; /* one release path for both endings */
    COPY(q, q0);
    double lp = density(d, q, g, &wk);
    initial_metric(d, &wk, &rng, q, g, m_inv, ws);
    double eps = find_step_size(d, &wk, &rng, q, lp, g, 1.0, m_inv, ws);

    /* Stan's windows (hb_windows): metric windows [wins[2w], wins[2w + 1]) */
    int64_t wins[2 * HB_MAX_WINDOWS];
    int64_t n_win = hb_windows(n_tune, wins, HB_MAX_WINDOWS), w_at = 0;
    int64_t win_start = n_win ? wins[0] : n_tune, win_end = n_win ? wins[1] : n_tune;
    int64_t count = 0;
    /* dual averaging (Hoffman & Gelman 2014), Stan's constants */
    double mu = log(10.0 * eps), h_bar = 0.0, log_eps_bar = 0.0;
    int64_t t = 0;
    const double gamma = 0.05, t0 = 10.0, kappa = 0.75;
    for (int64_t it = 0; it < n_tune + n_draws; it++) {
        Transition tr = nuts_step(d, &wk, &rng, q, lp, g, eps, m_inv, max_depth, ws, stop);
        if (tr.stopped) {
            status = HB_STOPPED;
            break;
        }
        lp = tr.lp;
        if (it < n_tune) {
            t++;
            h_bar = (1.0 - 1.0 / (t + t0)) * h_bar + (target_accept - tr.accept) / (t + t0);
            double log_eps = mu - sqrt((double)t) / gamma * h_bar;
            double w = pow((double)t, -kappa);
            log_eps_bar = w * log_eps + (1.0 - w) * log_eps_bar;
            eps = exp(log_eps);
            if (it >= win_start && it < win_end) {
                count++;
                for (int64_t i = 0; i < dim; i++) {
                    double delta = q[i] - mean[i];
                    mean[i] += delta / count;
                    m2[i] += delta * (q[i] - mean[i]);
                }
            }
            if (it + 1 == win_end && w_at < n_win) {
                for (int64_t i = 0; i < dim; i++) {
                    double var = m2[i] / (double)(count > 1 ? count - 1 : 1);
                    m_inv[i] = (count / (count + 5.0)) * var + 1e-3 * (5.0 / (count + 5.0));
                    mean[i] = 0.0;
                    m2[i] = 0.0;
                }
                count = 0;
                w_at++;
                win_start = w_at < n_win ? wins[2 * w_at] : n_tune;
                win_end = w_at < n_win ? wins[2 * w_at + 1] : n_tune;
                eps = find_step_size(d, &wk, &rng, q, lp, g, eps, m_inv, ws);
                mu = log(10.0 * eps);
                h_bar = 0.0;
                log_eps_bar = 0.0;
                t = 0;
            }
            /* the start's curvature is a poor guess when the start is far from the
             * posterior: take it again once the chain has moved in */
            if ((it + 1 == 10 || it + 1 == 30) && it + 1 < win_start) {
                initial_metric(d, &wk, &rng, q, g, m_inv, ws);
                eps = find_step_size(d, &wk, &rng, q, lp, g, eps, m_inv, ws);
                mu = log(10.0 * eps);
                h_bar = 0.0;
                log_eps_bar = 0.0;
                t = 0;
            }
            if (it + 1 == n_tune) eps = exp(log_eps_bar);
        } else {
            int64_t k = it - n_tune;
            COPY(draws + k * dim, q);
            double *s = stats + k * STAT_N;
            s[STAT_LP] = lp;
            s[STAT_ACCEPT] = tr.accept;
            s[STAT_N_LEAPFROG] = (double)tr.n_leapfrog;
            s[STAT_DEPTH] = (double)tr.depth;
            s[STAT_DIVERGED] = tr.diverged ? 1.0 : 0.0;
            s[STAT_ENERGY] = tr.energy;
            s[STAT_STEP] = eps;
        }
        progress[chain] = it + 1;
    }
    if (status == HB_OK) {
        COPY(metric, m_inv);
        *step_out = eps;
    }
done:
    work_free(&wk);
    free(q);
    free(g);
    free(m_inv);
    free(mean);
    free(m2);
    free(ws);
    return status;
}
