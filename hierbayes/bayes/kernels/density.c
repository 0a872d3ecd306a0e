/* density.c: the model's log density for the sampler and for Python, and the
 * target a NUTS chain samples.
 *
 * NUTS (nuts.c, chain.c) samples any Target: a log density in nutpie's calling
 * convention (0 on success; the density into *logp, its gradient into grad)
 * with a context pointer. A hierbayes model is one such target (hb_model_logp
 * over a Model and its Work); a test's known density, written in Python and
 * passed by ctypes, is another, so the sampler is tested on targets whose
 * answers are known exactly.
 */
#include "hb.h"

double density(const Model *d, const double *theta, double *grad, Work *wk) {
    return d->mode == MODE_MARGINAL ? logp_marg(d, theta, grad, &wk->m) : logp_full(d, theta, grad, &wk->f);
}

/* The model's density as a target: ctx is a ModelTarget. It cannot fail: a
 * point where it is not finite (a matrix that is not positive definite) gives
 * -inf, which the sampler treats as Stan does an infinite potential. */
int64_t hb_model_logp(uint64_t dim, const double *x, double *grad, double *logp, void *ctx) {
    (void)dim;
    const ModelTarget *m = ctx;
    *logp = density(m->d, x, grad, m->w);
    return 0;
}

/* The target's log density at q, gradient into g. A target that reports an
 * error (a Python callback that raised) gives NaN, which ends the trajectory,
 * and is recorded in t->failed: the chain stops with HB_TARGET_FAILED rather
 * than counting the error as a divergence. */
double target_logp(Target *t, const double *q, double *g) {
    double lp = 0.0;
    int64_t rc = t->fn((uint64_t)t->dim, q, g, &lp, t->ctx);
    if (rc != 0) {
        if (t->failed == 0) t->failed = rc;
        return NAN;
    }
    return lp;
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
