/* families.c: the response family's log-likelihood, chosen by family code.
 *
 * Each family's log-likelihood, with its gradient in the linear predictor,
 * is one function in its own file (family_<name>.c, prototype in hb.h);
 * codes are FAMILY_* (hierbayes/bayes/codes.py's FAMILY_CODES). Adding a
 * family adds its file, its code and one case here. An unknown code has no
 * log-likelihood: work_alloc and hb_model_check refuse it (HB_BAD_FAMILY)
 * rather than evaluating some other family's.
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
    default:
        return NULL;
    }
}
