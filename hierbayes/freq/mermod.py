"""The engine's record of a REML or ML fit (lme4's ``merMod``), which inference and reports read.

:func:`hierbayes.freq.fit.fit_design` returns a :class:`MerMod`; the engine's
inference (:mod:`hierbayes.freq.ddf`, :mod:`hierbayes.freq.confint`,
:mod:`hierbayes.freq.sim`) works on it, and the report
(:class:`hierbayes.LmerFit`, what ``hb.lmer`` returns) is a subclass that adds
summaries, accessors, predictions and plots. This module needs NumPy alone,
so that ``import hierbayes`` does not load SciPy.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.freq.fit import fit_design
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"), hb.datasets.load("sleepstudy"))
>>> mer = fit_design(d)
>>> isinstance(mer, MerMod), [S.shape for S in mer.covariance()]
(True, [(2, 2)])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from hierbayes.freq.deviance import Deviance
    from hierbayes.freq.estimates import Estimates
    from hierbayes.freq.optimize import OptSummary
    from hierbayes.linalg.blocked import BlockedFactor
    from hierbayes.spec.design import Design


@dataclass
class MerMod:
    """The engine's record of a REML or ML fit (lme4's ``merMod``, without its reports).

    Attributes
    ----------
    design
        The evaluated formula.
    deviance_function
        The objective (:class:`hierbayes.freq.deviance.Deviance`), callable on theta.
    opt
        The optimisation record (:class:`hierbayes.freq.optimize.OptSummary`), with
        lme4's convergence check: ``opt.max_grad``, ``opt.gradient``,
        ``opt.hessian``, ``opt.messages`` and ``opt.converged``.
    factor
        The blocked Cholesky factor at the optimum.
    estimates
        Fixed effects, sigma and conditional modes at the optimum.

    Examples
    --------
    >>> import hierbayes as hb
    >>> from hierbayes.spec.design import build_design
    >>> from hierbayes.spec.formula import parse_formula
    >>> d = build_design(parse_formula("Reaction ~ Days + (1 | Subject)"), hb.datasets.load("sleepstudy"))
    >>> from hierbayes.freq.fit import fit_design
    >>> mer = fit_design(d, reml=False)
    >>> mer.reml, mer.nobs, round(mer.loglik, 2), mer.is_singular()
    (False, 180, -897.04, False)
    """

    design: Design
    deviance_function: Deviance
    opt: OptSummary
    factor: BlockedFactor
    estimates: Estimates

    @property
    def reml(self) -> bool:
        """True for a REML fit, False for ML."""
        return self.deviance_function.reml

    @property
    def theta(self) -> np.ndarray:
        """lme4's theta: each term's relative covariance factor, column-wise lower triangle."""
        return self.opt.final.copy()

    @property
    def sigma(self) -> float:
        """Residual standard deviation."""
        return self.estimates.sigma

    @property
    def deviance(self) -> float:
        """The criterion at convergence: REML criterion (REML fits) or -2 log-likelihood (ML)."""
        return self.opt.f_final

    @property
    def nobs(self) -> int:
        return self.design.n_obs

    @property
    def n_params(self) -> int:
        """Fixed effects, theta and sigma: the parameter count in AIC and BIC."""
        return self.design.X.shape[1] + len(self.theta) + 1

    @property
    def loglik(self) -> float:
        """Log-likelihood (the REML log-likelihood for a REML fit, as lme4's logLik)."""
        return -self.deviance / 2

    @property
    def aic(self) -> float:
        return self.deviance + 2 * self.n_params

    @property
    def bic(self) -> float:
        return self.deviance + self.n_params * np.log(self.nobs)

    def is_singular(self, tol: float = 1e-4) -> bool:
        """True when a variance component sits on its boundary (a theta of about zero), as lme4."""
        on_bound = np.isfinite(self.deviance_function.lower)
        return bool(np.any(self.theta[on_bound] < tol))

    def covariance(self) -> list[np.ndarray]:
        """Each term's covariance matrix of group effects: sigma^2 T T'."""
        return [self.sigma**2 * T @ T.T for T in self.deviance_function.T(self.theta)]

    def covariance_chol(self) -> list[np.ndarray]:
        """Each term's Cholesky factor of :meth:`covariance`, for drawing new group effects.

        A tiny ridge keeps it defined when a term is singular (an SD or correlation on its bound).
        """
        return [np.linalg.cholesky(S + 1e-12 * np.eye(len(S))) for S in self.covariance()]

    def __repr__(self) -> str:
        kind = "REML criterion" if self.reml else "deviance"
        return f"<MerMod {self.design.formula.formula!r}: {kind} {self.deviance:.4f}, {self.nobs} obs>"
