/* family_binomial.c: the binomial log-likelihood, successes out of trials, with a logit, probit or cloglog link.
 *
 * log p(y | eta) = y log p + (n - y) log(1 - p) up to log C(n, y), which does
 * not depend on the parameters; n is the row's trials (d->trials; NULL: one
 * each, the Bernoulli). log p and log(1 - p) come from eta without forming p,
 * so rows far out on the link scale stay finite and keep their gradient:
 *
 *   logit    log p = eta - log(1 + e^eta), log(1 - p) = -log(1 + e^eta), from one
 *            exp as family_bernoulli.c does (with trials NULL, the same numbers);
 *   probit   log Phi(eta) and log Phi(-eta) from one erfc, an asymptotic series
 *            where erfc would underflow (special.c);
 *   cloglog  log(1 - p) = -e^eta exactly, log p = log(1 - exp(-e^eta)) by expm1
 *            or log1p, whichever keeps its digits, and eta - e^eta / 2 far below.
 *
 * A row with no failures (or no successes) takes no log(1 - p) (or log p): at
 * p = 1 that term is 0 * -inf, which is 0.
 */
#include "hb.h"

#define LN2 0.69314718055994530942

static double logit_rows(const double *restrict y, const double *restrict tr, const double *restrict eta,
                         double *restrict ge, int64_t n, double lp) {
    for (int64_t i = 0; i < n; i++) {
        double e = eta[i], ni = tr ? tr[i] : 1.0;
        double t = exp(-fabs(e));
        double log1pexp = (e > 0 ? e : 0.0) + log1p(t);
        double inv = 1.0 / (1.0 + t);
        lp += y[i] * e - ni * log1pexp;
        ge[i] = y[i] - ni * (e > 0 ? inv : t * inv);
    }
    return lp;
}

static double probit_rows(const double *restrict y, const double *restrict tr, const double *restrict eta,
                          double *restrict ge, int64_t n, double lp) {
    for (int64_t i = 0; i < n; i++) {
        double ni = tr ? tr[i] : 1.0, fails = ni - y[i];
        double lpv, lqv, rp, rq;
        log_ndtr_pair(eta[i], &lpv, &lqv, &rp, &rq);
        lp += y[i] * lpv + fails * lqv;
        ge[i] = y[i] * rp - fails * rq;
    }
    return lp;
}

static double cloglog_rows(const double *restrict y, const double *restrict tr, const double *restrict eta,
                           double *restrict ge, int64_t n, double lp) {
    for (int64_t i = 0; i < n; i++) {
        double e = eta[i], ni = tr ? tr[i] : 1.0, fails = ni - y[i];
        double m = exp(e); /* -log(1 - p) */
        double logp, dlogp;
        if (e < -30.0) { /* m < 1e-13: log(1 - e^-m) = log m - m / 2 + O(m^2) */
            logp = e - 0.5 * m;
            dlogp = 1.0 - 0.5 * m;
        } else {
            logp = m <= LN2 ? log(-expm1(-m)) : log1p(-exp(-m));
            /* m e^-m / (1 - e^-m); 0 where m overflows */
            dlogp = m < 1.0 ? m / expm1(m) : exp(e - m) / -expm1(-m);
        }
        double term = y[i] > 0 ? y[i] * logp : 0.0, grad = y[i] > 0 ? y[i] * dlogp : 0.0;
        if (fails > 0) {
            term -= fails * m;
            grad -= fails * m;
        }
        lp += term;
        ge[i] = grad;
    }
    return lp;
}

double loglik_binomial(const Model *d, const double *theta, const double *eta, double *ge, double *grad,
                       FullWork *w, double lp) {
    (void)theta, (void)grad, (void)w; /* no parameters of its own */
    switch (d->link) {
    case LINK_LOGIT:
        return logit_rows(d->y, d->trials, eta, ge, d->n, lp);
    case LINK_PROBIT:
        return probit_rows(d->y, d->trials, eta, ge, d->n, lp);
    default: /* LINK_CLOGLOG: hb_model_check refuses any other */
        return cloglog_rows(d->y, d->trials, eta, ge, d->n, lp);
    }
}
