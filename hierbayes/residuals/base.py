"""The residual model's abstraction: its parameters, and what the two engines ask of it.

For a Gaussian response the errors ``e = y - eta`` have covariance
``sigma^2 Lambda(rho)``: ``sigma`` is the residual SD (the family's dispersion)
and ``Lambda`` a correlation-and-weights matrix with its own parameters
``rho`` (none for iid, where ``Lambda = I``). With ``Lambda = L L'``, both
engines see the model through two operations:

* :meth:`ResidualModel.whiten` (``L^-1 a``, applied to the rows of ``y``,
  ``X`` and ``Z``) and :meth:`ResidualModel.log_det` (``log |Lambda|``). The
  REML deviance is the iid deviance of the whitened rows plus ``log |Lambda|``.
* The Bayesian density of the errors is
  ``-n/2 log(2 pi sigma^2) - log|Lambda| / 2 - |L^-1 e|^2 / (2 sigma^2)``
  (:meth:`ResidualModel.log_density`), built from the same two.

Families without a dispersion (bernoulli, poisson) have the iid model without
a scale: nothing to estimate, no ``Residual`` row.

Examples
--------
>>> import numpy as np
>>> from hierbayes.residuals.iid import IID
>>> round(IID("sigma").log_density(np.array([0.0]), 1.0), 6)
-0.918939
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np


class ResidualModel(ABC):
    """The covariance of the errors given the linear predictor: ``sigma^2 Lambda(rho)``.

    Parameters
    ----------
    scale
        The name of the residual SD (``"sigma"``), or None when the family
        has no dispersion.
    group
        The ``grp`` of the scale's row in ``varcorr`` (lme4's ``"Residual"``).

    Attributes
    ----------
    kind
        The structure's name (``"iid"``).
    """

    kind: ClassVar[str]

    def __init__(self, scale: str | None, group: str = "Residual") -> None:
        self.scale = scale
        self.group = group

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ResidualModel) and type(other) is type(self)
                and other.scale == self.scale and other.group == self.group)

    def __hash__(self) -> int:
        return hash((self.kind, self.scale, self.group))

    @property
    def is_iid(self) -> bool:
        """Whether the errors are independent with one variance (``Lambda = I``).

        The REML deviance and the marginal kernel use their iid fast paths only then.
        """
        return False

    @property
    def has_scale(self) -> bool:
        """Whether there is a residual SD to estimate."""
        return self.scale is not None

    @property
    def correlation_parameters(self) -> tuple[str, ...]:
        """The names of ``rho``, the parameters of ``Lambda`` (none for iid)."""
        return ()

    @property
    def parameters(self) -> tuple[str, ...]:
        """Every parameter of the model: the scale (if any), then ``rho``."""
        return ((self.scale,) if self.scale else ()) + self.correlation_parameters

    def varcorr_rows(self) -> list[tuple[str, str | None, str | None]]:
        """The model's rows of ``as.data.frame(VarCorr(m))``, as ``(grp, var1, var2)``."""
        return [(self.group, None, None)] if self.scale else []

    @abstractmethod
    def whiten(self, rho: np.ndarray, a: np.ndarray) -> np.ndarray:
        """``L^-1 a`` for ``Lambda(rho) = L L'``, on the rows (first axis) of ``a``."""

    def color(self, rho: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``L z``, the inverse of :meth:`whiten`: errors with ``Lambda(rho)`` from iid ones."""
        return z

    @abstractmethod
    def log_det(self, rho: np.ndarray, n: int) -> float:
        """``log |Lambda(rho)|`` for ``n`` rows."""

    def log_density(self, e: np.ndarray, sigma: float,
                    rho: np.ndarray | None = None) -> float:
        """The Gaussian log density of the errors ``e`` (``(n,)``), summed over rows."""
        rho = np.zeros(0) if rho is None else rho
        n = e.shape[0]
        w = self.whiten(rho, e)
        return float(-0.5 * n * np.log(2 * np.pi * sigma**2) - 0.5 * self.log_det(rho, n)
                     - 0.5 * np.sum(w**2) / sigma**2)
