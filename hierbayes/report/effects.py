"""Conditional effects of one predictor, as brms's ``conditional_effects``: a grid, its predictions, a plot.

The grid spans ``effect`` (``resolution`` points over its range if numeric,
its levels if categorical), optionally crossed with ``by`` (its levels, or
mean - SD, mean and mean + SD if numeric, as brms does for a numeric
interaction partner), every other predictor of the fixed part held at its
mean (numeric) or reference level (categorical) unless ``conditions`` sets
it, and an ``offset=`` argument at its mean. brms's ``effects = "Days:Sex"``
is ``effect="Days", by="Sex"`` here.

A Bayesian fit predicts each row's expected response (brms's default
``method = "posterior_epred"``) per posterior draw, without group effects
(``re_form="~0"``, brms's default ``re_formula = NA``): ``estimate`` is the
posterior mean (``point="median"``: median; brms's ``robust = TRUE`` default
gives medians), ``est_error`` the posterior SD, ``conf_low`` and
``conf_high`` the equal-tailed credible interval. ``kind="response"`` gives
prediction intervals of new observations, ``kind="link"`` the linear
predictor. A REML or glmer fit gets Wald intervals of the population mean:
``X beta +- z SE`` on the link scale from ``vcov(beta)``, through the inverse
link, with ``std_error`` the delta-method SE of the mean.

Examples
--------
>>> import hierbayes as hb
>>> fit = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy")).fit(
...     draws=300, tune=300, chains=2, seed=1, progressbar=False, check=False)
>>> ce = conditional_effects(fit, "Days", resolution=5)
>>> ce.frame.columns.tolist()
['Days', 'estimate', 'est_error', 'conf_low', 'conf_high']
>>> ce.frame["Days"].tolist()
[0.0, 2.25, 4.5, 6.75, 9.0]
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError, SettingsError, check_count
from hierbayes.report.fitted import is_bayes
from hierbayes.report.predict import blocks_in, offset_argument, prediction_rows

KINDS = ("mean", "response", "link")


def _categorical(values: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)


def _levels(values: pd.Series) -> list:
    if pd.api.types.is_bool_dtype(values):
        return [False, True]
    if isinstance(values.dtype, pd.CategoricalDtype):
        return list(values.cat.categories)
    return sorted(values.dropna().unique(), key=str)  # formulaic's order for text columns


def _typical(values: pd.Series) -> Any:
    """A held predictor's value: its mean if numeric, else its first (reference) level."""
    return _levels(values)[0] if _categorical(values) else float(values.mean())


@dataclass
class ConditionalEffects:
    """What :func:`conditional_effects` returns: the grid with its predictions, and a plot.

    Attributes
    ----------
    frame : pandas.DataFrame
        The effect column, the ``by`` column, the held columns, then ``estimate``,
        ``est_error`` (Bayesian; ``std_error`` for REML and glmer fits), ``conf_low``,
        ``conf_high``; ``attrs["conf_level"]`` is the interval's mass.
    effect, by : str
    """

    frame: pd.DataFrame
    effect: str
    by: str | None
    categorical: bool
    interval: str
    ylabel: str
    data: pd.DataFrame | None
    show_plot: bool = True

    def _groups(self) -> list[tuple[Any, pd.DataFrame]]:
        if self.by is None:
            return [(None, self.frame)]
        values = list(dict.fromkeys(self.frame[self.by]))
        return [(v, self.frame[self.frame[self.by] == v]) for v in values]

    def plot(self, data: bool = True):
        """A line and band (a point and interval for a categorical effect) per ``by`` value, over
        the data (``data=False`` leaves them out); returns a matplotlib Figure."""
        from hierbayes.report.plots import GREY, panel_figure

        fig, (ax,) = panel_figure(1, panel=(5.6, 4.0))
        groups = self._groups()
        levels = list(dict.fromkeys(self.frame[self.effect])) if self.categorical else None
        if data and self.data is not None:
            xs = self.data[self.effect]
            if self.categorical:
                pos = {v: i for i, v in enumerate(levels)}
                xs = xs.map(pos).to_numpy(dtype=float)
                xs = xs + np.random.default_rng(0).uniform(-0.15, 0.15, len(xs))
            colors: Any = GREY
            if self.by is not None and self.by in self.data and len(groups) == len(set(self.data[self.by])):
                index = {v: k for k, (v, _) in enumerate(groups)}  # each point in its level's colour
                colors = [f"C{index[v] % 10}" if v in index else GREY for v in self.data[self.by]]
            ax.scatter(xs, self.data["y"], s=6, c=colors, alpha=0.4, label="data")
        width = 0.5 / max(len(groups), 1)
        for k, (value, part) in enumerate(groups):
            color = f"C{k % 10}"
            label = (self.interval if self.by is None else
                     f"{self.by} = {value:.4g}" if isinstance(value, float) else f"{self.by} = {value}")
            est, lo, hi = (part[c].to_numpy(dtype=float) for c in ("estimate", "conf_low", "conf_high"))
            if self.categorical:
                x = np.arange(len(est)) + (k - (len(groups) - 1) / 2) * width
                ax.errorbar(x, est, yerr=[est - lo, hi - est], fmt="o", color=color, capsize=3,
                            label=label)
            else:
                x = part[self.effect].to_numpy(dtype=float)
                ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)
                ax.plot(x, est, color=color, lw=2, label=label)
        if self.categorical:
            ax.set_xticks(range(len(levels)), [str(v) for v in levels])
        ax.set_xlabel(self.effect)
        ax.set_ylabel(self.ylabel)
        by = f" by {self.by}" if self.by else ""
        ax.set_title(f"Conditional effect of {self.effect}{by} ({self.interval})", fontsize=10)
        ax.legend(fontsize=8)
        return fig

    def __repr__(self) -> str:
        by = f" by {self.by}" if self.by else ""
        return (f"Conditional effects of {self.effect}{by} ({self.interval}):\n"
                + self.frame.to_string(max_rows=20))

    def _repr_html_(self) -> str:
        import base64
        import io

        img = ""
        if self.show_plot:
            buf = io.BytesIO()
            self.plot().savefig(buf, format="png", dpi=80)
            img = f"<img src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'/>"
        return f"<div>{img}{self.frame.to_html(max_rows=20)}</div>"


def _check(fit: Any, effect: Any, by: Any, kind: str, prob: Any, point: str,
           conditions: Any, resolution: Any) -> None:
    if not isinstance(effect, str):
        raise SettingsError(f"effect must be the name of a predictor, such as 'Days', not {effect!r}.")
    if by is not None and not isinstance(by, str):
        raise SettingsError(f"by must be None or the name of a predictor, not {by!r}.")
    if by == effect:
        raise SettingsError(f"by names the effect itself ({effect!r}); choose another predictor.")
    if kind not in KINDS:
        raise SettingsError(f"kind must be one of {KINDS}, not {kind!r}.")
    if isinstance(prob, bool) or not isinstance(prob, int | float) or not 0 < prob < 1:
        raise SettingsError(f"prob must be a number between 0 and 1 (e.g. 0.95), not {prob!r}.")
    if point not in ("mean", "median"):
        raise SettingsError(f"point must be 'mean' or 'median', not {point!r}.")
    if conditions is not None and not isinstance(conditions, dict):
        raise SettingsError("conditions must be a dict of column names to the values to hold them "
                            f"at, such as {{'Sex': 'F'}}, not {type(conditions).__name__}.")
    if fit.design.frame is None:
        raise DataError("This fit keeps no data to build a grid from (a refit to a simulated "
                        "response); use the original fit.")


def effect_grid(fit: Any, effect: str, by: str | None = None, re_form: Any = "~0",
                resolution: int = 100, conditions: dict[str, Any] | None = None) -> pd.DataFrame:
    """The rows :func:`conditional_effects` predicts: ``effect`` (fastest) by ``by``, others held.

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
    >>> effect_grid(fit, "Days", resolution=3)["Days"].tolist()
    [0.0, 4.5, 9.0]
    """
    d = fit.design
    frame = d.frame
    known = set(frame.columns)
    fixed = [c for c in d.model_frame.columns(d.x_variables) if c in known]
    for name, what in ((effect, "effect"), (by, "by")):
        if name is not None and name not in fixed:
            raise DataError(f"{what}={name!r} is not a variable of the model's fixed part; "
                            f"it uses {fixed}.")
    held = [c for c in fixed if c not in (effect, by)]
    held += [c for c in d.model_frame.columns(d.offset_terms) if c in known and c not in held]
    groups: list[str] = []
    for blk, keep in zip(d.blocks, blocks_in(d, re_form), strict=True):
        if keep:
            held += [c for c in d.model_frame.columns(blk.variables) if c in known and c not in held
                     and c not in (effect, by)]
            groups += [g for g in blk.term.group if g not in groups]
    conditions = dict(conditions or {})
    unknown = [k for k in conditions if k not in held and k not in groups]
    if unknown:
        raise DataError(f"conditions names {unknown}, which the grid does not hold fixed; it "
                        f"holds {held + groups}.")
    absent = [g for g in groups if g not in conditions]
    if absent:
        raise DataError(f"re_form={re_form!r} keeps group effects of {absent}: name the level to "
                        f"predict for in conditions (e.g. {{{absent[0]!r}: ...}}), or use "
                        "re_form='~0' for population-level effects.")
    check_count("resolution", resolution, minimum=2)
    values = frame[effect]
    xs = (_levels(values) if _categorical(values)
          else list(np.linspace(float(values.min()), float(values.max()), resolution)))
    columns = {effect: xs}
    if by is not None:
        b = frame[by]
        if _categorical(b):
            columns[by] = _levels(b)
        else:
            mean, sd = float(b.mean()), float(b.std(ddof=1))
            columns[by] = [mean - sd, mean, mean + sd]
    order = list(columns)[::-1]  # product varies the last fastest: effect fastest, as expand.grid
    grid = pd.DataFrame(list(itertools.product(*(columns[c] for c in order))), columns=order)
    grid = grid[list(columns)]
    for c in held + groups:
        grid[c] = _condition(frame[c], c, conditions[c], c in groups) if c in conditions \
            else _typical(frame[c])
    for c in grid.columns:
        if isinstance(frame[c].dtype, pd.CategoricalDtype) and grid[c].isin(frame[c].cat.categories).all():
            grid[c] = pd.Categorical(grid[c], categories=frame[c].cat.categories)
    return grid


def _condition(values: pd.Series, column: str, value: Any, group: bool) -> Any:
    """A ``conditions`` value as the column's own level (``"308"`` for a level stored as 308)."""
    from hierbayes.spec.modelframe import level_label

    if not _categorical(values):
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise DataError(f"conditions sets the numeric column {column!r} to {value!r}; give a number.")
        return float(value)
    levels = _levels(values)
    hit = {level_label(v): v for v in levels}.get(level_label(value))
    if hit is None and not group:
        raise DataError(f"conditions sets {column!r} to {value!r}, which is not one of its levels "
                        f"{levels}.")
    return value if hit is None else hit  # an unseen group level: effects drawn from the population


def _wald(fit: Any, grid: pd.DataFrame, kind: str, prob: float, offset: Any) -> np.ndarray:
    """Estimate, SE and Wald interval of a REML or glmer fit's population mean at the grid."""
    from scipy import stats

    if kind == "response":
        raise SettingsError("kind='response' (prediction intervals) needs a Bayesian fit; a REML or "
                            "glmer fit gives intervals of the mean (kind='mean' or 'link').")
    rows = prediction_rows(fit.design, grid, "~0", offset=offset)
    est = fit.estimates
    eta = rows.X @ np.asarray(est.beta) + (0.0 if rows.offset is None else rows.offset)
    se = np.sqrt(np.einsum("ij,jk,ik->i", rows.X, np.asarray(est.vcov_beta), rows.X))
    z = stats.norm.ppf(0.5 + prob / 2)
    lo, hi = eta - z * se, eta + z * se
    if kind == "link":
        return np.column_stack([eta, se, lo, hi])
    link = fit.design.family.link
    return np.column_stack([link.linkinv(eta), np.abs(link.mu_eta(eta)) * se,
                            link.linkinv(lo), link.linkinv(hi)])


def conditional_effects(fit: Any, effect: str, by: str | None = None, re_form: Any = "~0",
                        prob: float = 0.95, resolution: int = 100, plot: bool = True,
                        conditions: dict[str, Any] | None = None, kind: str = "mean",
                        point: str = "mean", seed: int | None = None) -> ConditionalEffects:
    """The predicted response over one predictor, others held, as brms's ``conditional_effects``.

    Parameters
    ----------
    fit
        A :class:`hierbayes.BayesFit` (or a REML or glmer fit: Wald intervals, ``re_form="~0"``).
    effect, by
        Predictors of the fixed part: the one on the x axis, and one whose values give a line
        each (brms's ``effects = "effect:by"``).
    re_form
        ``"~0"`` (the default, brms's ``re_formula = NA``): no group effects; None or a
        formula keeps some, at the level ``conditions`` names for each grouping factor.
    prob
        Mass of the interval.
    resolution
        Points over a numeric effect's range.
    plot
        Whether a notebook shows the plot above the table (``.plot()`` draws it either way).
    conditions
        Values for held columns (and grouping factors), instead of means and reference levels.
    kind
        ``"mean"`` (expected response), ``"response"`` (new observations) or ``"link"``.
    point
        ``"mean"`` or ``"median"`` for ``estimate`` (Bayesian fits).
    seed
        Seed of ``kind="response"`` draws and of new levels' group effects.

    Returns
    -------
    ConditionalEffects
        ``.frame`` the grid and predictions, ``.plot()`` the Figure.

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
    >>> ce = conditional_effects(fit, "Days", resolution=2)
    >>> ce.frame.round(2).iloc[:, [0, 1, 3, 4]].values.tolist()
    [[0.0, 251.41, 238.03, 264.78], [9.0, 345.61, 316.94, 374.28]]
    """
    _check(fit, effect, by, kind, prob, point, conditions, resolution)
    if not isinstance(plot, bool):
        raise SettingsError(f"plot must be True or False, not {plot!r}.")
    bayes = is_bayes(fit)
    if not bayes and blocks_in(fit.design, re_form) != [False] * len(fit.design.blocks):
        raise SettingsError("A REML or glmer fit's conditional effects are population-level: "
                            "use re_form='~0' (the default).")
    grid = effect_grid(fit, effect, by, re_form, resolution, conditions)
    part = offset_argument(fit.design)
    offset = None if part is None else np.full(len(grid), float(np.mean(part)))
    try:
        if bayes:
            draws = fit.predict_draws(grid, re_form=re_form, kind=kind, seed=seed, offset=offset)
            q = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
            est = np.median(draws, axis=0) if point == "median" else draws.mean(axis=0)
            values = np.column_stack([est, draws.std(axis=0, ddof=1), q[0], q[1]])
        else:
            values = _wald(fit, grid, kind, prob, offset)
    except DataError as err:
        if "did not have" not in str(err):
            raise
        raise DataError(f"{err} (a numeric column that the formula uses as a factor, as in "
                        "factor(x), needs to be a categorical column of the data for a grid over "
                        "it or held at a typical value; or set it with conditions=)") from None
    out = grid.copy()
    cols = ["estimate", "est_error" if bayes else "std_error", "conf_low", "conf_high"]
    for k, c in enumerate(cols):
        out[c] = values[:, k]
    out.attrs["conf_level"] = float(prob)
    return ConditionalEffects(out, effect, by, _categorical(fit.design.frame[effect]),
                              _interval_name(bayes, kind, prob), _ylabel(fit, kind),
                              _data(fit, effect, by, kind), plot)


def _interval_name(bayes: bool, kind: str, prob: float) -> str:
    pct = f"{prob * 100:g}%"
    if not bayes:
        return f"{pct} Wald interval"
    return f"{pct} prediction interval" if kind == "response" else f"{pct} credible interval"


def _ylabel(fit: Any, kind: str) -> str:
    d = fit.design
    fam = d.family
    if kind == "link":
        return f"{d.response_label}: linear predictor ({fam.link.name} link)"
    if fam.name == "gaussian":
        return d.response_label
    what = "probability" if fam.name in ("binomial", "bernoulli") and kind == "mean" else kind
    return f"{d.response_label}: {what} ({fam.name})"


def _data(fit: Any, effect: str, by: str | None, kind: str) -> pd.DataFrame | None:
    """The fitted rows on the plot's scale (a binomial's proportions), None on the link scale."""
    d = fit.design
    if kind == "link":
        return None
    y = np.asarray(d.y, dtype=float)
    if d.trials is not None and kind == "mean":
        y = y / np.asarray(d.trials, dtype=float)
    cols = {effect: d.frame[effect].to_numpy(), "y": y}
    if by is not None:
        cols[by] = d.frame[by].to_numpy()
    return pd.DataFrame(cols)
