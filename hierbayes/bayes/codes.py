"""Codes shared with the compiled kernels: prior families, response families, block table columns.

The C side (``_ckernels.c``) has the same numbers; :mod:`hierbayes.bayes.native`
checks them when it loads the library.
"""

# Prior codes, shared with the C kernels (prior_logp_dx in _ckernels.c). Parameters a, b, c as listed.
NORMAL, STUDENT_T, CAUCHY, HALF_NORMAL, HALF_STUDENT_T, HALF_CAUCHY = 0, 1, 2, 3, 4, 5
EXPONENTIAL, GAMMA, INV_GAMMA, LOGNORMAL = 6, 7, 8, 9
PRIOR_CODES = {
    "normal": (NORMAL, ("mu", "sigma")),
    "student_t": (STUDENT_T, ("nu", "mu", "sigma")),
    "cauchy": (CAUCHY, ("alpha", "beta")),
    "half_normal": (HALF_NORMAL, ("sigma",)),
    "half_student_t": (HALF_STUDENT_T, ("nu", "sigma")),
    "half_cauchy": (HALF_CAUCHY, ("beta",)),
    "exponential": (EXPONENTIAL, ("lam",)),
    "gamma": (GAMMA, ("alpha", "beta")),
    "inv_gamma": (INV_GAMMA, ("alpha", "beta")),
    "lognormal": (LOGNORMAL, ("mu", "sigma")),
}
FAMILY_CODES = {"gaussian": 0, "bernoulli": 1, "poisson": 2}
# Columns of the per-block table.
B_K, B_L, B_COL, B_SD, B_CPC, B_EFF, B_CENTRED, B_CORR, B_ONES, B_ABSORB, B_PARENT, B_PMAP, B_SKIP = range(13)
