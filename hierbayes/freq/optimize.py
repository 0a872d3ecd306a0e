"""Fitting theta: the optimisers, their record (OptSummary) and lme4's post-fit convergence checks.

:func:`optimize_theta` minimises a :class:`hierbayes.freq.deviance.Deviance`
over theta (lme4's ``optimizeLmer``) with NLopt's BOBYQA under lme4's
``nloptwrap`` settings (:func:`bobyqa`, the default) or with an unbounded
L-BFGS-B folded back onto non-negative diagonals (:func:`lbfgsb`,
:func:`canonical_theta`), and returns an :class:`OptSummary`, as
MixedModels.jl's. After the optimiser, :func:`check_convergence` runs lme4's
``checkConv`` (gradient and Hessian of the criterion by finite differences,
:func:`derivatives`), and :func:`warn_convergence` turns each failed check
into a :class:`hierbayes.ConvergenceWarning` with lme4's words and advice.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.freq.deviance import Deviance
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"), hb.datasets.load("sleepstudy"))
>>> opt = optimize_theta(Deviance(d))
>>> round(opt.f_final, 3), opt.converged
(1743.628, True)
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy.linalg import solve_triangular

from hierbayes.errors import ConvergenceWarning
from hierbayes.freq.deviance import Deviance


@dataclass
class OptSummary:
    """A record of one optimisation, as MixedModels.jl's OptSummary, with lme4's convergence check.

    Attributes
    ----------
    initial, final
        Starting and final theta.
    f_initial, f_final
        Objective (REML criterion or deviance) at those points.
    evaluations
        Number of deviance evaluations by the optimiser.
    optimizer
        What ran (method and polishing steps).
    message
        The optimizer's own words.
    seconds
        Wall time of the optimisation.
    gradient, hessian
        Finite-difference gradient and Hessian of the objective over theta at
        ``final`` (lme4's ``optinfo$derivs``); None where the check was skipped
        (a singular fit, as lme4).
    max_grad
        lme4's max|grad|: the largest of ``min(|scaled gradient|, |gradient|)``
        over theta (the raw max|gradient| where the Hessian is not positive
        definite); NaN where the check was skipped. Above 0.002 the fit failed
        to converge.
    messages
        lme4's words for each failed check (``optinfo$conv$lme4$messages``,
        the singular-fit note aside); empty when the fit passed. Each was also
        raised as a :class:`hierbayes.ConvergenceWarning` by the fit.
    check_evaluations, check_seconds
        Deviance evaluations and wall time of the check.
    """

    initial: np.ndarray
    final: np.ndarray
    f_initial: float
    f_final: float
    evaluations: int
    optimizer: str
    message: str
    seconds: float
    gradient: np.ndarray | None = None
    hessian: np.ndarray | None = None
    max_grad: float = np.nan
    messages: tuple[str, ...] = ()
    check_evaluations: int = 0
    check_seconds: float = 0.0
    skipped: str = ""

    @property
    def converged(self) -> bool:
        """True when no check failed (a singular fit that the optimiser finished counts, as lme4)."""
        return not self.messages

    def __str__(self) -> str:
        lines = [
            f"Optimizer: {self.optimizer}",
            f"  initial theta {np.round(self.initial, 6).tolist()}  objective {self.f_initial:.6f}",
            f"  final theta   {np.round(self.final, 6).tolist()}  objective {self.f_final:.6f}",
            f"  {self.evaluations} evaluations in {self.seconds:.3f} s: {self.message}",
        ]
        if self.skipped:
            lines.append(f"  convergence check skipped: {self.skipped}")
        elif self.gradient is not None:
            ev = np.linalg.eigvalsh(self.hessian) if np.all(np.isfinite(self.hessian)) else np.full(1, np.nan)
            lines.append(f"  convergence check: max|grad| {self.max_grad:.3g} (tol {GRAD_TOL:g}), "
                         f"Hessian eigenvalues {ev.min():.3g} to {ev.max():.3g}; "
                         f"{self.check_evaluations} evaluations in {self.check_seconds:.3f} s: "
                         + ("passed" if self.converged else "FAILED"))
        lines += ["  ! " + m.replace("\n", "") for m in self.messages]
        return "\n".join(lines)


# lme4's lmerControl() defaults: check.conv.grad tol, check.conv.hess tol, and the step of
# its deriv12 (finite differences on theta, unscaled).
GRAD_TOL = 2e-3
HESS_TOL = 1e-6
DERIV_STEP = 1e-4


def derivatives(dev: Callable[[np.ndarray], float], theta: np.ndarray, f_theta: float | None = None,
                step: float = DERIV_STEP) -> tuple[np.ndarray, np.ndarray]:
    """Finite-difference gradient and Hessian of the criterion over theta (lme4's ``deriv12``).

    For an lmer fit lme4 differentiates the profiled criterion, a function of
    theta alone (the fixed effects and sigma are profiled out), so these are
    ``len(theta)``-sized. The gradient and the diagonal of the Hessian are
    lme4's central differences with step 1e-4, exactly. Each off-diagonal
    entry takes two evaluations instead of lme4's four,

        H_ij = [f(x + h_i + h_j) + f(x - h_i - h_j) - f(x +- h_i) - f(x +- h_j) + 2 f(x)] / (2 h^2)

    (``f(x +- h_i)`` both signs, already evaluated for the gradient): the same
    order of accuracy, O(h^2), for 2k + k(k - 1) evaluations against lme4's
    2k^2 (12 against 18 for three thetas). On the 39 models of
    ``tests/data/r`` the check's numbers agree with lme4's formula to 1%.
    ``dev`` is any function of theta (a :class:`Deviance` here).
    """
    x = np.asarray(theta, dtype=float)
    k = len(x)
    fx = dev(x) if f_theta is None else float(f_theta)
    E = np.eye(k) * step
    plus = np.array([dev(x + e) for e in E])
    minus = np.array([dev(x - e) for e in E])
    g = (plus - minus) / (2 * step)
    H = np.diag((plus - 2 * fx + minus) / step**2)
    for i in range(k):
        for j in range(i):
            both = dev(x + E[i] + E[j]) + dev(x - E[i] - E[j])
            H[i, j] = H[j, i] = (both - plus[i] - minus[i] - plus[j] - minus[j] + 2 * fx) / (2 * step**2)
    return g, H


def scaled_max_grad(gradient: np.ndarray, hessian: np.ndarray) -> tuple[float, int, bool]:
    """lme4's max|grad|: max over theta of ``min(|solve(chol(H), g)|, |g|)``.

    Returns the value, its (0-based) component and whether the Hessian was
    positive definite; where it is not, the scaled gradient cannot be
    evaluated and the raw max|g| is returned.
    """
    try:
        L = np.linalg.cholesky(hessian)
    except np.linalg.LinAlgError:
        k = int(np.argmax(np.abs(gradient)))
        return float(np.abs(gradient[k])), k, False
    # R's chol() is the upper factor R = L' (H = R'R), and lme4 scales by solve(R, g)
    scaled = solve_triangular(L.T, gradient, lower=False)
    # the smaller of the two: on a flat criterion a sizeable scaled gradient can go with a
    # tiny absolute one (lme4's comment), and that is not a failure
    mingrad = np.minimum(np.abs(scaled), np.abs(gradient))
    k = int(np.argmax(mingrad))
    return float(mingrad[k]), k, True


def hessian_messages(H: np.ndarray, tol: float, kind: str = "") -> list[str]:
    """lme4's checkHess: negative, zero, very large and widely spread eigenvalues.

    ``kind`` names the Hessian in the first two messages, as lme4's ``hesstype``
    (glmer checks the ``"fixed-effect"`` block first).
    """
    if not np.all(np.isfinite(H)):
        return ["Problem with Hessian check (infinite or missing values?)"]
    ev = np.linalg.eigvalsh(H)
    negative = int(np.sum(ev < -tol))
    name = f"{kind} Hessian" if kind else "Hessian"
    if negative:
        return [f"Model failed to converge: degenerate {name} with {negative} negative eigenvalues"]
    try:
        np.linalg.cholesky(H)
        positive_definite = True
    except np.linalg.LinAlgError:
        positive_definite = False
    if np.any(np.abs(ev) < tol) or not positive_definite:
        return [f"{name} is numerically singular: parameters are not uniquely determined"]
    out = []
    if ev.max() * tol > 1:
        out.append("Model is nearly unidentifiable: very large eigenvalue\n - Rescale variables?")
    if ev.min() / ev.max() < tol:
        out.append("Model is nearly unidentifiable: large eigenvalue ratio\n - Rescale variables?")
    return out



def gradient_messages(g: np.ndarray, H: np.ndarray) -> tuple[float, list[str]]:
    """lme4's ``checkConv`` on the gradient: the scaled max|grad| and its messages (none, or
    why the gradient fails). lme4 returns "Gradient contains NAs" without warning; here it
    warns like the rest."""
    if not np.all(np.isfinite(g)):
        return np.nan, ["Gradient contains NAs"]
    max_grad, k, scaled = scaled_max_grad(g, H)
    if not scaled:
        return max_grad, ["unable to evaluate scaled gradient"]
    if max_grad > GRAD_TOL:
        # lme4 prints component 1 always (which.max of a single number); this is the real one
        return max_grad, [f"Model failed to converge with max|grad| = {max_grad:g} "
                          f"(tol = {GRAD_TOL:g}, component {k + 1})"]
    return max_grad, []


def check_convergence(dev: Deviance, theta: np.ndarray, f_theta: float) -> dict:
    """lme4's post-fit checks (``checkConv`` with ``lmerControl()``'s defaults) at theta.

    A singular fit (a diagonal of theta below 1e-4) is not checked further, as
    lme4: its derivatives at the bound say nothing about convergence. Else the
    derivatives of :func:`derivatives` give the scaled-gradient test
    (max|grad| > 0.002 fails) and the eigenvalue tests of the Hessian
    (tolerance 1e-6). lme4's relative-gradient test is off by default, and its
    fixed-effect Hessian test is for GLMMs only.

    Returns
    -------
    dict
        The :class:`OptSummary` fields ``gradient``, ``hessian``, ``max_grad``,
        ``messages``, ``check_evaluations``, ``check_seconds`` and ``skipped``.
    """
    theta = np.asarray(theta, dtype=float)
    if np.any(theta[diagonal_entries(dev)] < BOUNDARY):
        return {"skipped": "singular fit (a variance component on its bound; see is_singular())"}
    t0 = time.perf_counter()
    count0 = dev.evaluations
    g, H = derivatives(dev, theta, f_theta)
    out = {"gradient": g, "hessian": H, "check_evaluations": dev.evaluations - count0}
    out["max_grad"], messages = gradient_messages(g, H)
    if np.all(np.isfinite(g)):
        messages += hessian_messages(H, HESS_TOL)
    out["messages"] = tuple(messages)
    out["check_seconds"] = time.perf_counter() - t0
    return out


def _advice(message: str, optimizer: str) -> str:
    """What a user can do about one failed check."""
    rescale = ("Rescale or centre predictors on a large scale, above all those in random-effect terms "
               "(e.g. scale(x) or I(x / 100) in the formula)")
    simplify = "simplify the random effects (fewer slopes, or (x || g) for no correlations)"
    if "very large eigenvalue" in message:
        return (f"The criterion is very sharply curved along some theta, usually because a predictor in "
                f"a random-effect term is on a large scale (such as time in days). {rescale}.")
    if "eigenvalue ratio" in message or "numerically singular" in message:
        return (f"Some combination of the variance parameters is barely determined by the data. "
                f"{rescale}, or {simplify}.")
    other = ' or try hb.lmer(..., optimizer="lbfgsb"), which runs to a tighter optimum' if optimizer == "bobyqa" else ""
    if "negative eigenvalues" in message:
        return (f"The estimate is not a minimum of the criterion (a saddle point). {rescale}, "
                f"{simplify}{other}.")
    return (f"The optimiser stopped before the optimum, so the estimates and the criterion may be off. "
            f"{rescale}, {simplify}{other}.")


def warn_convergence(opt: OptSummary, stacklevel: int = 2) -> None:
    """One :class:`ConvergenceWarning` per failed check of ``opt``, lme4's words and advice.

    ``stacklevel`` is :func:`warnings.warn`'s: 2 points the warnings at this
    function's caller, 3 at the caller's caller, and so on (the fit passes the
    level of the user's call).
    """
    for m in opt.messages:
        words = m.replace("\n", "")
        words += "" if words.endswith("?") else "."
        warnings.warn(f"{words} {_advice(m, opt.optimizer)} "
                      "The numbers are in fit.opt (max_grad, gradient, hessian).",
                      ConvergenceWarning, stacklevel=stacklevel)


def bobyqa(dev: Deviance, start: np.ndarray) -> tuple[np.ndarray, str]:
    """NLopt's BOBYQA from ``start`` under theta's bounds, with lme4's ``nloptwrap`` settings.

    Returns the end point and the optimiser's words (``"NLopt BOBYQA: xtol reached"``).
    """
    import nlopt

    opt = nlopt.opt(nlopt.LN_BOBYQA, dev.n_theta)
    opt.set_lower_bounds(dev.lower.tolist())
    opt.set_min_objective(lambda x, grad: dev(np.asarray(x)))
    # lme4's nloptwrap sets xtol_abs, ftol_abs and maxeval and leaves nloptr's default
    # xtol_rel = 1e-4 in force; the same stopping rules make fits stop where lme4's do.
    opt.set_xtol_abs(1e-8)
    opt.set_ftol_abs(1e-8)
    opt.set_xtol_rel(1e-4)
    if getattr(dev, "structured", False):
        # lme4 fits none of these models, so there is no lme4 path to follow; nlme and glmmTMB
        # run their optimisers to the optimum, and lme4's xtol_rel = 1e-4 stopped 1.7e-4 short
        # in the SEs of glmmTMB's cs() fit of Machines
        opt.set_xtol_rel(1e-10)
        opt.set_ftol_abs(1e-12)
    opt.set_maxeval(100_000)
    x = np.asarray(opt.optimize(start.tolist()))
    codes = {1: "success", 2: "stopval reached", 3: "ftol reached", 4: "xtol reached", 5: "maxeval reached"}
    return x, f"NLopt BOBYQA: {codes.get(opt.last_optimize_result(), opt.last_optimize_result())}"


def diagonal_entries(dev: Deviance) -> np.ndarray:
    """Which entries of theta are diagonals of a relative covariance factor.

    A residual structure's parameters, after the terms', are not.
    """
    diag = np.concatenate([r == c for r, c in dev.tril])
    return np.concatenate([diag, np.zeros(len(dev.lower) - len(diag), dtype=bool)])


def canonical_theta(dev: Deviance, theta: np.ndarray) -> np.ndarray:
    """The same covariances with every diagonal of theta made non-negative.

    Each term's covariance is ``sigma^2 T T'``, unchanged when a column of ``T``
    changes sign; so a column whose diagonal is negative is negated whole.
    """
    theta = np.array(theta, dtype=float)
    k = 0
    structures = getattr(dev, "structures", None) or ["us"] * len(dev.tril)
    for (r, c), kind in zip(dev.tril, structures, strict=True):
        part = theta[k : k + len(r)]
        for j in np.flatnonzero(r == c):
            if part[j] < 0:
                # glmmTMB's structures take |SD|: only the SD itself changes sign
                part[c == c[j] if kind == "us" else j] *= -1
        k += len(r)
    return theta


# A diagonal of theta below this is on its bound (lme4's isSingular tolerance).
BOUNDARY = 1e-4
# Where a boundary diagonal restarts from: inside, and not where a first unit step
# from lme4's start of 1 lands (the 1-D search from 1 can step exactly onto 0).
RESTART = 0.5


def lbfgsb(dev: Deviance, start: np.ndarray) -> tuple[np.ndarray, str]:
    """scipy's L-BFGS-B without bounds, twice, folded onto non-negative diagonals; restarted from
    inside where it ends on a zero diagonal. Returns the end point and the optimiser's words.
    """
    # Central differences: scipy's default forward differences with a tiny step carry rounding
    # noise of order eps * |d| / h (about 0.02 for a criterion near 2000).
    def gradient(x: np.ndarray) -> np.ndarray:
        g = np.empty_like(x)
        for i in range(len(x)):
            h = 1e-5 * max(1.0, abs(x[i]))
            e = np.zeros_like(x)
            e[i] = h
            g[i] = (dev(x + e) - dev(x - e)) / (2 * h)
        return g

    def search(x: np.ndarray, messages: list[str]) -> np.ndarray:
        for _ in range(2):  # the restart rebuilds the curvature estimate where the criterion is flat
            res = optimize.minimize(dev, x, jac=gradient, method="L-BFGS-B",
                                    options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 5000})
            x = res.x
            messages.append(str(res.message))
        return canonical_theta(dev, x)

    # No bounds: the deviance is defined for any theta and even in each column of T, so the
    # search runs across zero and the result is folded back (canonical_theta). With the bound
    # at zero, a step that crossed it was projected onto it, where the gradient of an even
    # function is zero, and the search stopped there: false zero variances on 7 of the 37
    # models of tests/data/r that lme4 fitted cleanly (criteria up to 6.8 above lme4's).
    messages: list[str] = []
    x = search(np.asarray(start, dtype=float), messages)
    # A search can still land exactly on a zero diagonal (zero gradient there, minimum or not;
    # MASS's petrol, ML: one theta, the first step from 1 lands on 0, 1.45 above lme4's
    # criterion): restart such a point from inside and keep the better of the two.
    on_bound = diagonal_entries(dev) & (x < BOUNDARY)
    if on_bound.any():
        inside = x.copy()
        inside[on_bound] = RESTART
        again = search(inside, messages)
        if dev(again) < dev(x):
            x = again
    return x, "scipy L-BFGS-B (unbounded, central differences): " + "; ".join(messages)


OPTIMIZERS = ("bobyqa", "lbfgsb")


def optimize_theta(dev: Deviance, start: np.ndarray | None = None,
                   optimizer: str = "bobyqa", check: bool = True) -> OptSummary:
    """Minimise the profiled deviance over theta under its bounds, then check the result.

    ``"bobyqa"`` (default) is NLopt's BOBYQA with lme4's ``nloptwrap``
    settings (``xtol_abs = ftol_abs = 1e-8``, and nloptr's ``xtol_rel = 1e-4``):
    the same method and stopping rules as lme4, so fits agree with lme4's even
    where lme4 stops short of the exact optimum. A model lme4 cannot fit (a
    residual structure, glmmTMB's structured terms) runs to ``xtol_rel = 1e-10``,
    as nlme and glmmTMB run to their optimum.
    ``"lbfgsb"`` runs scipy's L-BFGS-B to a tighter optimum (more evaluations),
    without bounds (the result's diagonals are made non-negative by
    :func:`canonical_theta`), and restarts from inside when it ends on a zero
    diagonal, keeping the better point.

    With ``check`` (default), lme4's convergence checks run at the result
    (:func:`check_convergence`) and fill the summary's ``gradient``,
    ``hessian``, ``max_grad`` and ``messages``; :func:`hierbayes.freq.fit.fit_design` warns
    with them. A BOBYQA run that used up its evaluations is reported there too.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {optimizer!r}")
    start = dev.theta0 if start is None else np.asarray(start, dtype=float)
    t0 = time.perf_counter()
    count0 = dev.evaluations
    f0 = dev(start)
    x, message = (bobyqa if optimizer == "bobyqa" else lbfgsb)(dev, start)
    theta = np.where(np.isfinite(dev.lower), np.maximum(x, dev.lower), x)
    f_final = float(dev(theta))
    opt = OptSummary(
        initial=start,
        final=theta,
        f_initial=float(f0),
        f_final=f_final,
        evaluations=dev.evaluations - count0,
        optimizer=optimizer,
        message=message,
        seconds=time.perf_counter() - t0,
    )
    if not check:
        return dataclasses.replace(opt, skipped="not asked for (check=False)")
    checked = check_convergence(dev, theta, f_final)
    if message.endswith("maxeval reached"):
        # lme4 (optwrap) warns "convergence code 5 from nloptwrap" here
        checked["messages"] = ("convergence code 5 from nloptwrap: NLOPT_MAXEVAL_REACHED: Optimization "
                               "stopped because maxeval was reached.", *checked.get("messages", ()))
    return dataclasses.replace(opt, **checked)
