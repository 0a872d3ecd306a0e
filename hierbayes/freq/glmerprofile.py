"""Likelihood-profile confidence intervals of a GLMM fit, as lme4's ``confint(m, method = "profile")``.

For each parameter the profile is the signed square root of the rise of
glmer's criterion (the Laplace or AGQ deviance), ``zeta(x) = sign(x - x_hat)
sqrt(D(x) - D_min)``, with every other parameter of ``(theta, beta)``
re-optimised at ``x`` (BOBYQA, warm-started along the profile); the interval
is where ``zeta = +-z``, found by Brent's method on the exact profile (lme4
steps along it and inverts a spline). The variance components are profiled
as SDs: for the families without a scale and scalar random-effect terms
these are theta itself. Where zeta stays below ``z`` down to an SD of 0, the
lower end is 0, as in lme4.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.freq.glmer import fit_glmer_design
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)"),
...                  hb.datasets.load("cbpp"), family="binomial")
>>> ci = glmer_profile_confint(fit_glmer_design(d))     # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hierbayes.errors import DataError
from hierbayes.freq.params import check_level, fit_param_names
from hierbayes.freq.profile import profile_intervals, tight_bobyqa, zeta_crossing

if TYPE_CHECKING:
    from hierbayes.freq.glmermod import GlmerMod


class GlmerProfiler:
    """glmer's criterion profiled along each of ``(theta, beta)``.

    Parameters
    ----------
    fit
        A GLMM fit with ``nAGQ >= 1``, scalar random-effect terms and no scale
        (binomial, Poisson, negative binomial at its fitted shape).
    """

    def __init__(self, fit: GlmerMod) -> None:
        if fit.nAGQ == 0:
            raise DataError("Profile intervals need the deviance in (theta, beta): refit with nAGQ=1.")
        if fit.use_scale or any(b.n_terms > 1 for b in fit.design.blocks):
            raise DataError(
                "Profile intervals for a glmer fit are implemented for scalar random-effect terms "
                "of families without a scale (binomial, Poisson, negative binomial); use "
                "method='boot' (parametric bootstrap) or method='wald' for this model.")
        self.fit = fit
        self.dev = fit.deviance_function
        self.x_hat = fit.opt.final.copy()
        self.lower = self.dev.lower.copy()
        self.names = fit_param_names(fit)
        self.n_theta = self.dev.n_theta
        self.base = fit.objective
        self._warm: dict[int, np.ndarray] = {}

    def deviance(self, k: int, value: float) -> float:
        """The criterion minimised over every parameter but number ``k``, held at ``value``."""
        others = np.delete(np.arange(len(self.x_hat)), k)
        start = self._warm.get(k, self.x_hat[others])

        def f(z: np.ndarray) -> float:
            return self.dev(np.insert(z, k, value))

        # to 1e-9 of x, from first steps of 5% (at least 0.02)
        z, d = tight_bobyqa(f, start, self.lower[others], step=np.maximum(0.02, 0.05 * np.abs(start)),
                            xtol_rel=1e-9, ftol_abs=1e-10)
        self._warm[k] = z
        self.base = min(self.base, d)
        return d

    def zeta(self, k: int, value: float) -> float:
        """Signed square root of the criterion's rise at ``value`` of parameter ``k``."""
        rise = max(self.deviance(k, value) - self.base, 0.0)
        return float(np.sign(value - self.x_hat[k]) * np.sqrt(rise))

    def _scale(self, k: int) -> float:
        if k >= self.n_theta:
            j = k - self.n_theta
            return float(np.sqrt(self.fit.estimates.vcov_beta[j, j]))
        return max(abs(self.x_hat[k]) * 0.2, 0.05)

    def endpoint(self, k: int, z: float) -> float:
        """Where zeta crosses ``z`` (its sign gives the side), or the bound it does not reach."""
        side = np.sign(z)
        x0 = self.x_hat[k]
        bound = self.lower[k] if side < 0 else np.inf
        step = self._scale(k)
        self._warm.pop(k, None)
        return zeta_crossing(lambda v: self.zeta(k, v), x0, side, step, bound, z, self.names[k],
                             xtol=1e-10)


def glmer_profile_confint(fit: GlmerMod, level: float = 0.95,
                          progressbar: bool = True) -> pd.DataFrame:
    """Profile intervals for every parameter of a GLMM fit (rows as :func:`fit_param_names`).

    ``progressbar``: the one progress bar of sampling and of every many-fit workload, one
    step per interval end.
    """
    check_level(level)
    prof = GlmerProfiler(fit)
    return profile_intervals(prof, prof.n_theta, level, progressbar)
