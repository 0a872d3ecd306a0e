"""From a parsed formula and a DataFrame to the numbers a fitter needs.

The fixed-effect matrix X comes from formulaic (its frozen ``ModelSpec`` is
kept for prediction); every random-effect term becomes a :class:`RandomBlock`:
an ``n x p`` matrix of its columns plus an integer index of each row's level,
never a dense ``n x levels`` Z. Rows with missing values are dropped (as
lme4's ``na.omit``), aliased fixed-effect columns are dropped (as lme4's
``chkRank.drop.cols``), and terms are ordered and named as lme4 orders and
names them, so ``varcorr`` rows line up with ``as.data.frame(VarCorr(m))``.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"),
...                  hb.datasets.load("sleepstudy"))
>>> d.fixef_names, d.blocks[0].terms, len(d.blocks[0].levels)
(['(Intercept)', 'Days'], ['(Intercept)', 'Days'], 18)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError, FormulaError, HierbayesWarning
from hierbayes.families import Family, get_family
from hierbayes.residuals import IID, ResidualModel
from hierbayes.spec.formula import ParsedFormula, RandomTerm
from hierbayes.spec.grouping import factor_codes
from hierbayes.spec.modelframe import ModelFrame
from hierbayes.spec.parts import check_columns, drop_aliased, model_matrix_from, r_name, read_part
from hierbayes.spec.residual_design import ResidualRequest, build_residual, check_structure
from hierbayes.spec.response import read_response, row_values
from hierbayes.spec.rexpr import label, parse


@dataclass
class RandomBlock:
    """One random-effect term after evaluation on the data.

    Attributes
    ----------
    group
        Unique name as in lme4's VarCorr (``"Subject"``, ``"Subject.1"``).
    factor
        The grouping factor's name (``"Subject"``, ``"ward:hospital"``).
    terms
        Coefficient names, lme4-style (``"(Intercept)"``, ``"Days"``).
    levels
        Level labels, in index order.
    index
        Level of each row (``int64``, length n).
    Z
        The term's model matrix (``n x p``).
    spec
        formulaic's frozen spec of the term's columns, for new data.
    term
        The parsed term it came from.
    variables
        Labels of the model-frame variables its columns are built from.
    """

    group: str
    factor: str
    terms: list[str]
    levels: list[str]
    index: np.ndarray
    Z: np.ndarray
    spec: Any
    term: RandomTerm
    variables: list[str] = field(default_factory=list)

    @property
    def n_terms(self) -> int:
        return len(self.terms)

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def correlated(self) -> bool:
        """Blocks of two or more coefficients get an LKJ prior on their correlations."""
        return self.n_terms > 1

    @property
    def lkj(self) -> bool:
        """Whether its correlations are free (an unstructured block of two or more terms, LKJ)."""
        return self.correlated and self.term.structure == "us"

    @property
    def level_dim(self) -> str:
        return f"{self.group}__level"

    @property
    def term_dim(self) -> str:
        return f"{self.group}__term"


@dataclass
class Design:
    """Everything the fitters need, computed once from formula and data.

    Attributes
    ----------
    formula
        The parsed formula.
    family
        The response family.
    residual
        The residual model (today :class:`~hierbayes.residuals.iid.IID`,
        with the family's dispersion as its scale, or none).
    y
        The response, encoded as floats.
    X
        Fixed-effect model matrix, aliased columns dropped.
    fixef_names
        Its column names, lme4-style.
    x_spec
        formulaic's frozen spec for X (replayed on new data).
    x_columns
        formulaic's names of the columns of X that were kept.
    blocks
        Random-effect blocks in lme4's order (most levels first).
    rows
        Index labels of the data rows used.
    dropped_rows
        How many rows were dropped for missing values.
    dropped_columns
        Fixed-effect columns dropped as aliased.
    data_name
        The data's name for printing (``df.attrs["name"]`` or ``"data"``).
    frame
        A copy of the columns the formula uses, rows as fitted (for plots and
        typical values of predictors); the user's DataFrame is never kept.
    model_frame
        The formula's variables and their transforms' recorded state
        (centring, polynomial coefficients, levels), replayed on new data.
    x_variables
        Labels of the model-frame variables the fixed part uses.
    trials
        Binomial trials per row (``cbind(s, f)``'s ``s + f``, or ``weights=`` with a
        proportion); None: one each, or not a binomial family. ``y`` then holds the
        successes.
    weights
        Prior weights per row (Gaussian: precisions, as lmer's); None: all one.
    offset
        The linear predictor's known part per row (the formula's ``offset()`` terms
        plus ``offset=``); None: none.
    offset_terms
        The labels of the formula's ``offset()`` terms, evaluated again on new data.
    """

    formula: ParsedFormula
    family: Family
    y: np.ndarray
    X: np.ndarray
    fixef_names: list[str]
    x_spec: Any
    x_columns: list[str]
    blocks: list[RandomBlock]
    rows: pd.Index
    response_label: str
    residual: ResidualModel
    dropped_rows: int = 0
    dropped_columns: list[str] = field(default_factory=list)
    data_name: str = "data"
    frame: pd.DataFrame | None = None
    model_frame: ModelFrame | None = None
    x_variables: list[str] = field(default_factory=list)
    trials: np.ndarray | None = None
    weights: np.ndarray | None = None
    offset: np.ndarray | None = None
    offset_terms: list[str] = field(default_factory=list)
    # what update() refits from: the data as given (a reference, never copied or changed) and
    # the other arguments of build_design as given
    source: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    settings: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_obs(self) -> int:
        return len(self.y)

    @property
    def intercept(self) -> bool:
        return "(Intercept)" in self.fixef_names

    def block(self, group: str) -> RandomBlock:
        """The block with unique name ``group`` (``"Subject"``, ``"Subject.1"``)."""
        for b in self.blocks:
            if b.group == group:
                return b
        raise KeyError(f"No random-effect group '{group}'. Groups: {[b.group for b in self.blocks]}")

    def varcorr_index(self) -> list[tuple[str, str | None, str | None]]:
        """Rows of ``as.data.frame(VarCorr(m))`` as ``(grp, var1, var2)``, in lme4's order."""
        rows: list[tuple[str, str | None, str | None]] = []
        for b in self.blocks:
            rows += [(b.group, t, None) for t in b.terms]
            p = b.n_terms
            rows += [(b.group, b.terms[i], b.terms[j]) for i in range(p) for j in range(i + 1, p)]
        return rows + self.residual.varcorr_rows()

    def ngrps(self) -> dict[str, int]:
        """Number of levels of each grouping factor, as lme4's ``ngrps``."""
        out: dict[str, int] = {}
        for b in self.blocks:
            out.setdefault(b.factor, b.n_levels)
        return out


def _unique_names(names: list[str]) -> list[str]:
    """R's make.unique: Subject, Subject.1, Subject.2."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n in seen:
            seen[n] += 1
            out.append(f"{n}.{seen[n]}")
        else:
            seen[n] = 0
            out.append(n)
    return out


def build_design(
    formula: ParsedFormula,
    data: pd.DataFrame,
    family: str | Family = "gaussian",
    na_action: str = "omit",
    weights: Any = None,
    offset: Any = None,
    sigma: Any = None,
    correlation: Any = None,
    data_name: str | None = None,
) -> Design:
    """Evaluate a parsed formula on data.

    Parameters
    ----------
    formula
        From :func:`hierbayes.spec.formula.parse_formula`.
    data
        The data; it is never modified.
    family
        Response family (name or :class:`~hierbayes.families.Family`).
    na_action
        ``"omit"`` drops rows with a missing value in any column the formula
        uses (or in the weights or offset) and warns with the count;
        ``"raise"`` raises instead.
    weights
        Prior weights, as lmer's and glmer's ``weights``: a column name or one
        value per row. For a binomial family with a proportion response they
        are the trials.
    offset
        A known part of the linear predictor (as glmer's ``offset``), added to
        the formula's ``offset()`` terms: a column name or one value per row.
    sigma
        A one-sided formula for the log residual SD (``"~ occas"``: nlme's
        varIdent for one factor, varExp for a number), Gaussian only.
    correlation
        :func:`hierbayes.ar1` or :func:`hierbayes.car1`: serial correlation of
        the errors within groups, Gaussian only.
    data_name
        The name summaries print after ``Data:`` (lme4 prints the data
        argument's name); ``data.attrs["name"]`` when None, else ``data``.

    Returns
    -------
    Design

    Examples
    --------
    >>> import hierbayes as hb
    >>> from hierbayes.spec.formula import parse_formula
    >>> d = build_design(parse_formula("stress ~ age + (1 | hospital/ward)"),
    ...                  hb.datasets.load("nurses"))
    >>> [b.group for b in d.blocks]
    ['ward:hospital', 'hospital']
    """
    family = get_family(family)
    # the family's dispersion is the residual model's scale (iid: one sigma, or none)
    residual = IID(family.dispersion if family.residual_sd else None,
                   family.dispersion_label or "Residual")
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, not {type(data).__name__}.")
    if len(data) == 0:
        raise DataError("The data has no rows.")
    if na_action not in ("omit", "raise"):
        raise DataError(f"na_action must be 'omit' or 'raise', not {na_action!r}.")

    request = ResidualRequest(sigma, correlation, family)
    response_node = parse(formula.response)
    response_label = label(response_node)
    fixed = read_part(formula.fixed)
    parts = [read_part(t.expr) for t in formula.random]
    for term, part in zip(formula.random, parts, strict=True):
        if part.terms.offsets:
            raise FormulaError(f"offset() inside the random-effect term {term.source} has no "
                               "meaning; put it in the fixed part.")
    variables = {response_label: response_node, **fixed.terms.variables}
    for part in parts:
        variables.update(part.terms.variables)
    variables.update(request.variables)
    mf = ModelFrame(variables)
    response_vars = mf.columns([response_label])
    check_columns(response_vars, data, "response")
    fixed_vars = mf.columns(fixed.variables)
    check_columns(fixed_vars, data, "fixed part")
    for term, part in zip(formula.random, parts, strict=True):
        check_columns(mf.columns(part.variables), data, f"term {term.source}")
        check_columns(list(term.group), data, f"grouping factor of {term.source}")
    residual_columns = request.columns(mf)
    check_columns(residual_columns, data, "sigma= formula or correlation=")
    used = [c for c in dict.fromkeys(
        [*response_vars, *fixed_vars]
        + [v for t, p in zip(formula.random, parts, strict=True)
           for v in mf.columns(p.variables) + list(t.group)] + residual_columns
    ) if c in data.columns]

    frame = data.loc[:, used].copy()
    extra = pd.DataFrame(index=data.index)
    for what, value in (("weights", weights), ("offset", offset)):
        col = row_values(value, data, what)
        if col is not None:
            extra[f"({what})"] = col
    missing = pd.concat([frame.isna(), extra.isna()], axis=1)
    bad_rows = missing.any(axis=1)
    dropped = int(bad_rows.sum())
    if dropped:
        counts = missing.sum()
        detail = ", ".join(f"{c} ({int(k)})" for c, k in counts.items() if k)
        if na_action == "raise" or dropped == len(frame):
            raise DataError(
                f"{dropped} of {len(frame)} rows have missing values in columns the formula "
                f"uses: {detail}. Remove or impute them, or pass na_action='omit' to drop them."
            )
        warnings.warn(
            f"Dropped {dropped} of {len(frame)} rows with missing values ({detail}), "
            "as lme4's na.omit does.",
            HierbayesWarning,
            stacklevel=3,
        )
        frame = frame.loc[~bad_rows]
        extra = extra.loc[~bad_rows]
    for col in extra.columns:
        if np.isinf(extra[col].to_numpy()).any():
            raise DataError(f"{col[1:-1]}= has infinite values; remove or replace them first.")
    for col in frame.columns:
        values = frame[col]
        if pd.api.types.is_float_dtype(values):
            n_inf = int(np.isinf(values.to_numpy(dtype=float)).sum())
            if n_inf:
                raise DataError(
                    f"Column '{col}' has {n_inf} infinite values; remove or replace them first."
                )
        if isinstance(values.dtype, pd.CategoricalDtype):
            frame[col] = values.cat.remove_unused_categories()

    w = extra["(weights)"].to_numpy() if "(weights)" in extra else None
    y, trials, w = read_response(family, mf, frame, response_node, response_label, w)
    n = len(y)
    context = mf.evaluate(frame, [v for v in variables if v != response_label], fit=True)
    off = extra["(offset)"].to_numpy().copy() if "(offset)" in extra else None
    for lab in fixed.terms.offsets:
        # the model frame has refused non-finite values (a log of 0) already
        v = np.asarray(context[lab], dtype=float).reshape(-1)
        off = v.copy() if off is None else off + v
    mm = model_matrix_from(fixed, context, n, "fixed part")
    X = mm.to_numpy(dtype=float)
    names = [r_name(c) for c in mm.columns]
    keep = drop_aliased(X)
    dropped_cols = [n for j, n in enumerate(names) if j not in keep]
    if dropped_cols:
        warnings.warn(
            f"The fixed-effect model matrix is rank deficient, so {len(dropped_cols)} "
            f"column(s) were dropped: {', '.join(dropped_cols)} (as lme4 does). Remove "
            "aliased predictors from the formula to silence this.",
            HierbayesWarning,
            stacklevel=3,
        )
        X = X[:, keep]
        names = [names[j] for j in keep]

    blocks = []
    for term, part in zip(formula.random, parts, strict=True):
        zmm = model_matrix_from(part, context, n, f"random-effect term {term.source}")
        if zmm.shape[1] == 0:
            raise FormulaError(f"The term {term.source} has no columns: nothing varies by group.")
        if term.from_double_bar and zmm.shape[1] > 1:
            raise FormulaError(
                f"'||' in {term.source} gives the term '{term.expr}' {zmm.shape[1]} columns "
                "(a factor): lme4 would silently keep them correlated. Write "
                f"(1 | {term.group_name}) + (1 | {term.group_name}:<factor>) for "
                "uncorrelated level effects, or use '|' for a correlated block."
            )
        check_structure(term, [r_name(c) for c in zmm.columns], family)
        index, levels = factor_codes(frame, term.group)
        blocks.append(
            RandomBlock(
                group=term.group_name,
                factor=term.group_name,
                terms=[r_name(c) for c in zmm.columns],
                levels=levels,
                index=index,
                Z=zmm.to_numpy(dtype=float),
                spec=zmm.model_spec,
                term=term,
                variables=part.variables,
            )
        )
    # lme4 (mkReTrms, reorder.terms = TRUE) puts factors with more levels first; a stable sort.
    blocks.sort(key=lambda b: -b.n_levels)
    for b, name in zip(blocks, _unique_names([b.factor for b in blocks]), strict=True):
        b.group = name
    n = len(y)
    for b in blocks:
        if b.n_levels < 2:
            raise DataError(
                f"The grouping factor '{b.factor}' has only {b.n_levels} level in the data used; "
                "a group-level SD needs at least two groups. Drop the term "
                f"{b.term.source} or check the column."
            )
        if residual.has_scale and b.n_levels >= n:
            raise DataError(
                f"The grouping factor '{b.factor}' has {b.n_levels} levels for {n} observations: "
                "each observation is its own group, so its variance cannot be told apart from "
                f"the residual variance. Drop the term {b.term.source}."
            )
        # lme4's check.nobs.vs.nRE; glmmTMB's structures have few parameters and no such check
        if residual.has_scale and n <= b.n_levels * b.n_terms and b.term.structure == "us":
            raise DataError(
                f"The number of observations ({n}) is not more than the number of random "
                f"effects ({b.n_levels * b.n_terms}) for the term {b.term.source}; its "
                "parameters and the residual variance are probably unidentifiable. "
                "Simplify the term."
            )
    residual = build_residual(request, family, frame, context, blocks) or residual
    return Design(
        formula=formula,
        family=family,
        y=y,
        X=X,
        fixef_names=names,
        x_spec=mm.model_spec,
        x_columns=[str(mm.columns[j]) for j in keep],
        blocks=blocks,
        rows=frame.index,
        response_label=response_label,
        residual=residual,
        dropped_rows=dropped,
        dropped_columns=dropped_cols,
        data_name=str(data_name if data_name is not None else data.attrs.get("name", "data")),
        frame=frame,
        model_frame=mf,
        x_variables=[v for v in fixed.variables if v not in fixed.terms.offsets],
        trials=trials,
        weights=w,
        offset=off,
        offset_terms=list(fixed.terms.offsets),
        source=data,
        settings={"family": family, "na_action": na_action, "weights": weights, "offset": offset,
                  "sigma": sigma, "correlation": correlation, "data_name": data_name},
    )
