"""The negative binomial GLMM by lme4's ``glmer.nb``: glmer fits at fixed shapes, searched over the shape.

For a fixed shape ``theta`` (R's ``negative.binomial(theta)``) a negative
binomial GLMM is a glmer fit (:func:`hierbayes.freq.glmer.fit_glmer_design`
with ``dispersion=theta``). :func:`fit_glmer_nb` estimates ``theta`` as
glmer.nb does:

1. a Poisson glmer fit of the same formula;
2. a starting shape from its fitted means by MASS's ``theta.ml``
   (:func:`theta_ml`: Newton's method on the shape's score, at most 20 steps,
   to ``2 tol``);
3. a glmer fit at that shape, then R's ``optimize`` (Brent's minimiser,
   :func:`brent_fmin`) of ``-2 logLik`` over ``log(theta)`` in
   ``log(theta_start) +- 3`` to ``tol = 5e-5``, each value a refit
   (:func:`hierbayes.freq.glmer.refit`) from the fit before.

The shape's Laplace likelihood here is glmer's (PIRLS's expected
information); glmmTMB's nbinom2 uses the observed one, so its optimum
differs a little. ``information="observed"`` runs the same search on TMB's
approximation (Newton's PIRLS, the observed Hessian in ``u``), and reaches
glmmTMB's fit.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> df = hb.datasets.load("grouseticks")
>>> d = build_design(parse_formula("TICKS ~ YEAR + (1 | LOCATION)"), df, family="negbinomial")
>>> g = fit_glmer_nb(d)                       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable

import numpy as np
from scipy import special

from hierbayes.errors import ConvergenceWarning, DataError
from hierbayes.families import get_family
from hierbayes.freq.glmer import fit_glmer_design, refit
from hierbayes.freq.glmermod import GlmerMod, NBSearch
from hierbayes.freq.optimize import derivatives
from hierbayes.freq.pirls import TOL
from hierbayes.spec.design import Design


def theta_ml(y: np.ndarray, mu: np.ndarray, weights: np.ndarray, limit: int = 10,
             eps: float = np.finfo(float).eps ** 0.25) -> float:
    """MASS's ``theta.ml``: the negative binomial shape's ML estimate at known means.

    Newton's method on the score from the moment estimate
    ``n / sum(w (y / mu - 1)^2)``, while the step exceeds ``eps`` and fewer
    than ``limit`` steps were taken; a warning when it stops at the limit, and
    0 (with a warning) where the estimate is negative.

    Examples
    --------
    >>> y = np.array([0.0, 1, 3, 0, 7, 2, 0, 5])
    >>> round(theta_ml(y, np.full(8, y.mean()), np.ones(8)), 4)
    0.8471
    """
    n = float(np.sum(weights))

    def score(th: float) -> float:
        return float(np.sum(weights * (special.digamma(th + y) - special.digamma(th) + np.log(th) + 1
                                       - np.log(th + mu) - (y + th) / (mu + th))))

    def info(th: float) -> float:
        return float(np.sum(weights * (-special.polygamma(1, th + y) + special.polygamma(1, th) - 1 / th
                                       + 2 / (mu + th) - (y + th) / (mu + th) ** 2)))

    t0 = n / float(np.sum(weights * (y / mu - 1) ** 2))
    it, delta = 0, 1.0
    while True:
        it += 1
        if not (it < limit and abs(delta) > eps):
            break
        t0 = abs(t0)
        delta = score(t0) / info(t0)
        t0 += delta
    if t0 < 0:
        warnings.warn("theta.ml: estimate truncated at zero", ConvergenceWarning, stacklevel=2)
        t0 = 0.0
    if it == limit:
        warnings.warn("theta.ml: iteration limit reached", ConvergenceWarning, stacklevel=2)
    return float(t0)


def brent_fmin(f: Callable[[float], float], lower: float, upper: float, tol: float) -> float:
    """R's ``optimize`` (its ``Brent_fmin``): golden sections and parabolic steps on ``[lower, upper]``.

    The steps and the stopping rule are R's, so the points evaluated are the
    points R evaluates.

    Examples
    --------
    >>> round(brent_fmin(lambda x: (x - 1.0) ** 2, -2.0, 3.0, 1e-8), 6)
    1.0
    """
    c = (3.0 - math.sqrt(5.0)) * 0.5
    eps = math.sqrt(np.finfo(float).eps)
    a, b = lower, upper
    v = a + c * (b - a)
    w = x = v
    d = e = 0.0
    fx = f(x)
    fv = fw = fx
    tol3 = tol / 3.0
    while True:
        xm = (a + b) * 0.5
        tol1 = eps * abs(x) + tol3
        t2 = tol1 * 2.0
        if abs(x - xm) <= t2 - (b - a) * 0.5:
            return x
        p = q = r = 0.0
        if abs(e) > tol1:
            r = (x - w) * (fx - fv)
            q = (x - v) * (fx - fw)
            p = (x - v) * q - (x - w) * r
            q = (q - r) * 2.0
            if q > 0.0:
                p = -p
            else:
                q = -q
            r = e
            e = d
        if abs(p) >= abs(q * 0.5 * r) or p <= q * (a - x) or p >= q * (b - x):
            e = b - x if x < xm else a - x
            d = c * e
        else:
            d = p / q
            u = x + d
            if u - a < t2 or b - u < t2:
                d = tol1 if x < xm else -tol1
        if abs(d) >= tol1:
            u = x + d
        elif d > 0.0:
            u = x + tol1
        else:
            u = x - tol1
        fu = f(u)
        if fu <= fx:
            if u < x:
                b = x
            else:
                a = x
            v, w, x = w, x, u
            fv, fw, fx = fw, fx, fu
        else:
            if u < x:
                a = u
            else:
                b = u
            if fu <= fw or w == x:
                v, fv = w, fw
                w, fw = u, fu
            elif fu <= fv or v == x or v == w:
                v, fv = u, fu


def joint_vcov(fit: GlmerMod) -> np.ndarray | None:
    """The fixed effects' covariance with the shape estimated too: ``2 H^-1`` over ``(theta, beta, log k)``.

    glmmTMB's ``vcov`` counts the shape's uncertainty (its Hessian is over every
    parameter); glmer.nb's is glmer's at the fitted shape. The Hessian is by
    finite differences (step 1e-4, :func:`hierbayes.freq.optimize.derivatives`),
    each shape's criterion a :meth:`GlmerDeviance.with_response` of the fit's.
    None where it is not positive definite.
    """
    dev = fit.deviance_function
    cache: dict[float, object] = {}

    def criterion(x: np.ndarray) -> float:
        k = float(np.exp(x[-1]))
        if k not in cache:
            cache[k] = dev.with_response(dev.response.with_dispersion(k), dev.lp0)
        return cache[k](x[:-1])

    x = np.concatenate([fit.opt.final, [np.log(fit.dispersion)]])
    _, H = derivatives(criterion, x, fit.objective)
    try:
        h = np.linalg.inv(H)[dev.n_theta : dev.n_par, dev.n_theta : dev.n_par]
    except np.linalg.LinAlgError:
        return None
    V = h + h.T
    return V if np.all(np.isfinite(V)) and np.linalg.eigvalsh(V).min() > 0 else None


def fit_glmer_nb(design: Design, nAGQ: int = 1, tol: float = 5e-5, theta: float | None = None,
                 pirls_tol: float | None = None, stacklevel: int = 2,
                 information: str = "expected") -> GlmerMod:
    """Fit a negative binomial GLMM by glmer.nb's method, the shape estimated.

    Parameters
    ----------
    design
        A negative binomial design (log link) with at least one random-effect term.
    nAGQ
        As glmer's.
    tol
        The search's tolerance on ``log(theta)`` (glmer.nb's ``tol``).
    theta
        The starting shape (glmer.nb's ``initCtrl$theta``); by default
        ``theta.ml`` on a Poisson fit's means.
    pirls_tol
        PIRLS's relative tolerance: glmer's 1e-7 by default, 1e-12 (Newton's
        method converges in a few more steps) with the observed information.
    stacklevel
        Where convergence warnings point, counted from this function.
    information
        ``"expected"`` (glmer.nb's fit) or ``"observed"``: TMB's Laplace
        approximation (the observed Hessian in ``u``), which glmmTMB's
        ``nbinom2`` maximises over the shape with the rest; the search over the
        shape then reaches glmmTMB's optimum, and the fixed effects' covariance
        counts the shape's uncertainty, as glmmTMB's (:func:`joint_vcov`).

    Returns
    -------
    GlmerMod
        The fit at the estimated shape (``dispersion``), with the search in ``nb``.
    """
    if design.family.name != "negbinomial":
        raise DataError(f"glmer.nb fits the negative binomial family, not {design.family.name}.")
    if pirls_tol is None:
        pirls_tol = 1e-12 if information == "observed" else TOL
    if theta is None:
        pois = dataclasses.replace(design, family=get_family("poisson"))
        with warnings.catch_warnings():
            # glmer.nb runs its Poisson start quietly; its warnings say nothing of the NB fit
            warnings.simplefilter("ignore", ConvergenceWarning)
            g0 = fit_glmer_design(pois, nAGQ=nAGQ, tol=pirls_tol)
        resp = g0.deviance_function.response
        theta = theta_ml(resp.y, g0.estimates.mu, resp.wt, limit=20, eps=2 * tol)
    theta_start = float(theta)
    path: list[tuple[float, float]] = []
    # as glmer.nb's optTheta: the search's refits keep their warnings, and only the last
    # fit's are shown (a warning from a shape far from the optimum says nothing of the fit)
    last_warnings: list[warnings.WarningMessage] = []

    def quietly(fit_at):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            out = fit_at()
        last_warnings[:] = caught
        return out

    current = [quietly(lambda: fit_glmer_design(design, nAGQ=nAGQ, dispersion=theta_start,
                                                tol=pirls_tol, information=information))]

    def minus2ll(t: float) -> float:
        current[0] = quietly(lambda: refit(current[0], dispersion=math.exp(t)))
        value = -2 * current[0].loglik
        path.append((math.exp(t), value))
        return value

    lo, hi = math.log(theta_start) - 3, math.log(theta_start) + 3
    t_min = brent_fmin(minus2ll, lo, hi, tol)
    best = current[0]
    if best.dispersion != math.exp(t_min):
        best = quietly(lambda: refit(best, dispersion=math.exp(t_min)))
    for w in last_warnings:
        warnings.warn(w.message, w.category, stacklevel=stacklevel)
    if information == "observed" and best.opt.hessian is not None:
        V = joint_vcov(best)
        if V is not None:
            est = dataclasses.replace(best.estimates, vcov_beta=V, vcov_source="hessian with the shape")
            best = dataclasses.replace(best, estimates=est)
    return dataclasses.replace(best, nb=NBSearch(theta_start=theta_start, interval=(lo, hi),
                                                 evaluations=len(path), path=path))
