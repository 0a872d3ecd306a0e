/* family_negbinomial.c: the negative binomial (NB2) log-likelihood with a log link, its gradient in eta and log shape.
 *
 * With mu = e^eta and shape k (theta[disp_at] = log k), Var(y) = mu + mu^2 / k:
 *
 *   log p(y | eta, k) = D(y, k) + y eta - (k + y) log(1 + mu / k) - log(y!),
 *   D(y, k) = lgamma(y + k) - lgamma(k) - y log k = sum_{j < y} log(1 + j / k).
 *
 * log(y!) does not depend on the parameters and is left out. log(1 + mu / k)
 * is log(1 + e^a), a = eta - log k, computed as the Bernoulli's is, so neither
 * a large mu nor a large k (near the Poisson) overflows or cancels. D depends
 * on the row only through y: it is summed once per distinct value (d->yd, with
 * d->ydn rows each), walking up the sorted values by its sum where they are
 * close and by lgamma and digamma across gaps, so an evaluation takes one exp
 * and one log1p per row.
 */
#include "hb.h"

/* Steps of D's sum between two distinct values before lgamma takes over the gap. */
#define STEPS 32

/* sum over the distinct values v of count(v) D(v, k), and into *gk the same of k dD/dk */
static double level_terms(const double *yd, const double *ydn, int64_t nyd, double k, double lk, double *gk) {
    double D = 0.0, G = 0.0, c = 0.0, sum = 0.0, gsum = 0.0;
    for (int64_t u = 0; u < nyd; u++) {
        double v = yd[u];
        if (v - c <= STEPS) {
            for (double j = c; j < v; j += 1.0) {
                D += log1p(j / k);
                G -= j / (k + j);
            }
        } else {
            D += lgamma(v + k) - lgamma(c + k) - (v - c) * lk;
            G += k * (digamma(v + k) - digamma(c + k)) - (v - c);
        }
        c = v;
        sum += ydn[u] * D;
        gsum += ydn[u] * G;
    }
    *gk = gsum;
    return sum;
}

double loglik_negbinomial(const Model *d, const double *theta, const double *eta, double *ge, double *grad,
                          FullWork *w, double lp) {
    (void)w;
    int64_t n = d->n, at = d->disp_at;
    const double *y = d->y;
    double lk = theta[at], k = exp(lk), gk = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double a = eta[i] - lk;
        double t = exp(-fabs(a));
        double log1pexp = (a > 0 ? a : 0.0) + log1p(t);
        double inv = 1.0 / (1.0 + t);
        double frac = a > 0 ? inv : t * inv; /* mu / (k + mu) */
        double ky = k + y[i];
        lp += y[i] * eta[i] - ky * log1pexp;
        ge[i] = y[i] - ky * frac;
        gk += ky * frac - k * log1pexp;
    }
    double gd;
    lp += level_terms(d->yd, d->ydn, d->nyd, k, lk, &gd);
    grad[at] += gk + gd;
    return lp;
}
