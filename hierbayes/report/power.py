"""Power by simulation, as R's simr (Green and MacLeod 2016): ``powerSim`` and ``powerCurve``.

:func:`power` simulates ``n_sims`` data sets from a model (a fit's estimates,
with fixed effects, SDs or sigma replaced as simr's ``fixef<-``,
``VarCorr<-`` and ``sigma<-``; or a model specified with
:func:`hierbayes.report.power_design.power_design`), refits each and tests
one fixed effect; the power is the share of p-values below ``alpha``, with
the exact Clopper-Pearson interval simr gives (``binom.test``). With
``along="Subject", levels=[10, 20, 40]`` it is ``powerCurve``: at each number
of subjects the data are the first subjects' rows, or the subjects' rows
copied under new labels where more are asked for than there are (simr's
``extend``, :func:`hierbayes.report.power_sim.extend_data`).

The tests: ``"lrt"`` (simr's ``fixed(x, "lr")``: ML refits with and without
the term, chi-squared on the columns dropped), ``"satterthwaite"`` and
``"kenward-roger"`` (t tests of the coefficient with lmerTest's or pbkrtest's
df), ``"z"`` (glmer's Wald z; for lmer, t read as z), or a function of a fit
returning a p-value. The simulations run through
:func:`hierbayes.execution.run_tasks`: the same numbers serially, on a
process pool or a Dask cluster. Each level's simulations are its own (simr's
curve reuses one set of simulations, cut at each break); the intervals are
per level either way.

Examples
--------
>>> import hierbayes as hb
>>> fit = hb.lmer("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
>>> p = power(fit, effect={"Days": 2.0}, n_sims=20, seed=1, progressbar=False)
>>> list(p.table.columns)
['n_levels', 'nobs', 'n_sims', 'successes', 'power', 'conf_low', 'conf_high', 'errors', 'warnings']
>>> print(repr(p).splitlines()[0])
Power for predictor 'Days', (95% confidence interval):
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import ConvergenceWarning, DataError, HierbayesWarning, SettingsError
from hierbayes.execution import run_tasks
from hierbayes.report.power_sim import (
    TESTS,
    LevelPlan,
    PowerJob,
    PowerModel,
    check_number,
    extend_data,
    level_plan,
    model_from_fit,
    power_task,
)
from hierbayes.spec.design import Design, build_design
from hierbayes.spec.formula import parse_formula

#: The confidence level of the table's intervals (simr's; :meth:`PowerResult.confint` gives others).
CONF_LEVEL = 0.95
TEST_NAMES = {"lrt": "Likelihood ratio (ML refits with and without the term)",
              "satterthwaite": "t-test with Satterthwaite degrees of freedom (as lmerTest)",
              "kenward-roger": "t-test with Kenward-Roger degrees of freedom (as pbkrtest)",
              "z": "z-test"}


def clopper_pearson(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """The exact binomial interval (R's ``binom.test``, simr's ``"exact"``).

    Examples
    --------
    >>> [round(v, 7) for v in clopper_pearson(8, 10)]
    [0.4439045, 0.9747893]
    """
    from scipy.stats import beta

    a = 1.0 - level
    x, n = int(successes), int(trials)
    lo = 0.0 if x == 0 else float(beta.ppf(a / 2, x, n - x + 1))
    hi = 1.0 if x == n else float(beta.ppf(1 - a / 2, x + 1, n - x))
    return lo, hi


def _percent(x: float) -> str:
    # simr's as.percentage: "80.50%", and 100% as "100.0%"
    return "100.0" if x == 1 else f"{100 * x:5.2f}"


class PowerResult:
    """Simulated power, as simr's ``powerSim`` (one row) or ``powerCurve`` (a row per level).

    Attributes
    ----------
    table : pandas.DataFrame
        Per level: ``n_levels`` (of ``along``; rows per group with ``within``;
        the first grouping factor's levels without either), ``nobs``,
        ``n_sims``, ``successes`` (p-values below ``alpha``), ``power``,
        ``conf_low`` and ``conf_high`` (Clopper-Pearson; ``attrs
        ["conf_level"]``), ``errors`` (simulations whose refit failed:
        counted as no success, as simr counts them) and ``warnings``
        (simulations with a refit that failed lme4's convergence checks).
    pvalues : pandas.DataFrame
        Every simulation: ``n_levels``, ``sim``, ``p_value``, ``estimate`` (of
        the tested coefficient), ``warning`` and ``error``.
    """

    def __init__(self, table: pd.DataFrame, pvalues: pd.DataFrame, term: str | None, test: str,
                 effect: float | None, alpha: float, along: str | None, by: str | None,
                 elapsed: float) -> None:
        self.table, self.pvalues, self.term, self.test = table, pvalues, term, test
        self.effect, self.alpha, self.along, self.by, self.elapsed = effect, alpha, along, by, elapsed

    @property
    def power(self) -> float | pd.Series:
        """The power: one number, or a Series by ``n_levels`` for a curve."""
        if self.by is None:
            return float(self.table["power"].iloc[0])
        return self.table.set_index("n_levels")["power"]

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """Clopper-Pearson intervals at another level: ``conf_low``, ``conf_high`` by ``n_levels``."""
        check_number("level", level)
        if not 0 < level < 1:
            raise SettingsError(f"level must be between 0 and 1, not {level!r}.")
        ends = [clopper_pearson(x, n, level) for x, n in
                zip(self.table["successes"], self.table["n_sims"], strict=True)]
        out = pd.DataFrame(ends, columns=["conf_low", "conf_high"],
                           index=pd.Index(self.table["n_levels"], name="n_levels"))
        out.attrs["conf_level"] = float(level)
        return out

    def _title(self) -> str:
        return (f"Power for predictor '{self.term}'" if self.term is not None
                else "Power for the test")

    def _interval(self, row: Any) -> str:
        return (f"{_percent(row.power)}% ({_percent(row.conf_low).strip()}, "
                f"{_percent(row.conf_high).strip()})")

    def _counts(self) -> str:
        e, w = int(self.table["errors"].sum()), int(self.table["warnings"].sum())
        return f"({e} error{'' if e == 1 else 's'}, {w} warning{'' if w == 1 else 's'})"

    def __repr__(self) -> str:
        t = int(self.elapsed)
        elapsed = f"Time elapsed: {t // 3600} h {t // 60 % 60} m {t % 60} s"
        if self.by is None:
            row = next(self.table.itertuples())
            lines = [f"{self._title()}, (95% confidence interval):", f"      {self._interval(row)}",
                     "", f"Test: {TEST_NAMES.get(self.test, self.test)}"]
            if self.effect is not None:
                lines.append(f"      Effect size for {self.term} is {self.effect:#.2g}")
            lines += ["", f"Based on {row.n_sims} simulations, {self._counts()}", "", elapsed]
            return "\n".join(lines)
        lines = [f"{self._title()}, (95% confidence interval),", f"by {self.by}:"]
        lines += [f"{row.n_levels:>7}: {self._interval(row)} - {row.nobs} rows"
                  for row in self.table.itertuples()]
        return "\n".join([*lines, "", self._counts(), "", elapsed])

    def plot(self, target: float = 0.8, ax: Any = None) -> Any:
        """Power against ``n_levels`` with the intervals as bars and a line at ``target``
        (simr's ``plot(powerCurve)``); returns the Figure."""
        # a Figure without pyplot, as every plot of the package: a notebook shows it once
        from hierbayes.report.plots import panel_figure

        if ax is None:
            fig, (ax,) = panel_figure(1, panel=(6.0, 3.4))
        else:
            fig = ax.figure
        t = self.table
        x = t["n_levels"].to_numpy(dtype=float)
        y = t["power"].to_numpy()
        err = np.vstack([y - t["conf_low"].to_numpy(), t["conf_high"].to_numpy() - y])
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color="C0")
        if len(x) <= 12:
            ax.set_xticks(x)
        ax.axhline(target, linestyle="--", color="grey", linewidth=1)
        ax.set_ylim(0, 1)
        ax.set_xlabel(self.by or "number of levels")
        ax.set_ylabel(f"power (alpha = {self.alpha:g})")
        ax.set_title(self._title())
        return fig


def as_power_model(model: Any) -> PowerModel:
    """A :class:`PowerModel` from a fit (its estimates) or a specified model, else a clear error."""
    if isinstance(model, PowerModel):
        return model
    if hasattr(model, "posterior"):
        raise SettingsError("power() simulates and refits REML/ML and glmer models; for a "
                            "Bayesian fit's model, fit it with hb.lmer or hb.glmer, or specify "
                            "the parameters with hb.power_design.")
    if hasattr(type(model), "from_mermod") or hasattr(type(model), "from_glmermod"):
        return model_from_fit(model)
    raise SettingsError(f"power() takes an hb.lmer or hb.glmer fit, or a model from "
                        f"hb.power_design; not {type(model).__name__}.")


def fixed_terms(design: Design) -> list[str]:
    """The fixed part's term labels (``"Days"``, ``"x:g"``), without the intercept."""
    from hierbayes.spec.parts import read_part

    return [":".join(t) for t in read_part(design.formula.fixed).terms.labels]


def _design(model: PowerModel, formula: str, data: pd.DataFrame, n_levels: int | None,
            check: bool = True) -> Design:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = build_design(parse_formula(formula), data, **model.settings)
    if check and d.fixef_names != model.design.fixef_names:
        lost = [n for n in model.design.fixef_names if n not in d.fixef_names]
        raise DataError(f"With {n_levels} levels the fixed-effect column(s) {lost} cannot be "
                        "estimated (they are constant or aliased on those rows, e.g. every one "
                        "of the first groups in one condition); use more levels, or order the "
                        "data so that the first groups cover every condition.")
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return d


def resolve_term(model: PowerModel, term: str | None, test: str | Callable,
                 effect: dict | None) -> tuple[str | None, int | None, str | None, int]:
    """The tested term: ``(term, its column or None, the reduced formula or None, df)``."""
    from hierbayes.spec.update import update_formula

    names, labels = model.design.fixef_names, fixed_terms(model.design)
    if term is None:
        if effect is not None and len(effect) == 1:
            term = next(iter(effect))
        elif len(labels) == 1:
            term = labels[0]
        elif callable(test):
            return None, None, None, 0
        else:
            raise SettingsError(f"Name the fixed effect to test: term= one of {labels} (it "
                                "defaults to the only key of effect=).")
    if not isinstance(term, str):
        raise SettingsError(f"term must be a fixed-effect term's name, not {term!r}.")
    if term not in names and term not in labels:
        raise SettingsError(f"term {term!r} is not in the fixed part: its terms are {labels} "
                            f"and its coefficients {names}.")
    column = names.index(term) if term in names else None
    if term not in labels:
        if test == "lrt":
            raise SettingsError(f"test='lrt' drops a whole term of the formula; {term!r} is one "
                                f"coefficient, not a term ({labels}). Name its term, or use a "
                                "t or z test of the coefficient.")
        return term, column, None, 1
    formula = update_formula(model.design.formula.formula, f"~ . - {term}")
    reduced = _design(model, formula, model.data, None, check=False)
    dropped = [n for n in names if n not in reduced.fixef_names]
    if column is None and len(dropped) == 1:
        column = names.index(dropped[0])
    if test in ("satterthwaite", "kenward-roger", "z") and column is None:
        raise SettingsError(f"test={test!r} tests one coefficient; the term {term!r} has "
                            f"{len(dropped)} ({dropped}): name one of them as term=, or use "
                            "test='lrt' for the whole term.")
    if test == "lrt" and any(term in lab.split(":") for lab in labels if lab != term):
        warnings.warn(f"The main effect {term!r} is tested while the model has interactions "
                      "with it (as simr warns): the test drops its column(s) only.",
                      HierbayesWarning, stacklevel=3)
    return term, column, formula if test == "lrt" else None, len(dropped)


def default_levels(n: int) -> list[int]:
    """simr's ``tidySeq(3, n, 10)``: every level count from 3 to ``n``, or 10 of them spread."""
    if n < 3:
        return [n]
    if n - 3 + 1 <= 10:
        return list(range(3, n + 1))
    return sorted({int(v) for v in np.floor(np.linspace(3, n, 10) + 0.5)})


def _grouping_columns(design: Design) -> list[str]:
    return list(dict.fromkeys(c for b in design.blocks for c in b.term.group))


def check_curve(model: PowerModel, along: str | None, within: Any,
                levels: Sequence[int] | None) -> tuple[list[int] | None, str | None]:
    """The levels of the curve and the label of its axis, checked."""
    if along is not None and within is not None:
        raise SettingsError("Give along= or within=, not both (as simr's powerCurve).")
    if along is None and within is None:
        if levels is not None:
            raise SettingsError("levels= needs along= (a grouping factor) or within=.")
        return None, None
    grouping = _grouping_columns(model.design)
    if along is not None:
        factors = [b.term.group[0] for b in model.design.blocks if len(b.term.group) == 1]
        if along not in factors:
            raise SettingsError(f"along={along!r} must be a grouping factor of a random-effect "
                                f"term (one of {list(dict.fromkeys(factors))}).")
        present = len(factor_levels(model.data, along))
        by = f"number of levels in {along}"
    else:
        cols = [within] if isinstance(within, str) else list(within)
        bad = [c for c in cols if c not in model.data.columns]
        if bad or not cols:
            raise SettingsError(f"within= names columns of the data; {bad or within!r} "
                                f"{'is' if len(bad) == 1 else 'are'} not among them "
                                f"(grouping factors: {grouping}).")
        present = int(model.data.groupby(cols, observed=True).size().max())
        by = f"number of observations within {'+'.join(cols)}"
    levels = default_levels(present) if levels is None else levels
    if isinstance(levels, int | np.integer):
        levels = [int(levels)]
    out = []
    for k in levels:
        if isinstance(k, bool | np.bool_) or not isinstance(k, int | np.integer) or k < 2:
            raise SettingsError(f"levels must be whole numbers of at least 2, not {k!r}.")
        out.append(int(k))
    if len(set(out)) != len(out):
        raise SettingsError(f"levels has repeats: {list(levels)}.")
    return sorted(out), by


def factor_levels(data: pd.DataFrame, column: str) -> list[str]:
    from hierbayes.spec.grouping import factor_codes

    return factor_codes(data, (column,))[1]


def _plans(model: PowerModel, levels: list[int] | None, along: str | None, within: Any,
           reduced: str | None) -> list[LevelPlan]:
    formula = model.design.formula.formula
    if levels is None:
        red = None if reduced is None else _design(model, reduced, model.data, None, check=False)
        first = model.design.ngrps()[model.design.blocks[0].factor]
        return [level_plan(model, first, model.design, red)]
    plans = []
    nested = _grouping_columns(model.design)
    for k in levels:
        data = extend_data(model.data, k, along=along, within=within, nested=nested)
        design = _design(model, formula, data, k)
        red = None if reduced is None else _design(model, reduced, data, k, check=False)
        plans.append(level_plan(model, k, design, red))
    return plans


def power(model: Any, test: str | Callable = "lrt", effect: dict[str, float] | None = None,
          n_sims: int = 1000, along: str | None = None, levels: Sequence[int] | None = None,
          within: str | Sequence[str] | None = None, term: str | None = None,
          alpha: float = 0.05, sd: dict | None = None, cor: dict | None = None,
          sigma: float | None = None, seed: int | None = None, executor: Any = None,
          client: Any = None, n_jobs: int | None = 1, progressbar: bool = True) -> PowerResult:
    """Power by simulation, as simr's ``powerSim`` and (with ``along``) ``powerCurve``.

    Parameters
    ----------
    model
        An :func:`hierbayes.lmer` or :func:`hierbayes.glmer` fit (simulated
        from its estimates), or a model from
        :func:`hierbayes.report.power_design.power_design`.
    test
        ``"lrt"`` (default), ``"satterthwaite"``, ``"kenward-roger"``, ``"z"``,
        or a function of a refit (an :class:`~hierbayes.LmerFit` fitted as the
        model is, or a :class:`~hierbayes.GlmerFit`) returning a p-value; with
        workers it must be picklable (defined at module level).
    effect
        Fixed effects to simulate with instead (simr's ``fixef(m)["x"] <- v``):
        ``{"Days": 5.0}``.
    n_sims
        Simulations per level (simr's ``nsim``, 1000).
    along, levels
        powerCurve: the grouping factor whose number of levels varies, and
        those numbers (default simr's: 3 to the levels present, at most 10).
        More levels than present copy the levels' rows under new labels.
    within
        Instead of ``along``: the column(s) whose groups get ``levels`` rows each.
    term
        The fixed effect tested: a term of the formula (``"Days"``, ``"x:g"``)
        or, for the t and z tests, one coefficient (``"groupB"``); defaults to
        the only key of ``effect``, or the only term.
    alpha
        The significance level.
    sd, cor, sigma
        Variance components to simulate with instead (simr's ``VarCorr<-``
        and ``sigma<-``): ``sd={"Subject": [24, 6]}``, ``cor={"Subject": 0.1}``.
    seed, executor, client, n_jobs, progressbar
        As :func:`hierbayes.execution.run_tasks`: the same seed gives the same
        result wherever the simulations run.

    Returns
    -------
    PowerResult
    """
    started = time.perf_counter()
    pm = as_power_model(model)
    if effect is not None and not isinstance(effect, dict):
        raise SettingsError(f"effect must be a dict of fixed effects' values, not {effect!r}.")
    for what, value in (("sd", sd), ("cor", cor)):
        if value is not None and not isinstance(value, dict):
            raise SettingsError(f"{what} must be a dict by group ({{'Subject': ...}}), "
                                f"not {value!r}.")
    pm = pm.changed(effect, sd, cor, sigma)
    if not callable(test) and test not in TESTS:
        raise SettingsError(f"test must be one of {list(TESTS)} or a function of a fit "
                            f"returning a p-value; not {test!r}.")
    if test in ("satterthwaite", "kenward-roger") and not pm.is_lmer:
        raise SettingsError(f"test={test!r} is a t test of an lmer model; test a glmer "
                            "model's coefficient with 'z' or 'lrt'.")
    if test == "kenward-roger" and not pm.reml:
        raise SettingsError("Kenward-Roger's test is for REML fits; refit with reml=True or "
                            "use 'satterthwaite'.")
    alpha = check_number("alpha", alpha)
    if not 0 < alpha < 1:
        raise SettingsError(f"alpha must be between 0 and 1, not {alpha!r}.")
    from hierbayes.errors import check_count

    check_count("n_sims", n_sims)
    term, column, reduced, df = resolve_term(pm, term, test, effect)
    levels, by = check_curve(pm, along, within, levels)
    if callable(test) and (n_jobs != 1 or executor is not None or client is not None):
        import pickle

        try:
            pickle.dumps(test)
        except Exception as err:
            raise SettingsError("With workers the test function must be picklable (a function "
                                f"defined at module level, not a lambda); or use n_jobs=1. "
                                f"({err})") from err
    plans = _plans(pm, levels, along, within, reduced)
    job = PowerJob(plans=plans, beta=pm.beta, sigma=pm.sigma, shape=pm.shape, reml=pm.reml,
                   nAGQ=pm.nAGQ, information=pm.information, test=test, column=column, df=df,
                   wrap=pm.wrap)
    items = [(i, s) for i in range(len(plans)) for s in range(n_sims)]
    out = run_tasks(power_task, items, shared=job, seed=seed, executor=executor, client=client,
                    n_jobs=n_jobs, progressbar=progressbar, label="Power simulations")
    return _result(plans, items, out, term, test, pm, column, alpha, along, by,
                   time.perf_counter() - started)


def _result(plans: list[LevelPlan], items: list, out: list, term: str | None, test: Any,
            pm: PowerModel, column: int | None, alpha: float, along: str | None,
            by: str | None, elapsed: float) -> PowerResult:
    pv = pd.DataFrame({"n_levels": [plans[i].n_levels for i, _ in items],
                       "sim": [s for _, s in items],
                       "p_value": [r[0] for r in out], "estimate": [r[1] for r in out],
                       "warning": [r[2] for r in out], "error": [r[3] for r in out]})
    rows = []
    for plan, (k, part) in zip(plans, pv.groupby("n_levels", sort=False), strict=True):
        failed = part["error"].notna()
        if failed.all():
            raise DataError(f"Every refit at n_levels={k} failed; the first: "
                            f"{part['error'].iloc[0]}")
        x, n = int((part["p_value"] < alpha).sum()), len(part)
        lo, hi = clopper_pearson(x, n, CONF_LEVEL)
        rows.append({"n_levels": k, "nobs": plan.design.n_obs, "n_sims": n, "successes": x,
                     "power": x / n, "conf_low": lo, "conf_high": hi,
                     "errors": int(failed.sum()), "warnings": int(part["warning"].sum())})
    table = pd.DataFrame(rows)
    table.attrs.update({"conf_level": CONF_LEVEL, "alpha": alpha})
    errors, warned = int(table["errors"].sum()), int(table["warnings"].sum())
    if errors:
        first = pv["error"].dropna().iloc[0]
        warnings.warn(f"In {errors} of {len(pv)} simulations a refit failed; they count as no "
                      f"rejection (as simr counts them). The first: {first}", HierbayesWarning,
                      stacklevel=3)
    if warned:
        warnings.warn(f"In {warned} of {len(pv)} simulations a refit did not pass lme4's "
                      "convergence checks (their p-values are kept, as simr keeps them).",
                      ConvergenceWarning, stacklevel=3)
    effect = None if column is None else float(pm.beta[column])
    name = test if isinstance(test, str) else getattr(test, "__name__", "the user's test")
    return PowerResult(table, pv, term, name, effect, alpha, along, by, elapsed)
