/* nuts.c: one NUTS transition and the step-size search, as Stan's.
 *
 * The transition is stan::mcmc::base_nuts::transition (Stan 2.26 and later)
 * with a diagonal metric, written over a Target (density.c): multinomial
 * sampling of the trajectory's states, biased progressive sampling between the
 * old tree and a new subtree, uniform progressive sampling inside a subtree,
 * and the generalised U-turn criterion checked at every merge, both across the
 * merged tree and across each join ("between subtrees": the first subtree with
 * the second's first state, the second with the first's last state). A
 * trajectory is divergent when its energy error passes 1000 (a NaN energy is
 * infinite). The stored energy (energy__) is the Hamiltonian at the selected
 * state, with its momentum. init_stepsize is base_hmc::init_stepsize.
 *
 * The one departure: every leapfrog step reads a stop flag, so Ctrl-C ends a
 * tree of depth 10 on a large data set at once; a stopped transition is
 * discarded by the caller.
 */
#include "hb.h"

#define MAX_DELTA_H 1000.0

/* A phase-space point: position, momentum, gradient of the log density, and the log density. */
typedef struct {
    double *q, *p, *g;
    double lp;
} Point;

/* build_tree's locals at one depth, so that nothing is allocated during a transition */
typedef struct {
    double *p_init_end, *ps_init_end, *rho_init, *p_final_beg, *ps_final_beg, *rho_final, *rho_sub;
    Point z_final;
} Level;

struct Nuts {
    int64_t dim, max_depth;
    double *block;
    Point z, z_fwd, z_bck, z_sample, z_propose;
    double *p_fwd_fwd, *ps_fwd_fwd, *p_fwd_bck, *ps_fwd_bck, *p_bck_fwd, *ps_bck_fwd, *p_bck_bck, *ps_bck_bck;
    double *rho, *rho_fwd, *rho_bck, *rho_ext;
    Level *levels; /* levels[d] for build_tree at depth d >= 1 */
    /* the transition in progress */
    Target *t;
    Rng *rng;
    const double *m_inv;
    double eps, H0, sum_metro;
    int64_t n_leapfrog;
    int divergent, stopped;
    volatile const int32_t *stop;
};

#define NUTS_TOP_VECTORS 27 /* 5 points of 3 vectors, 8 ends, 4 momentum sums */
#define NUTS_LEVEL_VECTORS 10

Nuts *nuts_new(int64_t dim, int64_t max_depth) {
    Nuts *s = calloc(1, sizeof(Nuts));
    if (s == NULL) return NULL;
    int64_t d1 = dim > 0 ? dim : 1, levels = max_depth > 0 ? max_depth : 1;
    s->dim = dim;
    s->max_depth = max_depth;
    s->block = calloc((size_t)((NUTS_TOP_VECTORS + NUTS_LEVEL_VECTORS * levels) * d1), sizeof(double));
    s->levels = calloc((size_t)levels, sizeof(Level));
    if (s->block == NULL || s->levels == NULL) {
        nuts_free(s);
        return NULL;
    }
    double *at = s->block;
#define TAKE(v) ((v) = at, at += d1)
    Point *pts[5] = {&s->z, &s->z_fwd, &s->z_bck, &s->z_sample, &s->z_propose};
    for (int i = 0; i < 5; i++) {
        TAKE(pts[i]->q);
        TAKE(pts[i]->p);
        TAKE(pts[i]->g);
    }
    TAKE(s->p_fwd_fwd);
    TAKE(s->ps_fwd_fwd);
    TAKE(s->p_fwd_bck);
    TAKE(s->ps_fwd_bck);
    TAKE(s->p_bck_fwd);
    TAKE(s->ps_bck_fwd);
    TAKE(s->p_bck_bck);
    TAKE(s->ps_bck_bck);
    TAKE(s->rho);
    TAKE(s->rho_fwd);
    TAKE(s->rho_bck);
    TAKE(s->rho_ext);
    for (int64_t k = 0; k < levels; k++) {
        Level *L = &s->levels[k];
        TAKE(L->p_init_end);
        TAKE(L->ps_init_end);
        TAKE(L->rho_init);
        TAKE(L->p_final_beg);
        TAKE(L->ps_final_beg);
        TAKE(L->rho_final);
        TAKE(L->rho_sub);
        TAKE(L->z_final.q);
        TAKE(L->z_final.p);
        TAKE(L->z_final.g);
    }
#undef TAKE
    return s;
}

void nuts_free(Nuts *s) {
    if (s == NULL) return;
    free(s->block);
    free(s->levels);
    free(s);
}

#define COPY(dst, src) memcpy((dst), (src), (size_t)dim * sizeof(double))

static void copy_point(Point *dst, const Point *src, int64_t dim) {
    COPY(dst->q, src->q);
    COPY(dst->p, src->p);
    COPY(dst->g, src->g);
    dst->lp = src->lp;
}

static double kinetic(const double *p, const double *m_inv, int64_t dim) {
    double acc = 0.0;
    for (int64_t i = 0; i < dim; i++) acc += p[i] * p[i] * m_inv[i];
    return 0.5 * acc;
}

/* The Hamiltonian, NaN read as infinite (Stan's base_nuts). */
static double hamiltonian(const Point *z, const double *m_inv, int64_t dim) {
    double h = -z->lp + kinetic(z->p, m_inv, dim);
    return isnan(h) ? INFINITY : h;
}

static void sharp(double *out, const double *p, const double *m_inv, int64_t dim) {
    for (int64_t i = 0; i < dim; i++) out[i] = m_inv[i] * p[i];
}

/* Stan's compute_criterion: no U-turn while both ends' sharp momenta point along rho. */
static int criterion(const double *ps_minus, const double *ps_plus, const double *rho, int64_t dim) {
    double a = 0.0, b = 0.0;
    for (int64_t i = 0; i < dim; i++) {
        a += ps_plus[i] * rho[i];
        b += ps_minus[i] * rho[i];
    }
    return a > 0.0 && b > 0.0;
}

static double log_sum_exp(double a, double b) {
    if (a == -INFINITY) return b;
    if (a == INFINITY && b == INFINITY) return INFINITY;
    double m = a > b ? a : b, x = -fabs(a - b);
    return m + log1p(exp(x));
}

/* Stan's explicit leapfrog (expl_leapfrog): half step in p, full in q, half in p. */
static void leapfrog(Target *t, Point *z, double eps, const double *m_inv) {
    int64_t dim = t->dim;
    for (int64_t i = 0; i < dim; i++) {
        z->p[i] += 0.5 * eps * z->g[i];
        z->q[i] += eps * m_inv[i] * z->p[i];
    }
    z->lp = target_logp(t, z->q, z->g);
    for (int64_t i = 0; i < dim; i++) z->p[i] += 0.5 * eps * z->g[i];
}

static void sample_p(double *p, Rng *rng, const double *m_inv, int64_t dim) {
    for (int64_t i = 0; i < dim; i++) p[i] = rng_normal(rng) / sqrt(m_inv[i]);
}

/* base_nuts::build_tree: a subtree of 2^depth steps from s->z in direction sign. */
static int build_tree(Nuts *s, int64_t depth, Point *z_propose, double *ps_beg, double *ps_end, double *rho,
                      double *p_beg, double *p_end, double sign, double *log_sum_weight) {
    int64_t dim = s->dim;
    if (depth == 0) {
        if (*s->stop) {
            s->stopped = 1;
            return 0;
        }
        leapfrog(s->t, &s->z, sign * s->eps, s->m_inv);
        s->n_leapfrog++;
        double h = hamiltonian(&s->z, s->m_inv, dim);
        if (h - s->H0 > MAX_DELTA_H) s->divergent = 1;
        *log_sum_weight = log_sum_exp(*log_sum_weight, s->H0 - h);
        s->sum_metro += s->H0 - h > 0 ? 1.0 : exp(s->H0 - h);
        copy_point(z_propose, &s->z, dim);
        sharp(ps_beg, s->z.p, s->m_inv, dim);
        COPY(ps_end, ps_beg);
        for (int64_t i = 0; i < dim; i++) rho[i] += s->z.p[i];
        COPY(p_beg, s->z.p);
        COPY(p_end, p_beg);
        return !s->divergent;
    }
    Level *L = &s->levels[depth];
    double log_sum_weight_init = -INFINITY;
    memset(L->rho_init, 0, (size_t)dim * sizeof(double));
    if (!build_tree(s, depth - 1, z_propose, ps_beg, L->ps_init_end, L->rho_init, p_beg, L->p_init_end, sign,
                    &log_sum_weight_init))
        return 0;
    copy_point(&L->z_final, &s->z, dim);
    double log_sum_weight_final = -INFINITY;
    memset(L->rho_final, 0, (size_t)dim * sizeof(double));
    if (!build_tree(s, depth - 1, &L->z_final, L->ps_final_beg, ps_end, L->rho_final, L->p_final_beg, p_end, sign,
                    &log_sum_weight_final))
        return 0;
    double log_sum_weight_subtree = log_sum_exp(log_sum_weight_init, log_sum_weight_final);
    *log_sum_weight = log_sum_exp(*log_sum_weight, log_sum_weight_subtree);
    if (log_sum_weight_final > log_sum_weight_subtree) {
        copy_point(z_propose, &L->z_final, dim);
    } else {
        double accept_prob = exp(log_sum_weight_final - log_sum_weight_subtree);
        if (rng_uniform(s->rng) < accept_prob) copy_point(z_propose, &L->z_final, dim);
    }
    double *rs = L->rho_sub;
    for (int64_t i = 0; i < dim; i++) {
        rs[i] = L->rho_init[i] + L->rho_final[i];
        rho[i] += rs[i];
    }
    int persist = criterion(ps_beg, ps_end, rs, dim);
    for (int64_t i = 0; i < dim; i++) rs[i] = L->rho_init[i] + L->p_final_beg[i];
    persist &= criterion(ps_beg, L->ps_final_beg, rs, dim);
    for (int64_t i = 0; i < dim; i++) rs[i] = L->rho_final[i] + L->p_init_end[i];
    persist &= criterion(L->ps_init_end, ps_end, rs, dim);
    return persist;
}

/* base_nuts::transition from (q, lp, g) with step size eps and inverse metric
 * m_inv; the selected state is written back to (q, g). */
Transition nuts_transition(Nuts *s, Target *t, Rng *rng, double *q, double lp, double *g, double eps,
                           const double *m_inv, volatile const int32_t *stop) {
    int64_t dim = s->dim;
    s->t = t;
    s->rng = rng;
    s->m_inv = m_inv;
    s->eps = eps;
    s->stop = stop;
    s->n_leapfrog = 0;
    s->sum_metro = 0.0;
    s->divergent = 0;
    s->stopped = 0;
    COPY(s->z.q, q);
    COPY(s->z.g, g);
    s->z.lp = lp;
    sample_p(s->z.p, rng, m_inv, dim);
    copy_point(&s->z_fwd, &s->z, dim);
    copy_point(&s->z_bck, &s->z, dim);
    copy_point(&s->z_sample, &s->z, dim);
    copy_point(&s->z_propose, &s->z, dim);
    COPY(s->p_fwd_fwd, s->z.p);
    sharp(s->ps_fwd_fwd, s->z.p, m_inv, dim);
    COPY(s->p_fwd_bck, s->z.p);
    COPY(s->ps_fwd_bck, s->ps_fwd_fwd);
    COPY(s->p_bck_fwd, s->z.p);
    COPY(s->ps_bck_fwd, s->ps_fwd_fwd);
    COPY(s->p_bck_bck, s->z.p);
    COPY(s->ps_bck_bck, s->ps_fwd_fwd);
    COPY(s->rho, s->z.p);
    double log_sum_weight = 0.0; /* log(exp(H0 - H0)) */
    s->H0 = hamiltonian(&s->z, m_inv, dim);
    int64_t depth = 0;
    while (depth < s->max_depth) {
        memset(s->rho_fwd, 0, (size_t)dim * sizeof(double));
        memset(s->rho_bck, 0, (size_t)dim * sizeof(double));
        double log_sum_weight_subtree = -INFINITY;
        int valid;
        if (rng_uniform(rng) > 0.5) {
            copy_point(&s->z, &s->z_fwd, dim);
            COPY(s->rho_bck, s->rho);
            COPY(s->p_bck_fwd, s->p_fwd_fwd);
            COPY(s->ps_bck_fwd, s->ps_fwd_fwd);
            valid = build_tree(s, depth, &s->z_propose, s->ps_fwd_bck, s->ps_fwd_fwd, s->rho_fwd, s->p_fwd_bck,
                               s->p_fwd_fwd, 1.0, &log_sum_weight_subtree);
            copy_point(&s->z_fwd, &s->z, dim);
        } else {
            copy_point(&s->z, &s->z_bck, dim);
            COPY(s->rho_fwd, s->rho);
            COPY(s->p_fwd_bck, s->p_bck_bck);
            COPY(s->ps_fwd_bck, s->ps_bck_bck);
            valid = build_tree(s, depth, &s->z_propose, s->ps_bck_fwd, s->ps_bck_bck, s->rho_bck, s->p_bck_fwd,
                               s->p_bck_bck, -1.0, &log_sum_weight_subtree);
            copy_point(&s->z_bck, &s->z, dim);
        }
        if (!valid) break;
        depth++;
        if (log_sum_weight_subtree > log_sum_weight) {
            copy_point(&s->z_sample, &s->z_propose, dim);
        } else {
            double accept_prob = exp(log_sum_weight_subtree - log_sum_weight);
            if (rng_uniform(rng) < accept_prob) copy_point(&s->z_sample, &s->z_propose, dim);
        }
        log_sum_weight = log_sum_exp(log_sum_weight, log_sum_weight_subtree);
        for (int64_t i = 0; i < dim; i++) s->rho[i] = s->rho_bck[i] + s->rho_fwd[i];
        int persist = criterion(s->ps_bck_bck, s->ps_fwd_fwd, s->rho, dim);
        for (int64_t i = 0; i < dim; i++) s->rho_ext[i] = s->rho_bck[i] + s->p_fwd_bck[i];
        persist &= criterion(s->ps_bck_bck, s->ps_fwd_bck, s->rho_ext, dim);
        for (int64_t i = 0; i < dim; i++) s->rho_ext[i] = s->rho_fwd[i] + s->p_bck_fwd[i];
        persist &= criterion(s->ps_bck_fwd, s->ps_fwd_fwd, s->rho_ext, dim);
        if (!persist) break;
    }
    COPY(q, s->z_sample.q);
    COPY(g, s->z_sample.g);
    Transition tr;
    tr.lp = s->z_sample.lp;
    tr.accept = s->n_leapfrog > 0 ? s->sum_metro / (double)s->n_leapfrog : 0.0;
    tr.energy = hamiltonian(&s->z_sample, m_inv, dim);
    tr.n_leapfrog = s->n_leapfrog;
    tr.depth = depth;
    tr.diverged = s->divergent;
    tr.stopped = s->stopped;
    return tr;
}

/* One leapfrog from (q, g) with fresh momentum: Stan's energy change delta_H = H0 - h. */
static double probe(Nuts *s, Target *t, Rng *rng, const double *q, const double *g, double lp, double eps,
                    const double *m_inv) {
    int64_t dim = s->dim;
    COPY(s->z.q, q);
    COPY(s->z.g, g);
    s->z.lp = lp;
    sample_p(s->z.p, rng, m_inv, dim);
    double H0 = hamiltonian(&s->z, m_inv, dim);
    leapfrog(t, &s->z, eps, m_inv);
    return H0 - hamiltonian(&s->z, m_inv, dim);
}

/* base_hmc::init_stepsize: from *eps, double (or halve) it until one leapfrog's
 * acceptance, exp(delta_H), crosses 0.8; the first step size past the crossing
 * is kept. Returns HB_OK; HB_IMPROPER past 1e7 ("posterior is improper");
 * HB_NO_STEP_SIZE when halving reaches 0; HB_TARGET_FAILED if the target failed. */
int init_stepsize(Nuts *s, Target *t, Rng *rng, const double *q, const double *g, double lp, const double *m_inv,
                  double *eps) {
    if (s->dim == 0 || *eps == 0 || *eps > 1e7 || isnan(*eps)) return HB_OK;
    const double log08 = log(0.8);
    double delta_H = probe(s, t, rng, q, g, lp, *eps, m_inv);
    int direction = delta_H > log08 ? 1 : -1;
    while (1) {
        delta_H = probe(s, t, rng, q, g, lp, *eps, m_inv);
        if (t->failed) return HB_TARGET_FAILED;
        if (direction == 1 && !(delta_H > log08)) break;
        if (direction == -1 && !(delta_H < log08)) break;
        *eps = direction == 1 ? 2.0 * *eps : 0.5 * *eps;
        if (*eps > 1e7) return HB_IMPROPER;
        if (*eps == 0) return HB_NO_STEP_SIZE;
    }
    return HB_OK;
}

/* ---- exported for tests of the transition against a reference ---- */

/* n transitions with a fixed step size and inverse metric, no adaptation, from
 * q0 and a seed: the states into draws (n x dim), the statistics into stats
 * (n x STAT_N). Returns HB_OK, HB_NOMEM or HB_TARGET_FAILED. */
int hb_transitions(hb_logp_fn fn, void *ctx, int64_t dim, const double *q0, uint64_t seed, int64_t n, double eps,
                   const double *m_inv, int64_t max_depth, double *draws, double *stats) {
    Target t = {fn, ctx, dim, 0};
    Rng rng;
    rng_seed(&rng, seed);
    Nuts *s = nuts_new(dim, max_depth);
    double *q = malloc((size_t)(dim > 0 ? dim : 1) * sizeof(double));
    double *g = malloc((size_t)(dim > 0 ? dim : 1) * sizeof(double));
    int status = s && q && g ? HB_OK : HB_NOMEM;
    static const int32_t never = 0;
    if (status == HB_OK) {
        COPY(q, q0);
        double lp = target_logp(&t, q, g);
        for (int64_t k = 0; k < n && status == HB_OK; k++) {
            Transition tr = nuts_transition(s, &t, &rng, q, lp, g, eps, m_inv, &never);
            if (t.failed) status = HB_TARGET_FAILED;
            lp = tr.lp;
            COPY(draws + k * dim, q);
            transition_stats(stats + k * STAT_N, &tr, eps);
        }
    }
    nuts_free(s);
    free(q);
    free(g);
    return status;
}

/* Stan's init_stepsize from *eps at q0 with a seed (its result into *eps). */
int hb_init_stepsize(hb_logp_fn fn, void *ctx, int64_t dim, const double *q0, uint64_t seed, const double *m_inv,
                     double *eps) {
    Target t = {fn, ctx, dim, 0};
    Rng rng;
    rng_seed(&rng, seed);
    Nuts *s = nuts_new(dim, 1);
    double *g = malloc((size_t)(dim > 0 ? dim : 1) * sizeof(double));
    int status = s && g ? HB_OK : HB_NOMEM;
    if (status == HB_OK) {
        double lp = target_logp(&t, q0, g);
        status = t.failed ? HB_TARGET_FAILED : init_stepsize(s, &t, &rng, q0, g, lp, m_inv, eps);
    }
    nuts_free(s);
    free(g);
    return status;
}

void transition_stats(double *row, const Transition *tr, double eps) {
    row[STAT_LP] = tr->lp;
    row[STAT_ACCEPT] = tr->accept;
    row[STAT_N_LEAPFROG] = (double)tr->n_leapfrog;
    row[STAT_DEPTH] = (double)tr->depth;
    row[STAT_DIVERGED] = tr->diverged ? 1.0 : 0.0;
    row[STAT_ENERGY] = tr->energy;
    row[STAT_STEP] = eps;
}
