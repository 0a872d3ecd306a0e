"""Wald intervals: fixed effects +- z SE (lme4's ``confint(method = "Wald")``), and the variance
components' on a transformed scale.

* :func:`wald`: the fixed effects' intervals, ``beta +- z SE``; the variance
  components NA, as lme4.
* :func:`varcomp_wald`: SDs, correlations and sigma from the curvature of the
  deviance (not profiled over sigma) in log-SDs, atanh-correlations and
  log-sigma, mapped back so they stay in range (what ``hb.compare`` shows
  beside the posterior).

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.freq.fit import fit_design
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"), hb.datasets.load("sleepstudy"))
>>> wald(fit_design(d)).loc["Days"].round(3).tolist()
[7.438, 13.497]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from hierbayes.freq.deviance import Deviance
from hierbayes.freq.params import (
    check_level,
    fit_param_names,
    interval_columns,
    uses_scale,
    varcomp_names,
)

if TYPE_CHECKING:
    from hierbayes.freq.mermod import MerMod


def wald(fit: MerMod, level: float = 0.95) -> pd.DataFrame:
    """Wald intervals: fixed effects +- z SE; variance components NA, as lme4."""
    check_level(level)
    z = stats.norm.ppf(0.5 + level / 2)
    beta = fit.estimates.beta
    se = np.sqrt(np.diag(fit.estimates.vcov_beta))
    n_vc = len(varcomp_names(fit.design, uses_scale(fit)))
    lower = np.concatenate([np.full(n_vc, np.nan), beta - z * se])
    upper = np.concatenate([np.full(n_vc, np.nan), beta + z * se])
    return pd.DataFrame(np.column_stack([lower, upper]), index=fit_param_names(fit),
                        columns=interval_columns(level))


def _phi(varcorr: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which rows of a ``varcorr()`` table are correlations, their ``sdcor`` values, and those on
    the unbounded scale the Wald intervals are taken on (log-SD, atanh-correlation)."""
    is_cor = np.array([isinstance(v, str) for v in varcorr["var2"]])
    sdcor = varcorr["sdcor"].to_numpy(dtype=float)
    phi = np.arctanh(np.clip(np.nan_to_num(sdcor), -1 + 1e-12, 1 - 1e-12))
    with np.errstate(divide="ignore"):  # a zero SD (a singular fit) is -inf on the log scale
        # only the SD rows are logged: a negative correlation has no logarithm to warn about
        phi[~is_cor] = np.log(sdcor[~is_cor])
    return is_cor, sdcor, phi


def _theta_of(dev: Any, x: np.ndarray, s2: float) -> np.ndarray:
    """lme4's theta from ``x`` in varcorr's rows (per term its log-SDs, then its atanh-correlations),
    relative to the residual variance ``s2``."""
    k, theta = 0, []
    for q, (r_, c_) in zip(dev.term_sizes, dev.tril, strict=True):
        sd = np.exp(x[k : k + q])
        C = np.eye(q)
        k += q
        for a_ in range(q):
            for b_ in range(a_ + 1, q):
                C[a_, b_] = C[b_, a_] = np.tanh(x[k])
                k += 1
        theta.append(np.linalg.cholesky(np.outer(sd, sd) * C / s2)[r_, c_])
    return np.concatenate(theta)


def _wald_on_phi(f: Any, x0: np.ndarray, n_phi: int, z: float) -> tuple[np.ndarray, np.ndarray]:
    """``phi -+ z se`` for the first ``n_phi`` entries of ``x0``, with ``2 H^-1`` of deviance ``f``'s
    central-difference Hessian (step 1e-4) as their covariance; NA where it cannot be had."""
    lo = np.full(n_phi, np.nan)
    hi = np.full(n_phi, np.nan)
    phi = x0[:n_phi]
    if np.all(np.isfinite(phi)):
        try:
            k = len(x0)
            h = 1e-4
            E = np.eye(k) * h
            H = np.empty((k, k))
            for i in range(k):
                for j in range(i, k):
                    H[i, j] = H[j, i] = (f(x0 + E[i] + E[j]) - f(x0 + E[i] - E[j])
                                         - f(x0 - E[i] + E[j]) + f(x0 - E[i] - E[j])) / (4 * h * h)
            se = np.sqrt(np.diag(2 * np.linalg.inv(H))[:n_phi])
            lo, hi = phi - z * se, phi + z * se
        except np.linalg.LinAlgError:
            pass
    return lo, hi


def _mapped_back(varcorr: pd.DataFrame, is_cor: np.ndarray, sdcor: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray) -> pd.DataFrame:
    out = varcorr[["grp", "var1", "var2"]].copy()
    out["estimate"] = np.nan_to_num(sdcor)
    out["lower"] = np.where(is_cor, np.tanh(lo), np.exp(lo))
    out["upper"] = np.where(is_cor, np.tanh(hi), np.exp(hi))
    return out


def varcomp_wald(dev: Deviance, varcorr: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Approximate intervals for SDs, correlations and sigma from the curvature of the deviance.

    The deviance (not profiled over sigma) is written in log-SDs, atanh-correlations
    and log-sigma, starting from the fit's ``varcorr()`` table; its numerical Hessian
    H gives covariance 2 H^-1 on that scale, and the intervals are mapped back, so
    they stay in range. lme4's Wald intervals give NA here; profile intervals are
    better with few groups. Boundary (singular) components get NA.
    """
    from scipy.stats import norm

    is_cor, sdcor, phi = _phi(varcorr)

    def full_deviance(x: np.ndarray) -> float:
        # x follows varcorr's rows: per term its SDs, then its correlations; log sigma last.
        s2 = np.exp(2 * x[-1])
        return dev.objective(dev.factor(_theta_of(dev, x, s2)), sigma2=s2)

    lo, hi = _wald_on_phi(full_deviance, phi, len(phi), norm.ppf(0.5 + level / 2))
    return _mapped_back(varcorr, is_cor, sdcor, lo, hi)


def glmer_varcomp_wald(fit, level: float = 0.95) -> pd.DataFrame:
    """:func:`varcomp_wald` for a GLMM fit: SDs and correlations from glmer's criterion's curvature.

    glmer's criterion is written in ``(log-SDs, atanh-correlations, beta)``
    (the rows of ``fit.varcorr()``, a Gamma's sigma held at its plug-in
    value, as glmer's criterion holds it); ``2 H^-1`` of its numerical
    Hessian (step 1e-4) gives the variance components' covariance on that
    scale, with the fixed effects' uncertainty counted, and the intervals are
    mapped back. Rows without an interval (a Gamma's Residual, a component on
    its bound) are NA.
    """
    from scipy.stats import norm

    dev = fit.deviance_function
    vc = fit.varcorr()
    keep = vc["grp"] != "Residual"
    vc = vc[keep].reset_index(drop=True)
    is_cor, sdcor, phi = _phi(vc)
    s2 = fit.sigma**2
    beta = fit.estimates.beta

    def criterion(y: np.ndarray) -> float:
        theta = _theta_of(dev, y[: len(phi)], s2)
        return dev(np.concatenate([theta, y[len(phi) :]]) if dev.nAGQ > 0 else theta)

    y0 = np.concatenate([phi, beta]) if dev.nAGQ > 0 else phi
    lo, hi = _wald_on_phi(criterion, y0, len(phi), norm.ppf(0.5 + level / 2))
    return _mapped_back(vc, is_cor, sdcor, lo, hi)
