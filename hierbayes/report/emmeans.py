"""Estimated marginal means and their contrasts, as R's emmeans 1.x: :func:`emmeans`.

The **reference grid** has every level of each factor of the fixed part and
each covariate at its mean (emmeans's ``cov.reduce = mean``; a numeric
variable with two values or fewer keeps them, as emmeans's ``cov.keep = "2"``,
and a number inside ``factor()`` is a factor of its values). ``at=`` sets the
values of any variable. The grid's rows are replayed through the fit's frozen
model frame and formulaic spec, so contrasts, ``factor(x)``, ``I()``,
``poly()`` and ``scale()`` mean what they meant in the fit. A marginal mean
``L beta`` averages the grid rows of each combination of ``specs`` and ``by``
over the other factors, with equal weights by default (``weights=``:
emmeans's ``"proportional"``, ``"outer"``, ``"cells"``, ``"flat"``).

* **lmer fits**: SE and df by ``lmer_df``: ``"kenward-roger"`` (emmeans's
  default: pbkrtest's adjusted covariance and df), ``"satterthwaite"`` or
  ``"asymptotic"`` (z). By default, as emmeans, data over 3000 rows, ML fits
  and residual or covariance structures fall back to Satterthwaite (over
  3000 rows: asymptotic); the footer names the method used.
* **glmer fits**: asymptotic (z) on the link scale; ``type="response"``
  back-transforms as emmeans (the mean through the inverse link, its SE by the
  delta method, the interval's ends back-transformed), and contrasts on a log or
  logit link become ratios (odds ratios).
* **Bayesian fits**: each posterior draw of ``beta`` gives the draw of every
  mean and contrast (:meth:`EMMeans.draws`); the table shows the posterior
  mean (``point="median"``: median, emmeans's choice for MCMC), SD and an
  equal-tailed interval (``interval="hpd"``: coda's HPD interval, emmeans's
  default). No df, no p-values.

A combination the model cannot estimate (an empty cell of an interaction
whose column lme4 dropped) is NaN, as emmeans's ``nonEst``.

Examples
--------
>>> import hierbayes as hb
>>> fit = hb.lmer("diameter ~ sample + (1 | plate)", hb.datasets.load("Penicillin"))
>>> emm = emmeans(fit, "sample")
>>> emm.frame.round(3).iloc[:2].values.tolist()
[['A', 25.167, 0.206, 39.733, 24.75, 25.583], ['B', 21.958, 0.206, 39.733, 21.542, 22.375]]
>>> emm.pairs().frame.loc[:1, ["contrast", "estimate", "p_value"]].round(4).values.tolist()
[['A - B', 3.2083, 0.0], ['A - C', 0.25, 0.6167]]
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError, FormulaError, SettingsError
from hierbayes.freq.glmermod import GlmerMod
from hierbayes.freq.mermod import MerMod
from hierbayes.report.emm_contrasts import r_string
from hierbayes.report.emm_table import EMMeans
from hierbayes.report.predict import formula_offset, offset_argument, replay
from hierbayes.spec.modelframe import level_label

WEIGHTS = ("equal", "proportional", "outer", "cells", "flat")
INTERVALS = ("equal-tailed", "hpd")
GRID_LIMIT = 10_000  # emmeans's rg.limit
DF_LIMIT = 3000  # emmeans's pbkrtest.limit and lmerTest.limit
_LMER_DF = {"kenward-roger": "kenward-roger", "kr": "kenward-roger", "satterthwaite": "satterthwaite",
            "asymptotic": "asymptotic", "z": "asymptotic"}


@dataclass
class GridVariable:
    """One variable of the reference grid: a data column and the values it takes there.

    ``kind`` is ``"factor"`` (a factor column), ``"coerced"`` (a number inside
    ``factor()``), ``"kept"`` (a number with two values or fewer), ``"at"``
    (a number given values by ``at=``) or ``"covariate"`` (held at its mean).
    """

    name: str
    values: list
    labels: list[str]
    kind: str
    dtype: Any = None

    @property
    def counted(self) -> bool:
        """Whether the grid's cell counts (emmeans's ``.wgt.``) count this variable's values."""
        return self.kind in ("factor", "coerced", "kept")


def _is_number(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _pick(var: GridVariable, wanted: Any) -> GridVariable:
    """``var`` restricted to the values ``at=`` lists, in that order."""
    wanted = list(np.atleast_1d(np.asarray(wanted, dtype=object)))
    if not wanted:
        raise DataError(f"at={{'{var.name}': []}} gives no values; give at least one.")
    out_v, out_l = [], []
    for w in wanted:
        lab = r_string(w) if var.kind == "coerced" else level_label(w)
        match = [i for i, x in enumerate(var.labels) if x == lab]
        if not match:
            raise DataError(f"at={{'{var.name}': ...}} asks for {w!r}, which is not among its "
                            f"levels {var.labels}.")
        out_v.append(var.values[match[0]])
        out_l.append(var.labels[match[0]])
    return GridVariable(var.name, out_v, out_l, var.kind, var.dtype)


def grid_variables(design: Any, at: dict | None = None) -> list[GridVariable]:
    """The reference grid's variables, as emmeans's ``ref_grid`` chooses their values."""
    mf, frame = design.model_frame, design.frame
    columns = mf.columns(list(design.x_variables) + list(design.offset_terms))
    at = dict(at or {})
    unknown = [k for k in at if k not in columns]
    if unknown:
        raise DataError(f"at= names {unknown}, which the fixed part does not use; its variables "
                        f"are {columns}.")
    coerced: set[str] = set()
    for lab in design.x_variables:
        if mf.variables[lab].kind == "name":
            continue
        try:
            s = mf.series(frame, lab)
        except (DataError, FormulaError):  # a matrix (poly, ns): numbers
            continue
        if isinstance(s.dtype, pd.CategoricalDtype):
            coerced |= {c for c in mf.columns([lab]) if _is_number(frame[c])}
    out = []
    for c in columns:
        s = frame[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            values = list(s.cat.categories)
            var = GridVariable(c, values, [level_label(v) for v in values], "factor", s.dtype)
        elif _is_number(s) and c in coerced:
            values = sorted(float(v) for v in s.unique())
            var = GridVariable(c, values, [r_string(v) for v in values], "coerced")
        elif _is_number(s):
            if c in at:
                try:
                    values = [float(v) for v in np.atleast_1d(np.asarray(at.pop(c), dtype=float))]
                except (TypeError, ValueError):
                    values = []
                if not values or not np.isfinite(values).all():
                    raise DataError(f"at={{'{c}': ...}} needs one or more finite numbers: '{c}' "
                                    "is a numeric covariate.")
                var = GridVariable(c, values, [r_string(v) for v in values], "at")
            elif s.nunique() <= 2:
                values = sorted(float(v) for v in s.unique())
                var = GridVariable(c, values, [r_string(v) for v in values], "kept")
            else:
                m = float(s.mean())
                var = GridVariable(c, [m], [r_string(m)], "covariate")
        else:
            by_label = {level_label(v): v for v in s.unique()}
            state = mf.state.get("levels:" + c)
            labels = [lv for lv in (state["levels"] if state else sorted(by_label)) if lv in by_label]
            var = GridVariable(c, [by_label[lv] for lv in labels], labels, "factor")
        out.append(_pick(var, at[c]) if c in at else var)
    return out


@dataclass
class ReferenceGrid:
    """The grid's rows: variables' value codes, the model rows, offsets and cell counts."""

    variables: list[GridVariable]
    codes: dict[str, np.ndarray]
    X: np.ndarray
    X_full: np.ndarray | None
    offset: np.ndarray
    counts: np.ndarray


def reference_grid(design: Any, at: dict | None = None, offset: float | None = None) -> ReferenceGrid:
    """Every combination of the grid variables' values, first varying fastest (R's ``expand.grid``)."""
    variables = grid_variables(design, at)
    sizes = [len(v.values) for v in variables]
    n = math.prod(sizes)
    if n > GRID_LIMIT:
        raise DataError(f"The reference grid would have {n} rows (limit {GRID_LIMIT}): give fewer "
                        "values with at=.")
    codes, stride = {}, 1
    for v, k in zip(variables, sizes, strict=True):
        codes[v.name] = (np.arange(n) // stride) % k
        stride *= k
    cols = {}
    for v in variables:
        if v.dtype is not None:
            cols[v.name] = pd.Categorical.from_codes(codes[v.name], dtype=v.dtype)
        else:
            cols[v.name] = np.asarray(v.values, dtype=object if v.kind == "factor" else float)[
                codes[v.name]]
    frame = pd.DataFrame(cols, index=pd.RangeIndex(n))
    mm = replay(design, design.x_spec, frame, design.x_variables, "fixed part")
    X = mm.loc[:, design.x_columns].to_numpy(dtype=float)
    X_full = mm.to_numpy(dtype=float) if design.dropped_columns else None
    if offset is not None:
        off = np.full(n, float(offset))
    elif design.offset is not None and offset_argument(design) is not None:
        raise DataError("This model was fitted with offset=, which the reference grid cannot "
                        "know: give emmeans an offset= (one number for every grid row, as "
                        "emmeans's offset argument), e.g. offset=0.")
    else:
        off = formula_offset(design, frame)
        off = np.zeros(n) if off is None else off
    counted = [v for v in variables if v.counted]
    counts = np.ones(n)
    if counted:
        w = design.weights if design.weights is not None else np.ones(design.n_obs)
        data_codes = []
        for v in counted:
            lookup = {lab: i for i, lab in enumerate(v.labels)}
            fn = r_string if v.kind in ("coerced", "kept") else level_label
            data_codes.append(np.array([lookup.get(fn(x), -1) for x in design.frame[v.name]]))
        totals: dict[tuple, float] = {}
        for key, wi in zip(zip(*data_codes, strict=True), w, strict=True):
            totals[key] = totals.get(key, 0.0) + wi
        keys = zip(*(codes[v.name] for v in counted), strict=True)
        counts = np.array([totals.get(k, 0.0) for k in keys])
        if np.all(counts == 0):
            counts = counts + 1
    return ReferenceGrid(variables, codes, X, X_full, off, counts)


def _null_basis(design: Any) -> np.ndarray | None:
    """An orthonormal basis of the null space of the full fixed-effect matrix (aliased columns in)."""
    if not design.dropped_columns:
        return None
    full = replay(design, design.x_spec, design.frame, design.x_variables, "fixed part")
    _, _, vt = np.linalg.svd(full.to_numpy(dtype=float), full_matrices=True)
    return vt[-len(design.dropped_columns):].T


def _names(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    out = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(v, str) for v in out):
        raise SettingsError(f"{what} must be a variable name or a list of names, not {value!r}.")
    return out


def _parse_specs(specs: Any, by: Any) -> tuple[list[str], list[str]]:
    """``"Variety"``, ``["Variety", "nitro"]`` or emmeans's formula ``"~ Variety | nitro"``."""
    if isinstance(specs, str) and specs.strip().startswith("~"):
        if by is not None:
            raise SettingsError("Give by= or a '|' in the specs formula, not both.")
        main, _, cond = specs.strip()[1:].partition("|")
        split = lambda t: [p.strip() for p in re.split(r"[*+:]", t) if p.strip()]  # noqa: E731
        return split(main), split(cond)
    return _names(specs, "specs"), _names(by, "by")


def _kind(fit: Any) -> str:
    if isinstance(fit, MerMod):
        return "lmer"
    if isinstance(fit, GlmerMod):
        return "glmer"
    if hasattr(getattr(fit, "posterior", None), "variables") and hasattr(fit, "design"):
        return "bayes"
    raise SettingsError(f"emmeans needs a fit from hb.lmer, hb.glmer or Model.fit, not a "
                        f"{type(fit).__name__}.")


def _lmer_method(fit: Any, lmer_df: str | None) -> str:
    if lmer_df is not None:
        key = str(lmer_df).lower().replace("_", "-")
        if key not in _LMER_DF:
            raise SettingsError(f"lmer_df must be 'kenward-roger', 'satterthwaite' or "
                                f"'asymptotic', not {lmer_df!r}.")
        return _LMER_DF[key]
    d = fit.design
    simple = d.residual.is_iid and all(b.term.structure == "us" for b in d.blocks)
    if d.n_obs > DF_LIMIT:
        return "asymptotic"
    return "kenward-roger" if fit.reml and simple else "satterthwaite"


def _check_level(level: Any) -> float:
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise SettingsError(f"level must be a number between 0 and 1 (e.g. 0.95), not {level!r}.")
    return float(level)


def emmeans(fit: Any, specs: Any, by: Any = None, *, at: dict | None = None,
            weights: str = "equal", lmer_df: str | None = None, level: float = 0.95,
            type: str = "link", offset: float | None = None, point: str | None = None,
            interval: str | None = None) -> EMMeans:
    """Estimated marginal means of a fit, as R's ``emmeans(fit, specs, by = by)``.

    Parameters
    ----------
    fit
        An :class:`~hierbayes.LmerFit`, :class:`~hierbayes.GlmerFit` or :class:`~hierbayes.BayesFit`.
    specs
        The factor(s) whose means are wanted: a name, a list of names, or
        emmeans's formula (``"~ Variety | nitro"``).
    by
        Factor(s) within each of whose levels the means are shown and compared.
    at
        Values for grid variables: ``{"Days": [0, 5]}`` puts a covariate on the
        grid (so that it can be in ``specs``), ``{"Variety": ["Victory"]}`` keeps some levels.
    weights
        How the other factors are averaged over: ``"equal"`` (emmeans's default),
        ``"proportional"``, ``"outer"``, ``"cells"`` or ``"flat"``.
    lmer_df
        lmer fits: ``"kenward-roger"``, ``"satterthwaite"`` or ``"asymptotic"``;
        None chooses as emmeans (see the module's notes).
    level
        Interval level.
    type
        ``"link"`` or ``"response"`` (glmer and Bayesian GLMMs: back-transformed).
    offset
        One offset for every grid row (emmeans's ``offset``); without it the
        formula's ``offset()`` terms are evaluated on the grid.
    point, interval
        Bayesian fits: ``"mean"`` (default) or ``"median"``; ``"equal-tailed"``
        (default) or ``"hpd"``.

    Returns
    -------
    EMMeans
    """
    kind = _kind(fit)
    level = _check_level(level)
    if weights not in WEIGHTS:
        raise SettingsError(f"weights must be one of {list(WEIGHTS)}, not {weights!r}.")
    if type not in ("link", "response"):
        raise SettingsError(f"type must be 'link' or 'response', not {type!r}.")
    if kind != "lmer" and lmer_df is not None:
        raise SettingsError(f"lmer_df is for lmer fits; a {kind} fit's means are "
                            f"{'asymptotic (z)' if kind == 'glmer' else 'posterior draws'}.")
    if kind != "bayes" and (point is not None or interval is not None):
        raise SettingsError("point= and interval= are for Bayesian fits.")
    point = point or "mean"
    interval = interval or "equal-tailed"
    if point not in ("mean", "median") or interval not in INTERVALS:
        raise SettingsError(f"point must be 'mean' or 'median' and interval one of "
                            f"{list(INTERVALS)}, not {point!r} and {interval!r}.")
    design = fit.design
    if type == "response" and design.family.name == "gaussian" and \
            design.response_label not in design.frame.columns:
        raise SettingsError(f"type='response' would undo the response's transformation "
                            f"{design.response_label}, which hierbayes does not do; its means are "
                            "on that scale (type='link').")
    specs, by = _parse_specs(specs, by)
    if not specs:
        raise SettingsError("specs names no variable: give the factor(s) whose means you want.")
    grid = reference_grid(design, at, offset)
    variables = {v.name: v for v in grid.variables}
    factors = [v.name for v in grid.variables if v.kind != "covariate"]
    for name, what in [(s, "specs") for s in specs] + [(b, "by") for b in by]:
        if name in variables and variables[name].kind == "covariate":
            v = variables[name]
            raise DataError(f"{what} names '{name}', a numeric covariate, which the reference grid "
                            f"holds at its mean ({v.labels[0]}). Give the values to compare with "
                            f"at={{'{name}': [...]}}, e.g. at={{'{name}': [0, 5]}}.")
        if name not in variables:
            used = [c for c in variables if c in name]
            groups = {g for b in design.blocks for g in b.term.group}
            hint = (f" Name the data column: '{used[0]}'." if used else
                    f" '{name}' groups the random effects; means are of fixed-part factors."
                    if name in groups else "")
            raise DataError(f"{what} names '{name}', which is not a variable of the fixed part."
                            f"{hint} Its factors are: {', '.join(factors) or 'none'}"
                            + (f"; covariates (at their means): "
                               f"{', '.join(c for c in variables if c not in factors)}"
                               if len(factors) < len(variables) else "") + ".")
    facs = specs + [b for b in by if b not in specs]
    if len(facs) < len(specs) + len(by) or len(set(specs)) < len(specs):
        raise SettingsError(f"A variable is named twice in specs {specs} and by {by}.")
    avg = [v.name for v in grid.variables if v.name not in facs and len(v.values) > 1]
    rows_of, L, L_full, off = _average(grid, facs, avg, weights)
    labels = {}
    for f in facs:
        v = variables[f]
        idx = rows_of[f]
        labels[f] = (pd.Categorical([v.labels[i] for i in idx], categories=v.labels)
                     if v.kind == "factor" else np.asarray(v.values, dtype=float)[idx])
    info = {"kind": kind, "level": level, "type": type, "point": point, "interval": interval,
            "averaged": avg, "method": _lmer_method(fit, lmer_df) if kind == "lmer" else None,
            "basis": _null_basis(design)}
    return EMMeans(fit, info, L, L_full, off, pd.DataFrame(labels), specs, by)


def _average(grid: ReferenceGrid, facs: list[str], avg: list[str], weights: str):
    """Each combination of ``facs``'s values (first fastest), averaged over the ``avg`` variables."""
    variables = {v.name: v for v in grid.variables}
    sizes = [len(variables[f].values) for f in facs]
    n = math.prod(sizes)
    combo = np.zeros(len(grid.X), dtype=np.int64)
    stride = 1
    for f, k in zip(facs, sizes, strict=True):
        combo += grid.codes[f] * stride
        stride *= k
    avg_key = np.zeros(len(grid.X), dtype=np.int64)
    stride = 1
    for a in avg:
        avg_key += grid.codes[a] * stride
        stride *= len(variables[a].values)
    c = grid.counts
    if weights == "proportional":
        w = np.bincount(avg_key, weights=c)[avg_key]
    elif weights == "outer":
        N = c.sum()
        w = np.full(len(c), N)
        for a in avg:
            w = w * np.bincount(grid.codes[a], weights=c)[grid.codes[a]] / N
    elif weights == "cells":
        w = c
    elif weights == "flat":
        w = (c > 0).astype(float)
    else:
        w = np.ones(len(c))
    p = grid.X.shape[1]
    L = np.zeros((n, p))
    L_full = None if grid.X_full is None else np.zeros((n, grid.X_full.shape[1]))
    off = np.zeros(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(n):
            rows = np.flatnonzero(combo == j)
            wj = w[rows]
            total = wj.sum() if wj.sum() > 1e-8 else np.nan
            L[j] = wj @ grid.X[rows] / total
            off[j] = wj @ grid.offset[rows] / total
            if L_full is not None:
                L_full[j] = wj @ grid.X_full[rows] / total
    rows_of = {f: (np.arange(n) // math.prod(sizes[:i])) % sizes[i] for i, f in enumerate(facs)}
    return rows_of, L, L_full, off
