"""The parameters that confidence intervals are given for, named as lme4 names them.

Parameters are named as lme4 names them with ``oldNames = FALSE``: per
random-effect term, in the order of theta (column-wise lower triangle),
``sd_<term>|<group>`` on the diagonal and ``cor_<row term>.<column term>|<group>``
below it; then ``sigma``; then the fixed effects. Every interval method of
:mod:`hierbayes.freq.confint` reports its rows in this order.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.freq.fit import fit_design
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"), hb.datasets.load("sleepstudy"))
>>> param_names(d)
['sd_(Intercept)|Subject', 'cor_Days.(Intercept)|Subject', 'sd_Days|Subject', 'sigma', '(Intercept)', 'Days']
>>> parameter_values(fit_design(d)).round(2).tolist()
[24.74, 0.07, 5.92, 25.59, 251.41, 10.47]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hierbayes.spec.naming import cor_name, sd_name, varcomp_labels

if TYPE_CHECKING:
    from hierbayes.freq.mermod import MerMod


def varcomp_names(design, sigma: bool = True) -> list[str]:
    """lme4's ``oldNames = FALSE`` names of the variance components, in theta's order, and sigma.

    ``sigma=False`` leaves sigma out: a GLMM of a family without a scale (binomial, Poisson,
    negative binomial) has none.
    """
    label = varcomp_labels(design)
    names = []
    for blk in design.blocks:
        t, g = blk.terms, label[blk.group]
        for j in range(blk.n_terms):
            for i in range(j, blk.n_terms):
                names.append(sd_name(t[i], g) if i == j else cor_name(t[i], t[j], g))
    return [*names, "sigma"] if sigma else names


def param_names(design, sigma: bool = True) -> list[str]:
    """Every parameter ``confint`` reports: variance components, sigma (unless ``sigma=False``),
    fixed effects."""
    return varcomp_names(design, sigma) + list(design.fixef_names)


def uses_scale(fit) -> bool:
    """Whether a fit has a scale (lme4's ``useSc``): every lmer fit; a glmer fit of the Gamma only."""
    return bool(getattr(fit, "use_scale", True))


def fit_param_names(fit) -> list[str]:
    """:func:`param_names` of a fit, with sigma where the fit has a scale."""
    return param_names(fit.design, uses_scale(fit))


def sdcor(covariances: list[np.ndarray], sigma: float) -> np.ndarray:
    """Variance components on lme4's sd/cor scale, in :func:`varcomp_names`' order."""
    out = []
    for S in covariances:
        sd = np.sqrt(np.diag(S))
        q = len(sd)
        for j in range(q):
            for i in range(j, q):
                if i == j:
                    out.append(sd[i])
                else:
                    out.append(S[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan)
    return np.array([*out, sigma])


def parameter_values(fit: MerMod) -> pd.Series:
    """The fit's parameters under :func:`fit_param_names` (an lmer or glmer fit)."""
    vc = sdcor(fit.covariance(), fit.sigma)
    if not uses_scale(fit):
        vc = vc[:-1]
    values = np.concatenate([vc, fit.estimates.beta])
    return pd.Series(values, index=fit_param_names(fit))


INTERVAL_COLUMNS = ["conf_low", "conf_high"]


def interval_columns(level: float) -> list[str]:
    """The column names of an interval table: ``conf_low`` and ``conf_high`` at every ``level``
    (the table's ``attrs["conf_level"]`` says which; docs/report.md has the vocabulary)."""
    check_level(level)
    return list(INTERVAL_COLUMNS)


def check_level(level: float) -> None:
    """Raise ValueError unless ``0 < level < 1``."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie between 0 and 1, not {level!r}.")
