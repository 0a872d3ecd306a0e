"""Link functions: how a family's mean maps to the linear predictor, as R's ``make.link``.

Each :class:`Link` has the link ``g(mu)``, its inverse ``g^-1(eta)`` and the
derivative ``d mu / d eta`` in NumPy (the frequentist engine's IRLS weights
and the reports), the inverse in PyTensor (the PyMC graph), and the code of
its C implementation (``LINK_*`` in ``bayes/kernels/hb.h``). The inverses
clamp as R's do (``binomial()$linkinv`` keeps the probability inside
``[eps, 1 - eps]``, ``poisson()``'s mean above ``eps``), so IRLS never sees a
weight of zero.

Examples
--------
>>> import numpy as np
>>> get_link("probit").linkinv(np.array([0.0, 1.959963984540054])).round(6)
array([0.5  , 0.975])
>>> get_link("cloglog").linkfun(np.array([1 - np.exp(-1.0)])).round(12)
array([0.])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hierbayes.errors import DataError

__all__ = ["LINKS", "Link", "get_link"]

#: R's ``.Machine$double.eps``, the clamp of ``binomial()$linkinv`` and ``mu.eta``.
EPS = np.finfo(float).eps


def _clamp_unit(mu: np.ndarray) -> np.ndarray:
    return np.clip(mu, EPS, 1 - EPS)


def _logit_inv_tensor(eta: Any) -> Any:
    import pytensor.tensor as pt

    return pt.sigmoid(eta)


def _probit_inv_tensor(eta: Any) -> Any:
    import pytensor.tensor as pt

    return 0.5 * pt.erfc(-eta / np.sqrt(2.0))


def _cloglog_inv_tensor(eta: Any) -> Any:
    import pytensor.tensor as pt

    return -pt.expm1(-pt.exp(eta))


def _log_inv_tensor(eta: Any) -> Any:
    import pytensor.tensor as pt

    return pt.exp(eta)


class _LazySpecial:
    """``scipy.special`` imported on first use, so that ``import hierbayes`` stays free of
    SciPy (tests/bayes/test_model.py); every family module reads it from here."""

    def __getattr__(self, name: str) -> Any:
        from scipy import special as module

        return getattr(module, name)


special = _LazySpecial()


def _probit_mu_eta(eta: np.ndarray) -> np.ndarray:
    return np.maximum(np.exp(-0.5 * eta**2) / np.sqrt(2 * np.pi), EPS)


def _cloglog_mu_eta(eta: np.ndarray) -> np.ndarray:
    eta = np.minimum(eta, 700.0)
    return np.maximum(np.exp(eta) * np.exp(-np.exp(eta)), EPS)


@dataclass(frozen=True)
class Link:
    """A link function and what the engines need of it.

    Attributes
    ----------
    name
        R's name: ``"identity"``, ``"logit"``, ``"probit"``, ``"cloglog"``, ``"log"``.
    code
        Its code in the compiled kernels (``LINK_<NAME>``; :data:`hierbayes.bayes.codes.LINK_CODES`).
    linkfun, linkinv, mu_eta
        ``g(mu)``, ``g^-1(eta)`` and ``d mu / d eta``, in NumPy, as R's ``make.link``.
    linkinv_tensor
        ``g^-1`` in PyTensor.
    """

    name: str
    code: int
    linkfun: Callable[[np.ndarray], np.ndarray]
    linkinv: Callable[[np.ndarray], np.ndarray]
    mu_eta: Callable[[np.ndarray], np.ndarray]
    linkinv_tensor: Callable[[Any], Any]

    def __repr__(self) -> str:
        return f"<link {self.name}>"


LINKS: dict[str, Link] = {
    "identity": Link("identity", 0, lambda mu: np.asarray(mu, dtype=float),
                     lambda eta: np.asarray(eta, dtype=float),
                     lambda eta: np.ones_like(np.asarray(eta, dtype=float)), lambda eta: eta),
    "logit": Link("logit", 1, lambda mu: special.logit(mu), lambda eta: _clamp_unit(special.expit(eta)),
                  lambda eta: np.maximum(special.expit(eta) * special.expit(-eta), EPS),
                  _logit_inv_tensor),
    "probit": Link("probit", 2, lambda mu: special.ndtri(mu),
                   lambda eta: _clamp_unit(special.ndtr(eta)), _probit_mu_eta,
                   _probit_inv_tensor),
    "cloglog": Link("cloglog", 3, lambda mu: np.log(-np.log1p(-mu)),
                    lambda eta: _clamp_unit(-np.expm1(-np.exp(np.minimum(eta, 700.0)))),
                    _cloglog_mu_eta, _cloglog_inv_tensor),
    "log": Link("log", 4, np.log, lambda eta: np.maximum(np.exp(eta), EPS),
                lambda eta: np.maximum(np.exp(eta), EPS), _log_inv_tensor),
}


def get_link(name: str | Link) -> Link:
    """A link by R's name.

    Examples
    --------
    >>> get_link("logit").code
    1
    """
    if isinstance(name, Link):
        return name
    if not isinstance(name, str) or name not in LINKS:
        raise DataError(f"Unknown link {name!r}; hierbayes has: {', '.join(LINKS)}.")
    return LINKS[name]
