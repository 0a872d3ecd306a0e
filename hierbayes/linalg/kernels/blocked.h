/* blocked.h: the REML engine's compiled factor kernel (hierbayes/linalg/blocked_native.py).
 *
 * setup.py and tools/build_kernels.py compile every hierbayes/linalg/kernels/<name>.c
 * into the extension hierbayes.linalg._cblocked. blocked_native.py declares the
 * functions below with ctypes and refuses a library whose HB_BLOCKED_ABI differs from
 * its own ABI (a changed signature) or that was built from other sources than those
 * beside it (HB_SOURCE_SHA256, the hash kernel_sources.source_sha256 computes).
 */
#ifndef HB_BLOCKED_H
#define HB_BLOCKED_H

#include <stdint.h>

/* Bumped with every change to a signature below; blocked_native.ABI must agree. */
#define HB_BLOCKED_ABI 1

int64_t hb_blocked_abi(void);
const char *hb_blocked_source_sha256(void);

/* The first term's blocks of the blocked Cholesky factor (hierbayes/linalg/blocked.py)
 * at a diagonal T_1 = diag(d) (d has p entries): for every level l < L,
 *   L11[l] = chol(D A11[l] D + I)                 (lower, upper triangle zeroed)
 *   LD1[r, l, :] = (AD1[r, l, :] D) L11[l]^-T     for r < m,
 * and *ld = sum over levels of log|L11[l]|^2. All arrays row-major and contiguous:
 * A11 and L11 (L, p, p), AD1 and LD1 (m, L, p); work holds p doubles.
 * Returns 0, or 1 + l for the first level whose block is not positive definite. */
int hb_blocked_first(int64_t L, int64_t p, int64_t m, const double *T, const double *A11,
                     const double *AD1, double *L11, double *LD1, double *ld, double *work);

#endif
