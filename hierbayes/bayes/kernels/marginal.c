/* marginal.c: the Gaussian log density with every group effect integrated out, and its gradient.
 *
 * With b = T u, u ~ N(0, I), y ~ N(X beta + Z b, sigma^2 I):
 *
 *   log p(y) = -n log sigma - log|A| / 2 - (r'r / sigma^2 - c' u_hat) / 2,
 *
 * r = y - X beta, A = T'Z'ZT / sigma^2 + I, c = T'Z'r / sigma^2 and
 * u_hat = A^-1 c, from cross-products made once (hierbayes.bayes.pack), so an
 * evaluation costs nothing per row. A is factored in blocks, as MixedModels.jl
 * does: the first block's levels are independent K x K blocks, the other
 * blocks form a dense Schur complement (mw_system, mw_solve, also used by the
 * exact draws in draws.c). Gradients are derived in docs/sampling.md. Every
 * buffer comes from the chain's MargWork (work.c).
 */
#include "hb.h"

/* Cholesky of a small SPD matrix A (K x K) into out; 0 if not positive definite. */
static int chol_small(const double *A, double *out, int64_t K) {
    for (int64_t i = 0; i < K; i++) {
        for (int64_t j = 0; j <= i; j++) {
            double s = A[i * K + j];
            for (int64_t k = 0; k < j; k++) s -= out[i * K + k] * out[j * K + k];
            if (i == j) {
                if (!(s > 0.0)) return 0;
                out[i * K + i] = sqrt(s);
            } else {
                out[i * K + j] = s / out[j * K + j];
            }
        }
        for (int64_t j = i + 1; j < K; j++) out[i * K + j] = 0.0;
    }
    return 1;
}

/* Solve L x = b (or L' x = b) for lower-triangular L (n x n); out may not alias b. */
void lower_solve(const double *L, int64_t n, const double *b, double *out, int transpose) {
    if (!transpose) {
        for (int64_t i = 0; i < n; i++) {
            double acc = b[i];
            for (int64_t k = 0; k < i; k++) acc -= L[i * n + k] * out[k];
            out[i] = acc / L[i * n + i];
        }
    } else {
        for (int64_t i = n - 1; i >= 0; i--) {
            double acc = b[i];
            for (int64_t k = i + 1; k < n; k++) acc -= L[k * n + i] * out[k];
            out[i] = acc / L[i * n + i];
        }
    }
}

/* out = T u (or T' u) for the block-diagonal T. */
void tvec(const TW *w, const Model *d, const double *u, double *out, int transpose) {
    int64_t ld = w->Kmax;
    for (int64_t g = 0; g < d->mG; g++) {
        const int64_t *b = d->mblk + g * M_N;
        int64_t K = b[M_K], L = b[M_L], off = b[M_OFF];
        const double *T = w->T + TIX(w, g, 0, 0);
        for (int64_t j = 0; j < L; j++) {
            int64_t base = off + j * K;
            for (int64_t a = 0; a < K; a++) {
                double acc = 0.0;
                if (transpose)
                    for (int64_t c = a; c < K; c++) acc += T[c * ld + a] * u[base + c];
                else
                    for (int64_t c = 0; c <= a; c++) acc += T[a * ld + c] * u[base + c];
                out[base + a] = acc;
            }
        }
    }
}

/* out = Tr Mat (or Tr' Mat) for the rest blocks' block-diagonal T; Mat is q2 x m. */
static void rest_left(const TW *w, const Model *d, const double *Mat, int64_t m, double *out, int transpose) {
    int64_t ld = w->Kmax;
    for (int64_t g = 1; g < d->mG; g++) {
        const int64_t *b = d->mblk + g * M_N;
        int64_t K = b[M_K], L = b[M_L], off = b[M_OFF] - d->q1;
        const double *T = w->T + TIX(w, g, 0, 0);
        for (int64_t j = 0; j < L; j++) {
            int64_t base = off + j * K;
            for (int64_t a = 0; a < K; a++)
                for (int64_t c = 0; c < m; c++) {
                    double acc = 0.0;
                    if (transpose)
                        for (int64_t e = a; e < K; e++) acc += T[e * ld + a] * Mat[(base + e) * m + c];
                    else
                        for (int64_t e = 0; e <= a; e++) acc += T[a * ld + e] * Mat[(base + e) * m + c];
                    out[(base + a) * m + c] = acc;
                }
        }
    }
}

/* out = Mat T1blk, T1 repeated over the first block's levels; Mat is rows x q1. */
static void first_right(const double *T1, int64_t ld, int64_t K1, int64_t L1, const double *Mat, int64_t rows,
                        double *out) {
    int64_t q1 = K1 * L1;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < L1; j++) {
            int64_t base = j * K1;
            for (int64_t b = 0; b < K1; b++) {
                double acc = 0.0;
                for (int64_t a = b; a < K1; a++) acc += Mat[r * q1 + base + a] * T1[a * ld + b];
                out[r * q1 + base + b] = acc;
            }
        }
}

/* Cholesky of a dense SPD matrix; 0 if not positive definite. */
static int chol_dense(const double *S, int64_t n, double *out) {
    for (int64_t j = 0; j < n; j++) {
        for (int64_t i = 0; i < j; i++) out[i * n + j] = 0.0;
        double s = S[j * n + j];
        for (int64_t k = 0; k < j; k++) s -= out[j * n + k] * out[j * n + k];
        if (!(s > 0.0)) return 0;
        double dj = sqrt(s);
        out[j * n + j] = dj;
        for (int64_t i = j + 1; i < n; i++) {
            double t = S[i * n + j];
            for (int64_t k = 0; k < j; k++) t -= out[i * n + k] * out[j * n + k];
            out[i * n + j] = t / dj;
        }
    }
    return 1;
}

/* T for every block (and LKJ terms); returns the LKJ log density. */
double factor_T(const double *theta, const Model *d, TW *w) {
    double lp = 0.0;
    for (int64_t g = 0; g < d->mG; g++) {
        const int64_t *b = d->mblk + g * M_N;
        lp += block_T(theta, g, b[M_K], b[M_SD], b[M_CPC], b[M_CORR], d->mblk_par + g * PAR_N, w);
    }
    return lp;
}

/* Factor A = T'GT/sigma^2 + I in blocks; returns 0 if not positive definite, else 1 and log det A. */
int mw_system(const Model *d, MargWork *m, double sigma2, double *logdet) {
    int64_t K1 = d->mblk[M_K], L1 = d->mblk[M_L], q1 = d->q1, q2 = d->q2, ld = m->w.Kmax;
    const double *T1 = m->w.T;
    double A[K1 * K1];
    *logdet = 0.0;
    for (int64_t j = 0; j < L1; j++) {
        const double *G = d->G11 + j * K1 * K1;
        for (int64_t a = 0; a < K1; a++)
            for (int64_t b = 0; b <= a; b++) {
                double acc = 0.0;
                for (int64_t k = a; k < K1; k++)
                    for (int64_t l = b; l < K1; l++) acc += T1[k * ld + a] * G[k * K1 + l] * T1[l * ld + b];
                A[a * K1 + b] = acc / sigma2 + (a == b ? 1.0 : 0.0);
                A[b * K1 + a] = A[a * K1 + b];
            }
        double *Lj = m->L11 + j * K1 * K1;
        if (!chol_small(A, Lj, K1)) return 0;
        for (int64_t a = 0; a < K1; a++) *logdet += 2.0 * log(Lj[a * K1 + a]);
    }
    if (q2 == 0) return 1;
    /* A21 = Tr' G21 T1blk / sigma2 */
    rest_left(&m->w, d, d->G21, q1, m->tmp, 1);
    first_right(T1, ld, K1, L1, m->tmp, q2, m->A21);
    for (int64_t t = 0; t < q2 * q1; t++) m->A21[t] /= sigma2;
    /* W_j = A21_j A11_j^-1, row by row through the level's Cholesky factor */
    double row[K1], t1[K1], wv[K1];
    for (int64_t j = 0; j < L1; j++) {
        int64_t base = j * K1;
        const double *Lj = m->L11 + j * K1 * K1;
        for (int64_t r = 0; r < q2; r++) {
            for (int64_t a = 0; a < K1; a++) row[a] = m->A21[r * q1 + base + a];
            lower_solve(Lj, K1, row, t1, 0);
            lower_solve(Lj, K1, t1, wv, 1);
            for (int64_t a = 0; a < K1; a++) m->W[r * q1 + base + a] = wv[a];
        }
    }
    /* S = Tr' G22 Tr / sigma2 - W A21' + I, with Tr' G22 Tr = Tr' (Tr' G22)' */
    rest_left(&m->w, d, d->G22, q2, m->Tr22, 1);
    for (int64_t i = 0; i < q2; i++)
        for (int64_t k = 0; k < q2; k++) m->Tr22t[i * q2 + k] = m->Tr22[k * q2 + i];
    rest_left(&m->w, d, m->Tr22t, q2, m->S, 1);
    for (int64_t i = 0; i < q2; i++)
        for (int64_t k = 0; k < q2; k++) {
            double acc = 0.0;
            const double *Wi = m->W + i * q1, *Ak = m->A21 + k * q1;
            for (int64_t c = 0; c < q1; c++) acc += Wi[c] * Ak[c];
            m->S[i * q2 + k] = m->S[i * q2 + k] / sigma2 - acc + (i == k ? 1.0 : 0.0);
        }
    if (!chol_dense(m->S, q2, m->LS)) return 0;
    for (int64_t i = 0; i < q2; i++) *logdet += 2.0 * log(m->LS[i * q2 + i]);
    return 1;
}

/* u = A^-1 c with the blocked factors. */
void mw_solve(const Model *d, MargWork *m, const double *c, double *u) {
    int64_t K1 = d->mblk[M_K], L1 = d->mblk[M_L], q1 = d->q1, q2 = d->q2;
    double *wu = m->wu; /* accumulated: zeroed per solve */
    memset(wu, 0, (q1 + 1) * sizeof(double));
    if (q2 > 0) {
        double *rhs = m->rhs, *y = m->ys;
        for (int64_t i = 0; i < q2; i++) {
            double acc = c[q1 + i];
            for (int64_t k = 0; k < q1; k++) acc -= m->W[i * q1 + k] * c[k];
            rhs[i] = acc;
        }
        lower_solve(m->LS, q2, rhs, y, 0);
        lower_solve(m->LS, q2, y, u + q1, 1);
        /* wu = W' u2 */
        for (int64_t i = 0; i < q2; i++) {
            double ui = u[q1 + i];
            for (int64_t k = 0; k < q1; k++) wu[k] += m->W[i * q1 + k] * ui;
        }
    }
    double t[K1], x[K1];
    for (int64_t j = 0; j < L1; j++) {
        int64_t base = j * K1;
        const double *Lj = m->L11 + j * K1 * K1;
        lower_solve(Lj, K1, c + base, t, 0);
        lower_solve(Lj, K1, t, x, 1);
        for (int64_t a = 0; a < K1; a++) u[base + a] = x[a] - wu[base + a];
    }
}

/* Z'(y - X beta), beta the first columns of theta. */
void z_resid(const Model *d, const double *theta, double *out) {
    for (int64_t i = 0; i < d->q; i++) {
        double acc = d->Zty[i];
        for (int64_t j = 0; j < d->mp; j++) acc -= d->ZtX[i * d->mp + j] * theta[j];
        out[i] = acc;
    }
}

/* Marginal log density (group effects integrated out) and its gradient. */
double logp_marg(const Model *d, const double *theta, double *grad, MargWork *m) {
    int64_t dim = d->dim, p = d->mp, G = d->mG, q = d->q, q1 = d->q1, q2 = d->q2;
    int64_t K1 = d->mblk[M_K], L1 = d->mblk[M_L];
    memset(grad, 0, dim * sizeof(double));
    double lp;
    /* the gradient's buffers: each is written in full before it is read (those
     * of size q2 only when q2 > 0), except gT and Gb, which are accumulated */
    double *Sinv = m->Sinv, *SW = m->SW, *LSinv = m->LSinv, *e = m->e, *col = m->col, *gT = m->gT,
           *Gb = m->Gb, *za = m->za, *TrSW = m->TrSW, *GT21 = m->GT21, *G22Tr = m->G22Tr;
    int64_t ld = m->w.Kmax;
    lp = factor_T(theta, d, &m->w);
    double sigma2 = exp(2.0 * theta[d->mosig]);
    double *XtXb = m->XtXb;
    for (int64_t i = 0; i < p; i++) {
        double acc = 0.0;
        for (int64_t j = 0; j < p; j++) acc += d->XtX[i * p + j] * theta[j];
        XtXb[i] = acc;
    }
    double rr = d->yty;
    for (int64_t j = 0; j < p; j++) rr += theta[j] * (XtXb[j] - 2.0 * d->Xty[j]);
    z_resid(d, theta, m->Ztr);
    tvec(&m->w, d, m->Ztr, m->c, 1);
    for (int64_t i = 0; i < q; i++) m->c[i] /= sigma2;
    double logdet;
    if (!mw_system(d, m, sigma2, &logdet)) {
        lp = -INFINITY;
        goto done;
    }
    mw_solve(d, m, m->c, m->u);
    double uc = 0.0, uu = 0.0;
    for (int64_t i = 0; i < q; i++) {
        uc += m->u[i] * m->c[i];
        uu += m->u[i] * m->u[i];
    }
    lp += -(double)d->mn * theta[d->mosig] - 0.5 * logdet - 0.5 * (rr / sigma2 - uc);
    tvec(&m->w, d, m->u, m->b, 0);
    for (int64_t j = 0; j < p; j++) {
        double ztb = 0.0;
        for (int64_t i = 0; i < q; i++) ztb += d->ZtX[i * p + j] * m->b[i];
        grad[j] += (d->Xty[j] - XtXb[j] - ztb) / sigma2;
    }

    /* A^-1 where the gradient needs it: the first block's diagonal blocks, the A21 part, S^-1 */
    const double *T1 = m->w.T;
    memset(gT, 0, (G * ld * ld + 1) * sizeof(double));
    memset(Gb, 0, (q + 1) * sizeof(double));
    if (q2 > 0) {
        for (int64_t i = 0; i < q2; i++) {
            memset(e, 0, q2 * sizeof(double));
            e[i] = 1.0;
            lower_solve(m->LS, q2, e, col, 0);
            for (int64_t k = 0; k < q2; k++) LSinv[k * q2 + i] = col[k];
        }
        /* S^-1 = LS^-T LS^-1, and SW = S^-1 W = -A^-1 21 */
        for (int64_t i = 0; i < q2; i++)
            for (int64_t k = 0; k < q2; k++) {
                double acc = 0.0;
                for (int64_t l = 0; l < q2; l++) acc += LSinv[l * q2 + i] * LSinv[l * q2 + k];
                Sinv[i * q2 + k] = acc;
            }
        for (int64_t i = 0; i < q2; i++)
            for (int64_t k = 0; k < q1; k++) {
                double acc = 0.0;
                for (int64_t l = 0; l < q2; l++) acc += Sinv[i * q2 + l] * m->W[l * q1 + k];
                SW[i * q1 + k] = acc;
            }
    }
    double tr = 0.0;
    for (int64_t i = 0; i < q2; i++) tr += Sinv[i * q2 + i];
    /* Z'alpha = (Z'r - G b) / sigma2 */
    for (int64_t j = 0; j < L1; j++) {
        int64_t base = j * K1;
        const double *Gj = d->G11 + j * K1 * K1;
        for (int64_t a = 0; a < K1; a++) {
            double acc = 0.0;
            for (int64_t l = 0; l < K1; l++) acc += Gj[a * K1 + l] * m->b[base + l];
            Gb[base + a] = acc;
        }
    }
    for (int64_t r = 0; r < q2; r++) {
        double acc = 0.0;
        for (int64_t k = 0; k < q1; k++) {
            Gb[k] += d->G21[r * q1 + k] * m->b[q1 + r];
            acc += d->G21[r * q1 + k] * m->b[k];
        }
        for (int64_t k = 0; k < q2; k++) acc += d->G22[r * q2 + k] * m->b[q1 + k];
        Gb[q1 + r] += acc;
    }
    for (int64_t i = 0; i < q; i++) za[i] = (m->Ztr[i] - Gb[i]) / sigma2;
    if (q2 > 0) rest_left(&m->w, d, SW, q1, TrSW, 0); /* = -Tr A^-1 21 */
    {
        double Ainv[K1 * K1], Linv[K1 * K1], ek[K1], colk[K1], GT[K1 * K1];
        for (int64_t j = 0; j < L1; j++) {
            int64_t base = j * K1;
            const double *Lj = m->L11 + j * K1 * K1;
            const double *Gj = d->G11 + j * K1 * K1;
            /* A11_j^-1 from its factor: columns of L^-T L^-1 */
            for (int64_t a = 0; a < K1; a++) {
                for (int64_t l = 0; l < K1; l++) ek[l] = l == a ? 1.0 : 0.0;
                lower_solve(Lj, K1, ek, colk, 0);
                lower_solve(Lj, K1, colk, ek, 1);
                for (int64_t l = 0; l < K1; l++) Linv[l * K1 + a] = ek[l];
            }
            for (int64_t a = 0; a < K1; a++) {
                for (int64_t l = 0; l < K1; l++) {
                    double acc = Linv[a * K1 + l];
                    for (int64_t r = 0; r < q2; r++) acc += m->W[r * q1 + base + a] * SW[r * q1 + base + l];
                    Ainv[a * K1 + l] = acc;
                }
                tr += Ainv[a * K1 + a];
            }
            for (int64_t a = 0; a < K1; a++)
                for (int64_t l = 0; l < K1; l++) {
                    double acc = 0.0;
                    for (int64_t k = l; k < K1; k++) acc += Gj[a * K1 + k] * T1[k * ld + l];
                    GT[a * K1 + l] = acc;
                }
            for (int64_t a = 0; a < K1; a++)
                for (int64_t l = 0; l <= a; l++) {
                    double acc = 0.0;
                    for (int64_t k = 0; k < K1; k++) acc += GT[a * K1 + k] * Ainv[k * K1 + l];
                    /* the rest's part of (G T A^-1)_jj: G12_j Tr A^-1 21_j */
                    for (int64_t r = 0; r < q2; r++) acc -= d->G21[r * q1 + base + a] * TrSW[r * q1 + base + l];
                    gT[a * ld + l] += -acc / sigma2 + za[base + a] * m->u[base + l];
                }
        }
    }
    if (q2 > 0) {
        first_right(T1, ld, K1, L1, d->G21, q2, GT21);
        /* (G22 Tr) = (Tr' G22)' */
        rest_left(&m->w, d, d->G22, q2, m->Tr22, 1);
        for (int64_t i = 0; i < q2; i++)
            for (int64_t k = 0; k < q2; k++) G22Tr[i * q2 + k] = m->Tr22[k * q2 + i];
        for (int64_t g = 1; g < G; g++) {
            const int64_t *b = d->mblk + g * M_N;
            int64_t K = b[M_K], L = b[M_L], off = b[M_OFF];
            double *gTg = gT + g * ld * ld;
            for (int64_t j = 0; j < L; j++) {
                int64_t r0 = off + j * K - q1;
                for (int64_t a = 0; a < K; a++)
                    for (int64_t l = 0; l <= a; l++) {
                        double acc = 0.0;
                        for (int64_t c = 0; c < q1; c++) acc -= GT21[(r0 + a) * q1 + c] * SW[(r0 + l) * q1 + c];
                        for (int64_t k = 0; k < q2; k++) acc += G22Tr[(r0 + a) * q2 + k] * Sinv[k * q2 + r0 + l];
                        gTg[a * ld + l] += -acc / sigma2 + za[q1 + r0 + a] * m->u[q1 + r0 + l];
                    }
            }
        }
    }
    grad[d->mosig] += -((double)d->mn - (double)q + tr) + (rr - sigma2 * (uc + uu)) / sigma2;
    for (int64_t g = 0; g < G; g++) {
        const int64_t *b = d->mblk + g * M_N;
        chain_T(theta, grad, gT + g * ld * ld, b[M_K], b[M_SD], b[M_CPC], b[M_CORR], &m->w, g);
    }
    lp += priors(theta, grad, d->mpri_i, d->mpri_f, d->mnpri);
done:
    return lp;
}
