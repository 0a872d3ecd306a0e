"""Confidence intervals for REML/ML and GLMM fits, as lme4's ``confint.merMod``: profile, Wald, bootstrap.

Rows are named as lme4 names them with ``oldNames = FALSE``
(:mod:`hierbayes.freq.params`): the variance components in theta's order,
``sigma``, then the fixed effects.

* ``"profile"`` (default): likelihood-profile intervals, :mod:`hierbayes.freq.profile`
  (a GLMM's, :mod:`hierbayes.freq.glmerprofile`).
* ``"wald"``: fixed effects +- z * SE; the variance components NA, as lme4
  (:func:`hierbayes.freq.wald.wald`).
* ``"boot"``: parametric bootstrap (lme4's ``bootMer``) and percentile
  intervals, :mod:`hierbayes.freq.bootstrap`.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.freq.fit import fit_design
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"), hb.datasets.load("sleepstudy"))
>>> confint(fit_design(d), method="wald").index.tolist()
['sd_(Intercept)|Subject', 'cor_Days.(Intercept)|Subject', 'sd_Days|Subject', 'sigma', '(Intercept)', 'Days']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from hierbayes.freq.bootstrap import boot
from hierbayes.freq.profile import profile_confint
from hierbayes.freq.wald import wald

if TYPE_CHECKING:
    from hierbayes.freq.mermod import MerMod


def confint(fit: MerMod, method: str = "profile", level: float = 0.95, n_sims: int = 500,
            seed: int | None = None, progressbar: bool = True,
            n_jobs: int | None = 1, executor: Any = None, client: Any = None) -> pd.DataFrame:
    """Confidence intervals for every parameter of ``fit`` by ``method``.

    Parameters
    ----------
    fit
        A REML or ML fit, or a GLMM fit (:class:`hierbayes.freq.glmermod.GlmerMod`,
        whose rows have sigma only for the Gamma).
    method
        ``"profile"``, ``"wald"`` or ``"boot"`` (``"bootstrap"``), any case.
    level
        Confidence level.
    progressbar
        The progress bar of ``"profile"`` and ``"boot"`` (the one bar of sampling and of every
        many-fit workload).
    n_sims, seed, n_jobs, executor, client
        For ``"boot"``: replicates, seed, worker processes
        (:func:`hierbayes.freq.bootstrap.bootstrap`).

    Returns
    -------
    pandas.DataFrame
        One row per parameter, columns ``conf_low`` and ``conf_high``;
        ``attrs["conf_level"]`` is ``level`` and ``attrs["method"]`` the method.
    """
    out = _confint(fit, method, level, n_sims, seed, progressbar, n_jobs, executor, client)
    out.attrs.update({"conf_level": float(level), "method": str(method).lower()})
    return out


def _confint(fit: MerMod, method: str, level: float, n_sims: int, seed: int | None,
             progressbar: bool, n_jobs: int | None, executor: Any = None,
             client: Any = None) -> pd.DataFrame:
    key = str(method).lower()
    if getattr(fit, "nAGQ", None) is not None and key == "profile":
        # a glmer fit: its criterion is profiled, not the LMM's ML deviance
        from hierbayes.freq.glmerprofile import glmer_profile_confint

        return glmer_profile_confint(fit, level, progressbar)
    if key == "wald":
        return wald(fit, level)
    if key in ("boot", "bootstrap"):
        return boot(fit, level, n_sims, seed, progressbar, n_jobs, executor, client)
    if key == "profile":
        return profile_confint(fit, level, progressbar)
    raise ValueError(f"method must be 'profile', 'wald' or 'boot', not {method!r}.")
