"""Codes shared with the compiled kernels: prior families, response families, links, table columns.

The C side (``kernels/hb.h``) has the same numbers under the names of
:data:`KERNEL_CONSTANTS`; :func:`hierbayes.bayes.native.check_library`
compares the two tables when it loads the library and refuses one that differs
in any name or value.

Examples
--------
>>> from hierbayes.bayes.codes import FAMILY_CODES, KERNEL_CONSTANTS
>>> KERNEL_CONSTANTS["FAMILY_POISSON"] == FAMILY_CODES["poisson"]
True
>>> KERNEL_CONSTANTS["LINK_PROBIT"] == LINK_CODES["probit"]
True
"""

from hierbayes.families.links import LINKS

# Prior codes (prior_logp_dx in kernels/priors.c). Parameters a, b, c as listed.
NORMAL, STUDENT_T, CAUCHY, HALF_NORMAL, HALF_STUDENT_T, HALF_CAUCHY = 0, 1, 2, 3, 4, 5
EXPONENTIAL, GAMMA, INV_GAMMA, LOGNORMAL, FLAT = 6, 7, 8, 9, 10
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
    "flat": (FLAT, ()),
}
# Response families' kernels (a family's ``kernel``): each has its log-likelihood in
# kernels/family_<name>.c.
FAMILY_CODES = {"gaussian": 0, "bernoulli": 1, "poisson": 2, "binomial": 3, "negbinomial": 4, "gamma": 5}
# Links: the codes of hierbayes.families.links, one table for the families and the kernels.
LINK_CODES = {name: link.code for name, link in LINKS.items()}
# Columns of the full density's per-block table (B_N columns).
B_K, B_L, B_COL, B_SD, B_CPC, B_EFF, B_CENTRED, B_CORR, B_ONES, B_ABSORB, B_PARENT, B_PMAP, B_SKIP = range(13)
# A centred block whose level means carry fixed effects constant within its levels: the term
# (-1: none), how many, where their positions start in xcol and their level values in xlev.
B_XTERM, B_XN, B_XAT, B_XVAL = range(13, 17)
B_N = 17
# Columns of the marginal density's per-block table, first block first (M_N columns).
M_K, M_L, M_OFF, M_SD, M_CPC, M_CORR = range(6)
M_N = 6
# A block's correlation structure (B_CORR, M_CORR): T diagonal, LKJ's partial correlations, or a
# cs/ar1 term's one correlation in its uniform prior's range; then each block's PAR_N doubles.
CORR_NONE, CORR_LKJ, CORR_CS, CORR_AR1 = range(4)
CORR_N = 4
PAR_ETA, PAR_LO, PAR_HI = range(3)
PAR_N = 3
# Columns of a prior's integer row: the parameter's position, its prior code, whether positive.
PRI_AT, PRI_CODE, PRI_POSITIVE = range(3)
PRI_N = 3
# Columns of the sampler's per-draw statistics (hierbayes.bayes.nuts.STAT_NAMES, in this order).
STAT_LP, STAT_ACCEPT, STAT_N_LEAPFROG, STAT_DEPTH, STAT_DIVERGED, STAT_ENERGY, STAT_STEP = range(7)
STAT_N = 7
# What the kernels' entry points return.
(OK, NO_MEMORY, STOPPED, BAD_FAMILY, BAD_PRIOR, BAD_MODE, BAD_MODEL, IMPROPER, NO_STEP_SIZE, METRIC_OVERFLOW,
 TARGET_FAILED, BAD_LINK) = range(12)
# The Model record's mode.
MODE_FULL, MODE_MARGINAL = 0, 1

#: Every code above by its name in ``kernels/hb.h`` (checked against the library at load).
KERNEL_CONSTANTS: dict[str, int] = {
    **{f"B_{name}": value for name, value in (
        ("K", B_K), ("L", B_L), ("COL", B_COL), ("SD", B_SD), ("CPC", B_CPC), ("EFF", B_EFF),
        ("CENTRED", B_CENTRED), ("CORR", B_CORR), ("ONES", B_ONES), ("ABSORB", B_ABSORB),
        ("PARENT", B_PARENT), ("PMAP", B_PMAP), ("SKIP", B_SKIP), ("XTERM", B_XTERM), ("XN", B_XN),
        ("XAT", B_XAT), ("XVAL", B_XVAL), ("N", B_N))},
    **{f"M_{name}": value for name, value in (
        ("K", M_K), ("L", M_L), ("OFF", M_OFF), ("SD", M_SD), ("CPC", M_CPC), ("CORR", M_CORR),
        ("N", M_N))},
    "CORR_NONE": CORR_NONE, "CORR_LKJ": CORR_LKJ, "CORR_CS": CORR_CS, "CORR_AR1": CORR_AR1, "CORR_N": CORR_N,
    "PAR_ETA": PAR_ETA, "PAR_LO": PAR_LO, "PAR_HI": PAR_HI, "PAR_N": PAR_N,
    **{f"PRIOR_{dist.upper()}": code for dist, (code, _) in PRIOR_CODES.items()},
    "PRIOR_N": len(PRIOR_CODES),
    **{f"FAMILY_{name.upper()}": code for name, code in FAMILY_CODES.items()},
    "FAMILY_N": len(FAMILY_CODES),
    **{f"LINK_{name.upper()}": code for name, code in LINK_CODES.items()},
    "LINK_N": len(LINK_CODES),
    "PRI_AT": PRI_AT, "PRI_CODE": PRI_CODE, "PRI_POSITIVE": PRI_POSITIVE, "PRI_N": PRI_N,
    "STAT_LP": STAT_LP, "STAT_ACCEPT": STAT_ACCEPT, "STAT_N_LEAPFROG": STAT_N_LEAPFROG,
    "STAT_DEPTH": STAT_DEPTH, "STAT_DIVERGED": STAT_DIVERGED, "STAT_ENERGY": STAT_ENERGY,
    "STAT_STEP": STAT_STEP, "STAT_N": STAT_N,
    "HB_OK": OK, "HB_NOMEM": NO_MEMORY, "HB_STOPPED": STOPPED, "HB_BAD_FAMILY": BAD_FAMILY,
    "HB_BAD_PRIOR": BAD_PRIOR, "HB_BAD_MODE": BAD_MODE, "HB_BAD_MODEL": BAD_MODEL,
    "HB_IMPROPER": IMPROPER, "HB_NO_STEP_SIZE": NO_STEP_SIZE, "HB_METRIC_OVERFLOW": METRIC_OVERFLOW,
    "HB_TARGET_FAILED": TARGET_FAILED, "HB_BAD_LINK": BAD_LINK,
    "MODE_FULL": MODE_FULL, "MODE_MARGINAL": MODE_MARGINAL,
}
