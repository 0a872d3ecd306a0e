/* family_gamma.c: the gamma log-likelihood with a log link, its gradient in eta and log shape.
 *
 * y ~ gamma(shape k, rate k / mu), mu = e^eta, theta[disp_at] = log k:
 *
 *   log p(y | eta, k) = k log k - lgamma(k) + (k - 1) log y - k (eta + y e^-eta).
 *
 * The -log y of (k - 1) log y does not depend on the parameters and is left
 * out; the k log y part is k times sum log y, summed once (d->ylogsum, pack).
 * One exp per row.
 */
#include "hb.h"

double loglik_gamma(const Model *d, const double *theta, const double *eta, double *ge, double *grad,
                    FullWork *w, double lp) {
    (void)w;
    int64_t n = d->n, at = d->disp_at;
    const double *y = d->y;
    double lk = theta[at], k = exp(lk), s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double ye = y[i] * exp(-eta[i]); /* y / mu */
        s += eta[i] + ye;
        ge[i] = k * (ye - 1.0);
    }
    double nn = (double)n;
    lp += nn * (k * lk - lgamma(k)) + k * (d->ylogsum - s);
    grad[at] += k * (nn * (lk + 1.0 - digamma(k)) + d->ylogsum - s);
    return lp;
}
