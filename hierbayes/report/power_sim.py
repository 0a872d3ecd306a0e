"""Power by simulation, the engine behind :func:`hierbayes.report.power.power`: the model, the data, one simulation.

* :class:`PowerModel`: what a power analysis simulates from: a design on the
  planned data and the parameters' values (fixed effects, each term's
  covariance of group effects, sigma or the negative binomial's shape), taken
  from a fit (:func:`model_from_fit`, simr's default) or specified
  (:func:`hierbayes.report.power_design.power_design`, simr's ``makeLmer``).
* :func:`extend_data`: the data with ``n`` levels of a grouping factor (or
  ``n`` rows within each group), as simr's ``extend`` and ``powerCurve``'s
  breaks: the first ``n`` levels kept, or the levels' rows copied in turn
  under new labels.
* :func:`power_task`: one simulation, as :func:`hierbayes.execution.run_tasks`
  runs it: a response with new group effects and noise
  (:func:`simulate_response`), refitted and tested; its p-value.

Examples
--------
>>> import pandas as pd
>>> d = pd.DataFrame({"g": ["a", "a", "b", "b"], "x": [0, 1, 0, 1]})
>>> extend_data(d, 3, along="g")["g"].tolist()
['a', 'a', 'b', 'b', 'a.1', 'a.1']
>>> extend_data(d, 1, along="g")["g"].tolist()
['a', 'a']
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import ConvergenceWarning, DataError, SettingsError
from hierbayes.linalg.linpred import linear_predictor
from hierbayes.spec.design import Design
from hierbayes.spec.grouping import factor_codes

#: Hidden columns that carry weights or offsets given as arrays along with their rows.
CARRIED = {"weights": ".power_weights", "offset": ".power_offset"}
#: The built-in tests.
TESTS = ("lrt", "satterthwaite", "kenward-roger", "z")


@dataclass
class PowerModel:
    """A model to simulate from: a design on the planned data and its parameters' values.

    Attributes
    ----------
    design
        The model's design on ``data``.
    data
        The planned data: the rows the design uses (weights or offsets given
        as arrays ride along in hidden columns).
    settings
        :func:`hierbayes.spec.design.build_design`'s keywords (family, weights,
        offset, ...), to build the design again on other rows.
    beta
        Fixed effects, in ``design.fixef_names``'s order.
    covariances
        Each random-effect term's covariance matrix of group effects.
    sigma
        The residual SD (Gaussian) or lme4's ``sigma`` of a Gamma model; None
        for families without one.
    shape
        The negative binomial's shape; None for other families.
    reml, nAGQ, information
        How each simulated data set is refitted (REML or ML; glmer's settings).
    wrap
        Makes a report fit (:class:`~hierbayes.LmerFit`, ...) of an engine fit,
        for a user's test function.
    """

    design: Design
    data: pd.DataFrame
    settings: dict[str, Any]
    beta: np.ndarray
    covariances: list[np.ndarray]
    sigma: float | None = None
    shape: float | None = None
    reml: bool = True
    nAGQ: int = 1
    information: str = "expected"
    wrap: Callable | None = field(default=None, repr=False)

    @property
    def is_lmer(self) -> bool:
        """Whether refits are lmer's (a Gaussian model) rather than glmer's."""
        return bool(self.design.family.supports_reml)

    @property
    def fixef(self) -> pd.Series:
        """The fixed effects simulated with, by name."""
        return pd.Series(self.beta, index=self.design.fixef_names, name="estimate")

    def varcorr(self) -> pd.DataFrame:
        """The SDs and correlations simulated with, one row each (columns grp, var1, var2,
        sdcor), as ``as.data.frame(VarCorr(m))`` orders them."""
        rows = []
        for b, S in zip(self.design.blocks, self.covariances, strict=True):
            sd = np.sqrt(np.diag(S))
            rows += [(b.group, t, None, float(sd[i])) for i, t in enumerate(b.terms)]
            rows += [(b.group, b.terms[i], b.terms[j],
                      float(S[i, j] / (sd[i] * sd[j])) if sd[i] * sd[j] > 0 else 0.0)
                     for i in range(b.n_terms) for j in range(i + 1, b.n_terms)]
        if self.sigma is not None:
            rows.append(("Residual", None, None, float(self.sigma)))
        return pd.DataFrame(rows, columns=["grp", "var1", "var2", "sdcor"])

    def changed(self, effect: dict | None = None, sd: dict | None = None, cor: dict | None = None,
                sigma: float | None = None) -> PowerModel:
        """A copy with fixed effects (``effect``), SDs, correlations or sigma replaced (simr's
        ``fixef<-``, ``VarCorr<-`` and ``sigma<-``)."""
        beta = self.beta.copy()
        names = self.design.fixef_names
        for name, value in (effect or {}).items():
            if name not in names:
                raise SettingsError(f"effect names {name!r}, which is not a fixed-effect "
                                    f"coefficient of this model; they are {names}.")
            beta[names.index(name)] = check_number(f"effect[{name!r}]", value)
        covs = covariances_from(self.design, sd or {}, cor or {}, self.covariances)
        out = dataclasses.replace(self, beta=beta, covariances=covs)
        if sigma is not None:
            if self.sigma is None:
                raise SettingsError(f"sigma= is for families with a residual SD or scale; this "
                                    f"model's family is {self.design.family.name}.")
            out.sigma = check_number("sigma", sigma, positive=True)
        return out

    def __repr__(self) -> str:
        fe = ", ".join(f"{n} = {v:.4g}" for n, v in self.fixef.items())
        vc = self.varcorr()
        parts = [f"{r.grp} {'sd' if pd.isna(r.var2) else 'cor'}"
                 f"({r.var1 if pd.isna(r.var2) else f'{r.var1}, {r.var2}'}) = {r.sdcor:.4g}"
                 for r in vc.itertuples() if r.grp != "Residual"]
        tail = "" if self.sigma is None else f"; sigma = {self.sigma:.4g}"
        return (f"<PowerModel {self.design.formula.formula!r} on {self.design.n_obs} rows: "
                f"{fe}; {'; '.join(parts)}{tail}>")


def check_number(name: str, value: Any, positive: bool = False, minimum: float | None = None) -> float:
    """A finite real number (positive, or at least ``minimum``), else a SettingsError."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer |
                                                                  np.floating):
        raise SettingsError(f"{name} must be a number, not {value!r}.")
    v = float(value)
    if not np.isfinite(v) or (positive and v <= 0) or (minimum is not None and v < minimum):
        need = "positive" if positive else f"at least {minimum}" if minimum is not None else "finite"
        raise SettingsError(f"{name} must be a finite number, {need}; not {value!r}.")
    return v


def covariances_from(design: Design, sd: dict, cor: dict,
                     old: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """Each term's covariance from ``sd`` ({group: SD or SDs of its terms}) and ``cor`` ({group:
    a correlation of two terms, or the correlation matrix}); terms not named keep ``old``'s
    (or, without ``old``, must be named; correlations default to 0)."""
    groups = {b.group: b for b in design.blocks}
    for key in [*sd, *cor]:
        if key not in groups:
            raise SettingsError(f"sd= and cor= name random-effect terms by group, one of "
                                f"{list(groups)}; not {key!r}.")
    out = []
    for k, b in enumerate(design.blocks):
        before = None if old is None else np.asarray(old[k], dtype=float)
        if b.group not in sd and b.group not in cor:
            if before is None:
                raise SettingsError(f"sd= needs the SD of each term of {b.term.source} "
                                    f"(sd={{{b.group!r}: [{', '.join(b.terms)}]}}).")
            out.append(before)
            continue
        if (b.term.structure not in ("us", "diag")
                or (b.term.structure == "diag" and b.group in cor)):
            raise SettingsError(f"The term {b.term.source} has a {b.term.structure} structure; "
                                "its SDs and correlations cannot be set here (only an "
                                "unstructured term's, or a diag term's SDs).")
        if b.group in sd:
            raw = np.atleast_1d(np.asarray(sd[b.group], dtype=object))
            if raw.ndim != 1 or len(raw) != b.n_terms:
                raise SettingsError(f"sd[{b.group!r}] needs {b.n_terms} SD(s), one per term "
                                    f"({', '.join(b.terms)}); not {sd[b.group]!r}.")
            sds = np.array([check_number(f"sd[{b.group!r}]", v, minimum=0.0) for v in raw])
        elif before is not None:
            sds = np.sqrt(np.diag(before))
        else:
            raise SettingsError(f"cor[{b.group!r}] is given without sd[{b.group!r}].")
        out.append(_covariance(b, sds, cor.get(b.group), before))
    return out


def _covariance(b: Any, sds: np.ndarray, cor: Any, before: np.ndarray | None) -> np.ndarray:
    q = b.n_terms
    if cor is None:
        if before is not None and q > 1:
            s = np.sqrt(np.diag(before))
            with np.errstate(divide="ignore", invalid="ignore"):
                R = np.where(np.outer(s, s) > 0, before / np.outer(s, s), 0.0)
            np.fill_diagonal(R, 1.0)
        else:
            R = np.eye(q)
    elif np.ndim(cor) == 0:
        if q != 2:
            raise SettingsError(f"cor[{b.group!r}] is one number, which fits a term of two "
                                f"coefficients; {b.term.source} has {q}: give the {q} x {q} "
                                "correlation matrix.")
        r = check_number(f"cor[{b.group!r}]", cor)
        R = np.array([[1.0, r], [r, 1.0]])
    else:
        R = np.asarray(cor, dtype=float)
        if R.shape != (q, q) or not np.allclose(R, R.T) or not np.allclose(np.diag(R), 1.0):
            raise SettingsError(f"cor[{b.group!r}] must be a symmetric {q} x {q} correlation "
                                "matrix with ones on its diagonal.")
    if np.any(np.abs(R) > 1) or np.linalg.eigvalsh(R).min() < -1e-10:
        raise SettingsError(f"cor[{b.group!r}] is not a valid correlation matrix (it must be "
                            "positive semi-definite, every entry in [-1, 1]).")
    return R * np.outer(sds, sds)


def model_from_fit(fit: Any) -> PowerModel:
    """The model a REML/ML or glmer fit estimated, to simulate from (simr's default)."""
    from hierbayes.report.bootstrap import type_of

    d = fit.design
    if d.source is None:
        raise DataError("This fit does not hold the data it was fitted to; refit it, or use "
                        "power_design() with the planned data and the parameters' values.")
    if not d.residual.is_iid:
        raise SettingsError("power() simulates independent residuals; a fit with sigma= or "
                            "correlation= (a residual structure) is not supported yet.")
    data = rows_used(d)
    settings = dict(d.settings)
    data, settings = carry_arrays(data, settings, d.source)
    fam = d.family
    sigma = float(fit.sigma) if (fam.residual_sd or fam.name == "gamma") else None
    shape = float(fit.dispersion) if fam.name == "negbinomial" else None
    glmer = not fam.supports_reml
    return PowerModel(design=d, data=data, settings=settings,
                      beta=np.asarray(fit.estimates.beta, dtype=float).copy(),
                      covariances=[np.asarray(S, dtype=float) for S in fit.covariance()],
                      sigma=sigma, shape=shape, reml=bool(getattr(fit, "reml", True)),
                      nAGQ=int(fit.nAGQ) if glmer else 1,
                      information=(fit.deviance_function.response.information if glmer
                                   else "expected"),
                      wrap=type_of(fit))


def rows_used(d: Design) -> pd.DataFrame:
    """The data as given, restricted to the rows the design used."""
    src = d.source
    if src.index.is_unique:
        return src.loc[d.rows]
    if d.dropped_rows == 0:
        return src.reset_index(drop=True)
    raise DataError("The data's index has repeated labels and rows were dropped for missing "
                    "values, so the rows used cannot be found again; fit to data with a unique "
                    "index (df.reset_index(drop=True)).")


def carry_arrays(data: pd.DataFrame, settings: dict, source: pd.DataFrame
                 ) -> tuple[pd.DataFrame, dict]:
    """Weights or offsets given as arrays become hidden columns, so that they follow their rows
    when the data are restricted or extended."""
    settings = dict(settings)
    for what, column in CARRIED.items():
        value = settings.get(what)
        if value is None or isinstance(value, str):
            continue
        full = np.asarray(value, dtype=float)
        # rows_used: the rows used by label where labels are unique, else every row in order
        rows = (source.index.get_indexer(data.index) if source.index.is_unique
                else np.arange(len(data)))
        data = data.assign(**{column: full[rows]})
        settings[what] = column
    return data, settings


def _copy_labels(values: pd.Series, copy: int, name: str) -> pd.Series:
    """``values`` as copy number ``copy`` (1, 2, ...) of their rows: labels no other copy has.

    Numbers move by ``copy`` times their range (integers stay integers); other labels get
    R's make.unique suffix, ``"308.1"``.
    """
    if pd.api.types.is_bool_dtype(values):
        raise DataError(f"The grouping factor '{name}' is boolean; its levels cannot be copied "
                        "under new labels. Use integer or string labels.")
    if isinstance(values.dtype, pd.CategoricalDtype):
        cats = values.cat.categories
        new = _copy_labels(pd.Series(cats, dtype=cats.dtype), copy, name)
        return pd.Series(pd.Categorical.from_codes(values.cat.codes, categories=new.to_numpy()),
                         index=values.index)
    if pd.api.types.is_numeric_dtype(values):
        span = values.max() - values.min() + 1
        return values + copy * span
    return values.astype(str) + f".{copy}"


def _nested(data: pd.DataFrame, column: str, key: pd.Series) -> bool:
    """Whether every level of ``column`` lies within one value of ``key`` (nested in it)."""
    return bool((key.groupby(data[column].to_numpy(), observed=True).nunique() <= 1).all())


def extend_data(data: pd.DataFrame, n: int, along: str | None = None,
                within: str | Sequence[str] | None = None, nested: Sequence[str] = ()
                ) -> pd.DataFrame:
    """The data with ``n`` levels of ``along`` (or ``n`` rows within each group of ``within``).

    As simr's ``extend`` and ``powerCurve``: with ``n`` at most the levels
    present, the rows of the first ``n`` levels (in R's level order: a
    categorical's own, else sorted); with more, the levels' rows are copied in
    turn (level ``L + 1`` copies the first, and so on) under new labels:
    numbers moved past the range (``1..18`` copied as ``19..36``), other
    labels with R's make.unique suffix (``"308.1"``). With ``within``, the
    first ``n`` rows of each group (in the data's order), or its rows'
    replicates copied in turn (simr's ``within=``).

    Parameters
    ----------
    data
        The planned or fitted data.
    n
        Levels of ``along`` (or rows per group of ``within``) wanted.
    along, within
        One of them: a column of grouping labels, or the column(s) whose
        groups get ``n`` rows each.
    nested
        Other grouping columns: those whose levels lie within one level of
        ``along`` (within one row slot of a ``within`` group) are new groups in
        a copy, so they get new labels too (wards of a copied hospital).

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"s": [1, 1, 2, 2], "t": [0, 1, 0, 1]})
    >>> extend_data(d, 3, along="s")["s"].tolist()
    [1, 1, 2, 2, 3, 3]
    >>> extend_data(d, 3, within="s")["t"].tolist()
    [0, 1, 0, 1, 0, 0]
    """
    if (along is None) == (within is None):
        raise SettingsError("Give one of along= (a grouping factor) or within= (groups whose "
                            "rows are counted).")
    if along is not None:
        codes, labels = factor_codes(data, (along,))
        slot, size, key = pd.Series(codes, index=data.index), len(labels), data[along]
        cols = [along]
        relabel = [along]
    else:
        cols = [within] if isinstance(within, str) else list(within)
        slot = data.groupby(cols, sort=False, observed=True).cumcount()
        size, relabel = int(slot.max()) + 1, []
        key = pd.Series(list(zip(*(data[c] for c in cols), slot, strict=True)), index=data.index)
    if n <= size:
        return data.loc[(slot < n).to_numpy()]
    relabel += [c for c in dict.fromkeys(nested) if c not in cols and _nested(data, c, key)]
    pieces = [data]
    for j in range(size, n):
        piece = data.loc[(slot == j % size).to_numpy()].copy()
        for c in relabel:
            piece[c] = _copy_labels(data[c], j // size, c).loc[piece.index]
        pieces.append(piece)
    out = pd.concat(pieces, ignore_index=True)
    for c in relabel:
        if isinstance(data[c].dtype, pd.CategoricalDtype):
            # the copies' labels after the originals' categories, in the order the copies came
            cats = list(dict.fromkeys(
                [*data[c].cat.categories, *(v for p in pieces[1:] for v in p[c].astype(object))]))
            out[c] = pd.Categorical(pd.concat([p[c].astype(object) for p in pieces],
                                              ignore_index=True), categories=cats)
    return out


@dataclass
class LevelPlan:
    """One point of the curve: the design on its data, the reduced one a likelihood-ratio test
    compares it with, each term's Cholesky factor of its covariance (in this design's order of
    terms, which follows their numbers of levels) and lme4's theta there (where refits start)."""

    n_levels: int | None
    design: Design
    reduced: Design | None
    chol: list[np.ndarray]
    start: np.ndarray | None = None


def level_plan(model: PowerModel, n_levels: int | None, design: Design,
               reduced: Design | None) -> LevelPlan:
    """The plan of a design of the model's formula on other rows: its terms matched to the
    model's by group name (lme4 orders the terms by their numbers of levels, which the rows
    change)."""
    by_group = {b.group: (b.terms, S) for b, S in
                zip(model.design.blocks, model.covariances, strict=True)}
    chol = []
    for b in design.blocks:
        terms, S = by_group.get(b.group, (None, None))
        if terms != b.terms:
            raise DataError(f"With {n_levels} levels the random-effect term {b.term.source} has "
                            f"the columns {b.terms}, not the model's {terms}; use more levels.")
        chol.append(np.linalg.cholesky(S + 1e-12 * np.eye(len(S))))
    start = start_theta(design, chol, model.sigma) if model.is_lmer else None
    return LevelPlan(n_levels, design, reduced, chol, start)


@dataclass
class PowerJob:
    """What every simulation needs (sent once per batch): the plans and the parameters."""

    plans: list[LevelPlan]
    beta: np.ndarray
    sigma: float | None
    shape: float | None
    reml: bool
    nAGQ: int
    information: str
    test: str | Callable
    column: int | None
    df: int
    wrap: Callable | None = field(default=None, repr=False)


def start_theta(design: Design, chol: list[np.ndarray], sigma: float | None) -> np.ndarray | None:
    """lme4's theta at the simulated parameters, where a refit starts (None: lme4's start, for
    structured terms)."""
    from hierbayes.freq.deviance import tril_index

    if sigma is None or sigma <= 0 or any(b.term.structure != "us" for b in design.blocks):
        return None
    parts = []
    for L in chol:
        r, c = tril_index(len(L))
        parts.append(L[r, c] / sigma)
    return np.concatenate(parts)


def simulate_response(plan: LevelPlan, job: PowerJob, rng: np.random.Generator) -> np.ndarray:
    """A response with new group effects (N(0, each term's covariance)) and the family's noise.

    As lme4's ``simulate(formula, newparams =, newdata =)``, which simr's ``doSim`` calls.
    """
    design = plan.design
    effects = [(b.Z, b.index, rng.standard_normal((b.n_levels, b.n_terms)) @ L.T)
               for b, L in zip(design.blocks, plan.chol, strict=True)]
    eta = linear_predictor(design.X, job.beta, effects)
    if design.offset is not None:
        eta = eta + design.offset
    fam = design.family
    if fam.residual_sd:
        dispersion: np.ndarray | None = np.array([job.sigma])
    elif fam.name == "negbinomial":
        dispersion = np.array([job.shape])
    elif fam.name == "gamma":
        dispersion = np.array([1.0 / job.sigma**2])
    else:
        dispersion = None
    mean = fam.inverse_link(eta)[None]
    return fam.draw(rng, mean, dispersion, design.trials, design.weights)[0]


def _fit(job: PowerJob, design: Design, y: np.ndarray, reml: bool,
         start: np.ndarray | None) -> Any:
    from hierbayes.report.refit import glmm_engine_fit

    d = dataclasses.replace(design, y=y, frame=None)
    if d.family.supports_reml:
        from hierbayes.freq.fit import fit_design

        return fit_design(d, reml=reml, start=start)
    return glmm_engine_fit(d, nAGQ=job.nAGQ, information=job.information)


def p_value(job: PowerJob, full: Any, reduced: Any) -> float:
    """The built-in test's p-value from the refits."""
    from scipy import stats

    if job.test == "lrt":
        lr = max(2.0 * (full.loglik - reduced.loglik), 0.0)
        return float(stats.chi2.sf(lr, job.df))
    if job.test == "z":
        beta, V = full.estimates.beta, full.estimates.vcov_beta
        z = beta[job.column] / np.sqrt(V[job.column, job.column])
        return float(2 * stats.norm.sf(abs(z)))
    from hierbayes.freq.ddf import fixef_tests

    return float(fixef_tests(full, job.test)["Pr(>|t|)"].iloc[job.column])


def response_data(design: Design, y: np.ndarray) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The design's data and frame with the simulated response in the response's columns,
    where it is a column (or ``cbind`` of columns); else (None, the covariates), so that a
    refit's ``update`` refuses instead of refitting the planned response."""
    from hierbayes.report.bootstrap import covariate_frame
    from hierbayes.spec.rexpr import parse

    node = parse(design.formula.response)
    values: dict[str, np.ndarray] = {}
    if node.kind == "name":
        col = str(node.value)
        kind = design.source[col].dtype if col in design.source else None
        if kind is not None and pd.api.types.is_bool_dtype(kind):
            values[col] = y.astype(bool)
        elif kind is not None and pd.api.types.is_numeric_dtype(kind):
            values[col] = y if design.trials is None else y / design.trials
    elif node.kind == "call" and node.value == "cbind" and node.args[0].kind == "name":
        values[str(node.args[0].value)] = y
        if node.args[1].kind == "name":
            values[str(node.args[1].value)] = design.trials - y
    if not values or len(design.source) != design.n_obs:
        return None, covariate_frame(design)
    source, frame = design.source.copy(), design.frame.copy()
    for col, v in values.items():
        source[col] = v
        frame[col] = v
    return source, frame


def power_task(job: PowerJob, item: tuple[int, int], rng: np.random.Generator
               ) -> tuple[float, float, bool, str | None]:
    """One simulation (item: the plan's position, the simulation's number): ``(p_value,
    estimate, warned, error)``.

    A refit that raises is counted as an error (p-value NaN, as simr records
    it); lme4's convergence warnings are counted, not shown. An error in a
    user's test function is raised: it is a bug to fix, not a failed fit.
    """
    plan = job.plans[item[0]]
    y = simulate_response(plan, job, rng)
    callable_test = callable(job.test)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            lrt = job.test == "lrt"
            full = _fit(job, plan.design, y, job.reml and not lrt, plan.start)
            reduced = _fit(job, plan.reduced, y, False, plan.start) if lrt else None
            p = np.nan if callable_test else p_value(job, full, reduced)
            error = None
        except Exception as err:  # a failed refit is a result to count, as simr counts them
            return np.nan, np.nan, False, f"{type(err).__name__}: {err}"
    warned = False
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            warned = True
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if callable_test:
        report = job.wrap(full)
        source, frame = response_data(plan.design, y)
        report.design = dataclasses.replace(full.design, source=source, frame=frame)
        p = _user_p_value(job.test(report))
    est = np.nan if job.column is None else float(full.estimates.beta[job.column])
    return float(p), est, warned, error


def _user_p_value(value: Any) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        p = np.nan
    if not 0.0 <= p <= 1.0:
        raise SettingsError(f"The test function must return a p-value (a number in [0, 1]); it "
                            f"returned {value!r}.")
    return p
