/* priors.c: the priors on fixed effects, SDs and the family's dispersion.
 *
 * Each prior is a row of pri_i (parameter's position, prior code, positive)
 * and of pri_f (its parameters a, b, c, as codes.PRIOR_CODES lists them).
 * Positive parameters are sampled on the log scale, with the Jacobian.
 * Densities are up to a constant; hb_model_check refuses an unknown code.
 */
#include "hb.h"

/* Log density (up to a constant) of a prior at x; its derivative in x goes to *d. */
static double prior_logp_dx(int64_t code, double x, double a, double b, double c, double *d) {
    double z, s2, lx;
    switch (code) {
    case PRIOR_NORMAL: /* normal(mu, sigma) */
        z = (x - a) / b;
        *d = -z / b;
        return -0.5 * z * z;
    case PRIOR_STUDENT_T: /* student_t(nu, mu, sigma) */
        z = x - b;
        s2 = c * c;
        *d = -(a + 1.0) * z / (a * s2 + z * z);
        return -0.5 * (a + 1.0) * log1p(z * z / (a * s2));
    case PRIOR_CAUCHY: /* cauchy(alpha, beta) */
        z = x - a;
        *d = -2.0 * z / (b * b + z * z);
        return -log1p(z * z / (b * b));
    case PRIOR_HALF_NORMAL: /* half_normal(sigma) */
        z = x / a;
        *d = -z / a;
        return -0.5 * z * z;
    case PRIOR_HALF_STUDENT_T: /* half_student_t(nu, sigma) */
        s2 = b * b;
        *d = -(a + 1.0) * x / (a * s2 + x * x);
        return -0.5 * (a + 1.0) * log1p(x * x / (a * s2));
    case PRIOR_HALF_CAUCHY: /* half_cauchy(beta) */
        *d = -2.0 * x / (a * a + x * x);
        return -log1p(x * x / (a * a));
    case PRIOR_EXPONENTIAL: /* exponential(lam) */
        *d = -a;
        return -a * x;
    case PRIOR_GAMMA: /* gamma(alpha, beta) */
        *d = (a - 1.0) / x - b;
        return (a - 1.0) * log(x) - b * x;
    case PRIOR_INV_GAMMA: /* inv_gamma(alpha, beta) */
        *d = -(a + 1.0) / x + b / (x * x);
        return -(a + 1.0) * log(x) - b / x;
    case PRIOR_LOGNORMAL: /* lognormal(mu, sigma) */
        lx = log(x);
        z = (lx - a) / b;
        *d = (-1.0 - z / b) / x;
        return -lx - 0.5 * z * z;
    case PRIOR_FLAT: /* flat: improper, density 1 (brms's default on b) */
        *d = 0.0;
        return 0.0;
    default: /* refused by hb_model_check before any evaluation */
        *d = NAN;
        return NAN;
    }
}

/* Priors on fixed effects, SDs and the dispersion; positive ones are sampled on the log scale. */
double priors(const double *theta, double *grad, const int64_t *pri_i, const double *pri_f, int64_t npri) {
    double lp = 0.0, d;
    for (int64_t q = 0; q < npri; q++) {
        const int64_t *row = pri_i + PRI_N * q;
        int64_t t = row[PRI_AT];
        const double *f = pri_f + 3 * q;
        if (row[PRI_POSITIVE] == 1) {
            double x = exp(theta[t]);
            lp += prior_logp_dx(row[PRI_CODE], x, f[0], f[1], f[2], &d) + theta[t];
            grad[t] += d * x + 1.0;
        } else {
            lp += prior_logp_dx(row[PRI_CODE], theta[t], f[0], f[1], f[2], &d);
            grad[t] += d;
        }
    }
    return lp;
}
