"""What a fit with a residual structure reports: nlme's parameters, its summary blocks, normalised residuals.

A Gaussian fit with ``sigma=`` or ``correlation=`` has residual parameters
``rho`` (:class:`hierbayes.residuals.Structured`); the reports of both
engines read them through here:

* :func:`residual_params`: nlme's numbers, as a Series: varIdent's SD ratio
  per level (the reference level's 1 included), or the log-linear
  coefficients of another sigma formula, then ``phi``;
* :func:`structure_sections`: the "Correlation Structure" and "Variance
  function" blocks of nlme's ``summary.lme``;
* :func:`sd_ratios`: each row's SD over ``sigma``, on the fitted rows or on
  new data (the sigma formula replayed);
* :func:`normalized`: nlme's ``resid(type = "normalized")``, the residuals
  whitened by the estimated structure and divided by ``sigma``.

Examples
--------
>>> import hierbayes as hb
>>> import pandas as pd
>>> gpa = hb.datasets.load("gpa")
>>> fit = hb.lmer("gpa ~ occasion + (1 | student)", gpa, correlation=hb.ar1(time="occasion"))
>>> round(float(fit.residual_params()["phi"]), 3)
0.418
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hierbayes.residuals import ResidualModel, Structured
from hierbayes.spec.design import Design


def structured(design: Design) -> Structured | None:
    """The design's residual structure, or None for independent errors with one variance."""
    return design.residual if isinstance(design.residual, Structured) else None


def structures_in(design: Design) -> str | None:
    """What structure a design has beyond lme4's (for messages), or None."""
    if structured(design) is not None:
        return "a residual structure (sigma= or correlation=)"
    terms = [b.term.source for b in design.blocks if b.term.structure != "us"]
    return f"the covariance-structure term {terms[0]}" if terms else None


def residual_params(residual: Structured, rho: np.ndarray) -> pd.Series:
    """nlme's residual parameters at ``rho``: variance ratios keyed by level (or coefficients), then phi.

    Examples
    --------
    >>> import numpy as np
    >>> from hierbayes.residuals import LogLinearSD, Structured
    >>> r = Structured("sigma", LogLinearSD(np.eye(2)[:, 1:], ["f1"], "~ f", "f", ["a", "b"]))
    >>> residual_params(r, np.array([np.log(0.5)])).tolist()
    [1.0, 0.5]
    """
    return pd.Series(residual.natural(np.asarray(rho, dtype=float)), name="estimate", dtype=float)


def _line(values: pd.Series) -> str:
    """A named vector as R prints it: seven significant digits, the decimals shared."""
    names = [str(k) for k in values.index]
    shown = [f"{float(v):.7g}" for v in values]
    decimals = max((len(t.split(".")[1]) for t in shown if "." in t and "e" not in t), default=0)
    cells = [f"{float(v):.{decimals}f}" for v in values]
    width = [max(len(a), len(b)) for a, b in zip(names, cells, strict=True)]
    head = " ".join(n.rjust(w) for n, w in zip(names, width, strict=True))
    body = " ".join(c.rjust(w) for c, w in zip(cells, width, strict=True))
    return f"{head}\n{body}"


def structure_sections(residual: Structured, params: pd.Series) -> list[tuple[str, str]]:
    """nlme's ``summary.lme`` blocks for the structure: its name, formula and estimates."""
    out = []
    c = residual.correlation
    if c is not None:
        text = f" Formula: {c.formula}\n Parameter estimate(s):\n{_line(pd.Series({'Phi': params['phi']}))}"
        out.append((f"\nCorrelation Structure: {c.label}", text))
    v = residual.variance
    if v is not None:
        values = params.drop("phi", errors="ignore")
        if v.is_varident:
            head = (" Structure: Different standard deviations per stratum\n"
                    f" Formula: ~ 1 | {v.factor}\n Parameter estimates:")
        else:
            head = (" Structure: log-linear SD, sd = sigma * exp(v'gamma) (varExp for one number)\n"
                    f" Formula: {v.formula}\n Parameter estimates (gamma):")
        out.append(("\nVariance function:", f"{head}\n{_line(values)}"))
    return out


def sd_ratios(design: Design, rho: np.ndarray, newdata: pd.DataFrame | None = None) -> np.ndarray:
    """Each row's residual SD over ``sigma``: of the fitted rows, or of ``newdata``'s.

    Ones where the residual model has no variance function.
    """
    res = structured(design)
    if res is None or res.variance is None:
        return np.ones(design.n_obs if newdata is None else len(newdata))
    gamma = res.gamma(rho)
    if newdata is None:
        return res.variance.ratios(gamma)
    from hierbayes.report.predict import sigma_columns

    return res.variance.ratios(gamma, sigma_columns(design, newdata))


def normalized(residual: ResidualModel, rho: np.ndarray, e: np.ndarray, sigma: float) -> np.ndarray:
    """nlme's normalised residuals: ``Lambda^-1/2 e / sigma``, the series in time order.

    For independent errors with a variance function these are the Pearson
    residuals ``e / (sigma d_i)``; with serial correlation each row's residual
    is taken net of its prediction from the previous one in its series.
    """
    return residual.whiten(np.asarray(rho, dtype=float), np.asarray(e, dtype=float)) / sigma


def structure_draws(residual: Structured, post: Any) -> dict[str, np.ndarray]:
    """Each residual parameter's (chain, draw) draws, named as :func:`residual_params` names them.

    varIdent: the non-reference levels' SD ratios ``exp(b_sigma)`` (the
    reference level's is 1 in every draw and left out); another sigma
    formula: its coefficients; then ``phi``.
    """
    out: dict[str, np.ndarray] = {}
    v = residual.variance
    if v is not None:
        g = np.asarray(post["b_sigma"])
        for k, name in enumerate(v.names):
            key = v.levels[k + 1] if v.is_varident else name
            out[key] = np.exp(g[..., k]) if v.is_varident else g[..., k]
    if residual.correlation is not None:
        out["phi"] = np.asarray(post["phi"])
    return out


def posterior_rho(residual: Structured, post: Any, point: str = "mean") -> np.ndarray:
    """The unconstrained parameters at the posterior's point estimate of ``b_sigma`` and ``phi``."""
    stat = np.median if point == "median" else np.mean
    parts = []
    if residual.variance is not None:
        g = np.asarray(post["b_sigma"])
        parts.append(stat(g.reshape(-1, g.shape[-1]), axis=0))
    if residual.correlation is not None:
        parts.append([residual.correlation.unconstrained(float(stat(np.asarray(post["phi"]))))])
    return np.concatenate(parts)


def bayes_params(residual: Structured, post: Any, point: str = "mean") -> pd.Series:
    """A Bayesian fit's :func:`residual_params`: each one's posterior mean (or median)."""
    stat = np.median if point == "median" else np.mean
    out: dict[str, float] = {}
    v = residual.variance
    if v is not None and v.is_varident:
        out[v.levels[0]] = 1.0
    out.update({k: float(stat(d)) for k, d in structure_draws(residual, post).items()})
    return pd.Series(out, name="estimate", dtype=float)
