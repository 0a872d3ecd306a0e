/* family_poisson.c: the Poisson log-likelihood with a log link, and its gradient in eta.
 *
 * log p(y | eta) = y eta - e^eta up to log(y!), which does not depend on the
 * parameters; the adjoint is y - e^eta.
 */
#include "hb.h"

double loglik_poisson(const Model *d, const double *theta, const double *eta, double *ge, double *grad,
                      FullWork *w, double lp) {
    (void)theta, (void)grad, (void)w; /* no parameters of its own */
    int64_t n = d->n;
    const double *y = d->y;
    for (int64_t i = 0; i < n; i++) {
        double mu = exp(eta[i]);
        lp += y[i] * eta[i] - mu;
        ge[i] = y[i] - mu;
    }
    return lp;
}
