/* family_gaussian.c: the Gaussian log-likelihood, y ~ N(eta, sigma^2 / w), with its gradient.
 *
 * With no block collapsed, the rows' residuals give the likelihood and the
 * adjoint ge = w (y - eta) / sigma^2; the prior weights w (d->wts, NULL: all
 * one) are precisions, as lmer's, and their 0.5 sum log w, a constant, is
 * left out. A model with weights has no collapsed block (pack). With one random-intercept block
 * integrated out row by row (pack's collapse: the block with the most
 * levels), each level's rows are N(eta_j, sigma^2 I + tau^2 11'), whose
 * inverse and determinant have a closed form; its level sums and per-count
 * terms live in the chain's FullWork (S, cj), and its effects are drawn
 * afterwards by hb_draw_collapsed (draws.c).
 */
#include "hb.h"

/* ge[i] = y[i] - eta[i] over rows [i0, i1); returns the sum of squares. Four
 * accumulators: a single one chains every add on the last (a 4-cycle latency
 * each), and without -ffast-math the compiler may not reorder the sum itself. */
static double residuals(const double *restrict y, const double *restrict eta, double *restrict ge, int64_t i0,
                        int64_t i1) {
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    int64_t i = i0;
    for (; i + 3 < i1; i += 4) {
        double d0 = y[i] - eta[i], d1 = y[i + 1] - eta[i + 1];
        double d2 = y[i + 2] - eta[i + 2], d3 = y[i + 3] - eta[i + 3];
        ge[i] = d0;
        ge[i + 1] = d1;
        ge[i + 2] = d2;
        ge[i + 3] = d3;
        a0 += d0 * d0;
        a1 += d1 * d1;
        a2 += d2 * d2;
        a3 += d3 * d3;
    }
    for (; i < i1; i++) {
        double d0 = y[i] - eta[i];
        ge[i] = d0;
        a0 += d0 * d0;
    }
    return (a0 + a1) + (a2 + a3);
}

/* ge[i] = w[i] (y[i] - eta[i]); returns sum w[i] (y[i] - eta[i])^2, four accumulators as residuals(). */
static double weighted_residuals(const double *restrict y, const double *restrict eta, const double *restrict w,
                                 double *restrict ge, int64_t n) {
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    int64_t i = 0;
    for (; i + 3 < n; i += 4) {
        double d0 = y[i] - eta[i], d1 = y[i + 1] - eta[i + 1];
        double d2 = y[i + 2] - eta[i + 2], d3 = y[i + 3] - eta[i + 3];
        ge[i] = w[i] * d0;
        ge[i + 1] = w[i + 1] * d1;
        ge[i + 2] = w[i + 2] * d2;
        ge[i + 3] = w[i + 3] * d3;
        a0 += ge[i] * d0;
        a1 += ge[i + 1] * d1;
        a2 += ge[i + 2] * d2;
        a3 += ge[i + 3] * d3;
    }
    for (; i < n; i++) {
        double d0 = y[i] - eta[i];
        ge[i] = w[i] * d0;
        a0 += ge[i] * d0;
    }
    return (a0 + a1) + (a2 + a3);
}

/* As residuals(), also writing the rows' sum of residuals into *sum. */
double residuals_sum(const double *restrict y, const double *restrict eta, double *restrict ge,
                            int64_t i0, int64_t i1, double *sum) {
    double a0 = 0.0, a1 = 0.0, s0 = 0.0, s1 = 0.0;
    int64_t i = i0;
    for (; i + 1 < i1; i += 2) {
        double d0 = y[i] - eta[i], d1 = y[i + 1] - eta[i + 1];
        ge[i] = d0;
        ge[i + 1] = d1;
        s0 += d0;
        s1 += d1;
        a0 += d0 * d0;
        a1 += d1 * d1;
    }
    if (i < i1) {
        double d0 = y[i] - eta[i];
        ge[i] = d0;
        s0 += d0;
        a0 += d0 * d0;
    }
    *sum = s0 + s1;
    return a0 + a1;
}

double loglik_gaussian(const Model *d, const double *theta, const double *eta, double *ge, double *grad,
                       FullWork *w, double lp) {
    int64_t n = d->n, osig = d->disp_at, cg = d->collapsed;
    const double *y = d->y;
    double sigma = exp(theta[osig]);
    double inv2 = 1.0 / (sigma * sigma);
    if (cg < 0) {
        /* prior weights w are precisions: row i is N(eta_i, sigma^2 / w_i), up to 0.5 log w_i */
        double ss = d->wts ? weighted_residuals(y, eta, d->wts, ge, n) : residuals(y, eta, ge, 0, n);
        lp += -(double)n * theta[osig] - 0.5 * ss * inv2;
        grad[osig] += -(double)n + ss * inv2;
        for (int64_t i = 0; i < n; i++) ge[i] *= inv2;
        return lp;
    }
    /* y_j ~ N(eta_j, sigma^2 I + tau^2 11') per level j of the collapsed block:
     * log det = (n_j - 1) log sigma^2 + log D_j, D_j = sigma^2 + n_j tau^2, and
     * the quadratic form is (d'd - tau^2 S_j^2 / D_j) / sigma^2 (Woodbury),
     * S_j the level's sum of residuals. D_j depends on the level only through
     * its count n_j, and counts repeat (InstEval: 2,972 students, 86 counts),
     * so the logs and divisions are taken once per count. */
    int64_t Lc = d->blk[cg * B_N + B_L], cmax = w->cmax;
    double *S = w->S, *cj = w->cj;
    const int64_t *seg = d->cseg;
    const double *cnt = d->ccnt;
    double s2 = sigma * sigma;
    double tau = w->tw.T[TIX(&w->tw, cg, 0, 0)];
    double t2 = tau * tau;
    double ss = 0.0;
    for (int64_t j = 0; j < Lc; j++) ss += residuals_sum(y, eta, ge, seg[j], seg[j + 1], &S[j]);
    double dsig2 = 0.5 * ss / (s2 * s2), dtau2 = 0.0, log_s2 = log(s2);
    double *cinv = cj + Lc, *ccount = cinv + cmax + 1; /* per count: 1/D (NaN: not seen), levels */
    for (int64_t c = 0; c <= cmax; c++) {
        cinv[c] = NAN;
        ccount[c] = 0.0;
    }
    double sum_cnt = 0.0, sum_logD = 0.0, sum_invD = 0.0;
    for (int64_t j = 0; j < Lc; j++) {
        if (cnt[j] == 0.0) continue;
        int64_t c = (int64_t)cnt[j];
        double iD = cinv[c];
        if (isnan(iD)) iD = cinv[c] = 1.0 / (s2 + cnt[j] * t2);
        ccount[c] += 1.0;
        double SS = S[j] * S[j];
        sum_cnt += cnt[j] - 1.0;
        sum_invD += iD;
        lp += 0.5 * t2 * SS * iD * inv2;
        /* d/ds2 of t2 SS / (2 s2 D) = -t2 SS (D + s2) / (2 (s2 D)^2) */
        dsig2 += -0.5 * t2 * SS * iD * iD * (2.0 * s2 + cnt[j] * t2) / (s2 * s2);
        dtau2 += -0.5 * cnt[j] * iD + 0.5 * SS * iD * iD;
        cj[j] = t2 * S[j] * iD;
    }
    for (int64_t c = 0; c <= cmax; c++)
        if (!isnan(cinv[c])) sum_logD += ccount[c] * log(s2 + (double)c * t2);
    lp += -0.5 * (sum_cnt * log_s2 + sum_logD);
    dsig2 += -0.5 * (sum_cnt / s2 + sum_invD);
    lp += -0.5 * ss / s2;
    grad[osig] += 2.0 * s2 * dsig2;
    grad[d->blk[cg * B_N + B_SD]] += 2.0 * t2 * dtau2;
    for (int64_t j = 0; j < Lc; j++) {
        double c = cj[j];
        for (int64_t i = seg[j]; i < seg[j + 1]; i++) ge[i] = (ge[i] - c) * inv2;
    }
    return lp;
}
