"""The residual model: how the rows' errors covary given the linear predictor.

Today only independent, equal-variance errors (:class:`~hierbayes.residuals.iid.IID`:
one residual SD ``sigma`` for a Gaussian response, no parameter at all where
the family's variance is a function of its mean). varIdent and AR(1) come
next; ``docs/extending.md`` says where they go.

Examples
--------
>>> from hierbayes.residuals import IID
>>> IID("sigma").is_iid, IID("sigma").varcorr_rows()
(True, [('Residual', None, None)])
"""

from __future__ import annotations

from hierbayes.residuals.base import ResidualModel
from hierbayes.residuals.iid import IID

__all__ = ["IID", "ResidualModel"]
