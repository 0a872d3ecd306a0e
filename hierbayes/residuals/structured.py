"""Gaussian errors with a variance function and serial correlation: ``Cov(e) = sigma^2 D C D``.

``D = diag(exp(V gamma))`` is the log-linear SD model
(:class:`~hierbayes.residuals.varfunc.LogLinearSD`, nlme's varIdent or
varExp) and ``C`` the within-group AR(1) or CAR(1) correlation
(:class:`~hierbayes.residuals.serial.SerialCorrelation`); either may be
absent. With ``Lambda = D C D = (D L_C)(D L_C)'``, the whitening is
``L_C^-1 D^-1 a`` and ``log|Lambda| = 2 sum log d_i + log|C|``.

The engines see the parameters ``rho`` as one unconstrained vector: the
``gamma`` (log SD ratios), then ``phi``'s unconstrained value (``atanh`` for
AR(1), the logit for CAR(1)). :meth:`Structured.natural` gives them as nlme
reports them.

Examples
--------
>>> import numpy as np
>>> from hierbayes.residuals.serial import SerialCorrelation
>>> c = SerialCorrelation("ar1", "g", None, codes=np.zeros(3, int), times=np.arange(3.0))
>>> r = Structured("sigma", correlation=c)
>>> r.correlation_parameters, round(r.natural(np.array([np.arctanh(0.5)]))["phi"], 12)
(('phi',), 0.5)
"""

from __future__ import annotations

import numpy as np

from hierbayes.residuals.base import ResidualModel
from hierbayes.residuals.serial import SerialCorrelation
from hierbayes.residuals.varfunc import LogLinearSD


class Structured(ResidualModel):
    """``sigma^2 D(gamma) C(phi) D(gamma)``: a variance function, a serial correlation, or both.

    Parameters
    ----------
    scale
        The residual SD's name (``"sigma"``): the reference stratum's SD.
    variance
        The log-linear SD model, or None (equal variances).
    correlation
        The serial correlation, or None (independent errors).
    """

    kind = "structured"

    def __init__(self, scale: str | None, variance: LogLinearSD | None = None,
                 correlation: SerialCorrelation | None = None, group: str = "Residual") -> None:
        super().__init__(scale, group)
        if variance is None and correlation is None:
            raise ValueError("A structured residual model needs a variance function or a correlation.")
        self.variance = variance
        self.correlation = correlation

    def __repr__(self) -> str:
        parts = [f"sigma={self.variance.formula!r}" if self.variance else "",
                 f"correlation={self.correlation.kind}" if self.correlation else ""]
        return f"Structured({', '.join(p for p in parts if p)})"

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    @property
    def n_gamma(self) -> int:
        return self.variance.n_params if self.variance is not None else 0

    @property
    def n_rho(self) -> int:
        """Length of the unconstrained parameter vector."""
        return self.n_gamma + (1 if self.correlation is not None else 0)

    @property
    def correlation_parameters(self) -> tuple[str, ...]:
        names = tuple(f"sigma_{n}" for n in self.variance.names) if self.variance else ()
        return names + (("phi",) if self.correlation is not None else ())

    @property
    def is_diagonal(self) -> bool:
        """Whether ``Lambda`` is diagonal (no serial correlation): rows stay independent."""
        return self.correlation is None

    def start(self) -> np.ndarray:
        """Where fits start: equal SDs, ``phi`` 0 (AR(1)) or 0.2 (CAR(1), nlme's)."""
        z = [self.correlation.z0] if self.correlation is not None else []
        return np.concatenate([np.zeros(self.n_gamma), z])

    def gamma(self, rho: np.ndarray) -> np.ndarray:
        return np.asarray(rho[: self.n_gamma], dtype=float)

    def phi(self, rho: np.ndarray) -> float | None:
        return None if self.correlation is None else self.correlation.phi(float(rho[self.n_gamma]))

    def sd_ratios(self, rho: np.ndarray) -> np.ndarray | None:
        """``(n,)`` each fitted row's SD over sigma, or None for equal variances."""
        return None if self.variance is None else self.variance.ratios(self.gamma(rho))

    def whiten(self, rho: np.ndarray, a: np.ndarray) -> np.ndarray:
        d = self.sd_ratios(rho)
        if d is not None:
            a = a / (d if a.ndim == 1 else d[:, None])
        if self.correlation is not None:
            a = self.correlation.whiten(self.phi(rho), a)
        return a

    def color(self, rho: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``D L_C z``: errors with correlation-and-weights ``Lambda(rho)`` from independent ones."""
        e = z if self.correlation is None else self.correlation.color(self.phi(rho), z)
        d = self.sd_ratios(rho)
        return e if d is None else e * (d if e.ndim == 1 else d[:, None])

    def matrix(self, rho: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``Lambda(rho)`` restricted to the given rows (the fitted rows' positions)."""
        rows = np.asarray(rows)
        C = (np.eye(len(rows)) if self.correlation is None
             else self.correlation.matrix(self.phi(rho), rows))
        d = self.sd_ratios(rho)
        return C if d is None else d[rows][:, None] * C * d[rows][None, :]

    def log_det(self, rho: np.ndarray, n: int) -> float:
        d = self.sd_ratios(rho)
        out = 2.0 * float(np.sum(np.log(d))) if d is not None else 0.0
        if self.correlation is not None:
            out += self.correlation.log_det(self.phi(rho))
        return out

    @property
    def n(self) -> int:
        """The fitted rows."""
        return len(self.variance.V) if self.variance is not None else len(self.correlation.prev)

    def draw_sd(self, sigma: np.ndarray, gamma: np.ndarray | None,
                V: np.ndarray | None = None) -> np.ndarray:
        """``(S, rows)`` each row's SD under ``S`` draws of ``sigma`` ``(S,)`` and ``gamma`` ``(S, k)``.

        The fitted rows', or those whose sigma-formula columns are ``V``.
        """
        sigma = np.asarray(sigma, dtype=float)[:, None]
        rows = self.n if V is None else len(V)
        if self.variance is None or gamma is None:
            return np.repeat(sigma, rows, axis=1)
        V = self.variance.V if V is None else V
        return sigma * np.exp(np.asarray(gamma, dtype=float) @ V.T)

    def loo_loglik(self, e: np.ndarray, sigma: np.ndarray, gamma: np.ndarray | None,
                   phi: np.ndarray | None) -> np.ndarray:
        """``(S, n)`` each row's log density given every other row of the data, per draw.

        The errors are not independent, so the pointwise log-likelihood that
        PSIS-LOO needs is ``log p(y_i | y_-i)`` (Buerkner, Gabry and Vehtari
        2021, as brms's for non-factorised normal models): with
        ``P = Cov(e)^-1`` and ``g = P e``, ``y_i | y_-i ~ N(y_i - g_i / P_ii, 1 / P_ii)``.
        Here ``P = W'W``, ``W`` the bidiagonal whitening over ``sd``, so ``P_ii``
        and ``g_i`` need only row ``i`` and the row after it in its series.
        Without correlation these are the rows' own normal densities.
        """
        sd = self.draw_sd(sigma, gamma)
        a = e / sd
        if self.correlation is None or phi is None:
            return -0.5 * np.log(2 * np.pi) - np.log(sd) - 0.5 * a**2
        c = self.correlation
        r = c.r(np.asarray(phi, dtype=float))
        s = np.sqrt(1.0 - r**2)
        u = (a - r * a[:, c.prev]) / s  # a first row has r = 0 and reads a row it ignores
        nxt = c.next
        has_next = nxt >= 0
        j = np.where(has_next, nxt, 0)
        w_ii = 1.0 / (s * sd)
        w_ji = np.where(has_next, -r[:, j] / (s[:, j] * sd), 0.0)
        p_ii = w_ii**2 + w_ji**2
        g = w_ii * u + w_ji * np.where(has_next, u[:, j], 0.0)
        return -0.5 * np.log(2 * np.pi) + 0.5 * np.log(p_ii) - 0.5 * g**2 / p_ii

    def draw_errors(self, rng: np.random.Generator, sigma: np.ndarray, gamma: np.ndarray | None,
                    phi: np.ndarray | None) -> np.ndarray:
        """``(S, n)`` new errors of the fitted rows, one draw per ``(sigma, gamma, phi)`` draw."""
        sd = self.draw_sd(sigma, gamma)
        z = rng.standard_normal(sd.shape)
        if self.correlation is not None and phi is not None:
            z = self.correlation.color_draws(np.asarray(phi, dtype=float), z)
        return sd * z

    def natural(self, rho: np.ndarray) -> dict[str, float]:
        """The parameters as nlme reports them.

        varIdent: each level's SD ratio keyed by level (the reference's 1
        included); another sigma formula: its log-linear coefficients keyed
        by column name; then ``phi``.
        """
        out: dict[str, float] = {}
        if self.variance is not None:
            g = self.gamma(rho)
            if self.variance.is_varident:
                out.update(self.variance.level_ratios(g))
            else:
                out.update({n: float(v) for n, v in zip(self.variance.names, g, strict=True)})
        if self.correlation is not None:
            out["phi"] = self.phi(rho)
        return out
