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

from typing import TYPE_CHECKING

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


def varcomp_wald(dev: Deviance, varcorr: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Approximate intervals for SDs, correlations and sigma from the curvature of the deviance.

    The deviance (not profiled over sigma) is written in log-SDs, atanh-correlations
    and log-sigma, starting from the fit's ``varcorr()`` table; its numerical Hessian
    H gives covariance 2 H^-1 on that scale, and the intervals are mapped back, so
    they stay in range. lme4's Wald intervals give NA here; profile intervals are
    better with few groups. Boundary (singular) components get NA.
    """
    from scipy.stats import norm

    is_cor = np.array([isinstance(v, str) for v in varcorr["var2"]])
    sdcor = varcorr["sdcor"].to_numpy(dtype=float)
    with np.errstate(divide="ignore"):
        phi = np.where(is_cor, np.arctanh(np.clip(np.nan_to_num(sdcor), -1 + 1e-12, 1 - 1e-12)),
                       np.log(sdcor))

    def full_deviance(x: np.ndarray) -> float:
        # x follows varcorr's rows: per term its SDs, then its correlations; log sigma last.
        k, theta = 0, []
        s2 = np.exp(2 * x[-1])
        for q, (r_, c_) in zip(dev.sizes, dev.tril, strict=True):
            sd = np.exp(x[k : k + q])
            C = np.eye(q)
            k += q
            for a_ in range(q):
                for b_ in range(a_ + 1, q):
                    C[a_, b_] = C[b_, a_] = np.tanh(x[k])
                    k += 1
            theta.append(np.linalg.cholesky(np.outer(sd, sd) * C / s2)[r_, c_])
        return dev.objective(dev.factor(np.concatenate(theta)), sigma2=s2)

    z = norm.ppf(0.5 + level / 2)
    lo = np.full(len(phi), np.nan)
    hi = np.full(len(phi), np.nan)
    if np.all(np.isfinite(phi)):
        try:
            k = len(phi)
            h = 1e-4
            H = np.empty((k, k))
            for i in range(k):
                for j in range(i, k):
                    ei = np.zeros(k)
                    ej = np.zeros(k)
                    ei[i] = h
                    ej[j] = h
                    H[i, j] = H[j, i] = (full_deviance(phi + ei + ej) - full_deviance(phi + ei - ej)
                                         - full_deviance(phi - ei + ej) + full_deviance(phi - ei - ej)) / (4 * h * h)
            se = np.sqrt(np.diag(2 * np.linalg.inv(H)))
            lo, hi = phi - z * se, phi + z * se
        except np.linalg.LinAlgError:
            pass
    back = np.where(is_cor, np.tanh(lo), np.exp(lo)), np.where(is_cor, np.tanh(hi), np.exp(hi))
    out = varcorr[["grp", "var1", "var2"]].copy()
    out["estimate"] = np.nan_to_num(sdcor)
    out["lower"], out["upper"] = back
    return out


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
    is_cor = np.array([isinstance(v, str) for v in vc["var2"]])
    sdcor = vc["sdcor"].to_numpy(dtype=float)
    with np.errstate(divide="ignore"):
        phi = np.where(is_cor, np.arctanh(np.clip(np.nan_to_num(sdcor), -1 + 1e-12, 1 - 1e-12)),
                       np.log(sdcor))
    s2 = fit.sigma**2
    beta = fit.estimates.beta

    def theta_of(x: np.ndarray) -> np.ndarray:
        k, theta = 0, []
        for q, (r_, c_) in zip(dev.sizes, dev.tril, strict=True):
            sd = np.exp(x[k : k + q])
            C = np.eye(q)
            k += q
            for a_ in range(q):
                for b_ in range(a_ + 1, q):
                    C[a_, b_] = C[b_, a_] = np.tanh(x[k])
                    k += 1
            theta.append(np.linalg.cholesky(np.outer(sd, sd) * C / s2)[r_, c_])
        return np.concatenate(theta)

    def criterion(y: np.ndarray) -> float:
        x = y[: len(phi)]
        rest = y[len(phi) :]
        return dev(np.concatenate([theta_of(x), rest]) if dev.nAGQ > 0 else theta_of(x))

    y0 = np.concatenate([phi, beta]) if dev.nAGQ > 0 else phi
    z = norm.ppf(0.5 + level / 2)
    lo = np.full(len(phi), np.nan)
    hi = np.full(len(phi), np.nan)
    if np.all(np.isfinite(phi)):
        try:
            k = len(y0)
            h = 1e-4
            E = np.eye(k) * h
            H = np.empty((k, k))
            for i in range(k):
                for j in range(i, k):
                    H[i, j] = H[j, i] = (criterion(y0 + E[i] + E[j]) - criterion(y0 + E[i] - E[j])
                                         - criterion(y0 - E[i] + E[j]) + criterion(y0 - E[i] - E[j])) / (4 * h * h)
            cov = 2 * np.linalg.inv(H)[: len(phi), : len(phi)]
            se = np.sqrt(np.diag(cov))
            lo, hi = phi - z * se, phi + z * se
        except np.linalg.LinAlgError:
            pass
    out = vc[["grp", "var1", "var2"]].copy()
    out["estimate"] = np.nan_to_num(sdcor)
    out["lower"] = np.where(is_cor, np.tanh(lo), np.exp(lo))
    out["upper"] = np.where(is_cor, np.tanh(hi), np.exp(hi))
    return out
