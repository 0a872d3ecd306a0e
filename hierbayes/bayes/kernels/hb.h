/* hb.h: what hierbayes's compiled kernels share across their files.
 *
 * The kernels are plain C99 with no Python headers: setup.py compiles every
 * kernels/<name>.c into the one extension hierbayes.bayes._ckernels, and
 * hierbayes/bayes/native.py opens that library with ctypes. This header holds
 * what more than one file needs: the Model record (mirrored field by field in
 * native.py), the codes shared with Python (hierbayes/bayes/codes.py; the two
 * are compared when the library is loaded, layout.c), the per-chain work
 * buffers, and the internal functions' prototypes.
 *
 * The files, by concern:
 *   layout.c          the exported layout and constant checks, hb_model_check
 *   rng.c             xoshiro256** random numbers, normals by the polar method
 *   priors.c          the priors on fixed effects, SDs and the family's dispersion
 *   lkj.c             partial correlations -> Cholesky factor, LKJ density and gradient; T per block
 *   corrstruct.c      a cs or ar1 term's correlation Cholesky factor from its one parameter
 *   full.c            the log density with group effects in theta (rows read once per evaluation)
 *   families.c        the response family's log-likelihood, chosen by family code
 *   family_*.c        one log-likelihood (with its gradient in eta) per family
 *   special.c         the special functions the families need: digamma, log Phi
 *   residual.c        the Gaussian rows under a residual structure: log-linear SD, AR(1)/CAR(1)
 *   marginal.c        the Gaussian log density with every group effect integrated out
 *   draws.c           exact draws of integrated-out group effects
 *   density.c         the model's density as a sampler target; hb_logp and its work
 *   nuts.c            one NUTS transition and the step-size search, as Stan's
 *   chain.c           a chain: Stan's warm-up (windows, dual averaging), then the draws
 *   nutpie.c          the density behind nutpie's function pointers, a Work per calling thread
 *   work.c            the work buffers, allocated once per chain (or per model for Python)
 */
#ifndef HB_H
#define HB_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Internal functions are hidden: called directly, and never resolved to a
 * symbol of the same name in another library loaded into the process. */
#if defined(__GNUC__) && !defined(_WIN32)
#define HB_INTERNAL __attribute__((visibility("hidden")))
#else
#define HB_INTERNAL
#endif

/* ---- codes shared with hierbayes/bayes/codes.py (checked at load) ---- */

/* Columns of the full density's block table (one row of B_N int64 per block). */
enum { B_K, B_L, B_COL, B_SD, B_CPC, B_EFF, B_CENTRED, B_CORR, B_ONES, B_ABSORB, B_PARENT, B_PMAP,
       B_SKIP, B_XTERM, B_XN, B_XAT, B_XVAL, B_N };
/* Columns of the marginal density's block table (first block first). */
enum { M_K, M_L, M_OFF, M_SD, M_CPC, M_CORR, M_N };
/* A block's correlation structure (B_CORR, M_CORR): none (T diagonal), LKJ (free, partial
 * correlations), compound symmetry or AR(1) (one correlation in a uniform prior's range). */
enum { CORR_NONE, CORR_LKJ, CORR_CS, CORR_AR1, CORR_N };
/* Per block, three doubles (blk_par, mblk_par): LKJ's eta, a cs/ar1 correlation's range lo, hi. */
enum { PAR_ETA, PAR_LO, PAR_HI, PAR_N };
/* Prior families, parameters a, b, c as listed in codes.PRIOR_CODES. */
enum { PRIOR_NORMAL, PRIOR_STUDENT_T, PRIOR_CAUCHY, PRIOR_HALF_NORMAL, PRIOR_HALF_STUDENT_T,
       PRIOR_HALF_CAUCHY, PRIOR_EXPONENTIAL, PRIOR_GAMMA, PRIOR_INV_GAMMA, PRIOR_LOGNORMAL, PRIOR_FLAT,
       PRIOR_N };
/* Response families (codes.FAMILY_CODES). */
enum { FAMILY_GAUSSIAN, FAMILY_BERNOULLI, FAMILY_POISSON, FAMILY_BINOMIAL, FAMILY_NEGBINOMIAL, FAMILY_GAMMA,
       FAMILY_N };
/* Links (codes.LINK_CODES, the codes of hierbayes.families.links). */
enum { LINK_IDENTITY, LINK_LOGIT, LINK_PROBIT, LINK_CLOGLOG, LINK_LOG, LINK_N };
/* Columns of a prior's integer row: the parameter's position in theta, its code,
 * whether it is positive (sampled on the log scale). */
enum { PRI_AT, PRI_CODE, PRI_POSITIVE, PRI_N };
/* Columns of the sampler's per-draw statistics (nuts.STAT_NAMES). */
enum { STAT_LP, STAT_ACCEPT, STAT_N_LEAPFROG, STAT_DEPTH, STAT_DIVERGED, STAT_ENERGY, STAT_STEP, STAT_N };
/* What the exported functions return. */
enum { HB_OK, HB_NOMEM, HB_STOPPED, HB_BAD_FAMILY, HB_BAD_PRIOR, HB_BAD_MODE, HB_BAD_MODEL, HB_IMPROPER,
       HB_NO_STEP_SIZE, HB_METRIC_OVERFLOW, HB_TARGET_FAILED, HB_BAD_LINK };
/* Model.mode */
enum { MODE_FULL, MODE_MARGINAL };

/* Every code above, by name, for hb_constant_name / hb_constant_value (layout.c). */
#define HB_CONSTANTS(X)                                                                               \
    X(B_K) X(B_L) X(B_COL) X(B_SD) X(B_CPC) X(B_EFF) X(B_CENTRED) X(B_CORR) X(B_ONES) X(B_ABSORB)     \
    X(B_PARENT) X(B_PMAP) X(B_SKIP) X(B_XTERM) X(B_XN) X(B_XAT) X(B_XVAL) X(B_N)                       \
    X(M_K) X(M_L) X(M_OFF) X(M_SD) X(M_CPC) X(M_CORR) X(M_N)                                          \
    X(CORR_NONE) X(CORR_LKJ) X(CORR_CS) X(CORR_AR1) X(CORR_N) X(PAR_ETA) X(PAR_LO) X(PAR_HI) X(PAR_N) \
    X(PRIOR_NORMAL) X(PRIOR_STUDENT_T) X(PRIOR_CAUCHY) X(PRIOR_HALF_NORMAL) X(PRIOR_HALF_STUDENT_T)   \
    X(PRIOR_HALF_CAUCHY) X(PRIOR_EXPONENTIAL) X(PRIOR_GAMMA) X(PRIOR_INV_GAMMA) X(PRIOR_LOGNORMAL)     \
    X(PRIOR_FLAT) X(PRIOR_N)                                                                          \
    X(FAMILY_GAUSSIAN) X(FAMILY_BERNOULLI) X(FAMILY_POISSON) X(FAMILY_BINOMIAL) X(FAMILY_NEGBINOMIAL)  \
    X(FAMILY_GAMMA) X(FAMILY_N)                                                                       \
    X(LINK_IDENTITY) X(LINK_LOGIT) X(LINK_PROBIT) X(LINK_CLOGLOG) X(LINK_LOG) X(LINK_N)                \
    X(PRI_AT) X(PRI_CODE) X(PRI_POSITIVE) X(PRI_N)                                                    \
    X(STAT_LP) X(STAT_ACCEPT) X(STAT_N_LEAPFROG) X(STAT_DEPTH) X(STAT_DIVERGED) X(STAT_ENERGY)        \
    X(STAT_STEP) X(STAT_N)                                                                            \
    X(HB_OK) X(HB_NOMEM) X(HB_STOPPED) X(HB_BAD_FAMILY) X(HB_BAD_PRIOR) X(HB_BAD_MODE) X(HB_BAD_MODEL) \
    X(HB_IMPROPER) X(HB_NO_STEP_SIZE) X(HB_METRIC_OVERFLOW) X(HB_TARGET_FAILED) X(HB_BAD_LINK)        \
    X(MODE_FULL) X(MODE_MARGINAL)

/* ---- the model ---- */

/* Mirrors hierbayes.bayes.native.Model (ctypes): every integer is int64, every
 * array a pointer. native.py checks the layout at load (hb_model_size,
 * hb_model_offsets): a field added here must be added there, in the same
 * place, and to MODEL_FIELDS. */
typedef struct {
    int64_t mode; /* MODE_FULL or MODE_MARGINAL */
    int64_t dim;
    /* full */
    int64_t n, p, G, npri;
    int64_t family;    /* FAMILY_* */
    int64_t link;      /* LINK_*: one the family has (hb_model_check) */
    int64_t disp_at;   /* position of the family's log dispersion (log sigma, log shape) in theta, -1: none */
    int64_t collapsed; /* the random-intercept block integrated out row by row, -1: none */
    /* column-major (one contiguous column per fixed effect, block, Z column): the
     * row loops run as passes over columns, which the compiler vectorises */
    const double *Xt, *y;
    /* per row, NULL for none: the linear predictor's known part (it starts there), the
     * binomial trials (NULL: one each), the Gaussian prior weights (precisions; NULL: all one) */
    const double *offset, *trials, *wts;
    /* negbinomial: the response's nyd distinct values, ascending, and how many rows take each */
    int64_t nyd;
    const double *yd, *ydn;
    double ylogsum; /* gamma: sum of log y over the rows */
    /* a Gaussian residual structure (residual.c; no weights, no collapsed block): row i's SD is
     * sigma exp(V_i gamma), nv columns of V (column-major Vt), gamma at gam_at in theta; and
     * within series AR(1)/CAR(1) errors, corr phi^lag with the row rprev[i] before (-1: none,
     * lag rlag[i]); phi = phi_lo + (phi_hi - phi_lo) logistic(theta[phi_at]), its uniform prior's
     * transform (phi_at -1: no correlation) */
    int64_t nv, gam_at, phi_at;
    double phi_lo, phi_hi;
    const double *Vt, *rlag;
    const int64_t *rprev;
    const int32_t *idxT;
    const double *ZvT;
    const double *ccnt;  /* rows per level of the collapsed block */
    const int64_t *cseg; /* rows sorted by the collapsed block: level j's rows are cseg[j] .. cseg[j+1] */
    const int64_t *blk;  /* G x B_N */
    const double *blk_par; /* G x PAR_N */
    const int64_t *pri_i; /* npri x PRI_N */
    const double *pri_f;  /* npri x 3 */
    const int32_t *pmap;
    /* the fixed effects that centred blocks' level means carry (B_XAT, B_XVAL): their
     * positions in theta, and per block, level by level, their columns' values there */
    const int64_t *xcol;
    const double *xlev;
    /* marginal */
    int64_t mp, q, q1, q2, mG, mnpri, mn, mosig;
    const double *XtX, *Xty;
    double yty;
    const double *ZtX, *Zty, *G11, *G21, *G22;
    const int64_t *mblk; /* mG x M_N */
    const double *mblk_par; /* mG x PAR_N */
    const int64_t *mpri_i;
    const double *mpri_f;
} Model;

/* The layout that native.py compares with its ctypes mirror. */
#define MODEL_FIELDS(X)                                                                           \
    X(mode) X(dim) X(n) X(p) X(G) X(npri) X(family) X(link) X(disp_at) X(collapsed) X(Xt) X(y)      \
    X(offset) X(trials) X(wts) X(nyd) X(yd) X(ydn) X(ylogsum) X(nv) X(gam_at) X(phi_at) X(phi_lo)    \
    X(phi_hi) X(Vt) X(rlag) X(rprev) X(idxT)                                                        \
    X(ZvT) X(ccnt) X(cseg) X(blk) X(blk_par) X(pri_i) X(pri_f) X(pmap) X(xcol) X(xlev) X(mp) X(q)   \
    X(q1) X(q2) X(mG) X(mnpri) X(mn) X(mosig) X(XtX) X(Xty) X(yty) X(ZtX) X(Zty) X(G11) X(G21)     \
    X(G22) X(mblk) X(mblk_par) X(mpri_i) X(mpri_f)

/* ---- random numbers (rng.c) ---- */

typedef struct {
    uint64_t s[4];
    int has_spare;
    double spare;
} Rng;

HB_INTERNAL void rng_seed(Rng *r, uint64_t seed);
HB_INTERNAL double rng_uniform(Rng *r); /* on [0, 1) */
HB_INTERNAL double rng_normal(Rng *r);

/* ---- priors (priors.c) ---- */

HB_INTERNAL double priors(const double *theta, double *grad, const int64_t *pri_i, const double *pri_f,
                          int64_t npri);

/* ---- T = diag(sd) L per block, and the LKJ terms (lkj.c) ---- */

/* Work arrays for every block's T = diag(sd) L, L, dL/dcpc and LKJ gradient. */
typedef struct {
    int64_t Kmax, Mmax;
    double *T, *L, *dL, *gy;
} TW;

#define TIX(w, g, a, b) (((g) * (w)->Kmax + (a)) * (w)->Kmax + (b))

HB_INTERNAL int tw_alloc(TW *w, const int64_t *blk, int64_t G, int64_t stride);
HB_INTERNAL void tw_free(TW *w);
HB_INTERNAL double cpc_cholesky(const double *y, int64_t K, double eta, double *L, double *dL, double *gy,
                                int64_t ld);
HB_INTERNAL double block_T(const double *theta, int64_t g, int64_t K, int64_t osd, int64_t ocpc, int64_t corr,
                           const double *par, TW *w);
HB_INTERNAL int64_t corr_params(int64_t corr, int64_t K);
HB_INTERNAL double structured_cholesky(int64_t corr, double z, int64_t K, double lo, double hi, double *L,
                                       double *dL, double *gy, int64_t ld);
HB_INTERNAL int64_t sd_params(int64_t corr, int64_t K);
HB_INTERNAL void chain_T(const double *theta, double *grad, const double *gT, int64_t K, int64_t osd,
                         int64_t ocpc, int64_t corr, const TW *w, int64_t g);

/* ---- work buffers (work.c), allocated once per chain ---- */

/* The row loops' group terms, read once per chain rather than from the block
 * table per row; one record per block, as many blocks as the model has. xc
 * lists the nx fixed-effect columns that enter the rows: those a centred
 * block's level means carry (the intercept, covariates constant within its
 * levels) are left out. */
typedef struct {
    int64_t G, nx;
    int64_t *K, *eff, *col, *ones, *gi, *xc;
} Rows;

struct FullWork;
/* A response family's log-likelihood over the rows at the linear predictor eta:
 * adds it to lp (row by row, in row order) and returns lp; writes
 * ge[i] = d loglik / d eta_i; adds the gradient in the family's own
 * parameters (Gaussian: log sigma, and the collapsed block's log SD;
 * negbinomial and gamma: log shape) to grad. */
typedef double (*LoglikFn)(const Model *d, const double *theta, const double *eta, double *ge, double *grad,
                           struct FullWork *w, double lp);

/* The full density's buffers. r and g_r hold the group effects and their
 * gradient (dim each); S and cj the collapsed block's level sums and, after
 * them, per level count its 1/D and number of levels (cmax + 1 each); gT, wv
 * and vv one block's gradient in T and two K-vectors. */
typedef struct FullWork {
    double *eta, *ge;
    Rows rw;
    TW tw;
    double *r, *g_r;
    double *S, *cj;
    int64_t cmax;
    double *gT, *wv, *vv;
    double *ra, *ru, *rs, *rr; /* a residual structure's rows: standardised, whitened, log SD, corr */
    LoglikFn loglik;
} FullWork;

/* The marginal density's buffers: T per block (w), A11's level blocks (L11),
 * W = A21 A11^-1, LS (Cholesky of the Schur complement S), the blocked
 * system's temporaries, and the gradient's (A^-1 where it is needed). */
typedef struct {
    TW w;
    double *L11, *W, *LS, *A21, *tmp, *S, *Tr22, *Tr22t;
    double *c, *u, *b, *Ztr, *XtXb;
    double *wu, *rhs, *ys;                                     /* mw_solve */
    double *Sinv, *SW, *gT, *Gb, *za, *TrSW;                   /* gradient */
    double *LSinv, *e, *col, *GT21, *G22Tr;                    /* gradient, q2 > 0 */
} MargWork;

typedef struct {
    FullWork f;
    MargWork m;
} Work;

/* HB_OK, HB_NOMEM or HB_BAD_FAMILY; work_free is safe after a failed work_alloc. */
HB_INTERNAL int work_alloc(Work *w, const Model *d);
HB_INTERNAL void work_free(Work *w);

/* ---- the log densities (full.c, marginal.c, families.c) ---- */

HB_INTERNAL LoglikFn family_loglik(int64_t code); /* NULL: an unknown code */
HB_INTERNAL double loglik_gaussian(const Model *d, const double *theta, const double *eta, double *ge,
                                   double *grad, FullWork *w, double lp);
HB_INTERNAL double loglik_bernoulli(const Model *d, const double *theta, const double *eta, double *ge,
                                    double *grad, FullWork *w, double lp);
HB_INTERNAL double loglik_poisson(const Model *d, const double *theta, const double *eta, double *ge,
                                  double *grad, FullWork *w, double lp);
HB_INTERNAL double loglik_binomial(const Model *d, const double *theta, const double *eta, double *ge,
                                   double *grad, FullWork *w, double lp);
HB_INTERNAL double loglik_negbinomial(const Model *d, const double *theta, const double *eta, double *ge,
                                      double *grad, FullWork *w, double lp);
HB_INTERNAL double loglik_gamma(const Model *d, const double *theta, const double *eta, double *ge,
                                double *grad, FullWork *w, double lp);
HB_INTERNAL int family_link_ok(int64_t family, int64_t link); /* whether the family has that link */
HB_INTERNAL int has_structure(const Model *d); /* a residual structure (residual.c) */
HB_INTERNAL double loglik_structured(const Model *d, const double *theta, const double *eta, double *ge,
                                     double *grad, FullWork *w, double lp);

/* ---- special functions (special.c) ---- */

HB_INTERNAL double digamma(double x); /* x > 0 */
/* log Phi(x) and log Phi(-x) (Phi the standard normal CDF), and phi(x) / Phi(x) and
 * phi(x) / Phi(-x): finite at any finite x */
HB_INTERNAL void log_ndtr_pair(double x, double *lp, double *lq, double *rp, double *rq);
HB_INTERNAL double residuals_sum(const double *restrict y, const double *restrict eta, double *restrict ge,
                                 int64_t i0, int64_t i1, double *sum);

HB_INTERNAL int rows_alloc(const Model *d, Rows *rw);
HB_INTERNAL double build_r(const double *theta, const Model *d, double *r, TW *w);
HB_INTERNAL void linear_predictor(const Model *d, const double *theta, const Rows *rw, const double *r,
                                  double *restrict eta);
HB_INTERNAL double logp_full(const Model *d, const double *theta, double *grad, FullWork *wk);

HB_INTERNAL double factor_T(const double *theta, const Model *d, TW *w);
HB_INTERNAL void z_resid(const Model *d, const double *theta, double *out);
HB_INTERNAL void tvec(const TW *w, const Model *d, const double *u, double *out, int transpose);
HB_INTERNAL int mw_system(const Model *d, MargWork *m, double sigma2, double *logdet);
HB_INTERNAL void mw_solve(const Model *d, MargWork *m, const double *c, double *u);
HB_INTERNAL void lower_solve(const double *L, int64_t n, const double *b, double *out, int transpose);
HB_INTERNAL double logp_marg(const Model *d, const double *theta, double *grad, MargWork *m);

/* The model's log density at theta, either way; the gradient goes into grad. */
HB_INTERNAL double density(const Model *d, const double *theta, double *grad, Work *wk);

/* ---- the sampler's target (density.c) ---- */

/* A log density in nutpie's calling convention: 0 on success, the density into
 * *logp and its gradient into grad; ctx is the target's own. */
typedef int64_t (*hb_logp_fn)(uint64_t dim, const double *x, double *grad, double *logp, void *ctx);
typedef struct {
    hb_logp_fn fn;
    void *ctx;
    int64_t dim;
    int64_t failed; /* the first non-zero code fn returned */
} Target;
/* The context of hb_model_logp: a model and its work. */
typedef struct {
    const Model *d;
    Work *w;
} ModelTarget;
HB_INTERNAL double target_logp(Target *t, const double *q, double *g); /* NaN once fn fails */

/* ---- NUTS (nuts.c) ---- */

typedef struct Nuts Nuts; /* a transition's buffers, allocated once per chain */
typedef struct {
    double lp, accept, energy;
    int64_t n_leapfrog, depth;
    int diverged, stopped;
} Transition;
HB_INTERNAL Nuts *nuts_new(int64_t dim, int64_t max_depth);
HB_INTERNAL void nuts_free(Nuts *s);
HB_INTERNAL Transition nuts_transition(Nuts *s, Target *t, Rng *rng, double *q, double lp, double *g, double eps,
                                       const double *m_inv, volatile const int32_t *stop);
HB_INTERNAL int init_stepsize(Nuts *s, Target *t, Rng *rng, const double *q, const double *g, double lp,
                              const double *m_inv, double *eps);
HB_INTERNAL void transition_stats(double *row, const Transition *tr, double eps);

/* ---- exported (native.py) ---- */

int64_t hb_model_size(void);
int64_t hb_model_fields(void);
void hb_model_offsets(int64_t *out);
const char *hb_model_field_name(int64_t i);
const char *hb_source_sha256(void);
int64_t hb_constant_count(void);
const char *hb_constant_name(int64_t i);
int64_t hb_constant_value(int64_t i);
int hb_model_check(const Model *d);
Work *hb_work_new(const Model *d, int *status);
void hb_work_free(Work *w);
double hb_logp(const Model *d, Work *w, const double *theta, double *grad);
int64_t hb_model_logp(uint64_t dim, const double *x, double *grad, double *logp, void *ctx);
int hb_run_chain(const Model *d, const double *q0, uint64_t seed, int64_t n_tune, int64_t n_draws,
                 double target_accept, int64_t max_depth, int64_t curvature, double *draws, double *stats,
                 double *metric, volatile int64_t *progress, int64_t chain, double *step_out,
                 volatile const int32_t *stop);
int hb_run_target(hb_logp_fn fn, void *ctx, int64_t dim, const double *q0, uint64_t seed, int64_t n_tune,
                  int64_t n_draws, double target_accept, int64_t max_depth, int64_t curvature, double *draws,
                  double *stats, double *metric, volatile int64_t *progress, int64_t chain, double *step_out,
                  volatile const int32_t *stop);
int hb_transitions(hb_logp_fn fn, void *ctx, int64_t dim, const double *q0, uint64_t seed, int64_t n, double eps,
                   const double *m_inv, int64_t max_depth, double *draws, double *stats);
int hb_init_stepsize(hb_logp_fn fn, void *ctx, int64_t dim, const double *q0, uint64_t seed, const double *m_inv,
                     double *eps);
int hb_draw_effects(const Model *d, const double *thetas, int64_t ndraws, uint64_t seed, double *out);
int hb_draw_collapsed(const Model *d, const double *thetas, int64_t ndraws, uint64_t seed, double *out);
int hb_cpc_cholesky(const double *y, int64_t n_draws, int64_t K, double *out);
/* Stan's warm-up windows for the metric: [start, end) pairs, at most max; returns the count. */
#define HB_MAX_WINDOWS 64
int64_t hb_windows(int64_t n_tune, int64_t *out, int64_t max);
/* nutpie.c: n Work records for threads that evaluate d at once (NULL, with
 * *status HB_NOMEM or work_alloc's code, if they cannot be allocated), and
 * nutpie's logp and expand signatures over it. */
typedef struct HbPool HbPool;
HbPool *hb_pool_new(const Model *d, int64_t n, int *status);
void hb_pool_free(HbPool *p);
int hb_nutpie_logp(size_t dim, const double *x, double *grad, double *logp, const void *user_data);
int hb_nutpie_expand(size_t dim, size_t n_expanded, const double *x, double *out, const void *user_data);

#endif
