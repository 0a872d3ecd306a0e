/* corrstruct.c: the Cholesky factor of a cs or ar1 term's correlation matrix, from one real.
 *
 * glmmTMB's structured terms (hierbayes.spec.covstruct) have one correlation
 * rho, sampled as z with rho = lo + (hi - lo) logistic(z): PyMC's interval
 * transform of rho's uniform(lo, hi) prior, so that the two densities agree
 * value for value (tests/bayes/test_logdensity.py). The uniform density and the
 * transform's log-Jacobian together are log s + log(1 - s), s = logistic(z).
 *
 *   cs:  R = (1 - rho) I + rho 11'. Its Cholesky factor has one value c_j
 *        below the diagonal in each column j: with S_j = c_0^2 + ... + c_{j-1}^2,
 *        L_jj = d_j = sqrt(1 - S_j) and c_j = (rho - S_j) / d_j; positive
 *        definite for -1/(K-1) < rho < 1.
 *   ar1: R_ij = rho^|i-j|; L_i0 = rho^i and L_ij = rho^(i-j) sqrt(1 - rho^2)
 *        for j >= 1.
 *
 * dL/dz follows each recurrence forward (one derivative: one parameter).
 */
#include "hb.h"

static double log_logistic(double z) { return z >= 0 ? -log1p(exp(-z)) : z - log1p(exp(z)); }

/* L (leading dimension ld) and dL = dL/dz of a cs (CORR_CS) or ar1 (CORR_AR1) block of size K;
 * gy[0] = d lp / dz; returns lp = log s + log(1 - s). */
double structured_cholesky(int64_t corr, double z, int64_t K, double lo, double hi, double *L, double *dL,
                           double *gy, int64_t ld) {
    double s = 1.0 / (1.0 + exp(-z));
    double rho = lo + (hi - lo) * s, drho = (hi - lo) * s * (1.0 - s);
    for (int64_t a = 0; a < K; a++)
        for (int64_t b = 0; b < K; b++) L[a * ld + b] = dL[a * ld + b] = 0.0;
    if (corr == CORR_CS) {
        double S = 0.0, dS = 0.0;
        for (int64_t j = 0; j < K; j++) {
            double dj = sqrt(fmax(1.0 - S, 1e-300)), ddj = -dS / (2.0 * dj);
            L[j * ld + j] = dj;
            dL[j * ld + j] = ddj * drho;
            if (j == K - 1) break;
            double c = (rho - S) / dj, dc = ((1.0 - dS) - c * ddj) / dj;
            for (int64_t i = j + 1; i < K; i++) {
                L[i * ld + j] = c;
                dL[i * ld + j] = dc * drho;
            }
            S += c * c;
            dS += 2.0 * c * dc;
        }
    } else {
        double root = sqrt(fmax(1.0 - rho * rho, 1e-300)), droot = -rho / root;
        double pw = 1.0, dpw = 0.0; /* rho^k and its derivative, k = i - j */
        for (int64_t k = 0; k < K; k++) {
            for (int64_t j = 0; j + k < K; j++) {
                int64_t i = j + k;
                if (j == 0) {
                    L[i * ld] = pw;
                    dL[i * ld] = dpw * drho;
                } else {
                    L[i * ld + j] = pw * root;
                    dL[i * ld + j] = (dpw * root + pw * droot) * drho;
                }
            }
            dpw = dpw * rho + pw;
            pw *= rho;
        }
    }
    gy[0] = 1.0 - 2.0 * s;
    return log_logistic(z) + log_logistic(-z);
}
