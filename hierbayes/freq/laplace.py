"""A GLMM's deviance by the Laplace approximation or adaptive Gauss-Hermite quadrature (lme4's ``mkGlmerDevfun``).

:class:`GlmerDeviance` is glmer's objective, callable as lme4's deviance
function is:

* ``nAGQ = 0`` (glmer's first stage): a function of theta; PIRLS fits ``u``
  and ``beta`` together (:meth:`hierbayes.freq.pirls.Pirls.run` with
  ``beta=None``) and the value is the Laplace formula below at that point.
* ``nAGQ = 1``: a function of ``(theta, beta)``; PIRLS fits ``u`` alone, and
  the value is lme4's ``glmResp::Laplace``,
  ``log|L|^2 + ||u||^2 + aic(y, mu)``, with ``aic`` R's ``family$aic``
  (-2 log-likelihood, with glm's per-family extra terms; Gamma's plugs in
  the dispersion ``dev / sum(wt)``).
* ``nAGQ > 1``: adaptive Gauss-Hermite quadrature with ``nAGQ`` nodes, for a
  single scalar random-effect term only (as lme4's ``glmerAGQ``): per level,
  ``u^2 + sum(dev.resids)`` at the mode, and at each node ``u + z sd`` with
  ``sd = 1 / L_ll``; the value is
  ``sum(devc0) + log|L|^2 - 2 sum(log(mult))``. Its scale differs from the
  Laplace one (deviance residuals rather than ``aic``), as lme4's does.

Every evaluation starts PIRLS from the same linear predictor (lme4's
``lp0``), so the deviance is a function of its argument alone. PIRLS stops
at lme4's relative tolerance, which leaves ``u`` accurate to about
``sqrt(tol)``; the deviance then depends on the start at the 1e-6 level,
and the start is glmer's: the first PIRLS's ``eta`` at theta = 1 from R's
starting mean, then (:meth:`GlmerDeviance.at_stage`) the first stage's
optimum.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)"),
...                  hb.datasets.load("cbpp"), family="binomial")
>>> dev = GlmerDeviance(d, nAGQ=0)
>>> round(dev([0.64]), 6)        # glmer's nAGQ = 0 deviance function there: 184.108799
184.108799
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hierbayes.errors import DataError
from hierbayes.freq.deviance import tril_index
from hierbayes.freq.pirls import MAXIT, TOL, GlmResponse, Pirls, PirlsError, PirlsFit
from hierbayes.spec.design import Design

#: lme4's limits on nAGQ (its GHrule has rules of order 1 to 100).
MAX_AGQ = 100


def gh_rule(order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """lme4's ``GHrule``: Gauss-Hermite nodes ``z`` and weights ``w`` for the standard normal density.

    Nodes and weights are symmetrised as lme4 symmetrises them (the mean of the
    rule and its mirror image); the third array is ``dnorm(z, log = TRUE)``.

    Examples
    --------
    >>> z, w, ld = gh_rule(3)
    >>> z.round(6).tolist(), w.round(6).tolist()
    ([-1.732051, 0.0, 1.732051], [0.166667, 0.666667, 0.166667])
    """
    if not 1 <= order <= MAX_AGQ:
        raise ValueError(f"the Gauss-Hermite rule's order must be 1 to {MAX_AGQ}, not {order}.")
    x, w = np.polynomial.hermite.hermgauss(order)
    z = x * np.sqrt(2.0)
    w = w / w.sum()
    z = (z - z[::-1]) / 2
    w = (w + w[::-1]) / 2
    return z, w, -0.5 * z**2 - 0.5 * np.log(2 * np.pi)


@dataclass
class Evaluation:
    """One evaluation of the deviance: the value and where PIRLS stopped."""

    value: float
    fit: PirlsFit


class GlmerDeviance:
    """glmer's objective (the Laplace or AGQ deviance) as a function of theta, or of ``(theta, beta)``.

    Parameters
    ----------
    design
        A design of a non-Gaussian family with at least one random-effect term.
    nAGQ
        0 (a function of theta, ``beta`` fitted by PIRLS), 1 (Laplace) or more
        (adaptive Gauss-Hermite quadrature, one scalar random-effect term only).
    dispersion
        The negative binomial's shape (glmer.nb's theta); None otherwise.
    lp0
        The linear predictor (offsets excluded) every PIRLS starts from; by
        default glmer's: the PIRLS of ``u`` and ``beta`` at theta = 1 from R's
        starting mean.
    tol, maxit
        PIRLS's relative tolerance and iteration limit (lme4's ``tolPwrss``
        and ``maxit``).
    pirls
        The PIRLS systems, when already built (shared between stages).
    information
        ``"expected"`` (glmer's) or ``"observed"`` (TMB's Laplace; see
        :class:`hierbayes.freq.pirls.GlmResponse`).

    Attributes
    ----------
    n_theta, theta0, tril, sizes, levels
        As :class:`hierbayes.freq.deviance.Deviance`'s.
    n_par, lower
        Length of the argument (``n_theta``, plus the fixed effects when
        ``nAGQ > 0``) and its lower bounds (0 on theta's diagonals).
    pirls
        The PIRLS systems (:class:`hierbayes.freq.pirls.Pirls`).
    evaluations
        How many times the deviance was evaluated.
    last
        The last evaluation (lme4's ``pp`` and ``resp`` hold its state).

    Examples
    --------
    >>> import hierbayes as hb
    >>> from hierbayes.spec.design import build_design
    >>> from hierbayes.spec.formula import parse_formula
    >>> d = build_design(parse_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)"),
    ...                  hb.datasets.load("cbpp"), family="binomial")
    >>> dev = GlmerDeviance(d, nAGQ=0)
    >>> stage2 = dev.at_stage(1, dev.evaluate([0.64]).fit)
    >>> stage2.n_par, round(stage2([0.64, -1.4, -1.0, -1.1, -1.6]), 4)
    (5, 184.0673)
    """

    def __init__(self, design: Design, nAGQ: int = 1, dispersion: float | None = None,
                 lp0: np.ndarray | None = None, tol: float = TOL, maxit: int = MAXIT,
                 pirls: Pirls | None = None, information: str = "expected") -> None:
        check_glmm(design, nAGQ)
        self.design = design
        self.nAGQ = int(nAGQ)
        self.tol, self.maxit = float(tol), int(maxit)
        self.pirls = (Pirls(design, GlmResponse.from_design(design, dispersion, information))
                      if pirls is None else pirls)
        self.response = self.pirls.response
        self.n = design.n_obs
        self.p = design.X.shape[1]
        self.sizes = [b.n_terms for b in design.blocks]
        self.term_sizes = self.sizes  # theta's terms are the factor's blocks (no amalgamation)
        self.levels = [b.n_levels for b in design.blocks]
        self.tril = [tril_index(q) for q in self.sizes]
        self.n_theta = sum(q * (q + 1) // 2 for q in self.sizes)
        self.theta0 = np.concatenate([(r == c).astype(float) for r, c in self.tril])
        theta_lower = np.concatenate([np.where(r == c, 0.0, -np.inf) for r, c in self.tril])
        self.n_par = self.n_theta + (self.p if self.nAGQ > 0 else 0)
        self.lower = np.concatenate([theta_lower, np.full(self.n_par - self.n_theta, -np.inf)])
        self.evaluations = 0
        self.last: Evaluation | None = None
        if lp0 is None:
            # mkGlmerDevfun: one PIRLS of u and beta at the starting theta, from R's starting mean
            first = self.pirls.run(self.T(self.theta0), self.pirls.start_eta(), None, self.tol, self.maxit)
            lp0 = first.eta - self.response.offset
        self.lp0 = np.asarray(lp0, dtype=float)
        self.quadrature = gh_rule(self.nAGQ) if self.nAGQ > 1 else None

    @property
    def dense(self) -> bool:
        """Whether the weighted systems are factored with dense arrays (a small problem)."""
        return self.pirls.joint.dense

    @property
    def dispersion(self) -> float | None:
        """The negative binomial's shape, or None."""
        return self.response.dispersion

    def at_stage(self, nAGQ: int, start: PirlsFit) -> GlmerDeviance:
        """glmer's second-stage objective (lme4's ``updateGlmerDevfun``), starting at ``start``'s eta.

        ``start`` is where the first stage ended (its last evaluation, at its
        optimum), whose linear predictor becomes every PIRLS's start.
        """
        return GlmerDeviance(self.design, nAGQ, lp0=start.eta - self.response.offset, tol=self.tol,
                             maxit=self.maxit, pirls=self.pirls)

    def with_response(self, response: GlmResponse, lp0: np.ndarray) -> GlmerDeviance:
        """The same objective for another response (a new NB shape, a simulated ``y``), from ``lp0``."""
        new = GlmerDeviance.__new__(GlmerDeviance)
        new.__dict__.update(self.__dict__)
        new.pirls = self.pirls.with_response(response)
        new.response = response
        new.lp0 = np.asarray(lp0, dtype=float)
        new.evaluations = 0
        new.last = None
        return new

    def T(self, theta: np.ndarray) -> list[np.ndarray]:
        """The relative covariance factors (lower triangular, one per term) of theta."""
        out, k = [], 0
        for q, (r, c) in zip(self.sizes, self.tril, strict=True):
            T = np.zeros((q, q))
            T[r, c] = theta[k : k + len(r)]
            out.append(T)
            k += len(r)
        return out

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(theta, beta)`` of an argument; ``beta`` is None at ``nAGQ = 0``."""
        x = np.asarray(x, dtype=float)
        if x.shape != (self.n_par,):
            raise ValueError(f"the deviance takes {self.n_par} parameters, not {x.shape}.")
        return x[: self.n_theta], (x[self.n_theta :] if self.nAGQ > 0 else None)

    def evaluate(self, x: np.ndarray) -> Evaluation:
        """The deviance at ``x`` with the PIRLS fit behind it.

        Raises
        ------
        hierbayes.freq.pirls.PirlsError
            Where PIRLS fails (lme4's deviance function stops with the same words).
        """
        theta, beta = self.split(x)
        self.evaluations += 1
        T = self.T(theta)
        fit = self.pirls.run(T, self.response.offset + self.lp0, beta, self.tol, self.maxit)
        if self.nAGQ <= 1:
            value = fit.factor.ld_z + float(fit.u @ fit.u) + self.response.aic(fit.mu)
        else:
            value = self._agq(T, fit)
        self.last = Evaluation(float(value), fit)
        return self.last

    def _agq(self, T: list[np.ndarray], fit: PirlsFit) -> float:
        """lme4's ``glmerAGQ`` at a PIRLS fit of ``u`` (a single scalar term)."""
        resp, blk = self.response, self.design.blocks[0]
        z_nodes, w_nodes, ldnorm = self.quadrature
        L = blk.n_levels

        def per_level(u: np.ndarray, mu: np.ndarray) -> np.ndarray:
            return u**2 + np.bincount(blk.index, weights=resp.dev_resid(mu), minlength=L)

        devc0 = per_level(fit.u, fit.mu)
        sd = 1.0 / fit.factor.L11[:, 0, 0]
        base = fit.eta - self.pirls.z_lambda_u(T, fit.u)
        mult = np.zeros(L)
        for z, w, ld in zip(z_nodes, w_nodes, ldnorm, strict=True):
            if z == 0:
                mult += w
                continue
            u = fit.u + z * sd
            mu = resp.mu(base + self.pirls.z_lambda_u(T, u))
            mult += np.exp(-0.5 * (per_level(u, mu) - devc0) - ld) * w / np.sqrt(2 * np.pi)
        # lme4 takes log(prod(mult)); the sum of logs is the same and cannot under- or overflow
        return float(devc0.sum() + fit.factor.ld_z - 2 * np.log(mult).sum())

    def __call__(self, x: np.ndarray) -> float:
        try:
            return self.evaluate(x).value
        except (PirlsError, np.linalg.LinAlgError):
            return np.inf


def check_glmm(design: Design, nAGQ: int) -> None:
    """Refuse what glmer refuses: a Gaussian family, no random effects, nAGQ out of range or > 1 on
    anything but one scalar random-effect term."""
    if design.family.name == "gaussian":
        raise DataError("A gaussian model with the identity link is a linear mixed model: fit it "
                        "with hb.lmer (glmer redirects it to lmer).")
    if not design.blocks:
        raise DataError("The formula has no random-effect term; a GLM without one needs no glmer.")
    if isinstance(nAGQ, bool) or not isinstance(nAGQ, (int, np.integer)) or not 0 <= nAGQ <= MAX_AGQ:
        raise DataError(f"nAGQ must be a whole number from 0 to {MAX_AGQ}, not {nAGQ!r}.")
    if nAGQ > 1 and (len(design.blocks) != 1 or design.blocks[0].n_terms != 1):
        raise DataError("nAGQ > 1 is only available for models with a single, scalar random-effects "
                        "term (lme4's rule): use nAGQ=1 (Laplace) for this model.")
