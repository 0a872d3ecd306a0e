"""The front door: the functions and classes a user calls to fit a model.

It joins the front end (:mod:`hierbayes.spec`), the two engines
(:mod:`hierbayes.bayes`, :mod:`hierbayes.freq`) and the report layer
(:mod:`hierbayes.report`); nothing inside the package imports it.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.api import lmer
>>> round(lmer("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy")).sigma, 2)
30.99
"""

from __future__ import annotations

import pandas as pd

from hierbayes.freq.fit import fit_design
from hierbayes.report.lmer import LmerFit
from hierbayes.spec.design import build_design
from hierbayes.spec.formula import parse_formula


def lmer(formula: str, data: pd.DataFrame, reml: bool = True, na_action: str = "omit",
         optimizer: str = "bobyqa") -> LmerFit:
    """Fit a linear mixed model by REML (default) or ML, as lme4's ``lmer``.

    Parameters
    ----------
    formula
        An lme4 formula.
    data
        The data (never modified).
    reml
        REML (True) or maximum likelihood (False).
    na_action
        ``"omit"`` (drop rows with missing values, with a warning) or ``"raise"``.
    optimizer
        ``"bobyqa"`` (lme4's default method and settings) or ``"lbfgsb"``.

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
    >>> fit.fixef().round(3)["Estimate"].tolist()
    [251.405, 10.467]
    """
    design = build_design(parse_formula(formula), data, family="gaussian", na_action=na_action)
    # stacklevel 3: convergence warnings point at the user's call of lmer
    return LmerFit.from_mermod(fit_design(design, reml=reml, optimizer=optimizer, stacklevel=3))

