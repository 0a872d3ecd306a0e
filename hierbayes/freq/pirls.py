"""PIRLS: a GLMM's conditional modes at given theta (and its fixed effects with them), as lme4's ``pwrssUpdate``.

Penalised iteratively reweighted least squares (Bates et al. 2015, and lme4's
``src/external.cpp``) finds the spherical random effects ``u`` (and, in
glmer's first stage, the fixed effects ``beta`` too) that minimise the
penalised deviance ``sum(dev.resids(y, mu, wt)) + ||u||^2``, where
``mu = g^-1(offset + X beta + Z Lambda u)``. Each iteration is one weighted
least-squares problem: with the working weights
``sqrt(W) = mu.eta(eta) sqrt(wt / V(mu))`` and the working response
``z = eta - offset + (y - mu) / mu.eta(eta)``, the system of
``[Z X z]'W[Z X z]`` is factored by the same blocked Cholesky as the REML
engine's (:class:`hierbayes.linalg.blocked.BlockedCholesky`, on
:class:`hierbayes.linalg.crossprod.Reweighter`'s products: MixedModels.jl's
layout), and its last row solved back gives the new ``u`` (and ``beta``).

lme4's rules are kept: the iteration stops when the penalised deviance
changes by less than ``tol`` (1e-7, glmerControl's ``tolPwrss``) relative; a
step that raises it (or gives NaN) is halved, up to 20 times, toward the
previous iterate; and 100 iterations without convergence is an error. The
binomial's trials are glm's prior weights (:meth:`GlmResponse.from_design`),
and the offsets enter ``eta``.

Examples
--------
>>> import numpy as np
>>> import hierbayes as hb
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)"),
...                  hb.datasets.load("cbpp"), family="binomial")
>>> pirls = Pirls(d, GlmResponse.from_design(d))
>>> fit = pirls.run([np.array([[0.64]])], pirls.start_eta())
>>> fit.beta.round(2).tolist(), fit.converged
([-1.36, -0.98, -1.11, -1.56], True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hierbayes.errors import HierbayesError
from hierbayes.families import Family
from hierbayes.freq.estimates import back_solve, split_u
from hierbayes.linalg.blocked import BlockedCholesky, BlockedFactor
from hierbayes.linalg.crossprod import Reweighter
from hierbayes.linalg.linpred import linear_predictor
from hierbayes.spec.design import Design

#: lme4's glmerControl(): tolPwrss, and mkGlmerDevfun's maxit; pwrssUpdate's maxstephalfit.
TOL = 1e-7
MAXIT = 100
MAX_HALVINGS = 20
#: The information PIRLS weights by: glmer's (Fisher's) or the Hessian's (TMB's).
INFORMATION = ("expected", "observed")


class PirlsError(HierbayesError, ArithmeticError):
    """PIRLS failed: a NaN deviance, step-halvings that did not help, or no convergence (lme4's words)."""


@dataclass(frozen=True)
class GlmResponse:
    """The response as R's glm sees it, with the family functions PIRLS and the Laplace criterion use.

    Attributes
    ----------
    family
        The response family (its link gives ``mu`` from ``eta``).
    y
        glm's response: for a binomial family the proportion of successes.
    wt
        Prior weights: for a binomial family the trials.
    offset
        The known part of ``eta`` (zeros when the model has none).
    dispersion
        The negative binomial's shape (glmer.nb's theta); None for the others.
    information
        ``"expected"`` (glmer's: PIRLS's weights, and so the Laplace
        approximation's, are the Fisher information) or ``"observed"`` (the
        Hessian of the log-likelihood in ``eta``, as TMB's Laplace
        approximation and glmmTMB: PIRLS becomes Newton's method). The two
        differ for non-canonical links only; ``"observed"`` is implemented for
        the negative binomial.
    """

    family: Family
    y: np.ndarray
    wt: np.ndarray
    offset: np.ndarray
    dispersion: float | None = None
    information: str = "expected"

    def __post_init__(self) -> None:
        if self.information not in INFORMATION:
            raise ValueError(f"information must be one of {INFORMATION}, not {self.information!r}.")
        if self.information == "observed" and not (self.family.canonical or self.family.name == "negbinomial"):
            raise ValueError(f"the observed information is implemented for the negative binomial (and "
                             f"canonical links, where it is the expected one), not for {self.family}.")

    @classmethod
    def from_design(cls, design: Design, dispersion: float | None = None,
                    information: str = "expected") -> GlmResponse:
        """glm's ``y`` and prior weights of a design, its offset, and the dispersion (NB's theta).

        Examples
        --------
        >>> import hierbayes as hb
        >>> from hierbayes.spec.design import build_design
        >>> from hierbayes.spec.formula import parse_formula
        >>> d = build_design(parse_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)"),
        ...                  hb.datasets.load("cbpp"), family="binomial")
        >>> r = GlmResponse.from_design(d)
        >>> float(r.y[0]), float(r.wt[0])    # 2 of 14
        (0.14285714285714285, 14.0)
        """
        fam = design.family
        if fam.name == "negbinomial" and dispersion is None:
            raise ValueError("the negative binomial needs its shape (glmer.nb's theta) given.")
        y, wt = fam.glm_response(design.y, design.trials, design.weights)
        offset = np.zeros(design.n_obs) if design.offset is None else np.asarray(design.offset, float)
        return cls(fam, y, wt, offset, None if dispersion is None else float(dispersion), information)

    def with_dispersion(self, dispersion: float) -> GlmResponse:
        """The same response under another negative binomial shape."""
        return GlmResponse(self.family, self.y, self.wt, self.offset, float(dispersion), self.information)

    def newton_weights(self, eta: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(-d^2 l / d eta^2, d l / d eta)`` per row: the observed information and the score in ``eta``.

        For the negative binomial with shape ``k`` and the log link,
        ``wt k mu (k + y) / (k + mu)^2`` and ``wt k (y - mu) / (k + mu)``; for a
        canonical link the information is the expected one.
        """
        if self.family.name == "negbinomial":
            k = float(self.dispersion)  # type: ignore[arg-type]
            return (self.wt * k * mu * (k + self.y) / (k + mu) ** 2,
                    self.wt * k * (self.y - mu) / (k + mu))
        mu_eta = self.family.link.mu_eta(eta)
        w = self.wt * mu_eta**2 / self.family.variance(mu, self.dispersion)
        return w, w * (self.y - mu) / mu_eta

    def mu(self, eta: np.ndarray) -> np.ndarray:
        """The mean, ``g^-1(eta)`` (clamped as R's links clamp)."""
        return self.family.link.linkinv(eta)

    def dev_resid(self, mu: np.ndarray) -> np.ndarray:
        """Each row's deviance residual (R's ``dev.resids``)."""
        return self.family.deviance_residuals(self.y, mu, self.wt, self.dispersion)

    def aic(self, mu: np.ndarray) -> float:
        """R's ``family$aic`` at ``mu`` (as lme4's glmResp::aic, with the deviance at ``mu``)."""
        dev = float(self.dev_resid(mu).sum())
        return self.family.aic(self.y, mu, self.wt, dev, self.dispersion)

    def sqrt_working_weights(self, eta: np.ndarray, mu: np.ndarray,
                             mu_eta: np.ndarray | None = None) -> np.ndarray:
        """``mu.eta(eta) sqrt(wt / V(mu))``, lme4's ``sqrtWrkWt`` (``mu_eta`` when already known)."""
        mu_eta = self.family.link.mu_eta(eta) if mu_eta is None else mu_eta
        return mu_eta * np.sqrt(self.wt / self.family.variance(mu, self.dispersion))

    def pearson(self, mu: np.ndarray) -> np.ndarray:
        """Pearson residuals ``sqrt(wt / V(mu)) (y - mu)`` (lme4's ``wtres`` after ``updateWts``)."""
        return np.sqrt(self.wt / self.family.variance(mu, self.dispersion)) * (self.y - mu)

    def start_mu(self) -> np.ndarray:
        """R's ``family$initialize``: the mean glm and glmer start from."""
        return self.family.mu_start(self.y, self.wt)


@dataclass
class PirlsFit:
    """Where PIRLS stopped.

    Attributes
    ----------
    u
        Stacked spherical random effects, first term level-major, then the others.
    beta
        Fixed effects (the given ones when only ``u`` was fitted).
    eta, mu
        Linear predictor (offsets included) and mean at ``(u, beta)``.
    pdev
        Penalised deviance: deviance residuals' sum plus ``||u||^2``.
    factor
        The blocked factor of the last iteration's weighted system (at the
        weights of the iterate before, as lme4's ``L``): its ``ld_z`` is lme4's
        ``ldL2``.
    sqrt_w, z
        The working weights and the working response that factor was computed at.
    iterations, converged
        Iterations run, and whether the relative change fell below ``tol``.
    """

    u: np.ndarray
    beta: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    pdev: float
    factor: BlockedFactor
    sqrt_w: np.ndarray
    z: np.ndarray
    iterations: int
    converged: bool


class Pirls:
    """PIRLS on a design: the weighted systems of lme4's ``pwrssUpdate``, factored blockwise.

    Parameters
    ----------
    design
        A design with at least one random-effect term.
    response
        Its response as glm sees it (:meth:`GlmResponse.from_design`).

    Attributes
    ----------
    joint, modes
        The weighted cross-products of ``[Z X z]`` (for ``u`` and ``beta``
        together) and of ``[Z z]`` (``u`` alone, ``X beta`` in the offset).
    """

    def __init__(self, design: Design, response: GlmResponse) -> None:
        if not design.blocks:
            raise ValueError("PIRLS needs at least one random-effect term.")
        self.design = design
        self.response = response
        self.X = design.X
        self.joint = Reweighter(design.blocks, design.X)
        self.modes = Reweighter(design.blocks, design.X[:, :0])
        self.q = sum(b.n_terms * b.n_levels for b in design.blocks)

    def with_response(self, response: GlmResponse) -> Pirls:
        """The same systems for another response (NB's theta, a simulated ``y``), structure reused."""
        new = object.__new__(Pirls)
        new.__dict__.update(self.__dict__)
        new.response = response
        return new

    def start_eta(self) -> np.ndarray:
        """``eta`` at R's starting mean (``linkfun(mustart)``), where glmer's first PIRLS begins."""
        return self.response.family.link.linkfun(self.response.start_mu())

    def z_lambda_u(self, T: list[np.ndarray], u: np.ndarray) -> np.ndarray:
        """``Z Lambda u``: the group effects' part of ``eta``."""
        us = split_u(self.joint, u)
        effects = [(blk.Z, blk.index, ug @ Tg.T)
                   for blk, ug, Tg in zip(self.design.blocks, us, T, strict=True)]
        return linear_predictor(self.X[:, :0], np.zeros(0), effects)

    def solve(self, T: list[np.ndarray], eta: np.ndarray, mu: np.ndarray, offset: np.ndarray,
              joint: bool) -> tuple[np.ndarray, np.ndarray, BlockedFactor, np.ndarray, np.ndarray]:
        """One weighted least-squares step: ``(u, beta, factor, sqrt_w, z)`` from the weights at ``eta``.

        ``beta`` is empty unless ``joint``; ``offset`` is what ``eta`` holds besides
        ``Z Lambda u`` (and ``X beta`` when ``joint``).
        """
        resp = self.response
        if resp.information == "observed":
            # Newton's method: the Hessian's weights and the score's working response
            w, score = resp.newton_weights(eta, mu)
            sw = np.sqrt(w)
            z = eta - offset + score / w
        else:
            mu_eta = resp.family.link.mu_eta(eta)
            sw = resp.sqrt_working_weights(eta, mu, mu_eta)
            z = eta - offset + (resp.y - mu) / mu_eta
        system = self.joint if joint else self.modes
        f = BlockedCholesky(system.products(sw * sw, z)).factor(T)
        # the response's row of the factor, solved back, is the weighted least-squares solution
        l_y = np.concatenate([f.ld1_row(-1), f.LDD[-1, :-1]])
        sol = back_solve(system, f, l_y[:, None])[:, 0]
        return sol[: self.q], sol[self.q :], f, sw, z

    def run(self, T: list[np.ndarray], eta0: np.ndarray, beta: np.ndarray | None = None,
            tol: float = TOL, maxit: int = MAXIT) -> PirlsFit:
        """PIRLS from ``eta0``: ``u`` alone with ``beta`` fixed, or ``u`` and ``beta`` when it is None.

        Parameters
        ----------
        T
            Per term, the relative covariance factor (lower triangular).
        eta0
            The linear predictor to start from (offsets included): glmer starts
            every evaluation from one fixed ``eta`` (its ``lp0``).
        beta
            Fixed effects held fixed (glmer's second stage), or None to fit them
            too (its first stage, ``nAGQ = 0``).
        tol, maxit
            lme4's ``tolPwrss`` and ``maxit``.

        Raises
        ------
        PirlsError
            lme4's failures: a NaN deviance, step-halvings that failed to reduce
            it, or no convergence in ``maxit`` iterations.
        """
        resp = self.response
        joint = beta is None
        offset = resp.offset if joint else resp.offset + self.X @ beta
        eta = np.asarray(eta0, dtype=float)
        mu = resp.mu(eta)
        old_pdev = np.finfo(float).max
        u_old = np.zeros(self.q)
        b_old = np.zeros(self.X.shape[1]) if joint else beta
        converged = False
        iterations = 0
        while iterations < maxit:
            iterations += 1
            u, b, f, sw, z = self.solve(T, eta, mu, offset, joint)
            if not joint:
                b = beta

            def at(u: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
                eta = offset + self.z_lambda_u(T, u) + (self.X @ b if joint else 0.0)
                mu = resp.mu(eta)
                return eta, mu, float(resp.dev_resid(mu).sum() + u @ u)

            eta, mu, pdev = at(u, b)
            if abs((old_pdev - pdev) / pdev) < tol:
                converged = True
                break
            if np.isnan(pdev) or pdev > old_pdev:
                for _ in range(MAX_HALVINGS):
                    if not (np.isnan(pdev) or pdev > old_pdev):
                        break
                    u = (u_old + u) / 2
                    if joint:
                        b = (b_old + b) / 2
                    eta, mu, pdev = at(u, b)
                if np.isnan(pdev):
                    raise PirlsError("PIRLS loop resulted in NaN value")
                if pdev - old_pdev > tol:
                    raise PirlsError("(maxstephalfit) PIRLS step-halvings failed to reduce deviance "
                                     "in pwrssUpdate")
            old_pdev, u_old, b_old = pdev, u, b
        if not converged:
            raise PirlsError(f"pwrssUpdate did not converge in ({maxit}) iterations")
        return PirlsFit(u=u, beta=np.asarray(b, dtype=float), eta=eta, mu=mu, pdev=pdev, factor=f,
                        sqrt_w=sw, z=z, iterations=iterations, converged=converged)
