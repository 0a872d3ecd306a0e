"""Independent errors with one variance: ``Cov(e) = sigma^2 I``.

Examples
--------
>>> import numpy as np
>>> r = IID("sigma")
>>> r.parameters, r.log_det(np.zeros(0), 5), r.whiten(np.zeros(0), np.ones(2))
(('sigma',), 0.0, array([1., 1.]))
"""

from __future__ import annotations

import numpy as np

from hierbayes.residuals.base import ResidualModel


class IID(ResidualModel):
    """``Lambda = I``: no parameters beyond the scale, nothing to whiten.

    ``IID(None)`` is the residual model of a family without dispersion
    (bernoulli, poisson): no parameter, no ``Residual`` row.
    """

    kind = "iid"

    @property
    def is_iid(self) -> bool:
        """True."""
        return True

    def whiten(self, rho: np.ndarray, a: np.ndarray) -> np.ndarray:
        """``a`` itself (the same array)."""
        return a

    def log_det(self, rho: np.ndarray, n: int) -> float:
        """0: the identity's determinant is 1."""
        return 0.0
