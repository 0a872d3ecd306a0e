/* families.c: the response family's log-likelihood, chosen by family code, and the links each has.
 *
 * Each family's log-likelihood, with its gradient in the linear predictor,
 * is one function in its own file (family_<name>.c, prototype in hb.h);
 * codes are FAMILY_* (hierbayes/bayes/codes.py's FAMILY_CODES). Adding a
 * family adds its file, its code and one case here. An unknown code has no
 * log-likelihood: work_alloc and hb_model_check refuse it (HB_BAD_FAMILY)
 * rather than evaluating some other family's, and hb_model_check refuses a
 * link the family's kernel does not compute (HB_BAD_LINK).
 */
#include "hb.h"

LoglikFn family_loglik(int64_t code) {
    switch (code) {
    case FAMILY_GAUSSIAN:
        return loglik_gaussian;
    case FAMILY_BERNOULLI:
        return loglik_bernoulli;
    case FAMILY_POISSON:
        return loglik_poisson;
    case FAMILY_BINOMIAL:
        return loglik_binomial;
    case FAMILY_NEGBINOMIAL:
        return loglik_negbinomial;
    case FAMILY_GAMMA:
        return loglik_gamma;
    default:
        return NULL;
    }
}

int family_link_ok(int64_t family, int64_t link) {
    switch (family) {
    case FAMILY_GAUSSIAN:
        return link == LINK_IDENTITY;
    case FAMILY_BERNOULLI: /* its own kernel is the logit's; other links run as the binomial */
        return link == LINK_LOGIT;
    case FAMILY_BINOMIAL:
        return link == LINK_LOGIT || link == LINK_PROBIT || link == LINK_CLOGLOG;
    case FAMILY_POISSON:
    case FAMILY_NEGBINOMIAL:
    case FAMILY_GAMMA:
        return link == LINK_LOG;
    default:
        return 0;
    }
}
