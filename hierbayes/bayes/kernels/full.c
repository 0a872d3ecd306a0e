/* full.c: the log density with the group effects in theta, and its gradient.
 *
 * Priors (priors.c), LKJ terms (lkj.c), centred or non-centred blocks,
 * hierarchical centring of the intercept, of fixed effects constant within a
 * block's levels and of nested factors, and the
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
        lp += block_T(theta, g, K, b[B_SD], b[B_CPC], b[B_CORR], d->blk_par + g * PAR_N, w);
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

/* The row loops' records of the blocks and fixed-effect columns that enter the
 * rows (Rows, hb.h); 1 if memory ran out. */
int rows_alloc(const Model *d, Rows *rw) {
    int64_t G1 = d->G > 0 ? d->G : 1, p = d->p;
    rw->G = 0;
    rw->nx = 0;
    /* one allocation: the five block records, then the columns (freed with K) */
    rw->K = malloc((5 * G1 + p + 1) * sizeof(int64_t));
    if (!rw->K) return 1;
    rw->eff = rw->K + G1;
    rw->col = rw->K + 2 * G1;
    rw->ones = rw->K + 3 * G1;
    rw->gi = rw->K + 4 * G1;
    rw->xc = rw->K + 5 * G1;
    /* a column enters the rows unless a block's level means carry it; xc is
     * first used as the mark */
    for (int64_t j = 0; j < p; j++) rw->xc[j] = 1;
    for (int64_t g = 0; g < d->G; g++) {
        const int64_t *b = d->blk + g * B_N;
        if (b[B_ABSORB] >= 0) rw->xc[0] = 0; /* the intercept: column 0 */
        for (int64_t c = 0; c < b[B_XN]; c++) rw->xc[d->xcol[b[B_XAT] + c]] = 0;
    }
    for (int64_t j = 0; j < p; j++)
        if (rw->xc[j]) rw->xc[rw->nx++] = j;
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

/* eta = offset + X[:, xc] theta[xc] + Z r over all rows, a column at a time. */
void linear_predictor(const Model *d, const double *theta, const Rows *rw, const double *r,
                      double *restrict eta) {
    int64_t n = d->n;
    if (d->offset)
        for (int64_t i = 0; i < n; i++) eta[i] = d->offset[i];
    else
        for (int64_t i = 0; i < n; i++) eta[i] = 0.0;
    /* two columns per pass over eta: half its loads and stores, and the same sums
     * in the same order as one column at a time */
    int64_t m = 0;
    for (; m + 1 < rw->nx; m += 2) {
        int64_t j0 = rw->xc[m], j1 = rw->xc[m + 1];
        const double *restrict x0 = d->Xt + j0 * n, *restrict x1 = d->Xt + j1 * n;
        double b0 = theta[j0], b1 = theta[j1];
        for (int64_t i = 0; i < n; i++) eta[i] = (eta[i] + x0[i] * b0) + x1[i] * b1;
    }
    if (m < rw->nx) {
        const double *restrict x = d->Xt + rw->xc[m] * n;
        double b = theta[rw->xc[m]];
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

/* The adjoint: grad[xc] += X[:, xc]' ge and g_r += Z' ge. */
static void scatter(const Model *d, const double *restrict ge, const Rows *rw, double *grad, double *g_r) {
    int64_t n = d->n;
    for (int64_t m = 0; m < rw->nx; m++) {
        int64_t j = rw->xc[m];
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
    linear_predictor(d, theta, rw, r, eta);
    lp = wk->loglik(d, theta, eta, ge, grad, wk, lp);
    scatter(d, ge, rw, grad, g_r);

    int64_t ld = w->Kmax;
    for (int64_t g = 0; g < G; g++) {
        if (g == cg) continue;
        const int64_t *b = d->blk + g * B_N;
        int64_t K = b[B_K], Lv = b[B_L], oeff = b[B_EFF], kabs = b[B_ABSORB], parent = b[B_PARENT];
        /* fixed effects constant within this block's levels, carried by term kx's level means */
        int64_t kx = b[B_XTERM], nxg = b[B_XN];
        const int64_t *xc = d->xcol + b[B_XAT];
        const double *xv = d->xlev + b[B_XVAL];
        const double *T = w->T + TIX(w, g, 0, 0);
        for (int64_t t = 0; t < ld * ld; t++) gT[t] = 0.0;
        if (b[B_CENTRED] == 1) {
            for (int64_t j = 0; j < Lv; j++) {
                int64_t base = oeff + j * K;
                int64_t pidx = parent >= 0 ? d->blk[parent * B_N + B_EFF] + d->pmap[b[B_PMAP] + j] : -1;
                const double *xj = xv + j * nxg;
                double shift = 0.0;
                for (int64_t c = 0; c < nxg; c++) shift += xj[c] * theta[xc[c]];
                /* w = T^-1 (r_j - mu_j) (forward substitution); mu_j is the intercept if absorbed,
                 * plus the carried fixed effects' part of the linear predictor at level j */
                for (int64_t a = 0; a < K; a++) {
                    double acc = r[base + a];
                    if (a == kabs) acc -= theta[0];
                    if (a == kx) acc -= shift;
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
                if (kx >= 0)
                    for (int64_t c = 0; c < nxg; c++) grad[xc[c]] += vv[kx] * xj[c];
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
