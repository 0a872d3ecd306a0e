"""A GLMM fit by lme4's method: glmer's two optimisation stages, its convergence checks and ``mkMerMod``.

:func:`fit_glmer_design` runs glmer's stages on a design:

1. ``nAGQ = 0``: the deviance over theta, with ``u`` and ``beta`` fitted by
   PIRLS at each theta (:class:`hierbayes.freq.laplace.GlmerDeviance`),
   minimised by BOBYQA from theta = 1 (glmer's ``bobyqa``, minqa's defaults:
   first step 0.2, stopping at a millionth of it);
2. ``nAGQ >= 1``: the Laplace (or AGQ) deviance over ``(theta, beta)``, every
   PIRLS starting at the first stage's linear predictor, from the first
   stage's estimates. glmer's default here is its own Nelder-Mead, whose
   stopping rule leaves it short of the optimum (on cbpp by 3e-4 in logLik);
   this stage runs NLopt's BOBYQA, first steps scaled as glmer scales
   Nelder-Mead's (0.02 for theta, a fifth of each fixed effect's SE), to the
   optimum (:data:`STAGE2`), where glmer run to convergence stops too.

Then lme4's checks and estimates: a parameter within 1e-5 of its bound is
tried on the bound (``check.boundary``); the finite-difference gradient and
Hessian in ``(theta, beta)`` (step 1e-4, glmer's ``deriv12``, unless the
fit is singular) give lme4's ``checkConv`` (scaled gradient, fixed-effect
and full Hessian) and the fixed effects' covariance, ``2 H^-1``
(vcov.merMod's ``use.hessian``); otherwise it is ``sigma^2 (R_X'R_X)^-1``.
As lme4 1.1.31 (which the tests' references come from), the derivatives are
computed whatever the size; later lme4 skips them from 10,000 rows or 20
parameters, and falls back on ``R_X`` (on a simulated 100,000-row Bernoulli
model the two SEs differ by 1.4%). :func:`refit`
is lme4's ``refit`` (one stage from the fit's estimates).

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)"),
...                  hb.datasets.load("cbpp"), family="binomial")
>>> g = fit_glmer_design(d)
>>> round(g.loglik, 4), g.estimates.beta.round(3).tolist()
(-92.0266, [-1.398, -0.992, -1.128, -1.58])
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular

from hierbayes.errors import DataError
from hierbayes.freq.estimates import conditional_variances, split_u
from hierbayes.freq.glmermod import GlmerEstimates, GlmerMod
from hierbayes.freq.laplace import GlmerDeviance
from hierbayes.freq.optimize import (
    BOUNDARY,
    HESS_TOL,
    OptSummary,
    derivatives,
    gradient_messages,
    hessian_messages,
    warn_convergence,
)
from hierbayes.freq.pirls import TOL, GlmResponse, PirlsFit
from hierbayes.linalg.blocked import BlockedCholesky
from hierbayes.spec.design import Design

#: Stage 2's stopping rules (NLopt's BOBYQA): tight enough that the fixed effects stop within
#: 1e-6 of their SE of the optimum, and no tighter than the deviance's own precision allows.
STAGE2 = {"xtol_rel": 1e-9, "ftol_abs": 1e-11, "maxeval": 100_000}
#: glmerControl()'s boundary.tol.
BOUNDARY_TOL = 1e-5


def _bobyqa(f, x0: np.ndarray, lower: np.ndarray, step: np.ndarray, xtol_abs: float = 0.0,
            xtol_rel: float = 0.0, ftol_abs: float = 0.0, maxeval: int = 100_000) -> tuple[np.ndarray, str]:
    """NLopt's BOBYQA from ``x0`` with first steps ``step``; the end point and its words."""
    import nlopt

    opt = nlopt.opt(nlopt.LN_BOBYQA, len(x0))
    opt.set_lower_bounds(lower.tolist())
    opt.set_min_objective(lambda x, grad: f(np.asarray(x)))
    opt.set_initial_step(step.tolist())
    if xtol_abs:
        opt.set_xtol_abs(xtol_abs)
    opt.set_xtol_rel(xtol_rel)
    opt.set_ftol_abs(ftol_abs)
    opt.set_maxeval(maxeval)
    start = np.maximum(x0, lower)
    try:
        x = np.asarray(opt.optimize(start.tolist()))
    except nlopt.RoundoffLimited:
        x = np.asarray(opt.last_optimum_x()) if hasattr(opt, "last_optimum_x") else start
    codes = {1: "success", 2: "stopval reached", 3: "ftol reached", 4: "xtol reached",
             5: "maxeval reached", -4: "roundoff limited"}
    return x, f"NLopt BOBYQA: {codes.get(opt.last_optimize_result(), opt.last_optimize_result())}"


def _check_boundary(dev: GlmerDeviance, x: np.ndarray, fx: float) -> tuple[np.ndarray, float]:
    """lme4's ``check.boundary``: a theta within 1e-5 of its bound is tried on it, kept if lower."""
    x = x.copy()
    dl = (x - dev.lower)[: dev.n_theta]
    near = np.flatnonzero((dl > 0) & (dl < BOUNDARY_TOL))
    if not len(near):
        return x, fx
    for i in near:
        trial = x.copy()
        trial[i] = dev.lower[i]
        if dev(trial) < fx:
            x[i] = trial[i]
    return x, dev(x)


def check_glmer_convergence(dev: GlmerDeviance, x: np.ndarray, fx: float) -> dict:
    """lme4's ``checkConv`` for a glmer fit at ``x = (theta, beta)``.

    A singular fit is not checked further (lme4: its derivatives at the
    bound say nothing about convergence). Else the gradient
    and Hessian of :func:`hierbayes.freq.optimize.derivatives` give the
    scaled-gradient test (max|grad| > 0.002 fails) and the eigenvalue tests,
    first of the fixed effects' block of the Hessian, then of the whole.
    """
    theta = x[: dev.n_theta]
    diag = np.isfinite(dev.lower[: dev.n_theta])
    if np.any(theta[diag] < BOUNDARY):
        return {"skipped": "singular fit (a variance component on its bound; see is_singular())"}
    t0 = time.perf_counter()
    count0 = dev.evaluations
    g, H = derivatives(dev, x, fx)
    out: dict[str, Any] = {"gradient": g, "hessian": H, "check_evaluations": dev.evaluations - count0}
    out["max_grad"], messages = gradient_messages(g, H)
    if np.all(np.isfinite(g)):
        if dev.n_par > dev.n_theta:
            k = dev.n_theta
            messages += hessian_messages(H[k:, k:], HESS_TOL, kind="fixed-effect")
        messages += hessian_messages(H, HESS_TOL)
    out["messages"] = tuple(messages)
    out["check_seconds"] = time.perf_counter() - t0
    return out


def _stage1(dev: GlmerDeviance, start: np.ndarray) -> OptSummary:
    """glmer's first stage: minqa's BOBYQA defaults (first step ``min(0.95, 0.2 max|x|)``, to a millionth)."""
    t0 = time.perf_counter()
    count0 = dev.evaluations
    f0 = dev(start)
    rhobeg = min(0.95, 0.2 * float(np.max(np.abs(start)))) or 0.2
    x, message = _bobyqa(dev, start, dev.lower, np.full(len(start), rhobeg), xtol_abs=1e-6 * rhobeg)
    x = np.maximum(x, dev.lower)
    fx = dev(x)
    return OptSummary(initial=start, final=x, f_initial=float(f0), f_final=float(fx),
                      evaluations=dev.evaluations - count0, optimizer="bobyqa (stage 1, nAGQ = 0)",
                      message=message, seconds=time.perf_counter() - t0,
                      skipped="not computed in glmer's first stage")


def _stage2(dev: GlmerDeviance, start: np.ndarray, step: np.ndarray, check: bool = True) -> OptSummary:
    """glmer's second stage over ``(theta, beta)``, then lme4's boundary and convergence checks."""
    t0 = time.perf_counter()
    count0 = dev.evaluations
    f0 = dev(start)
    x, message = _bobyqa(dev, start, dev.lower, step, **STAGE2)
    x = np.maximum(x, dev.lower)
    fx = dev(x)
    x, fx = _check_boundary(dev, x, fx)
    opt = OptSummary(initial=start, final=x, f_initial=float(f0), f_final=float(fx),
                     evaluations=dev.evaluations - count0,
                     optimizer=f"bobyqa (stage {'2' if dev.nAGQ else '1'}, nAGQ = {dev.nAGQ})",
                     message=message, seconds=time.perf_counter() - t0)
    if not check:
        return dataclasses.replace(opt, skipped="not asked for (check=False)")
    checked = check_glmer_convergence(dev, x, fx)
    if message.endswith("maxeval reached"):
        checked["messages"] = ("convergence code 5 from bobyqa: maxeval reached",
                               *checked.get("messages", ()))
    return dataclasses.replace(opt, **checked)


def unscaled_vcov(dev: GlmerDeviance, T: list[np.ndarray], fit: PirlsFit) -> tuple[np.ndarray, float]:
    """lme4's ``unsc()`` and ``ldRX2``: ``(R_X'R_X)^-1`` of the system at ``fit``'s last weights."""
    p = dev.p
    if not p:
        return np.zeros((0, 0)), 0.0
    system = dev.pirls.joint
    # with the working response as the last column (the factor needs one that X does not fit)
    f = BlockedCholesky(system.products(fit.sqrt_w**2, fit.z)).factor(T)
    q = system.q_rest
    L_XX = f.LDD[q : q + p, q : q + p]
    inv = solve_triangular(L_XX, np.eye(p), lower=True)
    return inv.T @ inv, float(2 * np.log(np.abs(np.diag(L_XX))).sum())


def glmer_estimates(dev: GlmerDeviance, x: np.ndarray, fit: PirlsFit, opt: OptSummary) -> GlmerEstimates:
    """lme4's ``mkMerMod`` for a GLMM: estimates, ``vcov`` and ``devcomp`` at the optimum ``x``."""
    resp = dev.response
    theta = x[: dev.n_theta]
    T = dev.T(theta)
    beta = fit.beta if dev.nAGQ == 0 else x[dev.n_theta :]
    unsc, ldRX2 = unscaled_vcov(dev, T, fit)
    pearson = resp.pearson(fit.mu)
    wrss = float(pearson @ pearson)
    ussq = float(fit.u @ fit.u)
    # lme4's useSc: a scale only for families that have one (here the Gamma)
    sigma = float(np.sqrt((wrss + ussq) / dev.n)) if dev.design.family.name == "gamma" else 1.0
    vcov, source = sigma**2 * unsc, "RX"
    H = opt.hessian
    if H is not None and dev.nAGQ > 0 and np.all(np.isfinite(H)):
        try:
            h = np.linalg.inv(H)[dev.n_theta :, dev.n_theta :]
            V = h + h.T
            if np.linalg.eigvalsh(V).min() > 0:
                vcov, source = V, "hessian"
        except np.linalg.LinAlgError:
            pass
    us = split_u(dev.pirls.joint, fit.u)
    bs = [u @ Tg.T for u, Tg in zip(us, T, strict=True)]
    cv = conditional_variances(dev.pirls.modes, fit.factor, sigma**2)
    return GlmerEstimates(beta=np.asarray(beta, dtype=float), vcov_beta=vcov, vcov_source=source,
                          unsc=unsc, u=us, b=bs, cond_var=cv, eta=fit.eta, mu=fit.mu, sigma=sigma,
                          ldL2=float(fit.factor.ld_z), ldRX2=ldRX2, ussq=ussq,
                          drsum=float(resp.dev_resid(fit.mu).sum()), wrss=wrss, pearson=pearson)


def _stage2_step(dev: GlmerDeviance, theta: np.ndarray, fit: PirlsFit) -> np.ndarray:
    """Stage 2's first steps, as glmer scales Nelder-Mead's: 0.02 for theta, 0.2 min(SE, 10) for beta."""
    unsc, _ = unscaled_vcov(dev, dev.T(theta), fit)
    return 0.2 * np.concatenate([np.full(dev.n_theta, 0.1), np.minimum(np.sqrt(np.diag(unsc)), 10.0)])


def _finish(dev: GlmerDeviance, opt: OptSummary, opt1: OptSummary | None, stacklevel: int) -> GlmerMod:
    """Warn about failed checks, evaluate at the optimum and record the fit.

    ``stacklevel`` counts from ``_finish``'s caller, as that caller's own does.
    """
    warn_convergence(opt, stacklevel=stacklevel + 2)
    ev = dev.evaluate(opt.final)
    return GlmerMod(design=dev.design, deviance_function=dev, opt=opt, opt_stage1=opt1, fit=ev.fit,
                    estimates=glmer_estimates(dev, opt.final, ev.fit, opt))


def fit_glmer_design(design: Design, nAGQ: int = 1, dispersion: float | None = None,
                     start: np.ndarray | None = None, tol: float = TOL, check: bool = True,
                     stacklevel: int = 2, information: str = "expected") -> GlmerMod:
    """Fit a GLMM by glmer's method: PIRLS, the Laplace approximation (or AGQ), two stages.

    Parameters
    ----------
    design
        A non-Gaussian design with at least one random-effect term.
    nAGQ
        0 (stage 1 alone), 1 (Laplace, default) or up to 100 (adaptive
        Gauss-Hermite quadrature; one scalar random-effect term only).
    dispersion
        The negative binomial's shape (fixed here; :func:`hierbayes.freq.glmernb.fit_glmer_nb`
        estimates it).
    start
        Starting theta for stage 1 (lme4's, identity factors, when None).
    tol
        PIRLS's relative tolerance (glmerControl's ``tolPwrss``).
    check
        Run lme4's convergence checks (and so the Hessian-based ``vcov``).
    stacklevel
        Where convergence warnings point, counted as :func:`warnings.warn` counts
        from this function.
    information
        ``"expected"`` (glmer's PIRLS and Laplace approximation) or
        ``"observed"`` (Newton's PIRLS and the observed Hessian in ``u``:
        TMB's Laplace approximation, glmmTMB's; negative binomial only).
    """
    dev1 = GlmerDeviance(design, nAGQ=0, dispersion=dispersion, tol=tol, information=information)
    theta0 = dev1.theta0 if start is None else np.asarray(start, dtype=float)
    opt1 = _stage1(dev1, theta0)
    end1 = dev1.evaluate(opt1.final).fit
    if nAGQ == 0:
        # glmer(nAGQ = 0): the first stage is the fit, with check.boundary and no derivatives
        x, fx = _check_boundary(dev1, opt1.final, opt1.f_final)
        opt = dataclasses.replace(opt1, final=x, f_final=float(fx))
        return _finish(dev1, opt, None, stacklevel)
    dev = dev1.at_stage(nAGQ, end1)
    x0 = np.concatenate([opt1.final, end1.beta])
    opt = _stage2(dev, x0, _stage2_step(dev, opt1.final, end1), check)
    return _finish(dev, opt, opt1, stacklevel)


def refit(fit: GlmerMod, y: np.ndarray | None = None, dispersion: float | None = None,
          stacklevel: int = 2) -> GlmerMod:
    """The same model refitted to a new response or NB shape, as lme4's ``refit``.

    One stage (the fit's last) from the fit's ``(theta, beta)``. As lme4's
    refit, every PIRLS starts at the linear predictor of a PIRLS for ``u``
    alone at the fit's theta with ``beta = 0``, from R's starting mean.

    Parameters
    ----------
    fit
        A GLMM fit.
    y
        New response, as the design holds it (binomial: successes); None keeps it.
    dispersion
        A new negative binomial shape; None keeps the fit's.
    """
    design = fit.design
    if y is not None:
        values = np.asarray(y, dtype=float).ravel()
        if values.shape != (fit.nobs,):
            raise DataError(f"refit needs {fit.nobs} response values (one per fitted row), "
                            f"not {values.size}.")
        design = dataclasses.replace(design, y=values, frame=None)
    old = fit.deviance_function
    resp = GlmResponse.from_design(design, fit.dispersion if dispersion is None else dispersion,
                                   old.response.information)
    pirls = old.pirls.with_response(resp)
    T = old.T(fit.theta)
    first = pirls.run(T, pirls.start_eta(), np.zeros(old.p), old.tol, old.maxit)
    dev = GlmerDeviance(design, old.nAGQ, lp0=first.eta - resp.offset, tol=old.tol, maxit=old.maxit,
                        pirls=pirls)
    if dev.nAGQ == 0:
        x0 = fit.theta
        step = np.full(dev.n_theta, 0.02)
    else:
        x0 = np.concatenate([fit.theta, fit.estimates.beta])
        step = _stage2_step(dev, fit.theta, fit.fit)
    opt = _stage2(dev, x0, step, check=fit.opt.gradient is not None)
    return _finish(dev, opt, None, stacklevel)
