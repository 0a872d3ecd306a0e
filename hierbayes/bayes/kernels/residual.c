/* residual.c: the Gaussian rows under a residual structure: log-linear SD, AR(1)/CAR(1) errors.
 *
 * Row i's SD is sd_i = sigma exp(V_i gamma) (nlme's varIdent and varExp,
 * brms's sigma ~), and within a series the errors are AR(1) or CAR(1),
 * corr(e_i, e_j) = phi^|t_i - t_j|. With a_i = (y_i - eta_i) / sd_i, the
 * series is Markov, so its density is the product of each row's given the one
 * before it (rprev, lag rlag), r_i = phi^lag_i, s_i = sqrt(1 - r_i^2):
 *
 *     u_i = (a_i - r_i a_prev) / s_i,    log p = sum_i -log sd_i - log s_i - u_i^2 / 2
 *
 * (a first row has r = 0; the 0.5 log 2 pi constants are left out). The
 * gradient runs back through the same rows: dlp/da_i = -u_i / s_i plus, from
 * the row after i, u_next r_next / s_next. phi is sampled as
 * z = logit((phi - lo) / (hi - lo)), the support of its uniform prior, whose
 * log Jacobian is added here; the prior's constant density is left out.
 */
#include "hb.h"

int has_structure(const Model *d) { return d->nv > 0 || d->phi_at >= 0; }

double loglik_structured(const Model *d, const double *theta, const double *eta, double *ge, double *grad,
                         FullWork *w, double lp) {
    int64_t n = d->n, nv = d->nv, osig = d->disp_at;
    const double *y = d->y;
    double *a = w->ra, *u = w->ru, *ls = w->rs, *rr = w->rr;
    for (int64_t i = 0; i < n; i++) ls[i] = theta[osig];
    for (int64_t k = 0; k < nv; k++) {
        const double *col = d->Vt + k * n;
        double g = theta[d->gam_at + k];
        for (int64_t i = 0; i < n; i++) ls[i] += col[i] * g;
    }
    for (int64_t i = 0; i < n; i++) {
        a[i] = (y[i] - eta[i]) * exp(-ls[i]);
        lp -= ls[i];
    }
    if (d->phi_at < 0) {
        for (int64_t i = 0; i < n; i++) {
            lp -= 0.5 * a[i] * a[i];
            ge[i] = -a[i]; /* dlp/da for now */
        }
    } else {
        double z = theta[d->phi_at], span = d->phi_hi - d->phi_lo;
        double sz = 1.0 / (1.0 + exp(-z));
        double phi = d->phi_lo + span * sz, dphi = span * sz * (1.0 - sz);
        double gphi = 0.0;
        const int64_t *prev = d->rprev;
        const double *lag = d->rlag;
        for (int64_t i = 0; i < n; i++) {
            int64_t p = prev[i];
            if (p < 0) {
                rr[i] = 0.0;
                u[i] = a[i];
                lp -= 0.5 * a[i] * a[i];
                ge[i] = -a[i];
                continue;
            }
            double r = pow(phi, lag[i]), s2 = 1.0 - r * r, si = sqrt(s2);
            double ui = (a[i] - r * a[p]) / si;
            rr[i] = r;
            u[i] = ui;
            lp += -0.5 * log(s2) - 0.5 * ui * ui;
            ge[i] = -ui / si;
            /* d/dr of -log s - u^2 / 2, and dr/dphi = lag phi^(lag - 1) */
            double dr = r / s2 + ui * a[p] / si - ui * ui * r / s2;
            gphi += dr * lag[i] * pow(phi, lag[i] - 1.0);
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t p = prev[i];
            if (p >= 0) ge[p] += u[i] * rr[i] / sqrt(1.0 - rr[i] * rr[i]);
        }
        lp += log(dphi);
        grad[d->phi_at] += gphi * dphi + (1.0 - 2.0 * sz);
    }
    /* ge holds dlp/da: log sd_i moves a_i by -a_i and lp by -1; eta_i moves a_i by -1 / sd_i */
    double gs = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double dls = -1.0 - ge[i] * a[i];
        u[i] = dls;
        gs += dls;
        ge[i] = -ge[i] * exp(-ls[i]);
    }
    grad[osig] += gs;
    for (int64_t k = 0; k < nv; k++) {
        const double *col = d->Vt + k * n;
        double g = 0.0;
        for (int64_t i = 0; i < n; i++) g += col[i] * u[i];
        grad[d->gam_at + k] += g;
    }
    return lp;
}
