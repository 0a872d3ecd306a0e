/* blocked.c: the first term's level-by-level blocks of the REML engine's blocked Cholesky,
 * for a diagonal T_1 (several scalar terms on one grouping factor, a diag() term).
 *
 * blocked.py computes them with batched NumPy calls (a Cholesky, an inverse and an
 * einsum over levels): with many small blocks each call's per-block overhead dominated
 * (200 levels of 7 x 7: 0.4 ms of a 0.6 ms deviance evaluation). One pass per level
 * keeps the block in cache: D A D + I, its Cholesky, then the coupling rows by forward
 * substitution (no inverse is formed).
 */
#include <math.h>

#include "blocked.h"

#ifndef HB_SOURCE_SHA256
#define HB_SOURCE_SHA256 ""
#endif

int64_t hb_blocked_abi(void) { return HB_BLOCKED_ABI; }

const char *hb_blocked_source_sha256(void) { return HB_SOURCE_SHA256; }

int hb_blocked_first(int64_t L, int64_t p, int64_t m, const double *d, const double *A11,
                     const double *AD1, double *L11, double *LD1, double *ld, double *work) {
    double *inv = work; /* 1 / L11[l]'s diagonal: the solves multiply instead of dividing */
    double total = 0.0;
    for (int64_t l = 0; l < L; l++) {
        const double *A = A11 + l * p * p;
        double *Lb = L11 + l * p * p;
        double det = 1.0;
        /* the lower triangle of D A D + I, factored row by row as it is formed */
        for (int64_t i = 0; i < p; i++) {
            for (int64_t j = 0; j <= i; j++) {
                double s = d[i] * A[i * p + j] * d[j] + ((i == j) ? 1.0 : 0.0);
                for (int64_t k = 0; k < j; k++) s -= Lb[i * p + k] * Lb[j * p + k];
                if (i == j) {
                    if (!(s > 0.0)) return (int)(1 + l);
                    Lb[i * p + i] = sqrt(s);
                    inv[i] = 1.0 / Lb[i * p + i];
                    det *= s;
                } else {
                    Lb[i * p + j] = s * inv[j];
                }
            }
            for (int64_t j = i + 1; j < p; j++) Lb[i * p + j] = 0.0;
        }
        /* every diagonal entry of L11 is at least 1 (the + I), so det neither under- nor
           overflows before it is far beyond any model's scale */
        total += log(det);
        /* LD1 row r: solve L11 x = D a by forward substitution */
        for (int64_t r = 0; r < m; r++) {
            const double *a = AD1 + (r * L + l) * p;
            double *x = LD1 + (r * L + l) * p;
            for (int64_t i = 0; i < p; i++) {
                double s = a[i] * d[i];
                for (int64_t k = 0; k < i; k++) s -= Lb[i * p + k] * x[k];
                x[i] = s * inv[i];
            }
        }
    }
    *ld = total;
    return 0;
}
