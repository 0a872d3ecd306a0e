/* special.c: the special functions the families need: digamma, log Phi.
 *
 * The C library has lgamma and erfc but neither digamma (the negative
 * binomial's and the gamma's gradient in their shape) nor a log normal CDF that
 * stays finite in the tails (the probit link). Both are written here to double
 * precision; tests/bayes/test_logdensity.py checks them through the densities:
 * the shapes' gradients against PyTensor's, log Phi against SciPy's log_ndtr
 * out to |eta| = 700.
 */
#include "hb.h"

/* digamma(x) for x > 0: the recurrence psi(x) = psi(x + 1) - 1/x up to x >= 10,
 * then the asymptotic series through x^-14 (its next term is below 5e-17 there). */
double digamma(double x) {
    double acc = 0.0;
    while (x < 10.0) {
        acc -= 1.0 / x;
        x += 1.0;
    }
    double r = 1.0 / (x * x);
    /* B_2k / (2k), k = 1 .. 7 */
    double series =
        r * (1.0 / 12 - r * (1.0 / 120 - r * (1.0 / 252 - r * (1.0 / 240 - r * (1.0 / 132 -
        r * (691.0 / 32760 - r * (1.0 / 12)))))));
    return acc + log(x) - 0.5 / x - series;
}

#define LOG_SQRT_2PI 0.91893853320467274178
#define INV_SQRT_2PI 0.39894228040143267794
#define SQRT1_2 0.70710678118654752440
/* Below this, erfc's Phi(-|x|) is near underflow's edge: the asymptotic series takes over
 * (at |x| = 20 its first eleven terms leave an error below 1e-17 and Phi is 5.5e-89). */
#define TAIL 20.0

/* log Phi(x) for x <= -TAIL: log phi(x) - log(-x) + log(1 - 1/x^2 + 3/x^4 - 15/x^6 + ...). */
static double log_ndtr_tail(double x) {
    double r = 1.0 / (x * x), term = 1.0, sum = 0.0;
    for (int k = 1; k <= 10; k++) {
        term *= -(2.0 * k - 1.0) * r;
        sum += term;
    }
    return -0.5 * x * x - LOG_SQRT_2PI - log(-x) + log1p(sum);
}

void log_ndtr_pair(double x, double *lp, double *lq, double *rp, double *rq) {
    /* the tail side a = -|x|: P = Phi(a) <= 1/2 is computed, 1 - P loses nothing */
    double a = -fabs(x), small, big, r_small, r_big;
    if (a > -TAIL) {
        double P = 0.5 * erfc(-a * SQRT1_2);
        double phi = INV_SQRT_2PI * exp(-0.5 * a * a);
        small = log(P);
        big = log1p(-P);
        r_small = phi / P;
        r_big = phi / (1.0 - P);
    } else {
        small = log_ndtr_tail(a);
        big = -exp(small); /* log(1 - P), P below 6e-89 */
        double log_phi = -0.5 * a * a - LOG_SQRT_2PI;
        r_small = exp(log_phi - small);
        r_big = exp(log_phi);
    }
    if (x < 0) {
        *lp = small, *lq = big, *rp = r_small, *rq = r_big;
    } else {
        *lp = big, *lq = small, *rp = r_big, *rq = r_small;
    }
}
