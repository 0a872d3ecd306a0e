/* draws.c: exact draws of the group effects that the sampler integrated out.
 *
 * After sampling, each draw of theta gets one draw of the effects from their
 * conditional posterior: the collapsed random-intercept block's (full
 * density, family_gaussian.c) level by level, or every block's (marginal
 * density, marginal.c) through the blocked factor of A. Called from
 * hierbayes.bayes.pack's constrain; work is allocated once per call.
 */
#include "hb.h"

/* Exact draws of the collapsed block's effects: per level, N(tau^2 S_j / D_j, tau^2 sigma^2 / D_j).
 * Returns HB_OK, HB_NOMEM, or HB_BAD_MODEL when the record has no collapsed block. */
int hb_draw_collapsed(const Model *d, const double *thetas, int64_t ndraws, uint64_t seed, double *out) {
    if (d->mode != MODE_FULL || d->collapsed < 0) return HB_BAD_MODEL;
    Rng rng;
    rng_seed(&rng, seed);
    int64_t cg = d->collapsed, osig = d->disp_at, dim = d->dim;
    int64_t Lc = d->blk[cg * B_N + B_L];
    const double *cnt = d->ccnt;
    Work wk;
    int status = work_alloc(&wk, d);
    FullWork *f = &wk.f;
    TW *w = &f->tw;
    double *S = f->S, *r = f->r;
    for (int64_t s = 0; s < ndraws && status == HB_OK; s++) {
        const double *theta = thetas + s * dim;
        build_r(theta, d, r, w);
        linear_predictor(d, theta, &f->rw, r, f->eta);
        for (int64_t j = 0; j < Lc; j++) residuals_sum(d->y, f->eta, f->ge, d->cseg[j], d->cseg[j + 1], &S[j]);
        double s2 = exp(2.0 * theta[osig]);
        double tau = w->T[TIX(w, cg, 0, 0)];
        double t2 = tau * tau;
        for (int64_t j = 0; j < Lc; j++) {
            double D = s2 + cnt[j] * t2;
            out[s * Lc + j] = t2 * S[j] / D + sqrt(t2 * s2 / D) * rng_normal(&rng);
        }
    }
    work_free(&wk);
    return status;
}

/* For each draw of theta, draw the group effects b = T u, u ~ N(A^-1 c, A^-1).
 * Returns HB_OK, HB_NOMEM, or HB_BAD_MODEL for a record that is not marginal. */
int hb_draw_effects(const Model *d, const double *thetas, int64_t ndraws, uint64_t seed, double *out) {
    if (d->mode != MODE_MARGINAL) return HB_BAD_MODEL;
    Rng rng;
    rng_seed(&rng, seed);
    int64_t q = d->q, q1 = d->q1, q2 = d->q2, dim = d->dim;
    int64_t K1 = d->mblk[M_K], L1 = d->mblk[M_L];
    Work wk;
    MargWork *m = &wk.m;
    int status = work_alloc(&wk, d);
    double *e = calloc(q + 1, sizeof(double)), *x = calloc(q + 1, sizeof(double));
    double *wx = calloc(q1 + 1, sizeof(double));
    if (status == HB_OK && (!e || !x || !wx)) status = HB_NOMEM;
    double rhs[K1], xk[K1];
    for (int64_t s = 0; s < ndraws && status == HB_OK; s++) {
        const double *theta = thetas + s * dim;
        double *o = out + s * q;
        factor_T(theta, d, &m->w);
        double sigma2 = exp(2.0 * theta[d->mosig]);
        z_resid(d, theta, m->Ztr);
        tvec(&m->w, d, m->Ztr, m->c, 1);
        for (int64_t i = 0; i < q; i++) m->c[i] /= sigma2;
        double logdet;
        if (!mw_system(d, m, sigma2, &logdet)) {
            for (int64_t i = 0; i < q; i++) o[i] = NAN;
            continue;
        }
        mw_solve(d, m, m->c, m->u);
        /* noise with covariance A^-1: x = L^-T e for the blocked factor L of A */
        for (int64_t i = 0; i < q; i++) e[i] = rng_normal(&rng);
        memset(wx, 0, (q1 + 1) * sizeof(double));
        if (q2 > 0) {
            lower_solve(m->LS, q2, e + q1, x + q1, 1);
            /* L21' x2 = L11^-1 A12 x2 = L11' W' x2 */
            for (int64_t i = 0; i < q2; i++)
                for (int64_t k = 0; k < q1; k++) wx[k] += m->W[i * q1 + k] * x[q1 + i];
        }
        for (int64_t j = 0; j < L1; j++) {
            int64_t base = j * K1;
            const double *Lj = m->L11 + j * K1 * K1;
            for (int64_t a = 0; a < K1; a++) {
                double acc = 0.0;
                for (int64_t l = a; l < K1; l++) acc += Lj[l * K1 + a] * wx[base + l];
                rhs[a] = e[base + a] - acc;
            }
            lower_solve(Lj, K1, rhs, xk, 1);
            for (int64_t a = 0; a < K1; a++) x[base + a] = xk[a];
        }
        for (int64_t i = 0; i < q; i++) m->u[i] += x[i];
        tvec(&m->w, d, m->u, o, 0);
    }
    free(e);
    free(x);
    free(wx);
    work_free(&wk);
    return status;
}
