"""The residual structure of a design: ``sigma=`` and ``correlation=`` evaluated on the data.

``sigma="~ occas"`` is a one-sided formula for the log residual SD (brms's
``sigma ~``, glmmTMB's ``dispformula``), read by the same grammar and
model-frame code as the rest of the formula; ``correlation=hb.ar1(...)`` or
``hb.car1(...)`` names the columns of the series and the times. What this
module makes is a :class:`hierbayes.residuals.Structured` over the fitted
rows; what it refuses, it refuses before any fitting: a missing column, a
family other than the Gaussian, duplicate times within a series, non-integer
times for AR(1), a correlation whose series cut across a grouping factor.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("Reaction ~ Days + (1 | Subject)"), hb.datasets.load("sleepstudy"),
...                  sigma="~ Days", correlation=hb.ar1(time="Days"))
>>> d.residual.correlation_parameters, d.residual.correlation.group
(('sigma_Days', 'phi'), 'Subject')
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError, FormulaError
from hierbayes.families import Family
from hierbayes.residuals import (
    CorrelationSpec,
    LogLinearSD,
    ResidualModel,
    SerialCorrelation,
    Structured,
)
from hierbayes.spec.grouping import factor_codes
from hierbayes.spec.modelframe import ModelFrame
from hierbayes.spec.parts import Part, drop_aliased, model_matrix_from, r_name, read_part
from hierbayes.spec.rexpr import check_tokens

__all__ = ["ResidualRequest", "build_residual", "check_structure"]

_TREATMENT = "[T."


class ResidualRequest:
    """What the user asked of the residuals, read and checked before the data is touched.

    Parameters
    ----------
    sigma
        A one-sided formula for the log residual SD (``"~ occas"``), or None.
    correlation
        :func:`hierbayes.ar1` or :func:`hierbayes.car1`, or None.
    family
        The response family: structures are for the Gaussian only.
    """

    def __init__(self, sigma: Any, correlation: Any, family: Family) -> None:
        self.sigma_text = None if sigma is None else _sigma_text(sigma)
        if correlation is not None and not isinstance(correlation, CorrelationSpec):
            raise DataError(
                f"correlation= takes hb.ar1(group=..., time=...) or hb.car1(group=..., time=...), "
                f"not {correlation!r}.")
        self.correlation = correlation
        if (self.sigma_text is not None or correlation is not None) and family.name != "gaussian":
            what = "sigma=" if self.sigma_text is not None else "correlation="
            raise DataError(
                f"{what} (a residual variance or correlation structure) is not supported yet for "
                f"the {family.name} family; it is for gaussian models. Drop {what} or fit a "
                "gaussian model.")
        self.part: Part | None = None
        if self.sigma_text is not None:
            self.part = read_part(self.sigma_text)
            if self.part.terms.offsets:
                raise FormulaError("offset() in sigma= has no meaning; the SD model has no offset.")
            if not self.part.terms.intercept:
                raise FormulaError(
                    f"sigma='~ {self.sigma_text}' has no intercept, but the model's sigma is the "
                    "reference rows' SD and the formula models each row's SD relative to it. Drop "
                    "the 0 or -1.")

    @property
    def active(self) -> bool:
        return self.part is not None or self.correlation is not None

    @property
    def variables(self) -> dict[str, Any]:
        """The sigma formula's variables, for the model frame."""
        return dict(self.part.terms.variables) if self.part is not None else {}

    def columns(self, mf: ModelFrame) -> list[str]:
        """The data columns the structures use, sigma formula first."""
        out = mf.columns(self.part.variables) if self.part is not None else []
        if self.correlation is not None:
            out += [c for c in (self.correlation.group, self.correlation.time) if c is not None]
        return out


def _sigma_text(sigma: Any) -> str:
    if not isinstance(sigma, str):
        raise FormulaError(f"sigma= takes a one-sided formula such as '~ occasion', not "
                           f"{type(sigma).__name__}.")
    check_tokens(sigma)
    text = sigma.strip()
    if "|" in text:
        raise FormulaError(f"sigma='{sigma}' has a '|': group-level terms in the SD model are not "
                           "supported. Write fixed terms only, e.g. '~ occasion'.")
    if "~" in text:
        left, _, right = text.partition("~")
        if left.strip():
            raise FormulaError(
                f"sigma='{sigma}' has a left-hand side: it is a one-sided formula, e.g. '~ occasion' "
                "(the response is the model formula's).")
        text = right.strip()
    if not text:
        raise FormulaError(f"sigma='{sigma}' is empty; write e.g. '~ occasion'.")
    return text


def _variance_model(req: ResidualRequest, context: dict[str, Any], n: int) -> LogLinearSD | None:
    part = req.part
    mm = model_matrix_from(part, context, n, "sigma= formula")
    names = list(mm.columns)
    M = mm.to_numpy(dtype=float)
    keep = drop_aliased(M)
    if len(keep) < M.shape[1]:
        bad = [r_name(names[j]) for j in range(M.shape[1]) if j not in keep]
        raise FormulaError(f"sigma='~ {req.sigma_text}' has aliased columns ({', '.join(bad)}): the "
                           "SD model is not identified. Remove the redundant terms.")
    cols = [j for j, c in enumerate(names) if c != "Intercept"]
    if not cols:
        return None
    factor, levels = None, None
    labels = part.terms.labels
    if len(labels) == 1 and len(labels[0]) == 1:
        value = context[labels[0][0]]
        dtype = getattr(value, "dtype", None)
        inner = [names[j] for j in cols]
        if isinstance(dtype, pd.CategoricalDtype) and all(_TREATMENT in c for c in inner):
            factor = labels[0][0]
            levels = [str(dtype.categories[0])] + [c[c.index(_TREATMENT) + 3 : -1] for c in inner]
    return LogLinearSD(M[:, cols], [r_name(names[j]) for j in cols], f"~ {req.sigma_text}",
                       factor=factor, levels=levels, spec=mm.model_spec, variables=part.variables)


def _default_group(blocks: list[Any]) -> str:
    factors = list(dict.fromkeys(b.factor for b in blocks))
    if not factors:
        raise DataError("correlation= needs group= (the column whose levels are the series): the "
                        "formula has no grouping factor to take it from.")
    if len(factors) == 1 and len(blocks[0].term.group) == 1:
        return blocks[0].term.group[0]
    raise DataError(
        "correlation= needs group=: the formula has grouping factors "
        f"{', '.join(factors)}, and the series are one of them. Write e.g. "
        f"hb.ar1(group='{blocks[0].term.group[-1]}', time=...).")


def _serial(spec: CorrelationSpec, frame: pd.DataFrame, blocks: list[Any]) -> SerialCorrelation:
    group = spec.group or _default_group(blocks)
    codes, levels = factor_codes(frame, (group,))
    if spec.time is None:
        # nlme's corAR1(form = ~ 1 | g): each row's position within its group, in data order
        times = pd.Series(np.ones(len(codes))).groupby(codes).cumsum().to_numpy()
    else:
        col = frame[spec.time]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            raise DataError(f"The time column '{spec.time}' of {spec} must be numeric, not "
                            f"{col.dtype}. Use its numeric version (e.g. occasion 0, 1, 2, ...).")
        times = col.to_numpy(dtype=float)
        if spec.kind == "ar1" and not np.all(times == np.round(times)):
            raise DataError(f"AR(1) needs integer times, but '{spec.time}' has fractions (e.g. "
                            f"{times[times != np.round(times)][0]}). Use hb.car1 for continuous time.")
    dup = pd.DataFrame({"g": codes, "t": times}).duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(
            f"The time column '{spec.time or '(row order)'}' has duplicate values within a group of "
            f"'{group}' ({int(dup.sum())} rows; the first at row label {frame.index[i]!r}, group "
            f"{levels[codes[i]]!r}, time {times[i]:g}): a series needs one row per time. Aggregate "
            "the rows or use a finer group.")
    for b in blocks:
        pairs = pd.DataFrame({"s": codes, "b": b.index}).drop_duplicates()
        if len(pairs) > len(levels):
            raise DataError(
                f"The series of {spec} (groups of '{group}') are not nested within the grouping "
                f"factor '{b.factor}' of {b.term.source}: one series has rows in several of its "
                "groups. Correlated errors are supported within a grouping factor's groups; use "
                f"group='{b.factor}' or a factor nested in it.")
    return SerialCorrelation(spec.kind, group, spec.time, codes, times, levels)


def check_structure(term: Any, columns: list[str], family: Family) -> None:
    """Refuse a glmmTMB structure term where it has no meaning or no implementation yet."""
    if term.structure == "us":
        return
    if family.name != "gaussian":
        raise DataError(
            f"The covariance structure of {term.source} is not supported yet for the {family.name} "
            "family; structured terms are for gaussian models. Use (x | g) or (x || g).")
    if term.structure == "ar1" and "(Intercept)" in columns:
        raise FormulaError(
            f"{term.source} has an intercept, but ar1() correlates the columns of a time factor, one "
            f"per time: write ar1(0 + f | {term.group_name}) with f the time as a factor, as glmmTMB.")


def build_residual(req: ResidualRequest, family: Family, frame: pd.DataFrame,
                   context: dict[str, Any], blocks: list[Any]) -> ResidualModel | None:
    """The design's residual model for ``req`` over the fitted rows (None: the family's iid one)."""
    if not req.active:
        return None
    variance = _variance_model(req, context, len(frame)) if req.part is not None else None
    correlation = _serial(req.correlation, frame, blocks) if req.correlation is not None else None
    if variance is None and correlation is None:
        return None
    return Structured(family.dispersion, variance, correlation, family.dispersion_label or "Residual")
