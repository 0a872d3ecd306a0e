/* family_bernoulli.c: the Bernoulli log-likelihood with a logit link, and its gradient in eta.
 *
 * log p(y | eta) = y eta - log(1 + e^eta), with log(1 + e^eta) computed
 * stably; the adjoint is y - inverse_logit(eta).
 */
#include "hb.h"

double loglik_bernoulli(const Model *d, const double *theta, const double *eta, double *ge, double *grad,
                        FullWork *w, double lp) {
    (void)theta, (void)grad, (void)w; /* no parameters of its own */
    int64_t n = d->n;
    const double *y = d->y;
    for (int64_t i = 0; i < n; i++) {
        double e = eta[i];
        /* log(1 + e^eta) and inverse_logit(eta) from one exp, t = e^-|eta| <= 1 (stable):
         * the rows' exp and log1p are most of a Bernoulli model's evaluation */
        double t = exp(-fabs(e));
        double log1pexp = (e > 0 ? e : 0.0) + log1p(t);
        double inv = 1.0 / (1.0 + t);
        lp += y[i] * e - log1pexp;
        ge[i] = y[i] - (e > 0 ? inv : t * inv);
    }
    return lp;
}
