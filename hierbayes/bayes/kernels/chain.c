/* chain.c: one chain's warm-up and sampling, as Stan's adaptive NUTS runs it.
 *
 * stan::services's run_adaptive_sampler with adapt_diag_e_nuts: the step size
 * is found by init_stepsize from 1, then adapted by dual averaging (Hoffman &
 * Gelman 2014; Stan's gamma 0.05, t0 10, kappa 0.75, mu log(10 * 1)); the
 * diagonal inverse metric is re-estimated at the end of each of Stan's
 * windows (hb_windows) with Stan's regularisation, after which the step size
 * is searched again from its current value and the averaging restarts with mu
 * log(10 eps); warm-up ends with the averaged step size.
 *
 * One addition, ours and optional (curvature = 1): before the first window
 * the inverse metric is not 1 but the reciprocal of the log density's
 * curvature where that exceeds 1, taken at the start and again after 10 and 30
 * iterations, each time followed by the step-size search and an averaging
 * restart, as at a window's end. It is off below 20 warm-up iterations, where
 * Stan estimates no metric either.
 *
 * ctypes releases the GIL during a call, so chains run in parallel threads;
 * each checks a stop flag at every leapfrog step, so Ctrl-C ends a fit at once.
 * A chain allocates its buffers once, before its first evaluation.
 */
#include "hb.h"

#define COPY(dst, src) memcpy((dst), (src), (size_t)dim * sizeof(double))

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

/* Ours: where the log density's curvature at q is above 1 (the diagonal of -H,
 * from finite differences of the gradient along random +-1 probes:
 * E[v (H v)] = diag H), the inverse metric takes its reciprocal; elsewhere 1.
 * A unit metric on a model whose log sigma has curvature 2n (n rows) forces a
 * step size of about 1/sqrt(2n) and trajectories of hundreds of steps through
 * the first windows. ws holds 3 * dim doubles. */
static void curvature_metric(Target *t, Rng *rng, const double *q, const double *g, double *m_inv, double *ws) {
    int64_t dim = t->dim;
    double *qc = ws, *gc = ws + dim, *v = ws + 2 * dim;
    const int probes = 8;
    const double h = 1e-5;
    for (int64_t i = 0; i < dim; i++) m_inv[i] = 0.0;
    for (int k = 0; k < probes; k++) {
        for (int64_t i = 0; i < dim; i++) {
            v[i] = rng_uniform(rng) < 0.5 ? -1.0 : 1.0;
            qc[i] = q[i] + h * v[i];
        }
        target_logp(t, qc, gc);
        for (int64_t i = 0; i < dim; i++) m_inv[i] += -v[i] * (gc[i] - g[i]) / h / probes;
    }
    for (int64_t i = 0; i < dim; i++) m_inv[i] = isfinite(m_inv[i]) && m_inv[i] > 1.0 ? 1.0 / m_inv[i] : 1.0;
}

/* Stan's stepsize_adaptation (dual averaging of log eps). */
typedef struct {
    double mu, s_bar, x_bar;
    int64_t counter;
} DualAveraging;

static void da_restart(DualAveraging *a, double mu) {
    a->mu = mu;
    a->s_bar = 0.0;
    a->x_bar = 0.0;
    a->counter = 0;
}

static double da_learn(DualAveraging *a, double target, double accept) {
    const double gamma = 0.05, t0 = 10.0, kappa = 0.75;
    a->counter++;
    accept = accept > 1.0 ? 1.0 : accept;
    double eta = 1.0 / ((double)a->counter + t0);
    a->s_bar = (1.0 - eta) * a->s_bar + eta * (target - accept);
    double x = a->mu - a->s_bar * sqrt((double)a->counter) / gamma;
    double x_eta = pow((double)a->counter, -kappa);
    a->x_bar = (1.0 - x_eta) * a->x_bar + x_eta * x;
    return exp(x);
}

/* Warm up and sample one chain of target t. draws (n_draws x dim) receives the
 * kept draws; stats (n_draws x STAT_N) the statistics (transition_stats);
 * metric the adapted inverse metric; *step_out the final step size.
 * progress[chain] counts finished iterations. Returns HB_OK; HB_NOMEM;
 * HB_STOPPED once *stop is set (draws incomplete); HB_IMPROPER or
 * HB_NO_STEP_SIZE from the step-size search; HB_METRIC_OVERFLOW when a
 * window's variance is not finite; HB_TARGET_FAILED if the target failed. */
static int run_target(Target *t, const double *q0, uint64_t seed, int64_t n_tune, int64_t n_draws,
                      double target_accept, int64_t max_depth, int64_t curvature, double *draws, double *stats,
                      double *metric, volatile int64_t *progress, int64_t chain, double *step_out,
                      volatile const int32_t *stop) {
    int64_t dim = t->dim, d1 = dim > 0 ? dim : 1;
    Rng rng;
    rng_seed(&rng, seed);
    double *q = malloc((size_t)d1 * sizeof(double)), *g = calloc((size_t)d1, sizeof(double));
    double *m_inv = malloc((size_t)d1 * sizeof(double)), *mean = calloc((size_t)d1, sizeof(double));
    double *m2 = calloc((size_t)d1, sizeof(double)), *ws = calloc(3 * (size_t)d1, sizeof(double));
    Nuts *s = nuts_new(dim, max_depth);
    int status = q && g && m_inv && mean && m2 && ws && s ? HB_OK : HB_NOMEM;
    if (status != HB_OK) goto done; /* one release path for every ending */
    COPY(q, q0);
    double lp = target_logp(t, q, g);
    int64_t wins[2 * HB_MAX_WINDOWS];
    int64_t n_win = hb_windows(n_tune, wins, HB_MAX_WINDOWS), w_at = 0;
    int64_t win_start = n_win ? wins[0] : n_tune, win_end = n_win ? wins[1] : n_tune;
    int use_curvature = curvature && n_win > 0;
    for (int64_t i = 0; i < dim; i++) m_inv[i] = 1.0;
    if (use_curvature) curvature_metric(t, &rng, q, g, m_inv, ws);
    double eps = 1.0;
    status = init_stepsize(s, t, &rng, q, g, lp, m_inv, &eps);
    if (status != HB_OK) goto done;
    DualAveraging da;
    da_restart(&da, log(10.0 * 1.0)); /* Stan's mu: ten times the initial step size, 1 */
    int64_t count = 0;
    for (int64_t it = 0; it < n_tune + n_draws; it++) {
        Transition tr = nuts_transition(s, t, &rng, q, lp, g, eps, m_inv, stop);
        if (tr.stopped) {
            status = HB_STOPPED;
            break;
        }
        if (t->failed) {
            status = HB_TARGET_FAILED;
            break;
        }
        lp = tr.lp;
        if (it < n_tune) {
            eps = da_learn(&da, target_accept, tr.accept);
            int restart = 0;
            if (it >= win_start && it < win_end) {
                count++;
                for (int64_t i = 0; i < dim; i++) {
                    double delta = q[i] - mean[i];
                    mean[i] += delta / (double)count;
                    m2[i] += delta * (q[i] - mean[i]);
                }
            }
            if (w_at < n_win && it + 1 == win_end) {
                double n = (double)count;
                for (int64_t i = 0; i < dim; i++) {
                    double var = m2[i] / (n > 1 ? n - 1.0 : 1.0);
                    m_inv[i] = (n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0));
                    if (!isfinite(m_inv[i])) status = HB_METRIC_OVERFLOW;
                    mean[i] = 0.0;
                    m2[i] = 0.0;
                }
                if (status != HB_OK) break;
                count = 0;
                w_at++;
                win_start = w_at < n_win ? wins[2 * w_at] : n_tune;
                win_end = w_at < n_win ? wins[2 * w_at + 1] : n_tune;
                restart = 1;
            }
            /* ours: the start's curvature is a poor guess when the start is far from
             * the posterior, so it is taken again once the chain has moved in */
            if (use_curvature && (it + 1 == 10 || it + 1 == 30) && it + 1 < win_start) {
                curvature_metric(t, &rng, q, g, m_inv, ws);
                restart = 1;
            }
            if (restart) {
                status = init_stepsize(s, t, &rng, q, g, lp, m_inv, &eps);
                if (status != HB_OK) break;
                da_restart(&da, log(10.0 * eps));
            }
            if (it + 1 == n_tune) eps = exp(da.x_bar);
        } else {
            int64_t k = it - n_tune;
            COPY(draws + k * dim, q);
            transition_stats(stats + k * STAT_N, &tr, eps);
        }
        progress[chain] = it + 1;
    }
    if (status == HB_OK) {
        COPY(metric, m_inv);
        *step_out = eps;
    }
done:
    nuts_free(s);
    free(q);
    free(g);
    free(m_inv);
    free(mean);
    free(m2);
    free(ws);
    return status;
}

/* A chain of the model d (the arguments as run_target's). */
int hb_run_chain(const Model *d, const double *q0, uint64_t seed, int64_t n_tune, int64_t n_draws,
                 double target_accept, int64_t max_depth, int64_t curvature, double *draws, double *stats,
                 double *metric, volatile int64_t *progress, int64_t chain, double *step_out,
                 volatile const int32_t *stop) {
    Work wk;
    int status = work_alloc(&wk, d);
    if (status == HB_OK) {
        ModelTarget mt = {d, &wk};
        Target t = {hb_model_logp, &mt, d->dim, 0};
        status = run_target(&t, q0, seed, n_tune, n_draws, target_accept, max_depth, curvature, draws, stats,
                            metric, progress, chain, step_out, stop);
    }
    work_free(&wk);
    return status;
}

/* A chain of any target in nutpie's calling convention (a known density in tests). */
int hb_run_target(hb_logp_fn fn, void *ctx, int64_t dim, const double *q0, uint64_t seed, int64_t n_tune,
                  int64_t n_draws, double target_accept, int64_t max_depth, int64_t curvature, double *draws,
                  double *stats, double *metric, volatile int64_t *progress, int64_t chain, double *step_out,
                  volatile const int32_t *stop) {
    Target t = {fn, ctx, dim, 0};
    return run_target(&t, q0, seed, n_tune, n_draws, target_accept, max_depth, curvature, draws, stats, metric,
                      progress, chain, step_out, stop);
}
