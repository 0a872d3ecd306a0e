"""The engine's record of a GLMM fit (lme4's ``glmerMod``), which inference and reports read.

:func:`hierbayes.freq.glmer.fit_glmer_design` returns a :class:`GlmerMod`:
the design, the deviance function of the last stage (callable on
``(theta, beta)``), each stage's optimisation record, the PIRLS fit at the
optimum and the estimates. The report (:class:`hierbayes.GlmerFit`, what
``hb.glmer`` returns) is a subclass that adds summaries, accessors and
predictions. This module needs NumPy alone.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.freq.glmer import fit_glmer_design
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)"),
...                  hb.datasets.load("cbpp"), family="binomial")
>>> g = fit_glmer_design(d)
>>> round(g.loglik, 3), g.n_params, g.df_resid
(-92.027, 5, 51)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from hierbayes.freq.laplace import GlmerDeviance
    from hierbayes.freq.optimize import OptSummary
    from hierbayes.freq.pirls import PirlsFit
    from hierbayes.spec.design import Design


@dataclass
class GlmerEstimates:
    """What a GLMM fit reports, computed at the optimum.

    Attributes
    ----------
    beta, vcov_beta
        Fixed effects and their covariance matrix, as lme4's ``vcov``: from the
        finite-difference Hessian of the deviance in ``(theta, beta)`` where
        glmer computes one (``vcov_source == "hessian"``), else
        ``sigma^2 (R_X'R_X)^-1`` from the PIRLS factor (``"RX"``).
    unsc
        ``(R_X'R_X)^-1``, lme4's ``unsc()``: the fixed effects' covariance at
        fixed theta, from the weighted system at the optimum.
    u, b
        Per term, ``(levels, terms)`` spherical random effects and conditional modes.
    cond_var
        Per term, ``(levels, terms, terms)`` conditional covariances of the modes
        (lme4's ``condVar``: ``sigma^2 Lambda (L L')^-1 Lambda'``, at fixed beta).
    eta, mu
        Linear predictor (offsets included) and fitted mean, per row.
    sigma
        lme4's ``sigma()``: 1 for families without a dispersion (binomial,
        Poisson, negative binomial); for the Gamma,
        ``sqrt((Pearson X^2 + ||u||^2) / n)``.
    ldL2, ldRX2, ussq, drsum, wrss
        lme4's ``devcomp$cmp``: ``log|L|^2``, ``log|R_X|^2``, ``||u||^2``, the
        deviance residuals' sum and the Pearson ``X^2``.
    pearson
        Pearson residuals ``sqrt(wt / V(mu)) (y - mu)``.
    """

    beta: np.ndarray
    vcov_beta: np.ndarray
    vcov_source: str
    unsc: np.ndarray
    u: list[np.ndarray]
    b: list[np.ndarray]
    cond_var: list[np.ndarray]
    eta: np.ndarray
    mu: np.ndarray
    sigma: float
    ldL2: float
    ldRX2: float
    ussq: float
    drsum: float
    wrss: float
    pearson: np.ndarray


@dataclass
class NBSearch:
    """glmer.nb's outer search over the negative binomial's shape (lme4's ``optTheta``).

    Attributes
    ----------
    theta_start
        The shape's start: MASS's ``theta.ml`` on the Poisson fit's means.
    interval
        The search interval of ``log(theta)`` (``log(theta_start) +- 3``).
    evaluations
        glmer fits the search made (each a refit at one shape).
    path
        ``(theta, -2 logLik)`` of each.
    """

    theta_start: float
    interval: tuple[float, float]
    evaluations: int
    path: list[tuple[float, float]]


@dataclass
class GlmerMod:
    """The engine's record of a GLMM fit (lme4's ``glmerMod``, without its reports).

    Attributes
    ----------
    design
        The evaluated formula.
    deviance_function
        The last stage's objective (:class:`hierbayes.freq.laplace.GlmerDeviance`),
        callable on ``(theta, beta)`` (on theta alone for an ``nAGQ = 0`` fit).
    opt
        That stage's optimisation record (:class:`hierbayes.freq.optimize.OptSummary`),
        with lme4's convergence check.
    opt_stage1
        The first stage's (theta, with ``beta`` in PIRLS, ``nAGQ = 0``); None
        where the fit had one stage.
    fit
        The PIRLS fit at the optimum (:class:`hierbayes.freq.pirls.PirlsFit`).
    estimates
        Fixed effects, their covariance, the modes and the rest at the optimum.
    nb
        glmer.nb's search over the shape, for a negative binomial fit.
    """

    design: Design
    deviance_function: GlmerDeviance
    opt: OptSummary
    opt_stage1: OptSummary | None
    fit: PirlsFit
    estimates: GlmerEstimates
    nb: NBSearch | None = None

    reml = False

    @property
    def nAGQ(self) -> int:
        """Quadrature nodes: 0 (PIRLS only), 1 (Laplace) or more (adaptive Gauss-Hermite)."""
        return self.deviance_function.nAGQ

    @property
    def family(self):
        """The response family (with its link)."""
        return self.design.family

    @property
    def theta(self) -> np.ndarray:
        """lme4's theta: each term's relative covariance factor, column-wise lower triangle."""
        return self.opt.final[: self.deviance_function.n_theta].copy()

    @property
    def use_scale(self) -> bool:
        """lme4's ``useSc``: a scale (``sigma``) is estimated, for the Gamma only."""
        return self.design.family.name == "gamma"

    @property
    def dispersion(self) -> float | None:
        """The negative binomial's shape (glmer.nb's theta); None for the other families."""
        return self.deviance_function.dispersion

    @property
    def sigma(self) -> float:
        """lme4's ``sigma()``: 1, or the Gamma's ``sqrt((Pearson X^2 + ||u||^2) / n)``."""
        return self.estimates.sigma

    @property
    def objective(self) -> float:
        """glmer's criterion at the optimum: the Laplace (or AGQ) deviance, ``-2 logLik``."""
        return self.opt.f_final

    @property
    def loglik(self) -> float:
        """lme4's ``logLik``: minus half the criterion (for nAGQ > 1 on AGQ's own scale, as lme4's)."""
        return -self.objective / 2

    @property
    def deviance(self) -> float:
        """lme4's ``deviance()`` of a GLMM: the sum of the squared deviance residuals (not -2 logLik)."""
        return self.estimates.drsum

    @property
    def nobs(self) -> int:
        return self.design.n_obs

    @property
    def n_params(self) -> int:
        """Fixed effects, theta, and the Gamma's scale or the negative binomial's shape (lme4's npar)."""
        extra = int(self.design.family.name == "gamma") + int(self.dispersion is not None)
        return self.design.X.shape[1] + len(self.theta) + extra

    @property
    def df_resid(self) -> int:
        """Observations less parameters (lme4's ``df.residual``)."""
        return self.nobs - self.n_params

    @property
    def aic(self) -> float:
        return -2 * self.loglik + 2 * self.n_params

    @property
    def bic(self) -> float:
        return -2 * self.loglik + self.n_params * np.log(self.nobs)

    def is_singular(self, tol: float = 1e-4) -> bool:
        """True when a variance component sits on its boundary (a theta of about zero), as lme4."""
        dev = self.deviance_function
        on_bound = np.isfinite(dev.lower[: dev.n_theta])
        return bool(np.any(self.theta[on_bound] < tol))

    def covariance(self) -> list[np.ndarray]:
        """Each term's covariance matrix of group effects: ``sigma^2 T T'``."""
        return [self.sigma**2 * T @ T.T for T in self.deviance_function.T(self.theta)]

    def covariance_chol(self) -> list[np.ndarray]:
        """Each term's Cholesky factor of :meth:`covariance` (a tiny ridge keeps a singular one defined)."""
        return [np.linalg.cholesky(S + 1e-12 * np.eye(len(S))) for S in self.covariance()]

    def __repr__(self) -> str:
        return (f"<GlmerMod {self.design.formula.formula!r} ({self.design.family}, nAGQ={self.nAGQ}): "
                f"logLik {self.loglik:.4f}, {self.nobs} obs>")
