"""The residual model: how the rows' errors covary given the linear predictor.

Independent errors with one variance (:class:`~hierbayes.residuals.iid.IID`:
one residual SD ``sigma`` for a Gaussian response, no parameter at all where
the family's variance is a function of its mean), or, for a Gaussian
response, a log-linear model of the SD (nlme's varIdent and varExp, brms's
``sigma ~``) with AR(1) or CAR(1) correlation within groups
(:class:`~hierbayes.residuals.structured.Structured`).

Examples
--------
>>> from hierbayes.residuals import IID
>>> IID("sigma").is_iid, IID("sigma").varcorr_rows()
(True, [('Residual', None, None)])
"""

from __future__ import annotations

from hierbayes.residuals.base import ResidualModel
from hierbayes.residuals.iid import IID
from hierbayes.residuals.serial import CorrelationSpec, SerialCorrelation, ar1, car1
from hierbayes.residuals.structured import Structured
from hierbayes.residuals.varfunc import LogLinearSD

__all__ = ["IID", "CorrelationSpec", "LogLinearSD", "ResidualModel", "SerialCorrelation",
           "Structured", "ar1", "car1"]
