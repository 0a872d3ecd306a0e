"""A Bayesian fit's summary: lmer's layout, with posterior estimates, intervals and diagnostics.

The random-effects table is lme4's (posterior means of the variances and SDs,
formatted as lme4 formats them); the tables of parameters below it are brms's
(``Estimate``, ``Est.Error``, ``l-95% CI``, ``u-95% CI``, ``R-hat``,
``ESS-bulk``), their numbers formatted together as R's ``printCoefmat`` does.
Parameters are named with the tables' vocabulary (docs/report.md):
``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``, ``sigma``.

:func:`describe` is the one summary of draws every Bayesian table uses:
``Estimate`` (posterior mean or median), ``Est.Error`` (posterior SD) and the
equal-tailed interval ``conf_low``, ``conf_high``.

Examples
--------
>>> {k: round(v, 3) for k, v in describe(np.arange(101.0), 0.9).items()}
{'Estimate': 50.0, 'Est.Error': 29.3, 'conf_low': 5.0, 'conf_high': 95.0}
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import SettingsError
from hierbayes.report.format import Block, Summary, obs_line
from hierbayes.report.merfit import varcorr_block
from hierbayes.report.rprint import coefmat_cells
from hierbayes.report.structures import structure_draws, structured


def check_prob(prob: Any) -> float:
    """``prob`` as a float in (0, 1), or a SettingsError saying what it must be."""
    if isinstance(prob, bool | np.bool_) or not isinstance(prob, int | float | np.integer | np.floating) \
            or not 0 < prob < 1:
        raise SettingsError(f"prob must be a number between 0 and 1 (e.g. 0.95), not {prob!r}.")
    return float(prob)


def check_point(point: Any) -> str:
    if point not in ("mean", "median"):
        raise SettingsError(f"point must be 'mean' or 'median', not {point!r}.")
    return point


def describe(draws: np.ndarray, prob: float, point: str = "mean") -> dict[str, float]:
    """Point estimate, posterior SD and equal-tailed interval of flat draws."""
    check_prob(prob)
    check_point(point)
    q = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2])
    est = float(np.median(draws)) if point == "median" else float(np.mean(draws))
    return {"Estimate": est, "Est.Error": float(np.std(draws, ddof=1)), "conf_low": float(q[0]),
            "conf_high": float(q[1])}


def described(rows: dict[Any, dict[str, float]], prob: float, columns: list[str] | None = None
              ) -> pd.DataFrame:
    """A table of :func:`describe` rows with its level in ``attrs["conf_level"]``."""
    out = pd.DataFrame.from_dict(rows, orient="index", columns=columns) if rows else \
        pd.DataFrame(columns=columns or ["Estimate", "Est.Error", "conf_low", "conf_high"])
    out.attrs["conf_level"] = float(prob)
    return out


def posterior_block(draws: dict[str, np.ndarray], prob: float, point: str, diag: Any,
                    by_row: bool = False) -> Block:
    """brms's table of parameters: estimates and interval formatted together (as
    ``printCoefmat`` formats a coefficient table; ``by_row`` formats each row alone, for
    parameters on different scales such as SDs beside correlations), R-hat to two
    decimals, bulk ESS as a whole number."""
    pct = f"{prob * 100:g}%"
    names = list(draws)
    values = np.array([list(describe(draws[n].ravel(), prob, point).values()) for n in names])
    values = values.reshape(len(names), 4)
    heads = ["Estimate", "Est.Error", f"l-{pct} CI", f"u-{pct} CI"]
    if by_row:
        cells = [coefmat_cells(heads, values[i:i + 1], 4, cs_ind=[0, 1, 2, 3])[1][0]
                 for i in range(len(names))]
        cols = heads
    else:
        cols, cells, _ = coefmat_cells(heads, values, 4, cs_ind=[0, 1, 2, 3])
    rhat = [f"{v:.2f}" if np.isfinite(v) else "NA" for v in diag.table.loc[names, "rhat"]]
    ess = [f"{v:.0f}" if np.isfinite(v) else "NA" for v in diag.table.loc[names, "ess_bulk"]]
    rows = [[*c, r, e] for c, r, e in zip(cells, rhat, ess, strict=True)]
    return Block([*cols, "R-hat", "ESS-bulk"], rows, names, right=True)


def bayes_summary(fit: Any, prob: float = 0.95, point: str = "mean") -> Summary:
    """The summary that :meth:`hierbayes.BayesFit.summary` prints (``fit`` is one; this module
    does not import it, which :mod:`hierbayes.report.bayes` imports)."""
    check_prob(prob)
    check_point(point)
    d, info = fit.design, fit.info
    pct = f"{prob * 100:g}%"
    header = [
        f"Bayesian {d.family.model_kind} mixed model fit by NUTS ({info.sampler}; {info.chains} "
        f"chains x {info.draws} draws after {info.tune} warm-up)",
        f"  Family: {d.family}",
        f" Formula: {d.formula.formula}",
        f"    Data: {d.data_name}",
        f"Estimates are posterior {'medians' if point == 'median' else 'means'}; "
        f"intervals are {pct} equal-tailed credible intervals.",
    ]
    diag = fit.diagnostics()
    headline = fit.headline_draws()
    vc = fit.varcorr(prob, point)
    random_block, table = varcorr_block(vc, d)
    random_block.notes = []
    sections: list[tuple[str, Any]] = [("\nRandom effects:", random_block)]
    fam = d.family
    scale = [d.residual.scale] if d.residual.group in set(vc["grp"]) else []
    varpars = [n for n in headline if n.startswith(("sd_", "cor_"))] + \
        [n for n in scale if n in headline]
    if varpars:
        sections.append(("\nGroup-level SDs and correlations" + (", sigma" if scale else "") + ":",
                         posterior_block({n: headline[n] for n in varpars}, prob, point, diag,
                                         by_row=True)))
    sections[-1] = (sections[-1][0], [sections[-1][1], obs_line(d)])
    res = structured(d)
    if res is not None:
        draws = {f"residual[{k}]": v for k, v in structure_draws(res, fit.posterior).items()}
        block = posterior_block(draws, prob, point, diag, by_row=True)
        block.index = list(structure_draws(res, fit.posterior))
        what = " and ".join(t for t, on in (("variance function", res.variance is not None),
                                            ("correlation", res.correlation is not None)) if on)
        note = []
        if res.variance is not None:
            note = [f"(SD ratios to the reference level {res.variance.levels[0]!r}, whose SD is "
                    "sigma)" if res.variance.is_varident else "(log SD coefficients: sd = sigma "
                    "exp(v'b))"]
        formula = "; ".join(x for x in (
            res.variance.formula if res.variance else "",
            f"{res.correlation.label} {res.correlation.formula}" if res.correlation else "") if x)
        sections.append((f"\nResidual {what} ({formula}):", [block, *note]))
    fx = fit.fixef(prob, point)
    fx["R-hat"] = [diag.table.loc[n, "rhat"] for n in fx.index]
    fx["ESS-bulk"] = [diag.table.loc[n, "ess_bulk"] for n in fx.index]
    if len(fx):
        sections.append(("\nFixed effects:", posterior_block(
            {n: headline[n] for n in fx.index}, prob, point, diag)))
    if fam.dispersion is not None and not fam.residual_sd and fam.dispersion in headline:
        # brms's "Further Distributional Parameters": a shape is no residual SD (varcorr's row)
        sections.append(("\nFurther distributional parameters:", posterior_block(
            {fam.dispersion: headline[fam.dispersion]}, prob, point, diag)))
    footer = [
        "",
        f"{diag.divergences} divergences; max R-hat {_fixed(diag.max_rhat, 3)}; "
        f"min ESS-bulk {_fixed(diag.min_ess_bulk, 0)}; min ESS-tail {_fixed(diag.min_ess_tail, 0)}"
    ]
    if d.dropped_rows:
        footer.append(f"{d.dropped_rows} rows with missing values were dropped.")
    if d.dropped_columns:
        footer.append(f"Dropped as aliased: {', '.join(d.dropped_columns)}.")
    return Summary(header, sections, table, fx, footer)


def _fixed(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}" if np.isfinite(x) else "NA"
