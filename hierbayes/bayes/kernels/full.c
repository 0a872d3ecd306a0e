/* full.c: the log density with the group effects in theta, and its gradient.
 *
 * Priors (priors.c), LKJ terms (lkj.c), centred or non-centred blocks,
 * hierarchical centring of the intercept and of nested factors, and the
 * response family's log-likelihood (families.c; a Gaussian model may have one
 * random-intercept block integrated out row by row, family_gaussian.c). One
 * pass over the rows computes the linear predictor, then the family's
 * likelihood and its adjoint, then the adjoint's scatter into fixed and group
 * effects: large data sets are read once per evaluation, which is what bounds
 * the speed there. Every buffer comes from the chain's FullWork (work.c).
 */
#include "hb.h"

/* Each block's T (with LKJ terms) and its group effects r; returns the LKJ log density. */
double build_r(const double *theta, const Model *d, double *r, TW *w) {
    double lp = 0.0;
    int64_t ld = w->Kmax;
    for (int64_t g = 0; g < d->G; g++) {
        const int64_t *b = d->blk + g * B_N;
        int64_t K = b[B_K], Lv = b[B_L], oeff = b[B_EFF];
        lp += block_T(theta, g, K, b[B_SD], b[B_CPC], b[B_CORR], d->blk_eta[g], w);
        if (oeff < 0) continue; /* integrated out: no effects in theta */
        if (b[B_CENTRED] == 1) {
            for (int64_t t = 0; t < Lv * K; t++) r[oeff + t] = theta[oeff + t];
        } else {
            const double *T = w->T + TIX(w, g, 0, 0);
            for (int64_t j = 0; j < Lv; j++)
                for (int64_t a = 0; a < K; a++) {
                    double acc = 0.0;
                    for (int64_t c = 0; c <= a; c++) acc += T[a * ld + c] * theta[oeff + j * K + c];
                    r[oeff + j * K + a] = acc;
                }
        }
    }
    return lp;
}

/* 1 when a centred block carries the intercept in its level means (hierarchical
 * centring): the rows then skip the fixed-effect intercept column (column 0). */
int64_t first_fixed_column(const Model *d) {
    for (int64_t g = 0; g < d->G; g++)
        if (d->blk[g * B_N + B_ABSORB] >= 0) return 1;
    return 0;
}

/* The row loops' records of the blocks that enter the rows (Rows, hb.h); 1 if memory ran out. */
int rows_alloc(const Model *d, Rows *rw) {
    int64_t G1 = d->G > 0 ? d->G : 1;
    rw->G = 0;
    rw->K = malloc(5 * G1 * sizeof(int64_t));
    if (!rw->K) return 1;
    rw->eff = rw->K + G1;
    rw->col = rw->K + 2 * G1;
    rw->ones = rw->K + 3 * G1;
    rw->gi = rw->K + 4 * G1;
    for (int64_t g = 0; g < d->G; g++) {
        const int64_t *b = d->blk + g * B_N;
        if (b[B_SKIP] == 1) continue;
        int64_t k = rw->G++;
        rw->K[k] = b[B_K];
        rw->eff[k] = b[B_EFF];
        rw->col[k] = b[B_COL];
        rw->ones[k] = b[B_ONES];
        rw->gi[k] = g;
    }
    return 0;
}

/* eta = X[:, j0:] theta[j0:] + Z r over all rows, a column at a time. */
void linear_predictor(const Model *d, const double *theta, int64_t j0, const Rows *rw, const double *r,
                      double *restrict eta) {
    int64_t n = d->n;
    for (int64_t i = 0; i < n; i++) eta[i] = 0.0;
    for (int64_t j = j0; j < d->p; j++) {
        const double *restrict x = d->Xt + j * n;
        double b = theta[j];
        for (int64_t i = 0; i < n; i++) eta[i] += x[i] * b;
    }
    for (int64_t k = 0; k < rw->G; k++) {
        const int32_t *restrict ix = d->idxT + rw->gi[k] * n;
        int64_t K = rw->K[k];
        if (rw->ones[k]) {
            const double *rr = r + rw->eff[k];
            for (int64_t i = 0; i < n; i++) eta[i] += rr[ix[i]];
        } else {
            for (int64_t a = 0; a < K; a++) {
                const double *restrict z = d->ZvT + (rw->col[k] + a) * n;
                const double *rr = r + rw->eff[k] + a;
                for (int64_t i = 0; i < n; i++) eta[i] += z[i] * rr[(int64_t)ix[i] * K];
            }
        }
    }
}

/* sum x[i] y[i] with four accumulators: a single one chains every add on the
 * last (a 4-cycle latency each), and without -ffast-math the compiler may not
 * reorder the sum itself. */
static double dot(const double *restrict x, const double *restrict y, int64_t n) {
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    int64_t i = 0;
    for (; i + 3 < n; i += 4) {
        a0 += x[i] * y[i];
        a1 += x[i + 1] * y[i + 1];
        a2 += x[i + 2] * y[i + 2];
        a3 += x[i + 3] * y[i + 3];
    }
    for (; i < n; i++) a0 += x[i] * y[i];
    return (a0 + a1) + (a2 + a3);
}

/* The adjoint: grad[j0:] += X[:, j0:]' ge and g_r += Z' ge. */
static void scatter(const Model *d, const double *restrict ge, int64_t j0, const Rows *rw, double *grad,
                    double *g_r) {
    int64_t n = d->n;
    for (int64_t j = j0; j < d->p; j++) {
        grad[j] += dot(d->Xt + j * n, ge, n);
    }
    for (int64_t k = 0; k < rw->G; k++) {
        const int32_t *restrict ix = d->idxT + rw->gi[k] * n;
        int64_t K = rw->K[k];
        if (rw->ones[k]) {
            double *gr = g_r + rw->eff[k];
            for (int64_t i = 0; i < n; i++) gr[ix[i]] += ge[i];
        } else {
            for (int64_t a = 0; a < K; a++) {
                const double *restrict z = d->ZvT + (rw->col[k] + a) * n;
                double *gr = g_r + rw->eff[k] + a;
                for (int64_t i = 0; i < n; i++) gr[(int64_t)ix[i] * K] += ge[i] * z[i];
            }
        }
    }
}

/* Log density at theta; the gradient is written into grad (see the file's header). */
double logp_full(const Model *d, const double *theta, double *grad, FullWork *wk) {
    int64_t G = d->G, dim = d->dim;
    memset(grad, 0, dim * sizeof(double));
    double lp = 0.0;
    int64_t j0 = first_fixed_column(d);
    const Rows *rw = &wk->rw;
    TW *w = &wk->tw;
    /* r is written for every block with effects in theta before it is read; g_r
     * is accumulated (scatter), and a nested parent's part is never scattered */
    double *r = wk->r, *g_r = wk->g_r;
    memset(g_r, 0, dim * sizeof(double));
    int64_t cg = d->collapsed;
    double *gT = wk->gT, *wv = wk->wv, *vv = wk->vv;
    double *eta = wk->eta, *ge = wk->ge;
    lp += build_r(theta, d, r, w);
    linear_predictor(d, theta, j0, rw, r, eta);
    lp = wk->loglik(d, theta, eta, ge, grad, wk, lp);
    scatter(d, ge, j0, rw, grad, g_r);

    int64_t ld = w->Kmax;
    for (int64_t g = 0; g < G; g++) {
        if (g == cg) continue;
        const int64_t *b = d->blk + g * B_N;
        int64_t K = b[B_K], Lv = b[B_L], oeff = b[B_EFF], kabs = b[B_ABSORB], parent = b[B_PARENT];
        const double *T = w->T + TIX(w, g, 0, 0);
        for (int64_t t = 0; t < ld * ld; t++) gT[t] = 0.0;
        if (b[B_CENTRED] == 1) {
            for (int64_t j = 0; j < Lv; j++) {
                int64_t base = oeff + j * K;
                int64_t pidx = parent >= 0 ? d->blk[parent * B_N + B_EFF] + d->pmap[b[B_PMAP] + j] : -1;
                /* w = T^-1 (r_j - mu e_k) (forward substitution); mu is the intercept if absorbed */
                for (int64_t a = 0; a < K; a++) {
                    double acc = r[base + a];
                    if (a == kabs) acc -= theta[0];
                    /* nested in a centred parent block: the prior mean is the parent level's value */
                    if (pidx >= 0) acc -= theta[pidx];
                    for (int64_t c = 0; c < a; c++) acc -= T[a * ld + c] * wv[c];
                    wv[a] = acc / T[a * ld + a];
                }
                /* v = T^-T w (back substitution) */
                for (int64_t a = K - 1; a >= 0; a--) {
                    double acc = wv[a];
                    for (int64_t c = a + 1; c < K; c++) acc -= T[c * ld + a] * vv[c];
                    vv[a] = acc / T[a * ld + a];
                }
                for (int64_t a = 0; a < K; a++) {
                    lp += -0.5 * wv[a] * wv[a];
                    grad[base + a] += g_r[base + a] - vv[a];
                    for (int64_t c = 0; c <= a; c++) gT[a * ld + c] += vv[a] * wv[c];
                }
                if (kabs >= 0) grad[0] += vv[kabs];
                if (pidx >= 0) grad[pidx] += vv[0];
            }
            for (int64_t a = 0; a < K; a++) {
                lp -= (double)Lv * log(T[a * ld + a]);
                gT[a * ld + a] -= (double)Lv / T[a * ld + a];
            }
        } else {
            for (int64_t j = 0; j < Lv; j++) {
                int64_t base = oeff + j * K;
                for (int64_t c = 0; c < K; c++) {
                    double zb = theta[base + c];
                    lp += -0.5 * zb * zb;
                    double acc = 0.0;
                    for (int64_t a = c; a < K; a++) {
                        acc += g_r[base + a] * T[a * ld + c];
                        gT[a * ld + c] += g_r[base + a] * zb;
                    }
                    grad[base + c] += acc - zb;
                }
            }
        }
        chain_T(theta, grad, gT, K, b[B_SD], b[B_CPC], b[B_CORR], w, g);
    }
    lp += priors(theta, grad, d->pri_i, d->pri_f, d->npri);
    return lp;
}
