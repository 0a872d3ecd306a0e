/* hierbayes's compiled kernels: the log densities, NUTS, and exact draws of
 * integrated-out group effects.
 *
 * Plain C99 with no Python headers: setup.py builds this file as the
 * extension hierbayes._ckernels when the package is installed, and
 * hierbayes/native.py loads that library with ctypes (nothing is compiled at
 * run time). ctypes releases the GIL during a call, so chains run in parallel
 * threads; each checks a stop flag at every leapfrog step, so Ctrl-C ends a
 * fit at once.
 * Nothing here depends on the model: every model is read from arrays laid out
 * by hierbayes.logdensity.pack, so nothing is compiled per model or per data
 * set.
 *
 * Three parts:
 *
 * 1. The model's log density and gradient (logp_full): priors, LKJ terms,
 *    centred or non-centred blocks, hierarchical centring of the intercept
 *    and of nested factors, and one random-intercept block integrated out
 *    row by row (Gaussian).
 * 2. Gaussian models with every group effect integrated out (logp_marg,
 *    hb_draw_effects). With b = T u, u ~ N(0, I), y ~ N(X beta + Z b, sigma^2 I):
 *
 *      log p(y) = -n log sigma - log|A| / 2 - (r'r / sigma^2 - c' u_hat) / 2,
 *
 *    r = y - X beta, A = T'Z'ZT / sigma^2 + I, c = T'Z'r / sigma^2 and
 *    u_hat = A^-1 c, from cross-products made once, so an evaluation costs
 *    nothing per row. A is factored in blocks, as MixedModels.jl does: the
 *    first block's levels are independent K x K blocks, the other blocks form
 *    a dense Schur complement. Gradients are derived in docs/sampling.md.
 * 3. NUTS as Stan runs it (Hoffman & Gelman 2014; Betancourt 2017):
 *    multinomial sampling, biased progressive sampling between subtrees, the
 *    generalised U-turn criterion with a diagonal metric, and Stan's warm-up
 *    (dual averaging; a diagonal metric re-estimated in doubling windows).
 *    Trajectories are built iteratively: a subtree checks its own
 *    sub-subtrees for U-turns from momentum checkpoints (numpyro's iterative
 *    NUTS), so there is no recursion.
 *
 * Random numbers: xoshiro256** seeded by splitmix64, normals by Marsaglia's
 * polar method, so a seed gives the same draws on every platform.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { B_K, B_L, B_COL, B_SD, B_CPC, B_EFF, B_CENTRED, B_CORR, B_ONES, B_ABSORB, B_PARENT, B_PMAP,
       B_SKIP, B_N };
enum { M_K, M_L, M_OFF, M_SD, M_CPC, M_CORR, M_N };

/* Mirrors hierbayes.native.Model (ctypes): every integer is int64, every array a
 * pointer. native.py checks the layout at load (hb_model_size, hb_model_offsets):
 * a field added here must be added there, in the same place, and to MODEL_FIELDS. */
typedef struct {
    int64_t mode; /* 0: full, 1: marginal */
    int64_t dim;
    /* full */
    int64_t n, p, G, npri;
    /* column-major (one contiguous column per fixed effect, block, Z column): the
     * row loops run as passes over columns, which the compiler vectorises */
    const double *Xt, *y;
    const int32_t *idxT;
    const double *ZvT;
    const double *ccnt;  /* rows per level of the collapsed block */
    const int64_t *cseg; /* rows sorted by the collapsed block: level j's rows are cseg[j] .. cseg[j+1] */
    const int64_t *blk;
    const double *blk_eta;
    const int64_t *pri_i;
    const double *pri_f;
    const int64_t *misc; /* family, sigma's offset, collapsed block */
    const int32_t *pmap;
    /* marginal */
    int64_t mp, q, q1, q2, mG, mnpri, mn, mosig;
    const double *XtX, *Xty;
    double yty;
    const double *ZtX, *Zty, *G11, *G21, *G22;
    const int64_t *mblk;
    const double *mblk_eta;
    const int64_t *mpri_i;
    const double *mpri_f;
} Model;

/* The layout that native.py compares with its ctypes mirror. */
#define MODEL_FIELDS(X)                                                                           \
    X(mode) X(dim) X(n) X(p) X(G) X(npri) X(Xt) X(y) X(idxT) X(ZvT) X(ccnt) X(cseg) X(blk)          \
    X(blk_eta) X(pri_i) X(pri_f) X(misc) X(pmap) X(mp) X(q) X(q1) X(q2) X(mG) X(mnpri) X(mn)       \
    X(mosig) X(XtX) X(Xty) X(yty) X(ZtX) X(Zty) X(G11) X(G21) X(G22) X(mblk) X(mblk_eta)           \
    X(mpri_i) X(mpri_f)

#define MODEL_COUNT(f) +1
#define MODEL_OFFSET(f) offsetof(Model, f),

int64_t hb_model_size(void) { return (int64_t)sizeof(Model); }

int64_t hb_model_fields(void) { return 0 MODEL_FIELDS(MODEL_COUNT); }

/* out receives hb_model_fields() offsets, in declaration order. */
void hb_model_offsets(int64_t *out) {
    static const size_t off[] = {MODEL_FIELDS(MODEL_OFFSET)};
    for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) out[i] = (int64_t)off[i];
}

/* setup.py passes this file's SHA-256, so native.py can tell a library built
 * from another version of this file (an edit not yet rebuilt). */
#ifndef HB_SOURCE_SHA256
#define HB_SOURCE_SHA256 ""
#endif
const char *hb_source_sha256(void) { return HB_SOURCE_SHA256; }

/* ---- random numbers ---- */

typedef struct {
    uint64_t s[4];
    int has_spare;
    double spare;
} Rng;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(Rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->has_spare = 0;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(Rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* uniform on [0, 1) */
static double rng_uniform(Rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

static double rng_normal(Rng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * rng_uniform(r) - 1.0;
        v = 2.0 * rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double f = sqrt(-2.0 * log(s) / s);
    r->spare = v * f;
    r->has_spare = 1;
    return u * f;
}

/* ---- part 1: the log density ---- */

/* Log density (up to a constant) of a prior at x; its derivative in x goes to *d. */
static double prior_logp_dx(int64_t code, double x, double a, double b, double c, double *d) {
    double z, s2, lx;
    switch (code) {
    case 0: /* normal(mu, sigma) */
        z = (x - a) / b;
        *d = -z / b;
        return -0.5 * z * z;
    case 1: /* student_t(nu, mu, sigma) */
        z = x - b;
        s2 = c * c;
        *d = -(a + 1.0) * z / (a * s2 + z * z);
        return -0.5 * (a + 1.0) * log1p(z * z / (a * s2));
    case 2: /* cauchy(alpha, beta) */
        z = x - a;
        *d = -2.0 * z / (b * b + z * z);
        return -log1p(z * z / (b * b));
    case 3: /* half_normal(sigma) */
        z = x / a;
        *d = -z / a;
        return -0.5 * z * z;
    case 4: /* half_student_t(nu, sigma) */
        s2 = b * b;
        *d = -(a + 1.0) * x / (a * s2 + x * x);
        return -0.5 * (a + 1.0) * log1p(x * x / (a * s2));
    case 5: /* half_cauchy(beta) */
        *d = -2.0 * x / (a * a + x * x);
        return -log1p(x * x / (a * a));
    case 6: /* exponential(lam) */
        *d = -a;
        return -a * x;
    case 7: /* gamma(alpha, beta) */
        *d = (a - 1.0) / x - b;
        return (a - 1.0) * log(x) - b * x;
    case 8: /* inv_gamma(alpha, beta) */
        *d = -(a + 1.0) / x + b / (x * x);
        return -(a + 1.0) * log(x) - b / x;
    default: /* lognormal(mu, sigma) */
        lx = log(x);
        z = (lx - a) / b;
        *d = (-1.0 - z / b) / x;
        return -lx - 0.5 * z * z;
    }
}

/* Priors on fixed effects, SDs and sigma; positive ones are sampled on the log scale. */
static double priors(const double *theta, double *grad, const int64_t *pri_i, const double *pri_f,
                     int64_t npri) {
    double lp = 0.0, d;
    for (int64_t q = 0; q < npri; q++) {
        int64_t t = pri_i[3 * q];
        const double *f = pri_f + 3 * q;
        if (pri_i[3 * q + 2] == 1) {
            double x = exp(theta[t]);
            lp += prior_logp_dx(pri_i[3 * q + 1], x, f[0], f[1], f[2], &d) + theta[t];
            grad[t] += d * x + 1.0;
        } else {
            lp += prior_logp_dx(pri_i[3 * q + 1], theta[t], f[0], f[1], f[2], &d);
            grad[t] += d;
        }
    }
    return lp;
}

/* Work arrays for every block's T = diag(sd) L, L, dL/dcpc and LKJ gradient. */
typedef struct {
    int64_t Kmax, Mmax;
    double *T, *L, *dL, *gy;
} TW;

#define TIX(w, g, a, b) (((g) * (w)->Kmax + (a)) * (w)->Kmax + (b))

static int tw_alloc(TW *w, const int64_t *blk, int64_t G, int64_t stride) {
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

static void tw_free(TW *w) {
    free(w->T);
    free(w->L);
    free(w->dL);
    free(w->gy);
}

/* Correlation Cholesky factor from the partial correlations y[0 .. K(K-1)/2).
 * Fills L (leading dimension ld), its forward derivatives dL[m] = dL/dy_m and
 * the gradient gy of the returned value: the LKJ(eta) log density of L L'
 * plus the log-Jacobian (Stan's cholesky_corr_constrain), up to a constant. */
static double cpc_cholesky(const double *y, int64_t K, double eta, double *L, double *dL, double *gy,
                           int64_t ld) {
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

/* T_g = diag(sd) L_g into w, L_g from partial correlations if correlated; returns the LKJ term. */
static double block_T(const double *theta, int64_t g, int64_t K, int64_t osd, int64_t ocpc, int64_t corr,
                      double eta, TW *w) {
    double lp = 0.0;
    int64_t ld = w->Kmax;
    double *L = w->L + TIX(w, g, 0, 0);
    if (corr == 1) {
        lp = cpc_cholesky(theta + ocpc, K, eta, L, w->dL + g * w->Mmax * ld * ld, w->gy + g * w->Mmax, ld);
    } else {
        for (int64_t a = 0; a < K; a++)
            for (int64_t b = 0; b < K; b++) L[a * ld + b] = a == b ? 1.0 : 0.0;
    }
    double *T = w->T + TIX(w, g, 0, 0);
    for (int64_t a = 0; a < K; a++) {
        double sd = exp(theta[osd + a]);
        for (int64_t b = 0; b < K; b++) T[a * ld + b] = b <= a ? sd * L[a * ld + b] : 0.0;
    }
    return lp;
}

/* Gradient in T = diag(sd) L (gT, leading dimension ld) carried to log sd and the partial correlations. */
static void chain_T(const double *theta, double *grad, const double *gT, int64_t K, int64_t osd,
                    int64_t ocpc, int64_t corr, const TW *w, int64_t g) {
    int64_t ld = w->Kmax;
    const double *L = w->L + TIX(w, g, 0, 0);
    for (int64_t a = 0; a < K; a++) {
        double sd = exp(theta[osd + a]);
        double acc = 0.0;
        for (int64_t b = 0; b <= a; b++) acc += gT[a * ld + b] * L[a * ld + b];
        grad[osd + a] += acc * sd;
    }
    if (corr == 1) {
        const double *dL = w->dL + g * w->Mmax * ld * ld;
        const double *gy = w->gy + g * w->Mmax;
        for (int64_t m = 0; m < K * (K - 1) / 2; m++) {
            double acc = gy[m];
            for (int64_t a = 0; a < K; a++) {
                double sd = exp(theta[osd + a]);
                for (int64_t b = 0; b <= a; b++) acc += gT[a * ld + b] * sd * dL[(m * ld + a) * ld + b];
            }
            grad[ocpc + m] += acc;
        }
    }
}

/* Each block's T (with LKJ terms) and its group effects r; returns the LKJ log density. */
static double build_r(const double *theta, const Model *d, double *r, TW *w) {
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
static int64_t first_fixed_column(const Model *d) {
    for (int64_t g = 0; g < d->G; g++)
        if (d->blk[g * B_N + B_ABSORB] >= 0) return 1;
    return 0;
}

/* The row loops' group terms, read once per chain (in Work) rather than from the
 * block table per row; one record per block, as many blocks as the model has. */
typedef struct {
    int64_t G;
    int64_t *K, *eff, *col, *ones, *gi;
} Rows;

static int rows_alloc(const Model *d, Rows *rw) {
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
static void linear_predictor(const Model *d, const double *theta, int64_t j0, const Rows *rw,
                             const double *r, double *restrict eta) {
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

/* As residuals(), also writing the rows' sum of residuals into *sum. */
static double residuals_sum(const double *restrict y, const double *restrict eta, double *restrict ge,
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

/* sum x[i] y[i] with four accumulators (see residuals()). */
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

/* Two row-length work vectors and the blocks' row records, kept across
 * evaluations by the sampler. */
typedef struct {
    int64_t n;
    double *eta, *ge;
    Rows rw;
} Work;

static int work_alloc(Work *w, const Model *d) {
    w->n = d->mode == 1 ? 0 : d->n;
    w->eta = malloc((w->n + 1) * sizeof(double));
    w->ge = malloc((w->n + 1) * sizeof(double));
    w->rw.K = NULL;
    int no_rows = d->mode == 1 ? 0 : rows_alloc(d, &w->rw);
    return !w->eta || !w->ge || no_rows;
}

static void work_free(Work *w) {
    free(w->eta);
    free(w->ge);
    free(w->rw.K);
}

/* Log density at theta; the gradient is written into grad. One pass over the
 * rows computes the linear predictor, the likelihood and the gradient's
 * scatter into fixed and group effects: large data sets are read once per
 * evaluation, which is what bounds the speed there. */
static double logp_full(const Model *d, const double *theta, double *grad, Work *wk) {
    int64_t n = d->n, G = d->G, dim = d->dim;
    memset(grad, 0, dim * sizeof(double));
    double lp = 0.0;
    int64_t j0 = first_fixed_column(d);
    const Rows *rw = &wk->rw;
    TW w;
    double *r = calloc(dim, sizeof(double));
    double *g_r = calloc(dim, sizeof(double));
    int bad = tw_alloc(&w, d->blk, G, B_N) || !r || !g_r;
    int64_t fam = d->misc[0], osig = d->misc[1], cg = d->misc[2];
    double *S = NULL, *cj = NULL;
    double *gT = NULL, *wv = NULL, *vv = NULL;
    double *eta = wk->eta, *ge = wk->ge;
    int64_t cmax = 0;
    if (!bad && cg >= 0) {
        int64_t Lc = d->blk[cg * B_N + B_L];
        for (int64_t j = 0; j < Lc; j++)
            if (d->ccnt[j] > (double)cmax) cmax = (int64_t)d->ccnt[j];
        S = calloc(Lc, sizeof(double));
        cj = calloc(Lc + 2 * (cmax + 1), sizeof(double));
        bad = !S || !cj;
    }
    if (!bad) {
        gT = malloc(w.Kmax * w.Kmax * sizeof(double));
        wv = malloc(w.Kmax * sizeof(double));
        vv = malloc(w.Kmax * sizeof(double));
        bad = !gT || !wv || !vv;
    }
    if (bad) {
        lp = -INFINITY;
        goto done;
    }
    lp += build_r(theta, d, r, &w);

    double inv2 = 0.0, sigma = 0.0;
    if (fam == 0) {
        sigma = exp(theta[osig]);
        inv2 = 1.0 / (sigma * sigma);
    }
    linear_predictor(d, theta, j0, rw, r, eta);
    const double *y = d->y;
    if (fam == 0) {
        if (cg < 0) {
            double ss = residuals(y, eta, ge, 0, n);
            lp += -(double)n * theta[osig] - 0.5 * ss * inv2;
            grad[osig] += -(double)n + ss * inv2;
            for (int64_t i = 0; i < n; i++) ge[i] *= inv2;
        } else {
            /* y_j ~ N(eta_j, sigma^2 I + tau^2 11') per level j of the collapsed block:
             * log det = (n_j - 1) log sigma^2 + log D_j, D_j = sigma^2 + n_j tau^2, and
             * the quadratic form is (d'd - tau^2 S_j^2 / D_j) / sigma^2 (Woodbury),
             * S_j the level's sum of residuals. D_j depends on the level only through
             * its count n_j, and counts repeat (InstEval: 2,972 students, 86 counts),
             * so the logs and divisions are taken once per count. */
            int64_t Lc = d->blk[cg * B_N + B_L];
            const int64_t *seg = d->cseg;
            const double *cnt = d->ccnt;
            double s2 = sigma * sigma;
            double tau = w.T[TIX(&w, cg, 0, 0)];
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
        }
    } else if (fam == 1) {
        for (int64_t i = 0; i < n; i++) {
            double e = eta[i];
            /* log sigmoid, computed stably */
            double log1pexp = e > 0 ? e + log1p(exp(-e)) : log1p(exp(e));
            lp += y[i] * e - log1pexp;
            ge[i] = y[i] - exp(e - log1pexp);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            double mu = exp(eta[i]);
            lp += y[i] * eta[i] - mu;
            ge[i] = y[i] - mu;
        }
    }
    scatter(d, ge, j0, rw, grad, g_r);

    int64_t ld = w.Kmax;
    for (int64_t g = 0; g < G; g++) {
        if (g == cg) continue;
        const int64_t *b = d->blk + g * B_N;
        int64_t K = b[B_K], Lv = b[B_L], oeff = b[B_EFF], kabs = b[B_ABSORB], parent = b[B_PARENT];
        const double *T = w.T + TIX(&w, g, 0, 0);
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
        chain_T(theta, grad, gT, K, b[B_SD], b[B_CPC], b[B_CORR], &w, g);
    }
    lp += priors(theta, grad, d->pri_i, d->pri_f, d->npri);
done:
    free(r);
    free(g_r);
    free(S);
    free(cj);
    free(gT);
    free(wv);
    free(vv);
    tw_free(&w);
    return lp;
}

/* Exact draws of the collapsed block's effects: per level, N(tau^2 S_j / D_j, tau^2 sigma^2 / D_j). */
int hb_draw_collapsed(const Model *d, const double *thetas, int64_t ndraws, uint64_t seed, double *out) {
    Rng rng;
    rng_seed(&rng, seed);
    int64_t G = d->G, cg = d->misc[2], osig = d->misc[1], dim = d->dim;
    int64_t Lc = d->blk[cg * B_N + B_L];
    int64_t j0 = first_fixed_column(d);
    TW w;
    double *S = calloc(Lc, sizeof(double));
    double *r = calloc(dim, sizeof(double));
    const double *cnt = d->ccnt;
    Work wk;
    int bad = work_alloc(&wk, d);
    bad = tw_alloc(&w, d->blk, G, B_N) || bad || !S || !r;
    if (!bad) {
        for (int64_t s = 0; s < ndraws; s++) {
            const double *theta = thetas + s * dim;
            build_r(theta, d, r, &w);
            linear_predictor(d, theta, j0, &wk.rw, r, wk.eta);
            for (int64_t j = 0; j < Lc; j++) residuals_sum(d->y, wk.eta, wk.ge, d->cseg[j], d->cseg[j + 1], &S[j]);
            double s2 = exp(2.0 * theta[osig]);
            double tau = w.T[TIX(&w, cg, 0, 0)];
            double t2 = tau * tau;
            for (int64_t j = 0; j < Lc; j++) {
                double D = s2 + cnt[j] * t2;
                out[s * Lc + j] = t2 * S[j] / D + sqrt(t2 * s2 / D) * rng_normal(&rng);
            }
        }
    }
    free(S);
    free(r);
    work_free(&wk);
    tw_free(&w);
    return bad;
}

/* ---- part 2: group effects integrated out ---- */

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
static void lower_solve(const double *L, int64_t n, const double *b, double *out, int transpose) {
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
static void tvec(const TW *w, const Model *d, const double *u, double *out, int transpose) {
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

/* The marginal kernel's factors: T per block, A11's level blocks (L11), W = A21 A11^-1, LS. */
typedef struct {
    TW w;
    double *L11, *W, *LS, *A21, *tmp, *S, *Tr22, *Tr22t;
    double *c, *u, *b, *Ztr, *XtXb;
} MW;

static void mw_free(MW *m) {
    tw_free(&m->w);
    free(m->L11);
    free(m->W);
    free(m->LS);
    free(m->A21);
    free(m->tmp);
    free(m->S);
    free(m->Tr22);
    free(m->Tr22t);
    free(m->c);
    free(m->u);
    free(m->b);
    free(m->Ztr);
    free(m->XtXb);
}

static int mw_alloc(MW *m, const Model *d) {
    memset(m, 0, sizeof(MW));
    int bad = tw_alloc(&m->w, d->mblk, d->mG, M_N);
    int64_t K1 = d->mblk[M_K], L1 = d->mblk[M_L], q1 = d->q1, q2 = d->q2, q = d->q;
    m->L11 = calloc(L1 * K1 * K1 + 1, sizeof(double));
    m->W = calloc(q2 * q1 + 1, sizeof(double));
    m->LS = calloc(q2 * q2 + 1, sizeof(double));
    m->A21 = calloc(q2 * q1 + 1, sizeof(double));
    m->tmp = calloc(q2 * q1 + 1, sizeof(double));
    m->S = calloc(q2 * q2 + 1, sizeof(double));
    m->Tr22 = calloc(q2 * q2 + 1, sizeof(double));
    m->Tr22t = calloc(q2 * q2 + 1, sizeof(double));
    m->c = calloc(q + 1, sizeof(double));
    m->u = calloc(q + 1, sizeof(double));
    m->b = calloc(q + 1, sizeof(double));
    m->Ztr = calloc(q + 1, sizeof(double));
    m->XtXb = calloc(d->mp + 1, sizeof(double));
    return bad || !m->L11 || !m->W || !m->LS || !m->A21 || !m->tmp || !m->S || !m->Tr22 || !m->Tr22t ||
           !m->c || !m->u || !m->b || !m->Ztr || !m->XtXb;
}

/* T for every block (and LKJ terms); returns the LKJ log density. */
static double factor_T(const double *theta, const Model *d, TW *w) {
    double lp = 0.0;
    for (int64_t g = 0; g < d->mG; g++) {
        const int64_t *b = d->mblk + g * M_N;
        lp += block_T(theta, g, b[M_K], b[M_SD], b[M_CPC], b[M_CORR], d->mblk_eta[g], w);
    }
    return lp;
}

/* Factor A = T'GT/sigma^2 + I in blocks; returns 0 if not positive definite, else 1 and log det A. */
static int mw_system(const Model *d, MW *m, double sigma2, double *logdet) {
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
static void mw_solve(const Model *d, const MW *m, const double *c, double *u) {
    int64_t K1 = d->mblk[M_K], L1 = d->mblk[M_L], q1 = d->q1, q2 = d->q2;
    double *wu = calloc(q1 + 1, sizeof(double));
    if (q2 > 0) {
        double *rhs = malloc(q2 * sizeof(double)), *y = malloc(q2 * sizeof(double));
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
        free(rhs);
        free(y);
    }
    double t[K1], x[K1];
    for (int64_t j = 0; j < L1; j++) {
        int64_t base = j * K1;
        const double *Lj = m->L11 + j * K1 * K1;
        lower_solve(Lj, K1, c + base, t, 0);
        lower_solve(Lj, K1, t, x, 1);
        for (int64_t a = 0; a < K1; a++) u[base + a] = x[a] - wu[base + a];
    }
    free(wu);
}

/* Z'(y - X beta), beta the first columns of theta. */
static void z_resid(const Model *d, const double *theta, double *out) {
    for (int64_t i = 0; i < d->q; i++) {
        double acc = d->Zty[i];
        for (int64_t j = 0; j < d->mp; j++) acc -= d->ZtX[i * d->mp + j] * theta[j];
        out[i] = acc;
    }
}

/* Marginal log density (group effects integrated out) and its gradient. */
static double logp_marg(const Model *d, const double *theta, double *grad) {
    int64_t dim = d->dim, p = d->mp, G = d->mG, q = d->q, q1 = d->q1, q2 = d->q2;
    int64_t K1 = d->mblk[M_K], L1 = d->mblk[M_L];
    memset(grad, 0, dim * sizeof(double));
    MW m;
    double lp = -INFINITY;
    double *Sinv = NULL, *SW = NULL, *LSinv = NULL, *e = NULL, *col = NULL, *gT = NULL, *Gb = NULL,
           *za = NULL, *TrSW = NULL, *GT21 = NULL, *G22Tr = NULL;
    if (mw_alloc(&m, d)) goto done;
    int64_t ld = m.w.Kmax;
    lp = factor_T(theta, d, &m.w);
    double sigma2 = exp(2.0 * theta[d->mosig]);
    double *XtXb = m.XtXb;
    for (int64_t i = 0; i < p; i++) {
        double acc = 0.0;
        for (int64_t j = 0; j < p; j++) acc += d->XtX[i * p + j] * theta[j];
        XtXb[i] = acc;
    }
    double rr = d->yty;
    for (int64_t j = 0; j < p; j++) rr += theta[j] * (XtXb[j] - 2.0 * d->Xty[j]);
    z_resid(d, theta, m.Ztr);
    tvec(&m.w, d, m.Ztr, m.c, 1);
    for (int64_t i = 0; i < q; i++) m.c[i] /= sigma2;
    double logdet;
    if (!mw_system(d, &m, sigma2, &logdet)) {
        lp = -INFINITY;
        goto done;
    }
    mw_solve(d, &m, m.c, m.u);
    double uc = 0.0, uu = 0.0;
    for (int64_t i = 0; i < q; i++) {
        uc += m.u[i] * m.c[i];
        uu += m.u[i] * m.u[i];
    }
    lp += -(double)d->mn * theta[d->mosig] - 0.5 * logdet - 0.5 * (rr / sigma2 - uc);
    tvec(&m.w, d, m.u, m.b, 0);
    for (int64_t j = 0; j < p; j++) {
        double ztb = 0.0;
        for (int64_t i = 0; i < q; i++) ztb += d->ZtX[i * p + j] * m.b[i];
        grad[j] += (d->Xty[j] - XtXb[j] - ztb) / sigma2;
    }

    /* A^-1 where the gradient needs it: the first block's diagonal blocks, the A21 part, S^-1 */
    const double *T1 = m.w.T;
    Sinv = calloc(q2 * q2 + 1, sizeof(double));
    SW = calloc(q2 * q1 + 1, sizeof(double));
    gT = calloc(G * ld * ld + 1, sizeof(double));
    Gb = calloc(q + 1, sizeof(double));
    za = calloc(q + 1, sizeof(double));
    TrSW = calloc(q2 * q1 + 1, sizeof(double));
    if (!Sinv || !SW || !gT || !Gb || !za || !TrSW) {
        lp = -INFINITY;
        goto done;
    }
    if (q2 > 0) {
        LSinv = calloc(q2 * q2, sizeof(double));
        e = calloc(q2, sizeof(double));
        col = calloc(q2, sizeof(double));
        if (!LSinv || !e || !col) {
            lp = -INFINITY;
            goto done;
        }
        for (int64_t i = 0; i < q2; i++) {
            memset(e, 0, q2 * sizeof(double));
            e[i] = 1.0;
            lower_solve(m.LS, q2, e, col, 0);
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
                for (int64_t l = 0; l < q2; l++) acc += Sinv[i * q2 + l] * m.W[l * q1 + k];
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
            for (int64_t l = 0; l < K1; l++) acc += Gj[a * K1 + l] * m.b[base + l];
            Gb[base + a] = acc;
        }
    }
    for (int64_t r = 0; r < q2; r++) {
        double acc = 0.0;
        for (int64_t k = 0; k < q1; k++) {
            Gb[k] += d->G21[r * q1 + k] * m.b[q1 + r];
            acc += d->G21[r * q1 + k] * m.b[k];
        }
        for (int64_t k = 0; k < q2; k++) acc += d->G22[r * q2 + k] * m.b[q1 + k];
        Gb[q1 + r] += acc;
    }
    for (int64_t i = 0; i < q; i++) za[i] = (m.Ztr[i] - Gb[i]) / sigma2;
    if (q2 > 0) rest_left(&m.w, d, SW, q1, TrSW, 0); /* = -Tr A^-1 21 */
    {
        double Ainv[K1 * K1], Linv[K1 * K1], ek[K1], colk[K1], GT[K1 * K1];
        for (int64_t j = 0; j < L1; j++) {
            int64_t base = j * K1;
            const double *Lj = m.L11 + j * K1 * K1;
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
                    for (int64_t r = 0; r < q2; r++) acc += m.W[r * q1 + base + a] * SW[r * q1 + base + l];
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
                    gT[a * ld + l] += -acc / sigma2 + za[base + a] * m.u[base + l];
                }
        }
    }
    if (q2 > 0) {
        GT21 = calloc(q2 * q1, sizeof(double));
        G22Tr = calloc(q2 * q2, sizeof(double));
        if (!GT21 || !G22Tr) {
            lp = -INFINITY;
            goto done;
        }
        first_right(T1, ld, K1, L1, d->G21, q2, GT21);
        /* (G22 Tr) = (Tr' G22)' */
        rest_left(&m.w, d, d->G22, q2, m.Tr22, 1);
        for (int64_t i = 0; i < q2; i++)
            for (int64_t k = 0; k < q2; k++) G22Tr[i * q2 + k] = m.Tr22[k * q2 + i];
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
                        gTg[a * ld + l] += -acc / sigma2 + za[q1 + r0 + a] * m.u[q1 + r0 + l];
                    }
            }
        }
    }
    grad[d->mosig] += -((double)d->mn - (double)q + tr) + (rr - sigma2 * (uc + uu)) / sigma2;
    for (int64_t g = 0; g < G; g++) {
        const int64_t *b = d->mblk + g * M_N;
        chain_T(theta, grad, gT + g * ld * ld, b[M_K], b[M_SD], b[M_CPC], b[M_CORR], &m.w, g);
    }
    lp += priors(theta, grad, d->mpri_i, d->mpri_f, d->mnpri);
done:
    free(Sinv);
    free(SW);
    free(LSinv);
    free(e);
    free(col);
    free(gT);
    free(Gb);
    free(za);
    free(TrSW);
    free(GT21);
    free(G22Tr);
    mw_free(&m);
    return lp;
}

/* For each draw of theta, draw the group effects b = T u, u ~ N(A^-1 c, A^-1). */
int hb_draw_effects(const Model *d, const double *thetas, int64_t ndraws, uint64_t seed, double *out) {
    Rng rng;
    rng_seed(&rng, seed);
    int64_t q = d->q, q1 = d->q1, q2 = d->q2, dim = d->dim;
    int64_t K1 = d->mblk[M_K], L1 = d->mblk[M_L];
    MW m;
    double *e = calloc(q + 1, sizeof(double)), *x = calloc(q + 1, sizeof(double));
    double *wx = calloc(q1 + 1, sizeof(double));
    int bad = mw_alloc(&m, d) || !e || !x || !wx;
    double rhs[K1], xk[K1];
    for (int64_t s = 0; s < ndraws && !bad; s++) {
        const double *theta = thetas + s * dim;
        double *o = out + s * q;
        factor_T(theta, d, &m.w);
        double sigma2 = exp(2.0 * theta[d->mosig]);
        z_resid(d, theta, m.Ztr);
        tvec(&m.w, d, m.Ztr, m.c, 1);
        for (int64_t i = 0; i < q; i++) m.c[i] /= sigma2;
        double logdet;
        if (!mw_system(d, &m, sigma2, &logdet)) {
            for (int64_t i = 0; i < q; i++) o[i] = NAN;
            continue;
        }
        mw_solve(d, &m, m.c, m.u);
        /* noise with covariance A^-1: x = L^-T e for the blocked factor L of A */
        for (int64_t i = 0; i < q; i++) e[i] = rng_normal(&rng);
        memset(wx, 0, (q1 + 1) * sizeof(double));
        if (q2 > 0) {
            lower_solve(m.LS, q2, e + q1, x + q1, 1);
            /* L21' x2 = L11^-1 A12 x2 = L11' W' x2 */
            for (int64_t i = 0; i < q2; i++)
                for (int64_t k = 0; k < q1; k++) wx[k] += m.W[i * q1 + k] * x[q1 + i];
        }
        for (int64_t j = 0; j < L1; j++) {
            int64_t base = j * K1;
            const double *Lj = m.L11 + j * K1 * K1;
            for (int64_t a = 0; a < K1; a++) {
                double acc = 0.0;
                for (int64_t l = a; l < K1; l++) acc += Lj[l * K1 + a] * wx[base + l];
                rhs[a] = e[base + a] - acc;
            }
            lower_solve(Lj, K1, rhs, xk, 1);
            for (int64_t a = 0; a < K1; a++) x[base + a] = xk[a];
        }
        for (int64_t i = 0; i < q; i++) m.u[i] += x[i];
        tvec(&m.w, d, m.u, o, 0);
    }
    free(e);
    free(x);
    free(wx);
    mw_free(&m);
    return bad;
}

/* ---- the density either way ---- */

static double density(const Model *d, const double *theta, double *grad, Work *wk) {
    return d->mode == 1 ? logp_marg(d, theta, grad) : logp_full(d, theta, grad, wk);
}

double hb_logp(const Model *d, const double *theta, double *grad) {
    Work wk;
    double lp = work_alloc(&wk, d) ? -INFINITY : density(d, theta, grad, &wk);
    work_free(&wk);
    return lp;
}

/* ---- part 3: NUTS ---- */

#define MAX_ENERGY_ERROR 1000.0

static double kinetic(const double *p, const double *m_inv, int64_t dim) {
    double acc = 0.0;
    for (int64_t i = 0; i < dim; i++) acc += p[i] * p[i] * m_inv[i];
    return 0.5 * acc;
}

/* Generalised U-turn criterion (Betancourt 2017) with a diagonal metric. */
static int is_turning(const double *p_left, const double *p_right, const double *rho, const double *m_inv,
                      int64_t dim) {
    double a = 0.0, b = 0.0;
    for (int64_t i = 0; i < dim; i++) {
        a += p_left[i] * m_inv[i] * rho[i];
        b += p_right[i] * m_inv[i] * rho[i];
    }
    return a <= 0.0 || b <= 0.0;
}

static double leapfrog(const Model *d, Work *wk, double *q, double *p, double *g, double eps, const double *m_inv) {
    int64_t dim = d->dim;
    for (int64_t i = 0; i < dim; i++) {
        p[i] += 0.5 * eps * g[i];
        q[i] += eps * m_inv[i] * p[i];
    }
    double lp = density(d, q, g, wk);
    for (int64_t i = 0; i < dim; i++) p[i] += 0.5 * eps * g[i];
    return lp;
}

static int popcount(uint64_t n) {
    int c = 0;
    while (n) {
        c += (int)(n & 1);
        n >>= 1;
    }
    return c;
}

static int trailing_ones(uint64_t n) {
    int c = 0;
    while (n & 1) {
        c++;
        n >>= 1;
    }
    return c;
}

static double logaddexp(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    double m = a > b ? a : b;
    return m + log1p(exp(-fabs(a - b)));
}

#define COPY(dst, src) memcpy((dst), (src), dim * sizeof(double))

typedef struct {
    double lp, accept, energy;
    int64_t n_leapfrog, depth;
    int diverged, stopped;
} Transition;

/* One NUTS transition from (q, lp, g); the new state is written in place.
 * ws holds (18 + 2 * max_depth) * dim doubles. The trajectory ends early, with
 * stopped set, once *stop is non-zero: a tree of depth 10 on a large data set
 * takes seconds, and Ctrl-C should not wait for it. */
static Transition nuts_step(const Model *d, Work *wk, Rng *rng, double *q, double lp, double *g, double eps,
                            const double *m_inv, int64_t max_depth, double *ws, volatile const int32_t *stop) {
    int64_t dim = d->dim;
    double *p = ws, *q_l = ws + dim, *p_l = ws + 2 * dim, *g_l = ws + 3 * dim;
    double *q_r = ws + 4 * dim, *p_r = ws + 5 * dim, *g_r = ws + 6 * dim;
    double *rho = ws + 7 * dim, *sub_rho = ws + 8 * dim, *q_new = ws + 9 * dim, *g_new = ws + 10 * dim;
    double *q_sub = ws + 11 * dim, *g_sub = ws + 12 * dim, *qc = ws + 13 * dim, *pc = ws + 14 * dim;
    double *gc = ws + 15 * dim, *tmp = ws + 16 * dim, *old_near = ws + 17 * dim;
    double *ckpt_p = ws + 18 * dim, *ckpt_rho = ws + (18 + max_depth) * dim;
    for (int64_t i = 0; i < dim; i++) p[i] = rng_normal(rng) / sqrt(m_inv[i]);
    double H0 = -lp + kinetic(p, m_inv, dim);
    COPY(q_l, q);
    COPY(p_l, p);
    COPY(g_l, g);
    COPY(q_r, q);
    COPY(p_r, p);
    COPY(g_r, g);
    COPY(rho, p);
    COPY(q_new, q);
    COPY(g_new, g);
    double lp_new = lp;
    double log_w = 0.0; /* log of the trajectory's total weight, relative to the start's */
    double sum_accept = 0.0;
    int64_t n_leapfrog = 0, depth = 0;
    int diverged = 0, stopped = 0;
    while (depth < max_depth) {
        int forward = rng_uniform(rng) < 0.5;
        double step;
        if (forward) {
            COPY(qc, q_r);
            COPY(pc, p_r);
            COPY(gc, g_r);
            step = eps;
        } else {
            COPY(qc, q_l);
            COPY(pc, p_l);
            COPY(gc, g_l);
            step = -eps;
        }
        double sub_log_w = -INFINITY, lp_sub = 0.0;
        memset(sub_rho, 0, dim * sizeof(double));
        int turning = 0;
        uint64_t n_steps = (uint64_t)1 << depth;
        for (uint64_t n = 0; n < n_steps; n++) {
            if (*stop) {
                stopped = 1;
                break;
            }
            double lpc = leapfrog(d, wk, qc, pc, gc, step, m_inv);
            n_leapfrog++;
            double H = -lpc + kinetic(pc, m_inv, dim);
            if (!isfinite(H) || H - H0 > MAX_ENERGY_ERROR) {
                diverged = 1;
                break;
            }
            double lw = H0 - H;
            sum_accept += lw > 0 ? 1.0 : exp(lw);
            /* progressive uniform (multinomial) sampling within the subtree */
            double new_log_w = logaddexp(sub_log_w, lw);
            if (log(rng_uniform(rng)) < lw - new_log_w) {
                COPY(q_sub, qc);
                COPY(g_sub, gc);
                lp_sub = lpc;
            }
            sub_log_w = new_log_w;
            for (int64_t i = 0; i < dim; i++) sub_rho[i] += pc[i];
            if (n % 2 == 0) {
                int k = popcount(n);
                COPY(ckpt_p + k * dim, pc);
                COPY(ckpt_rho + k * dim, sub_rho);
            } else {
                int k_max = popcount(n >> 1);
                int k_min = k_max - trailing_ones(n) + 1;
                for (int k = k_max; k >= k_min; k--) {
                    /* momentum sum of the sub-subtree that starts at checkpoint k */
                    for (int64_t i = 0; i < dim; i++) tmp[i] = sub_rho[i] - ckpt_rho[k * dim + i] + ckpt_p[k * dim + i];
                    if (is_turning(ckpt_p + k * dim, pc, tmp, m_inv, dim)) {
                        turning = 1;
                        break;
                    }
                }
                if (turning) break;
            }
        }
        /* the old tree's end next to the new subtree, for the checks across the join */
        COPY(old_near, forward ? p_r : p_l);
        if (forward) {
            COPY(q_r, qc);
            COPY(p_r, pc);
            COPY(g_r, gc);
        } else {
            COPY(q_l, qc);
            COPY(p_l, pc);
            COPY(g_l, gc);
        }
        if (diverged || turning || stopped) break;
        /* biased progressive sampling: prefer the new subtree */
        if (log(rng_uniform(rng)) < sub_log_w - log_w) {
            COPY(q_new, q_sub);
            COPY(g_new, g_sub);
            lp_new = lp_sub;
        }
        log_w = logaddexp(log_w, sub_log_w);
        for (int64_t i = 0; i < dim; i++) rho[i] += sub_rho[i];
        depth++;
        if (is_turning(p_l, p_r, rho, m_inv, dim)) break;
        /* Stan's checks across the join (since Stan 2.26): the old tree with the new
         * subtree's first state, and the new subtree with the old tree's near end.
         * ckpt_p[0] is the subtree's first state; pc its last. */
        const double *old_far = forward ? p_l : p_r;
        for (int64_t i = 0; i < dim; i++) tmp[i] = rho[i] - sub_rho[i] + ckpt_p[i];
        if (is_turning(old_far, ckpt_p, tmp, m_inv, dim)) break;
        for (int64_t i = 0; i < dim; i++) tmp[i] = sub_rho[i] + old_near[i];
        if (is_turning(old_near, pc, tmp, m_inv, dim)) break;
    }
    COPY(q, q_new);
    COPY(g, g_new);
    Transition t;
    t.lp = lp_new;
    t.accept = sum_accept / (double)(n_leapfrog > 0 ? n_leapfrog : 1);
    t.n_leapfrog = n_leapfrog;
    t.depth = depth;
    t.diverged = diverged;
    t.stopped = stopped;
    t.energy = H0;
    return t;
}

/* Stan's heuristic: double or halve eps until one leapfrog's acceptance crosses 0.8. */
static double find_step_size(const Model *d, Work *wk, Rng *rng, const double *q, double lp, const double *g, double eps,
                             const double *m_inv, double *ws) {
    int64_t dim = d->dim;
    double *qc = ws, *pc = ws + dim, *gc = ws + 2 * dim;
    int direction = 0;
    for (int it = 0; it < 100; it++) {
        COPY(qc, q);
        COPY(gc, g);
        for (int64_t i = 0; i < dim; i++) pc[i] = rng_normal(rng) / sqrt(m_inv[i]);
        double H0 = -lp + kinetic(pc, m_inv, dim);
        double lpc = leapfrog(d, wk, qc, pc, gc, eps, m_inv);
        double H = -lpc + kinetic(pc, m_inv, dim);
        double delta = isfinite(H) ? H0 - H : -INFINITY;
        int new_dir = delta > log(0.8) ? 1 : -1;
        if (direction == 0)
            direction = new_dir;
        else if (new_dir != direction)
            break;
        eps = direction == 1 ? eps * 2.0 : eps * 0.5;
        if (eps > 1e7 || eps < 1e-10) break;
    }
    return eps;
}

/* The first metric, before any draws: where the log density's curvature at the
 * start is above 1 (the diagonal of -H, from finite differences of the
 * gradient along random +-1 probes: E[v (H v)] = diag H), the inverse metric
 * takes its reciprocal; elsewhere it stays 1. A unit metric on a model whose
 * log sigma has curvature 2n (n rows) forces a step size of about 1/sqrt(2n)
 * and trajectories of hundreds of steps through the first windows. */
static void initial_metric(const Model *d, Work *wk, Rng *rng, const double *q, const double *g,
                           double *m_inv, double *ws) {
    int64_t dim = d->dim;
    double *qc = ws, *gc = ws + dim, *v = ws + 2 * dim, *diag = ws + 3 * dim;
    const int probes = 8;
    const double h = 1e-5;
    for (int64_t i = 0; i < dim; i++) diag[i] = 0.0;
    for (int k = 0; k < probes; k++) {
        for (int64_t i = 0; i < dim; i++) {
            v[i] = rng_uniform(rng) < 0.5 ? -1.0 : 1.0;
            qc[i] = q[i] + h * v[i];
        }
        density(d, qc, gc, wk);
        for (int64_t i = 0; i < dim; i++) diag[i] += -v[i] * (gc[i] - g[i]) / h / probes;
    }
    for (int64_t i = 0; i < dim; i++) m_inv[i] = isfinite(diag[i]) && diag[i] > 1.0 ? 1.0 / diag[i] : 1.0;
}

/* Warm up and sample one chain. draws (n_draws x dim) receives the kept
 * draws; stats (n_draws x 7) lp, accept_stat, n_leapfrog, tree depth,
 * diverged, energy and step size; metric the adapted inverse metric
 * (diagonal); *step_out the final step size. progress[chain] counts finished
 * iterations. The chain stops within one leapfrog step once *stop is non-zero
 * (set by native.py when sampling is interrupted). Returns 0; 1 if memory ran
 * out; 2 if stopped, with draws incomplete. */
int hb_run_chain(const Model *d, const double *q0, uint64_t seed, int64_t n_tune, int64_t n_draws,
                 double target_accept, int64_t max_depth, double *draws, double *stats, double *metric,
                 volatile int64_t *progress, int64_t chain, double *step_out, volatile const int32_t *stop) {
    int64_t dim = d->dim;
    Rng rng;
    rng_seed(&rng, seed);
    double *q = malloc(dim * sizeof(double)), *g = calloc(dim, sizeof(double));
    double *m_inv = malloc(dim * sizeof(double)), *mean = calloc(dim, sizeof(double));
    double *m2 = calloc(dim, sizeof(double));
    double *ws = calloc((18 + 2 * max_depth) * dim, sizeof(double));
    Work wk;
    int no_work = work_alloc(&wk, d);
    if (!q || !g || !m_inv || !mean || !m2 || !ws || no_work) {
        work_free(&wk);
        free(q);
        free(g);
        free(m_inv);
        free(mean);
        free(m2);
        free(ws);
        return 1;
    }
    COPY(q, q0);
    double lp = density(d, q, g, &wk);
    initial_metric(d, &wk, &rng, q, g, m_inv, ws);
    double eps = find_step_size(d, &wk, &rng, q, lp, g, 1.0, m_inv, ws);

    /* Stan's windows: fast init buffer, doubling slow windows, fast term buffer */
    int64_t init_buf = 75, term_buf = 50, base_win = 25;
    if (n_tune < init_buf + term_buf + base_win) {
        init_buf = (int64_t)(0.15 * n_tune);
        term_buf = (int64_t)(0.1 * n_tune);
        base_win = n_tune - init_buf - term_buf;
    }
    int64_t win_start = init_buf, win_size = base_win, win_end = init_buf + base_win;
    int64_t count = 0;
    /* dual averaging (Hoffman & Gelman 2014), Stan's constants */
    double mu = log(10.0 * eps), h_bar = 0.0, log_eps_bar = 0.0;
    int64_t t = 0;
    const double gamma = 0.05, t0 = 10.0, kappa = 0.75;
    int status = 0;
    for (int64_t it = 0; it < n_tune + n_draws; it++) {
        Transition tr = nuts_step(d, &wk, &rng, q, lp, g, eps, m_inv, max_depth, ws, stop);
        if (tr.stopped) {
            status = 2;
            break;
        }
        lp = tr.lp;
        if (it < n_tune) {
            t++;
            h_bar = (1.0 - 1.0 / (t + t0)) * h_bar + (target_accept - tr.accept) / (t + t0);
            double log_eps = mu - sqrt((double)t) / gamma * h_bar;
            double w = pow((double)t, -kappa);
            log_eps_bar = w * log_eps + (1.0 - w) * log_eps_bar;
            eps = exp(log_eps);
            if (it >= win_start && it < win_end && win_end <= n_tune - term_buf) {
                count++;
                for (int64_t i = 0; i < dim; i++) {
                    double delta = q[i] - mean[i];
                    mean[i] += delta / count;
                    m2[i] += delta * (q[i] - mean[i]);
                }
            }
            if (it + 1 == win_end && win_end <= n_tune - term_buf) {
                for (int64_t i = 0; i < dim; i++) {
                    double var = m2[i] / (double)(count > 1 ? count - 1 : 1);
                    m_inv[i] = (count / (count + 5.0)) * var + 1e-3 * (5.0 / (count + 5.0));
                    mean[i] = 0.0;
                    m2[i] = 0.0;
                }
                count = 0;
                win_start = win_end;
                win_size *= 2;
                /* as Stan: a window that would leave less than its double takes the rest */
                if (win_start + 2 * win_size >= n_tune - term_buf) win_size = n_tune - term_buf - win_start;
                win_end = win_start + win_size;
                eps = find_step_size(d, &wk, &rng, q, lp, g, eps, m_inv, ws);
                mu = log(10.0 * eps);
                h_bar = 0.0;
                log_eps_bar = 0.0;
                t = 0;
            }
            /* the start's curvature is a poor guess when the start is far from the
             * posterior: take it again once the chain has moved in */
            if ((it + 1 == 10 || it + 1 == 30) && it + 1 < win_start) {
                initial_metric(d, &wk, &rng, q, g, m_inv, ws);
                eps = find_step_size(d, &wk, &rng, q, lp, g, eps, m_inv, ws);
                mu = log(10.0 * eps);
                h_bar = 0.0;
                log_eps_bar = 0.0;
                t = 0;
            }
            if (it + 1 == n_tune) eps = exp(log_eps_bar);
        } else {
            int64_t k = it - n_tune;
            COPY(draws + k * dim, q);
            double *s = stats + k * 7;
            s[0] = lp;
            s[1] = tr.accept;
            s[2] = (double)tr.n_leapfrog;
            s[3] = (double)tr.depth;
            s[4] = tr.diverged ? 1.0 : 0.0;
            s[5] = tr.energy;
            s[6] = eps;
        }
        progress[chain] = it + 1;
    }
    if (status == 0) {
        COPY(metric, m_inv);
        *step_out = eps;
    }
    work_free(&wk);
    free(q);
    free(g);
    free(m_inv);
    free(mean);
    free(m2);
    free(ws);
    return status;
}
