/* lkj.c: each block's T = diag(sd) L, from log SDs and partial correlations (or corrstruct.c's one).
 *
 * A correlated block's Cholesky factor L comes from K(K-1)/2 unconstrained
 * reals y through canonical partial correlations z = tanh(y), as Stan's
 * cholesky_corr_constrain does; with it come the LKJ(eta) log density of L L'
 * plus the transform's log-Jacobian, and their derivatives. This is the one
 * implementation of the transform: hb_cpc_cholesky exports it, batched, for
 * hierbayes.bayes.pack (the posterior's correlations); tests/bayes/test_lkj.py
 * checks it against the PyMC model's (hierbayes.bayes.lkj.cpc_to_cholesky).
 */
#include "hb.h"

int tw_alloc(TW *w, const int64_t *blk, int64_t G, int64_t stride) {
    int64_t Kmax = 1;
    for (int64_t g = 0; g < G; g++)
        if (blk[g * stride] > Kmax) Kmax = blk[g * stride];
    int64_t Mmax = Kmax * (Kmax - 1) / 2;
    if (Mmax < 1) Mmax = 1;
    w->Kmax = Kmax;
    w->Mmax = Mmax;
    int64_t G1 = G > 0 ? G : 1;
    w->T = calloc(G1 * Kmax * Kmax, sizeof(double));
    w->L = calloc(G1 * Kmax * Kmax, sizeof(double));
    w->dL = calloc(G1 * Mmax * Kmax * Kmax, sizeof(double));
    w->gy = calloc(G1 * Mmax, sizeof(double));
    return !(w->T && w->L && w->dL && w->gy);
}

void tw_free(TW *w) {
    free(w->T);
    free(w->L);
    free(w->dL);
    free(w->gy);
    w->T = w->L = w->dL = w->gy = NULL;
}

/* Correlation Cholesky factor from the partial correlations y[0 .. K(K-1)/2).
 * Fills L (leading dimension ld), its forward derivatives dL[m] = dL/dy_m and
 * the gradient gy of the returned value: the LKJ(eta) log density of L L'
 * plus the log-Jacobian (Stan's cholesky_corr_constrain), up to a constant. */
double cpc_cholesky(const double *y, int64_t K, double eta, double *L, double *dL, double *gy, int64_t ld) {
    int64_t M = K * (K - 1) / 2;
#define DL(m, i, j) dL[((m) * ld + (i)) * ld + (j)]
    for (int64_t a = 0; a < K; a++)
        for (int64_t b = 0; b < K; b++) {
            L[a * ld + b] = 0.0;
            for (int64_t m = 0; m < M; m++) DL(m, a, b) = 0.0;
        }
    for (int64_t m = 0; m < M; m++) gy[m] = 0.0;
    L[0] = 1.0;
    double lp = 0.0;
    double dsum[M > 0 ? M : 1];
    int64_t k = 0;
    for (int64_t i = 1; i < K; i++) {
        double s = 0.0;
        for (int64_t m = 0; m < M; m++) dsum[m] = 0.0;
        for (int64_t j = 0; j < i; j++) {
            double z = tanh(y[k]);
            double dz = 1.0 - z * z;
            double v;
            lp += log(dz);
            gy[k] += -2.0 * z;
            if (j == 0) {
                v = z;
                L[i * ld + j] = v;
                DL(k, i, j) = dz;
            } else {
                double root = sqrt(1.0 - s);
                v = z * root;
                L[i * ld + j] = v;
                /* Jacobian term 0.5 log(1 - s); s depends on earlier y of this row */
                lp += 0.5 * log1p(-s);
                for (int64_t m = 0; m < M; m++)
                    if (dsum[m] != 0.0) {
                        DL(m, i, j) = -z * dsum[m] / (2.0 * root);
                        gy[m] += -0.5 * dsum[m] / (1.0 - s);
                    }
                DL(k, i, j) += dz * root;
            }
            for (int64_t m = 0; m < M; m++)
                if (DL(m, i, j) != 0.0) dsum[m] += 2.0 * v * DL(m, i, j);
            s += v * v;
            k++;
        }
        double diag = sqrt(fmax(1.0 - s, 1e-300));
        L[i * ld + i] = diag;
        double expo = (double)(K - i) + 2.0 * eta - 3.0;
        lp += expo * 0.5 * log1p(-s);
        for (int64_t m = 0; m < M; m++)
            if (dsum[m] != 0.0) {
                DL(m, i, i) = -dsum[m] / (2.0 * diag);
                gy[m] += -expo * 0.5 * dsum[m] / (1.0 - s);
            }
    }
#undef DL
    return lp;
}

/* For each of n_draws rows of y (K(K-1)/2 partial correlations each), the
 * K x K Cholesky factor L into out (row-major, n_draws x K x K). Returns
 * HB_OK, HB_BAD_MODEL (K < 1) or HB_NOMEM. */
int hb_cpc_cholesky(const double *y, int64_t n_draws, int64_t K, double *out) {
    if (K < 1) return HB_BAD_MODEL;
    int64_t M = K * (K - 1) / 2, M1 = M > 0 ? M : 1;
    /* the derivatives are computed and dropped: one transform, not a second copy without them */
    double *dL = malloc(M1 * K * K * sizeof(double)), *gy = malloc(M1 * sizeof(double));
    int status = dL && gy ? HB_OK : HB_NOMEM;
    for (int64_t s = 0; s < n_draws && status == HB_OK; s++)
        cpc_cholesky(y + s * M, K, 1.0, out + s * K * K, dL, gy, K);
    free(dL);
    free(gy);
    return status;
}

/* How many correlation parameters (at B_CPC) a block of K terms has: LKJ's K(K-1)/2 partial
 * correlations, a cs or ar1 term's one (none when K is 1). */
int64_t corr_params(int64_t corr, int64_t K) {
    if (corr == CORR_LKJ) return K * (K - 1) / 2;
    return (corr == CORR_CS || corr == CORR_AR1) && K > 1 ? 1 : 0;
}

/* How many log SDs (at B_SD) a block has: one per term, but one for all of an ar1 term's. */
int64_t sd_params(int64_t corr, int64_t K) { return corr == CORR_AR1 ? 1 : K; }

/* T_g = diag(sd) L_g into w, L_g from the block's correlation parameters (par: its
 * PAR_N doubles); returns their log density terms (LKJ's, or a cs/ar1 correlation's). */
double block_T(const double *theta, int64_t g, int64_t K, int64_t osd, int64_t ocpc, int64_t corr,
               const double *par, TW *w) {
    double lp = 0.0;
    int64_t ld = w->Kmax;
    double *L = w->L + TIX(w, g, 0, 0);
    double *dL = w->dL + g * w->Mmax * ld * ld, *gy = w->gy + g * w->Mmax;
    if (corr == CORR_LKJ) {
        lp = cpc_cholesky(theta + ocpc, K, par[PAR_ETA], L, dL, gy, ld);
    } else if (corr_params(corr, K) == 1) {
        lp = structured_cholesky(corr, theta[ocpc], K, par[PAR_LO], par[PAR_HI], L, dL, gy, ld);
    } else {
        for (int64_t a = 0; a < K; a++)
            for (int64_t b = 0; b < K; b++) L[a * ld + b] = a == b ? 1.0 : 0.0;
    }
    double *T = w->T + TIX(w, g, 0, 0);
    int64_t one_sd = sd_params(corr, K) == 1;
    for (int64_t a = 0; a < K; a++) {
        double sd = exp(theta[osd + (one_sd ? 0 : a)]);
        for (int64_t b = 0; b < K; b++) T[a * ld + b] = b <= a ? sd * L[a * ld + b] : 0.0;
    }
    return lp;
}

/* Gradient in T = diag(sd) L (gT, leading dimension ld) carried to log sd and the correlation parameters. */
void chain_T(const double *theta, double *grad, const double *gT, int64_t K, int64_t osd, int64_t ocpc,
             int64_t corr, const TW *w, int64_t g) {
    int64_t ld = w->Kmax;
    const double *L = w->L + TIX(w, g, 0, 0);
    int64_t one_sd = sd_params(corr, K) == 1;
    for (int64_t a = 0; a < K; a++) {
        int64_t at = osd + (one_sd ? 0 : a);
        double sd = exp(theta[at]);
        double acc = 0.0;
        for (int64_t b = 0; b <= a; b++) acc += gT[a * ld + b] * L[a * ld + b];
        grad[at] += acc * sd;
    }
    const double *dL = w->dL + g * w->Mmax * ld * ld;
    const double *gy = w->gy + g * w->Mmax;
    for (int64_t m = 0; m < corr_params(corr, K); m++) {
        double acc = gy[m];
        for (int64_t a = 0; a < K; a++) {
            double sd = exp(theta[osd + (one_sd ? 0 : a)]);
            for (int64_t b = 0; b <= a; b++) acc += gT[a * ld + b] * sd * dL[(m * ld + a) * ld + b];
        }
        grad[ocpc + m] += acc;
    }
}
