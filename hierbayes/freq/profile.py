"""Likelihood-profile confidence intervals, as lme4's ``confint(m, method = "profile")``.

For each parameter the profile is the signed square root of the deviance
rise, ``zeta(x) = sign(x - x_hat) sqrt(D(x) - D_min)``, with every other
parameter re-optimised at ``x``; the 95% interval is where ``zeta = +-1.96``.

lme4 profiles the **maximum likelihood** deviance even for a REML fit (its
``devfun2`` begins with ``refitML``), so the intervals of a REML and an ML fit
are the same. We do the same, so that the numbers agree with lme4's:

* variance components on lme4's scale (SDs, correlations and sigma): the ML
  deviance with sigma free, ``log|L_Z|^2 + r^2 / sigma^2 + n log(2 pi sigma^2)``,
  with the other SDs, correlations and sigma re-optimised by BOBYQA within
  their bounds (SD >= 0, correlation in [-1, 1]);
* a fixed effect ``beta_j = b``: the column leaves X and ``b x_j`` is
  subtracted from y (lme4's offset); the reduced model's profiled ML deviance
  is minimised over theta.

lme4 steps along each profile and inverts an interpolating spline; we solve
``zeta(x) = +-z`` by Brent's method on the exact profile. The two agree to about
5e-5 relative on sleepstudy (lme4's spline error). When zeta stays below z up to
a bound (an SD of 0, a correlation of +-1), the bound is the endpoint, as in lme4.
At a singular fit, a re-optimisation whose warm start sits on a zero bound also
starts from inside, and keeps the better optimum (:func:`_from_inside_too`).

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.freq.profile import profile_confint
>>> fit = hb.lmer("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
>>> profile_confint(fit).loc["Days"].round(3).tolist()
[8.887, 12.048]
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from hierbayes.freq.bootstrap import one_blas_thread
from hierbayes.freq.deviance import Deviance
from hierbayes.freq.fit import fit_design
from hierbayes.freq.optimize import BOUNDARY, RESTART, diagonal_entries
from hierbayes.freq.params import check_level, interval_columns, param_names, sdcor, varcomp_names
from hierbayes.progress import Progress

if TYPE_CHECKING:
    from hierbayes.freq.mermod import MerMod


def _theta_from_sdcor(dev, x: np.ndarray) -> np.ndarray:
    """lme4's theta from SDs and correlations (theta's order) and sigma (last)."""
    sigma = x[-1]
    theta, k = [], 0
    for q, (r, c) in zip(dev.term_sizes, dev.tril, strict=True):
        S = np.zeros((q, q))
        S[r, c] = x[k : k + len(r)]
        k += len(r)
        sd = np.diag(S).copy()
        R = np.eye(q)
        lower = np.tril_indices(q, -1)
        R[lower] = S[lower]
        R = np.tril(R) + np.tril(R, -1).T
        cov = np.outer(sd, sd) * R / sigma**2
        try:
            L = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            # at a correlation of +-1 or an SD of 0 the covariance is only semi-definite
            L = np.linalg.cholesky(cov + 1e-12 * max(1.0, np.trace(cov)) * np.eye(q))
        theta.append(L[r, c])
    return np.concatenate(theta)


def tight_bobyqa(f, start: np.ndarray, lower: np.ndarray, upper: np.ndarray | None = None,
                 step: np.ndarray | None = None, xtol_rel: float = 1e-10,
                 ftol_abs: float = 1e-11) -> tuple[np.ndarray, float]:
    """BOBYQA run tighter than a fit, for profiles (the best point seen and its value).

    zeta = sqrt(D - D_min) near 2 needs D to about 1e-8. ``upper`` defaults to
    no bound, ``step`` to NLopt's first steps.
    """
    import nlopt

    if len(start) == 0:
        return start, float(f(start))
    best = [np.inf, np.array(start)]

    def objective(x, grad) -> float:
        value = f(np.asarray(x))
        if value < best[0]:
            best[0], best[1] = value, np.array(x)
        return value

    opt = nlopt.opt(nlopt.LN_BOBYQA, len(start))
    opt.set_lower_bounds(lower.tolist())
    if upper is not None:
        opt.set_upper_bounds(upper.tolist())
    opt.set_min_objective(objective)
    if step is not None:
        opt.set_initial_step(step.tolist())
    opt.set_xtol_rel(xtol_rel)
    opt.set_ftol_abs(ftol_abs)
    opt.set_maxeval(20_000)
    x0 = np.maximum(start, lower) if upper is None else np.clip(start, lower, upper)
    try:
        opt.optimize(x0.tolist())
    except nlopt.RoundoffLimited:
        pass  # the tolerances were tighter than rounding allows; the best point stands
    return best[1], float(best[0])


def _from_inside_too(f, start: np.ndarray, on_bound: np.ndarray, inside: float,
                     lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, float]:
    """:func:`tight_bobyqa` from ``start`` and, when some entries sit on their zero bound, also
    from a start with those entries at ``inside``; the better of the two.

    At a singular fit the warm start holds a theta (or SD) of about 1e-9. The deviance is
    even in it, so its slope there is zero, and BOBYQA's first steps, scaled to the start,
    never leave the bound, though away from the estimate the minimum moves inside: Dyestuff2's
    intercept interval came out 4.31535 to 7.01585 where the profile crosses 1.96 at 4.31284
    and 7.01836.
    """
    best = tight_bobyqa(f, start, lower, upper)
    if np.any(on_bound):
        again = tight_bobyqa(f, np.where(on_bound, inside, start), lower, upper)
        if again[1] < best[1]:
            best = again
    return best


def zeta_crossing(zeta, x0: float, side: float, step: float, bound: float, z: float, name: str,
                  xtol: float = 1e-12) -> float:
    """Where a profile ``zeta`` crosses ``z``, stepping out from ``x0`` on ``side`` by steps
    growing 1.6-fold, then Brent's method between the last two points; ``bound`` if it is
    reached first (an SD's 0, a correlation's +-1)."""
    a = x0
    for _ in range(200):
        b = x0 + side * step
        if np.isfinite(bound) and side * (b - bound) >= 0:
            b = bound
        if side * zeta(b) >= abs(z):
            return optimize.brentq(lambda v: zeta(v) - z, min(a, b), max(a, b), xtol=xtol, rtol=1e-10)
        if b == bound:
            return float(bound)
        a = b
        step *= 1.6
    raise RuntimeError(f"The profile of {name} did not reach zeta = {z:.3f}.")


class Profiler:
    """The profiled ML deviance of a fit along each parameter.

    Parameters
    ----------
    fit
        A REML or ML fit; profiles use its ML refit, as lme4 does.
    """

    def __init__(self, fit: MerMod) -> None:
        self.fit = fit
        # stacklevel 3: an ML refit's convergence warnings point at profile_confint, as before
        ml = fit if not fit.reml else fit_design(fit.design, reml=False, start=fit.theta, stacklevel=3)
        self.ml = ml
        self.dev = Deviance(fit.design, reml=False)
        self.names = param_names(fit.design)
        self.n_vc = len(varcomp_names(fit.design))
        self.x_hat = np.concatenate([sdcor(ml.covariance(), ml.sigma), ml.estimates.beta])
        lower, upper = [], []
        for name in varcomp_names(fit.design):
            is_cor = name.startswith("cor_")
            lower.append(-1.0 if is_cor else 0.0)
            upper.append(1.0 if is_cor else np.inf)
        self.lower, self.upper = np.array(lower), np.array(upper)
        # the minimum on the sd/cor scale, polished, so every zeta is measured from the same base
        _, self.base = tight_bobyqa(self._vc_deviance, self.x_hat[: self.n_vc], self.lower, self.upper)
        self.base = min(self.base, ml.deviance)
        self._warm: dict[int, np.ndarray] = {}
        self._fixed: dict[int, object] = {}

    def _vc_deviance(self, x: np.ndarray) -> float:
        sigma = x[-1]
        if not sigma > 0:
            return np.inf
        try:
            f = self.dev.factor(_theta_from_sdcor(self.dev, x))
        except np.linalg.LinAlgError:
            return np.inf
        return self.dev.objective(f, sigma2=sigma**2)

    def deviance(self, k: int, value: float) -> float:
        """The ML deviance minimised over every parameter but number ``k``, held at ``value``."""
        if k < self.n_vc:
            others = np.delete(np.arange(self.n_vc), k)
            start = self._warm.get(k, self.x_hat[others])

            def f(z: np.ndarray) -> float:
                x = np.insert(z, k, value)
                return self._vc_deviance(x)

            lower, upper = self.lower[others], self.upper[others]
            # an SD at zero is a theta at zero scaled by sigma
            sigma = self.x_hat[self.n_vc - 1]
            # sigma (last of the variance components) is never on its bound
            on_bound = (lower == 0) & (start < BOUNDARY * sigma) & (others != self.n_vc - 1)
            z, d = _from_inside_too(f, start, on_bound, RESTART * sigma, lower, upper)
            self._warm[k] = z
            return d
        return self._fixed_deviance(k - self.n_vc, value)

    def _fixed_deviance(self, j: int, value: float) -> float:
        d = self.fit.design
        if j not in self._fixed:
            keep = [c for c in range(d.X.shape[1]) if c != j]
            reduced = dataclasses.replace(d, X=d.X[:, keep], fixef_names=[d.fixef_names[c] for c in keep])
            self._fixed[j] = Deviance(reduced, reml=False)
        dev = self._fixed[j].with_response(d.y - value * d.X[:, j])
        start = self._warm.get(self.n_vc + j, self.ml.theta)
        on_bound = diagonal_entries(dev) & (start < BOUNDARY)
        theta, value_min = _from_inside_too(dev, start, on_bound, RESTART, dev.lower,
                                            np.full(dev.n_theta, np.inf))
        self._warm[self.n_vc + j] = theta
        return value_min

    def zeta(self, k: int, value: float) -> float:
        """Signed square root of the deviance rise at ``value`` of parameter ``k``."""
        rise = max(self.deviance(k, value) - self.base, 0.0)
        return float(np.sign(value - self.x_hat[k]) * np.sqrt(rise))

    def _scale(self, k: int) -> float:
        if k >= self.n_vc:
            return float(np.sqrt(self.ml.estimates.vcov_beta[k - self.n_vc, k - self.n_vc]))
        if self.names[k].startswith("cor_"):
            return 0.1
        sigma = self.x_hat[self.n_vc - 1]
        return max(abs(self.x_hat[k]) * 0.2, 0.05 * sigma)

    def endpoint(self, k: int, z: float) -> float:
        """Where zeta crosses ``z`` (sign gives the side), or the bound it does not reach."""
        side = np.sign(z)
        x0 = self.x_hat[k]
        bound = (self.upper[k] if side > 0 else self.lower[k]) if k < self.n_vc else side * np.inf
        step = self._scale(k)
        self._warm.pop(k, None)
        return zeta_crossing(lambda v: self.zeta(k, v), x0, side, step, bound, z, self.names[k],
                             xtol=1e-12)


def profile_confint(fit: MerMod, level: float = 0.95, progressbar: bool = True) -> pd.DataFrame:
    """Profile intervals for every parameter (lme4's ``confint(method = "profile")``).

    Parameters
    ----------
    fit
        A REML or ML fit.
    level
        Confidence level.
    progressbar
        The one progress bar of sampling and of every many-fit workload, one step per
        interval end.

    Returns
    -------
    pandas.DataFrame
        Rows as :func:`hierbayes.freq.params.param_names`, columns ``2.5 %`` and ``97.5 %``.
    """
    check_level(level)
    with one_blas_thread(fit):
        prof = Profiler(fit)
        return profile_intervals(prof, prof.n_vc, level, progressbar)


def profile_intervals(prof: Any, n_bounded: int, level: float,
                      progressbar: bool) -> pd.DataFrame:
    """Both ends of every parameter's interval from a profiler (lmer's or glmer's), with the
    progress bar a step per end.

    ``prof`` has ``names``, ``x_hat``, ``lower`` and ``endpoint(k, z)``; its first
    ``n_bounded`` parameters have a lower bound, which is their lower end when the estimate
    sits on it (a zero SD).
    """
    z = stats.norm.ppf(0.5 + level / 2)
    n = len(prof.names)
    bar = Progress(2 * n, 1, progressbar, label=f"Profiling {n} parameters")
    rows = []
    for k in range(n):
        at_bound = k < n_bounded and prof.x_hat[k] <= prof.lower[k]
        lo = prof.lower[k] if at_bound else prof.endpoint(k, -z)
        bar.draw(2 * k + 1)
        rows.append((lo, prof.endpoint(k, z)))
        bar.draw(2 * k + 2)
    bar.draw(2 * n, final=True)
    return pd.DataFrame(rows, index=prof.names, columns=interval_columns(level))
