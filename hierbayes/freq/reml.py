"""REML and ML fits of linear mixed models, by lme4's method.

The profiled deviance of Bates, Maechler, Bolker & Walker (2015, JSS 67(1)) is
a function of the relative covariance factor's parameters ``theta`` alone:
for each ``theta`` a penalised least-squares problem gives the conditional
modes, the fixed effects and the penalised residual sum of squares ``r^2``,
through the Cholesky factor ``L`` of

    [Lambda'Z'Z Lambda + I   Lambda'Z'X   Lambda'Z'y]
    [X'Z Lambda              X'X          X'y       ]
    [y'Z Lambda              y'X          y'y       ]

and then

    ML:   d(theta) = log|L_Z|^2 + n (1 + log(2 pi r^2 / n))
    REML: d(theta) = log|L_Z|^2 + log|L_X|^2 + (n - p)(1 + log(2 pi r^2 / (n - p))).

The factorisation is blocked as in MixedModels.jl: the random-effect term with
the most levels comes first and its block of ``Z'Z`` is block diagonal (one
small block per level), so it is factored level by level; its coupling to the
rest is sparse; the Schur complement of the other terms, X and y is dense and
small (InstEval: 1,142 + 3 columns beside 2,972 levels).

Stages can be called alone, as lme4's ``mkLmerDevfun`` and ``optimizeLmer``:
:class:`Deviance` is the objective, :func:`optimize_theta` fits ``theta`` and
returns an :class:`OptSummary`, :func:`lmer` does everything. After the
optimiser, :func:`check_convergence` runs lme4's ``checkConv`` (gradient and
Hessian of the criterion by finite differences) and the fit warns, with a
:class:`hierbayes.ConvergenceWarning`, where a check fails.

Examples
--------
>>> import hierbayes as hb
>>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> round(fit.deviance, 3)  # the REML criterion
1743.628
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import optimize
from scipy.linalg import solve_triangular

from hierbayes.errors import ConvergenceWarning, DataError
from hierbayes.spec.design import Design

if TYPE_CHECKING:
    from hierbayes.report.lmer import LmerFit


def _tril_index(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each theta entry: lme4's column-wise lower triangle."""
    rows, cols = [], []
    for j in range(p):
        for i in range(j, p):
            rows.append(i)
            cols.append(j)
    return np.array(rows), np.array(cols)


@dataclass
class _Factor:
    """The blocked Cholesky factor at one theta, kept for extracting estimates."""

    T: list[np.ndarray]  # per block, the p x p relative covariance factor
    L11: np.ndarray  # (levels_1, p_1, p_1) lower Cholesky blocks of the first term
    LD1: sp.csr_matrix  # rows: rest of Z, X, y; columns: first term
    LDD: np.ndarray  # dense lower factor of rest of Z, X, y
    ld_z: float
    ld_x: float
    r2: float


class Deviance:
    """The profiled deviance (REML criterion or -2 log-likelihood) as a function of theta.

    Parameters
    ----------
    design
        A gaussian design with at least one random-effect term.
    reml
        REML criterion (True) or ML deviance (False).

    Examples
    --------
    >>> import hierbayes as hb
    >>> from hierbayes.spec.design import build_design
    >>> from hierbayes.spec.formula import parse_formula
    >>> d = build_design(parse_formula("Reaction ~ Days + (1 | Subject)"), hb.datasets.load("sleepstudy"))
    >>> dev = Deviance(d, reml=True)
    >>> dev.theta0, round(float(dev(dev.theta0)), 4)
    (array([1.]), 1787.3989)
    """

    def __init__(self, design: Design, reml: bool = True) -> None:
        if design.family.name != "gaussian":
            raise DataError(
                f"REML and ML fits here are for gaussian models; this one is {design.family.name}."
            )
        if not design.blocks:
            raise DataError("The formula has no random-effect term; use ordinary least squares.")
        self.design = design
        self.reml = reml
        self.n = design.n_obs
        self.p = design.X.shape[1]
        blocks = design.blocks
        self.sizes = [b.n_terms for b in blocks]
        self.levels = [b.n_levels for b in blocks]
        self.tril = [_tril_index(p) for p in self.sizes]
        self.n_theta = sum(p * (p + 1) // 2 for p in self.sizes)
        self.theta0 = np.concatenate([(r == c).astype(float) for r, c in self.tril])
        self.lower = np.concatenate([np.where(r == c, 0.0, -np.inf) for r, c in self.tril])

        first = blocks[0]
        p1, L1 = first.n_terms, first.n_levels
        # A11: per level of the first term, Z_l' Z_l.
        self.A11 = np.zeros((L1, p1, p1))
        np.add.at(self.A11, first.index, first.Z[:, :, None] * first.Z[:, None, :])
        Z1 = self._sparse_z(first)
        rest = [self._sparse_z(b) for b in blocks[1:]]
        XY = np.column_stack([design.X, design.y])
        D = sp.hstack([*rest, sp.csr_matrix(XY)], format="csr")
        self.q_rest = sum(b.n_levels * b.n_terms for b in blocks[1:])
        self.AD1 = (D.T @ Z1).tocsr()
        self.ADD = (D.T @ D).toarray()
        self._Z1, self._D = Z1, D
        self.evaluations = 0
        self._best: tuple[bytes, float, _Factor] | None = None
        self._set_dense()

    # Below this many entries of [rest of Z, X, y]'Z_1, the factor is computed with dense
    # arrays: scipy.sparse's per-call overhead (about 0.1 ms per product) dominated small
    # problems (sleepstudy: 1.5 ms per evaluation, 0.2 ms dense).
    DENSE_LIMIT = 200_000

    def _set_dense(self) -> None:
        m, k = self.AD1.shape
        self._AD1_dense = (self.AD1.toarray().reshape(m, self.levels[0], self.sizes[0])
                           if m * k <= self.DENSE_LIMIT else None)

    def with_response(self, y: np.ndarray) -> Deviance:
        """The same objective for another response (lme4's ``refit``), reusing Z'Z and X'X.

        Only the products with y change: the last row of ``[rest of Z, X, y]'Z_1``
        and the last row and column of ``[rest of Z, X, y]'[rest of Z, X, y]``.
        """
        import copy
        import dataclasses

        y = np.asarray(y, dtype=float)
        new = copy.copy(self)
        # the stored data frame holds the old response; a refit has none to plot from
        new.design = dataclasses.replace(self.design, y=y, frame=None)
        D = sp.hstack([self._D[:, :-1], sp.csr_matrix(y[:, None])], format="csr")
        new._D = D
        new.AD1 = sp.vstack([self.AD1[:-1], sp.csr_matrix(self._Z1.T @ y)], format="csr")
        dy = D.T @ y
        new.ADD = self.ADD.copy()
        new.ADD[-1, :] = dy
        new.ADD[:, -1] = dy
        new.evaluations = 0
        new._best = None  # the old response's factor must never be handed out for the new one
        new._set_dense()
        return new

    @staticmethod
    def _sparse_z(block) -> sp.csr_matrix:
        """Z of one term, columns level-major (each level's p columns together), as lme4."""
        n, p = block.Z.shape
        rows = np.repeat(np.arange(n), p)
        cols = (block.index[:, None] * p + np.arange(p)).ravel()
        return sp.csr_matrix((block.Z.ravel(), (rows, cols)), shape=(n, block.n_levels * p))

    def T(self, theta: np.ndarray) -> list[np.ndarray]:
        """The relative covariance factors (lower triangular, one per term) of theta."""
        out, k = [], 0
        for p, (r, c) in zip(self.sizes, self.tril, strict=True):
            T = np.zeros((p, p))
            T[r, c] = theta[k : k + len(r)]
            out.append(T)
            k += len(r)
        return out

    def _lambda_rest(self, T: list[np.ndarray]) -> sp.csr_matrix:
        parts = [sp.kron(sp.identity(L, format="csr"), sp.csr_matrix(t))
                 for t, L in zip(T[1:], self.levels[1:], strict=True)]
        parts.append(sp.identity(self.p + 1, format="csr"))
        return sp.block_diag(parts, format="csr")

    def factor(self, theta: np.ndarray) -> _Factor:
        """The blocked Cholesky factor at theta."""
        theta = np.asarray(theta, dtype=float)
        if self._best is not None and self._best[0] == theta.tobytes():
            return self._best[2]
        T = self.T(theta)
        T1 = T[0]
        p1 = T1.shape[0]
        M = np.einsum("ji,ljk,kh->lih", T1, self.A11, T1) + np.eye(p1)
        L11 = np.linalg.cholesky(M)
        L11_inv_t = np.linalg.inv(L11).transpose(0, 2, 1)
        if self._AD1_dense is not None:
            return self._factor_dense(T, L11, L11_inv_t)
        lam_rest = self._lambda_rest(T)
        lam1 = sp.kron(sp.identity(self.levels[0], format="csr"), sp.csr_matrix(T1))
        C = lam_rest.T @ self.AD1 @ lam1
        LD1 = (C @ sp.block_diag(list(L11_inv_t), format="csr")).tocsr()
        S = np.asarray(lam_rest.T @ self.ADD @ lam_rest)
        S[np.arange(self.q_rest), np.arange(self.q_rest)] += 1.0
        S -= (LD1 @ LD1.T).toarray()
        LDD = np.linalg.cholesky(S)
        diag = np.diag(LDD)
        ld_z = 2 * np.log(np.diagonal(L11, axis1=1, axis2=2)).sum() + 2 * np.log(diag[: self.q_rest]).sum()
        ld_x = 2 * np.log(diag[self.q_rest : self.q_rest + self.p]).sum()
        return _Factor(T, L11, LD1, LDD, float(ld_z), float(ld_x), float(diag[-1] ** 2))

    def _factor_dense(self, T: list[np.ndarray], L11: np.ndarray, L11_inv_t: np.ndarray) -> _Factor:
        """:meth:`factor` for small problems, with the same steps on dense arrays."""
        from scipy.linalg import block_diag

        lam_rest = block_diag(*[np.kron(np.eye(L), t) for t, L in zip(T[1:], self.levels[1:], strict=True)],
                              np.eye(self.p + 1))
        m = lam_rest.shape[0]
        C = np.einsum("mlj,jk->mlk", np.tensordot(lam_rest.T, self._AD1_dense, axes=1), T[0])
        LD1 = np.einsum("mlj,ljk->mlk", C, L11_inv_t).reshape(m, -1)
        S = lam_rest.T @ self.ADD @ lam_rest
        S[np.arange(self.q_rest), np.arange(self.q_rest)] += 1.0
        S -= LD1 @ LD1.T
        LDD = np.linalg.cholesky(S)
        diag = np.diag(LDD)
        ld_z = 2 * np.log(np.diagonal(L11, axis1=1, axis2=2)).sum() + 2 * np.log(diag[: self.q_rest]).sum()
        ld_x = 2 * np.log(diag[self.q_rest : self.q_rest + self.p]).sum()
        return _Factor(T, L11, sp.csr_matrix(LD1), LDD, float(ld_z), float(ld_x), float(diag[-1] ** 2))

    @property
    def dof(self) -> int:
        """Residual degrees of freedom behind sigma: n - p (REML) or n (ML)."""
        return self.n - self.p if self.reml else self.n

    def objective(self, f: _Factor, sigma2: float | None = None) -> float:
        """The criterion at a factor; profiled over sigma unless ``sigma2`` is given.

        ``log|L_Z|^2 (+ log|L_X|^2 for REML) + dof log(2 pi sigma^2) + r^2 / sigma^2``,
        which at ``sigma^2 = r^2 / dof`` is the profiled form in the module docstring.
        """
        s2 = f.r2 / self.dof if sigma2 is None else sigma2
        ld = f.ld_z + (f.ld_x if self.reml else 0.0)
        return ld + self.dof * np.log(2 * np.pi * s2) + f.r2 / s2

    def __call__(self, theta: np.ndarray) -> float:
        theta = np.asarray(theta, dtype=float)
        key = theta.tobytes()
        # The lowest point seen is kept with its factor: the fit asks for the optimum's value
        # and factor again after the optimiser returns it (two evaluations saved per fit).
        if self._best is not None and self._best[0] == key:
            return self._best[1]
        self.evaluations += 1
        try:
            f = self.factor(theta)
        except np.linalg.LinAlgError:
            return np.inf
        value = self.objective(f)
        if self._best is None or value < self._best[1]:
            self._best = (key, value, f)
        return value


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


def _hessian_messages(H: np.ndarray, tol: float) -> list[str]:
    """lme4's checkHess: negative, zero, very large and widely spread eigenvalues."""
    if not np.all(np.isfinite(H)):
        return ["Problem with Hessian check (infinite or missing values?)"]
    ev = np.linalg.eigvalsh(H)
    negative = int(np.sum(ev < -tol))
    if negative:
        return [f"Model failed to converge: degenerate Hessian with {negative} negative eigenvalues"]
    try:
        np.linalg.cholesky(H)
        positive_definite = True
    except np.linalg.LinAlgError:
        positive_definite = False
    if np.any(np.abs(ev) < tol) or not positive_definite:
        return ["Hessian is numerically singular: parameters are not uniquely determined"]
    out = []
    if ev.max() * tol > 1:
        out.append("Model is nearly unidentifiable: very large eigenvalue\n - Rescale variables?")
    if ev.min() / ev.max() < tol:
        out.append("Model is nearly unidentifiable: large eigenvalue ratio\n - Rescale variables?")
    return out


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
    messages: list[str] = []
    if not np.all(np.isfinite(g)):
        # lme4 returns "Gradient contains NAs" without warning; here it warns like the rest
        messages.append("Gradient contains NAs")
        out["max_grad"] = np.nan
    else:
        max_grad, k, scaled = scaled_max_grad(g, H)
        out["max_grad"] = max_grad
        if not scaled:
            messages.append("unable to evaluate scaled gradient")
        elif max_grad > GRAD_TOL:
            # lme4 prints component 1 always (which.max of a single number); this is the real one
            messages.append(f"Model failed to converge with max|grad| = {max_grad:g} "
                            f"(tol = {GRAD_TOL:g}, component {k + 1})")
        messages += _hessian_messages(H, HESS_TOL)
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


def warn_convergence(opt: OptSummary) -> None:
    """One :class:`ConvergenceWarning` per failed check of ``opt``, lme4's words and advice."""
    for m in opt.messages:
        words = m.replace("\n", "")
        words += "" if words.endswith("?") else "."
        warnings.warn(f"{words} {_advice(m, opt.optimizer)} "
                      "The numbers are in fit.opt (max_grad, gradient, hessian).",
                      ConvergenceWarning, stacklevel=4)


def _bobyqa(dev: Deviance, start: np.ndarray) -> tuple[np.ndarray, str]:
    import nlopt

    opt = nlopt.opt(nlopt.LN_BOBYQA, dev.n_theta)
    opt.set_lower_bounds(dev.lower.tolist())
    opt.set_min_objective(lambda x, grad: dev(np.asarray(x)))
    # lme4's nloptwrap sets xtol_abs, ftol_abs and maxeval and leaves nloptr's default
    # xtol_rel = 1e-4 in force; the same stopping rules make fits stop where lme4's do.
    opt.set_xtol_abs(1e-8)
    opt.set_ftol_abs(1e-8)
    opt.set_xtol_rel(1e-4)
    opt.set_maxeval(100_000)
    x = np.asarray(opt.optimize(start.tolist()))
    codes = {1: "success", 2: "stopval reached", 3: "ftol reached", 4: "xtol reached", 5: "maxeval reached"}
    return x, f"NLopt BOBYQA: {codes.get(opt.last_optimize_result(), opt.last_optimize_result())}"


def diagonal_entries(dev: Deviance) -> np.ndarray:
    """Which entries of theta are diagonals of a relative covariance factor."""
    return np.concatenate([r == c for r, c in dev.tril])


def canonical_theta(dev: Deviance, theta: np.ndarray) -> np.ndarray:
    """The same covariances with every diagonal of theta made non-negative.

    Each term's covariance is ``sigma^2 T T'``, unchanged when a column of ``T``
    changes sign; so a column whose diagonal is negative is negated whole.
    """
    theta = np.array(theta, dtype=float)
    k = 0
    for r, c in dev.tril:
        part = theta[k : k + len(r)]
        for j in np.flatnonzero(r == c):
            if part[j] < 0:
                part[c == c[j]] *= -1
        k += len(r)
    return theta


# A diagonal of theta below this is on its bound (lme4's isSingular tolerance).
BOUNDARY = 1e-4
# Where a boundary diagonal restarts from: inside, and not where a first unit step
# from lme4's start of 1 lands (the 1-D search from 1 can step exactly onto 0).
RESTART = 0.5


def _lbfgsb(dev: Deviance, start: np.ndarray) -> tuple[np.ndarray, str]:
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
    where lme4 stops short of the exact optimum.
    ``"lbfgsb"`` runs scipy's L-BFGS-B to a tighter optimum (more evaluations),
    without bounds (the result's diagonals are made non-negative by
    :func:`canonical_theta`), and restarts from inside when it ends on a zero
    diagonal, keeping the better point.

    With ``check`` (default), lme4's convergence checks run at the result
    (:func:`check_convergence`) and fill the summary's ``gradient``,
    ``hessian``, ``max_grad`` and ``messages``; :func:`fit_design` warns
    with them. A BOBYQA run that used up its evaluations is reported there too.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {optimizer!r}")
    start = dev.theta0 if start is None else np.asarray(start, dtype=float)
    t0 = time.perf_counter()
    count0 = dev.evaluations
    f0 = dev(start)
    x, message = (_bobyqa if optimizer == "bobyqa" else _lbfgsb)(dev, start)
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


@dataclass
class Estimates:
    """Everything a fit reports, computed at the optimum."""

    beta: np.ndarray
    vcov_beta: np.ndarray
    sigma: float
    u: list[np.ndarray]  # per block, (levels, p) spherical random effects
    b: list[np.ndarray]  # per block, (levels, p) conditional modes
    cond_var: list[np.ndarray] | None = None  # per block, (levels, p, p)


def back_solve(dev: Deviance, f: _Factor, rhs: np.ndarray) -> np.ndarray:
    """Solve ``R x = rhs`` with ``R = L'`` the upper factor of the [u, beta] system.

    ``rhs`` has one column per right-hand side and rows ordered as the
    spherical random effects (first term level-major, then the other terms),
    then the fixed effects. The y row of the factor gives the conditional
    modes and beta; standard normal columns give draws from N(0, (L L')^-1).
    """
    rhs = np.asarray(rhs, dtype=float).reshape(rhs.shape[0], -1)
    L1, p1 = dev.levels[0], dev.sizes[0]
    q1, q_rest, p = L1 * p1, dev.q_rest, dev.p
    LDD = f.LDD
    r1, rr, rx = rhs[:q1], rhs[q1 : q1 + q_rest], rhs[q1 + q_rest :]
    x_x = solve_triangular(LDD[q_rest : q_rest + p, q_rest : q_rest + p], rx, lower=True, trans="T") if p else rx
    x_r = (solve_triangular(LDD[:q_rest, :q_rest], rr - LDD[q_rest : q_rest + p, :q_rest].T @ x_x,
                            lower=True, trans="T") if q_rest else rr)
    r1 = r1 - f.LD1[:-1].T @ np.vstack([x_r, x_x])
    k = rhs.shape[1]
    x_1 = np.linalg.solve(f.L11.transpose(0, 2, 1), r1.reshape(L1, p1, k))
    return np.vstack([x_1.reshape(q1, k), x_r, x_x])


def split_u(dev: Deviance, u: np.ndarray) -> list[np.ndarray]:
    """Cut stacked spherical effects (q, ...) into per-term (levels, p, ...) arrays."""
    out, k = [], 0
    for L, q in zip(dev.levels, dev.sizes, strict=True):
        out.append(u[k : k + L * q].reshape(L, q, *u.shape[1:]))
        k += L * q
    return out


def estimates(dev: Deviance, f: _Factor, cond_var: bool = True) -> Estimates:
    """Fixed effects, sigma, conditional modes (and their conditional variances) at a factor."""
    p = dev.p
    l_y = np.concatenate([np.asarray(f.LD1[-1].todense()).ravel(), f.LDD[-1, :-1]])
    sol = back_solve(dev, f, l_y[:, None])[:, 0]
    beta = sol[len(sol) - p :]
    sigma2 = f.r2 / dev.dof
    if p:
        L_XX = f.LDD[dev.q_rest : dev.q_rest + p, dev.q_rest : dev.q_rest + p]
        L_XX_inv = solve_triangular(L_XX, np.eye(p), lower=True)
        vcov = sigma2 * L_XX_inv.T @ L_XX_inv
    else:
        vcov = np.zeros((0, 0))
    us = split_u(dev, sol[: len(sol) - p])
    bs = [u @ T.T for u, T in zip(us, f.T, strict=True)]
    cv = _cond_var(dev, f, sigma2) if cond_var else None
    return Estimates(beta, vcov, float(np.sqrt(sigma2)), us, bs, cv)


def simulate_arm(dev: Deviance, f: _Factor, est: Estimates, n_sims: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """arm::sim draws: sigma, fixed effects and group effects, theta held at its estimate.

    sigma^2 = pwrss / chi^2(n - p) (the posterior under p(sigma^2) ~ 1/sigma^2),
    then [u, beta] ~ N(modes, sigma^2 (L L')^-1) and b = Lambda u.

    Returns ``sigma`` (n_sims,), ``beta`` (n_sims, p) and per term ``b``
    (n_sims, levels, terms).
    """
    df = dev.n - dev.p
    sigma = np.sqrt(1.0 / rng.gamma(shape=df / 2.0, scale=2.0 / f.r2, size=n_sims))
    total = sum(L * q for L, q in zip(dev.levels, dev.sizes, strict=True)) + dev.p
    draws = back_solve(dev, f, rng.standard_normal((total, n_sims)) * sigma)
    beta = draws[total - dev.p :].T + est.beta
    bs = [np.einsum("ij,ljs->sli", T, u) + b[None]
          for T, u, b in zip(f.T, split_u(dev, draws[: total - dev.p]), est.b, strict=True)]
    return sigma, beta, bs


def _cond_var(dev: Deviance, f: _Factor, sigma2: float) -> list[np.ndarray]:
    """Conditional variances of the modes: diagonal blocks of sigma^2 Lambda (L_Z L_Z')^-1 Lambda'.

    As lme4's ranef(condVar = TRUE): conditional on the fixed effects.
    """
    q_rest = dev.q_rest
    L1, p1 = dev.levels[0], dev.sizes[0]
    L11_inv = np.linalg.inv(f.L11)  # (L1, p1, p1)
    first = np.einsum("lji,ljk->lik", L11_inv, L11_inv)  # L11^-T L11^-1 per level
    out = []
    if q_rest:
        L_rr = f.LDD[:q_rest, :q_rest]
        L_r1 = f.LD1[:q_rest]
        # W = -L_rr^-1 L_r1 L11^-1, columns of the first term's part of L_Z^-1 below its block
        L_r1_L11inv = (L_r1 @ sp.block_diag(list(L11_inv), format="csr")).toarray()
        W = solve_triangular(L_rr, L_r1_L11inv, lower=True)
        Wb = W.reshape(q_rest, L1, p1)
        first = first + np.einsum("rli,rlj->lij", Wb, Wb)
        V = solve_triangular(L_rr, np.eye(q_rest), lower=True)
    out.append(first)
    k = 0
    for L, q in zip(dev.levels[1:], dev.sizes[1:], strict=True):
        Vb = V[:, k : k + L * q].reshape(q_rest, L, q)
        out.append(np.einsum("rli,rlj->lij", Vb, Vb))
        k += L * q
    return [sigma2 * np.einsum("ij,ljk,hk->lih", T, c, T) for T, c in zip(f.T, out, strict=True)]


def varcomp_wald(dev: Deviance, varcorr: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Approximate intervals for SDs, correlations and sigma from the curvature of the deviance.

    The deviance (not profiled over sigma) is written in log-SDs, atanh-correlations
    and log-sigma, starting from the fit's ``varcorr()`` table; its numerical Hessian
    H gives covariance 2 H^-1 on that scale, and the intervals are mapped back, so
    they stay in range. lme4's Wald intervals give NA here; profile intervals are
    better with few groups. Boundary (singular) components get NA.
    """
    from scipy.stats import norm

    is_cor = np.array([isinstance(v, str) for v in varcorr["var2"]])
    sdcor = varcorr["sdcor"].to_numpy(dtype=float)
    with np.errstate(divide="ignore"):
        phi = np.where(is_cor, np.arctanh(np.clip(np.nan_to_num(sdcor), -1 + 1e-12, 1 - 1e-12)),
                       np.log(sdcor))

    def full_deviance(x: np.ndarray) -> float:
        # x follows varcorr's rows: per term its SDs, then its correlations; log sigma last.
        k, theta = 0, []
        s2 = np.exp(2 * x[-1])
        for q, (r_, c_) in zip(dev.sizes, dev.tril, strict=True):
            sd = np.exp(x[k : k + q])
            C = np.eye(q)
            k += q
            for a_ in range(q):
                for b_ in range(a_ + 1, q):
                    C[a_, b_] = C[b_, a_] = np.tanh(x[k])
                    k += 1
            theta.append(np.linalg.cholesky(np.outer(sd, sd) * C / s2)[r_, c_])
        return dev.objective(dev.factor(np.concatenate(theta)), sigma2=s2)

    z = norm.ppf(0.5 + level / 2)
    lo = np.full(len(phi), np.nan)
    hi = np.full(len(phi), np.nan)
    if np.all(np.isfinite(phi)):
        try:
            k = len(phi)
            h = 1e-4
            H = np.empty((k, k))
            for i in range(k):
                for j in range(i, k):
                    ei = np.zeros(k)
                    ej = np.zeros(k)
                    ei[i] = h
                    ej[j] = h
                    H[i, j] = H[j, i] = (full_deviance(phi + ei + ej) - full_deviance(phi + ei - ej)
                                         - full_deviance(phi - ei + ej) + full_deviance(phi - ei - ej)) / (4 * h * h)
            se = np.sqrt(np.diag(2 * np.linalg.inv(H)))
            lo, hi = phi - z * se, phi + z * se
        except np.linalg.LinAlgError:
            pass
    back = np.where(is_cor, np.tanh(lo), np.exp(lo)), np.where(is_cor, np.tanh(hi), np.exp(hi))
    out = varcorr[["grp", "var1", "var2"]].copy()
    out["estimate"] = np.nan_to_num(sdcor)
    out["lower"], out["upper"] = back
    return out


def fit_design(design: Design, reml: bool = True, start: np.ndarray | None = None,
               optimizer: str = "bobyqa", deviance: Deviance | None = None) -> LmerFit:
    """Fit a design by REML or ML (lme4's ``optimizeLmer`` and ``mkMerMod``).

    ``deviance`` is the objective when already built (e.g. by
    :meth:`Deviance.with_response` for a refit). Where lme4's convergence
    checks fail, each failure is a :class:`hierbayes.ConvergenceWarning`
    (lme4's words, then what to do) and is recorded in ``fit.opt.messages``.
    """
    from hierbayes.report.lmer import LmerFit

    dev = Deviance(design, reml=reml) if deviance is None else deviance
    opt = optimize_theta(dev, start, optimizer)
    warn_convergence(opt)
    factor = dev.factor(opt.final)
    return LmerFit(design=design, deviance_function=dev, opt=opt, factor=factor,
                   estimates=estimates(dev, factor))
