"""The plots analysts draw of a mixed model, for Bayesian and REML fits alike.

Every function takes a fit (:class:`~hierbayes.BayesFit` or
:class:`~hierbayes.LmerFit`) and returns a :class:`matplotlib.figure.Figure`
with titled, labelled axes; the fits' ``plot_*`` methods call them. Fits are
taken as they come: a fit whose ``posterior`` is a
:class:`~hierbayes.bayes.posterior.Posterior` is Bayesian, any other is a REML
or ML fit, so this module imports neither fit class (they import it). Figures
are built without pyplot, so a notebook shows each once and loops do not
pile up open figures; in a script, save them with ``fig.savefig(...)``.

Intervals are the posterior's equal-tailed credible intervals for a Bayesian
fit. For a REML fit they are conditional-SD intervals for group effects
(lme4's ``condVar``) and ``arm::sim`` draws for regression curves.

Examples
--------
>>> import hierbayes as hb
>>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> fig = fit.plot_caterpillar()
>>> [ax.get_title() for ax in fig.axes]
['Subject: (Intercept)', 'Subject: Days']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from hierbayes.errors import DataError
from hierbayes.linalg.linpred import linear_predictor
from hierbayes.report.fitted import fitted_mean, gaussian, is_bayes, quantile_residuals
from hierbayes.report.predict import formula_offset, offset_argument, prediction_rows
from hierbayes.spec.modelframe import level_label

GREY, PARTIAL, NONE, COMPLETE = "0.55", "C0", "C1", "C2"


def show_figures_in_notebook() -> None:
    """In a Jupyter kernel, have IPython draw a returned Figure as a PNG.

    The package builds its figures without pyplot, so the inline backend does
    not show them as well at the cell's end (a figure would appear twice); but
    IPython draws a bare Figure only once ``%matplotlib inline`` has registered
    the formatter, and without it a notebook shows ``<Figure size ...>``. This
    registers it, as ``%matplotlib inline`` would, where it is missing.
    """
    import sys

    if "ipykernel" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return
    from matplotlib.figure import Figure

    png = shell.display_formatter.formatters["image/png"]
    if Figure in png.type_printers:
        return
    from IPython.core.pylabtools import print_figure

    png.for_type(Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))


def detached(fig: Any, own: bool = True) -> Any:
    """A pyplot figure (ArviZ draws with pyplot) taken out of pyplot's list, so a notebook shows
    it once, as the returned value, and not again when the cell ends; ``own=False`` (the
    caller passed its own axes) leaves it where it is."""
    if own:
        import matplotlib.pyplot as plt

        plt.close(fig)
    show_figures_in_notebook()
    return fig


def panel_figure(n_panels: int, ncols: int | None = None, panel: tuple[float, float] = (3.6, 3.0),
                 sharex: bool = False, sharey: bool = False):
    """A constrained-layout Figure of ``n_panels`` axes, ``ncols`` to a row (spare axes removed)."""
    from matplotlib.figure import Figure

    show_figures_in_notebook()
    ncols = ncols or min(n_panels, 3)
    nrows = int(np.ceil(n_panels / ncols))
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey).ravel()
    for ax in axes[n_panels:]:
        fig.delaxes(ax)
    return fig, list(axes[:n_panels])


def _frame(fit: Any) -> pd.DataFrame:
    frame = fit.design.frame
    if frame is None:
        raise DataError("This fit keeps no data to plot (a refit to a simulated response); "
                        "plot the original fit instead.")
    return frame


def _factor(fit: Any, group: str | None) -> str:
    factors = list(fit.design.ngrps())
    if not factors:
        raise DataError("The model has no random-effect terms to plot.")
    if group is None:
        return factors[0]
    for b in fit.design.blocks:
        if group in (b.factor, b.group):
            return b.factor
    raise DataError(f"No grouping factor '{group}'. Factors: {factors}")


def _interval_name(fit: Any, prob: float) -> str:
    pct = f"{prob * 100:g}%"
    return f"{pct} credible interval" if is_bayes(fit) else f"{pct} interval (conditional SD)"


def group_effects(fit: Any, group: str | None = None, prob: float = 0.95) -> pd.DataFrame:
    """Each level's group effect with its interval: columns term, level, estimate, lower, upper."""
    factor = _factor(fit, group)
    if is_bayes(fit):
        r = fit.ranef(prob=prob, group=factor)
        return pd.DataFrame({"term": r["term"], "level": r["level"], "estimate": r["Estimate"],
                             "lower": r["conf_low"], "upper": r["conf_high"]})
    r = fit.ranef(cond_var=True)
    r = r[r["group"] == factor]
    z = stats.norm.ppf(0.5 + prob / 2)
    return pd.DataFrame({"term": r["term"], "level": r["level"], "estimate": r["Estimate"],
                         "lower": r["Estimate"] - z * r["Cond.SD"],
                         "upper": r["Estimate"] + z * r["Cond.SD"]}).reset_index(drop=True)


def plot_caterpillar(fit: Any, group: str | None = None, prob: float = 0.95,
                     max_labels: int = 60):
    """Each level's group effect with its interval, sorted, one panel per term.

    As lattice's ``dotplot(ranef(m, condVar = TRUE))``: every panel uses the
    order of the first term's estimates, so a level sits on the same row in
    each panel. Level names label the rows up to ``max_labels`` levels.
    """
    factor = _factor(fit, group)
    eff = group_effects(fit, factor, prob)
    terms = list(dict.fromkeys(eff["term"]))
    first = eff[eff["term"] == terms[0]].sort_values("estimate")
    order = {lv: i for i, lv in enumerate(first["level"])}
    n = len(order)
    fig, axes = panel_figure(len(terms), ncols=min(len(terms), 4), panel=(3.4, max(3.0, 0.16 * min(n, 80) + 1)),
                        sharey=True)
    for ax, term in zip(axes, terms, strict=True):
        e = eff[eff["term"] == term]
        y = e["level"].map(order).to_numpy()
        ax.axvline(0.0, color=GREY, lw=0.8, ls="--")
        ax.hlines(y, e["lower"], e["upper"], color=PARTIAL, lw=1.2)
        ax.scatter(e["estimate"], y, color=PARTIAL, s=14, zorder=3)
        ax.set_title(f"{factor}: {term}")
        ax.set_xlabel(f"group effect ({_interval_name(fit, prob)})")
    axes[0].set_ylabel(factor)
    if n <= max_labels:
        axes[0].set_yticks(range(n), list(order), fontsize=7 if n > 30 else 9)
    else:
        axes[0].set_yticks([])
    fig.suptitle(f"Group effects by {factor}, sorted by {terms[0]}")
    return fig


def _typical(frame: pd.DataFrame, column: str) -> Any:
    """A predictor's typical value: its mean if numeric, else its first (reference) level."""
    values = frame[column]
    if pd.api.types.is_bool_dtype(values):
        return False
    if pd.api.types.is_numeric_dtype(values):
        return float(values.mean())
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.categories[0]
    return sorted(values.unique(), key=str)[0]


def _grid(fit: Any, x: str, points: int = 50) -> tuple[pd.DataFrame, bool]:
    """Rows spanning ``x`` with every other column at its typical value; whether x is categorical."""
    frame = _frame(fit)
    if x not in frame.columns:
        raise DataError(f"'{x}' is not a column the model uses; it uses {list(frame.columns)}.")
    values = frame[x]
    categorical = not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
    if categorical:
        grid_x = (list(values.cat.categories) if isinstance(values.dtype, pd.CategoricalDtype)
                  else sorted(values.unique(), key=str))
    else:
        grid_x = np.linspace(values.min(), values.max(), points)
    grid = pd.DataFrame({x: grid_x})
    for col in frame.columns:
        if col != x:
            grid[col] = _typical(frame, col)
    if categorical and isinstance(values.dtype, pd.CategoricalDtype):
        grid[x] = pd.Categorical(grid[x], categories=values.cat.categories)
    return grid, categorical


def _x_positions(values: pd.Series, categorical: bool, levels: list) -> np.ndarray:
    if not categorical:
        return values.to_numpy(dtype=float)
    pos = {level_label(v): i for i, v in enumerate(levels)}
    return values.map(lambda v: pos[level_label(v)]).to_numpy(dtype=float)


def _ols_line(x: np.ndarray, y: np.ndarray, categorical: bool, grid_x: np.ndarray) -> np.ndarray:
    """Least-squares fit of y on x (a line, or cell means for a categorical x) at grid_x."""
    if categorical:
        out = np.full(len(grid_x), np.nan)
        for i, g in enumerate(grid_x):
            sel = x == g
            if sel.any():
                out[i] = y[sel].mean()
        return out
    if len(np.unique(x)) < 2:
        return np.full(len(grid_x), np.nan)
    slope, intercept = np.polyfit(x, y, 1)
    return intercept + slope * grid_x


def _predict_mean(fit: Any, newdata: pd.DataFrame, re_form: Any = None) -> np.ndarray:
    """The fitted mean at ``newdata`` (an ``offset=`` argument at its typical value)."""
    typical = _typical_offset(fit)
    off = None if typical is None else np.full(len(newdata), typical)
    if is_bayes(fit):
        return fit.predict(newdata, re_form=re_form, kind="mean", seed=0, offset=off)["Estimate"].to_numpy()
    if gaussian(fit):
        return fit.predict(newdata, re_form=re_form, offset=off).to_numpy()
    return fit.predict(newdata, type="response", re_form=re_form, offset=off).to_numpy()


def plot_groups(fit: Any, x: str, groups: list | None = None, group: str | None = None,
                pooling: tuple[str, ...] | None = None, max_groups: int = 20,
                ncols: int | None = None):
    """The data faceted by group, with fitted lines: partial, no and complete pooling.

    Parameters
    ----------
    x
        A predictor for the horizontal axis (numeric, or categorical: one
        position per level).
    groups
        Levels to show; the first ``max_groups`` levels when None.
    group
        The grouping factor (the first one when None).
    pooling
        Which lines to draw: ``"partial"`` (the mixed model's prediction for
        the group, other predictors at their means or reference levels),
        ``"none"`` (a least-squares line fitted to the group alone; other
        grouping factors' effects are left out of the partial-pooling line) and
        ``"complete"`` (one least-squares line through all the data). All three
        by default for a Gaussian model; a GLMM's panels show its data on the
        mean's scale (a binomial's proportions) with the partial-pooling curve
        only, least-squares lines being no fit of such data.
    """
    if pooling is None:
        pooling = ("partial", "none", "complete") if gaussian(fit) else ("partial",)
    unknown = set(pooling) - {"partial", "none", "complete"}
    if unknown:
        raise ValueError(f"pooling takes 'partial', 'none' and 'complete', not {sorted(unknown)}.")
    if not gaussian(fit) and set(pooling) - {"partial"}:
        raise ValueError(f"No- and complete-pooling lines are least-squares fits, defined for gaussian "
                         f"models; this is a {fit.design.family.name} model. Use pooling=('partial',).")
    factor = _factor(fit, group)
    frame = _frame(fit)
    blk = next(b for b in fit.design.blocks if b.factor == factor)
    labels = np.array(blk.levels)[blk.index]
    shown = [level_label(g) for g in groups] if groups is not None else list(blk.levels[:max_groups])
    missing = [g for g in shown if g not in blk.levels]
    if missing:
        raise DataError(f"'{factor}' has no level(s) {missing[:5]}.")
    grid, categorical = _grid(fit, x)
    levels = list(grid[x])
    grid_pos = np.arange(len(levels), dtype=float) if categorical else grid[x].to_numpy(dtype=float)
    xs = _x_positions(frame[x], categorical, levels)
    y = _observed_mean_scale(fit)
    grid_x = np.arange(len(levels)) if categorical else grid_pos
    complete = _ols_line(xs, y, categorical, grid_x) if "complete" in pooling else None
    partial = None
    if "partial" in pooling:
        rows = []
        for lv in shown:
            g = grid.copy()
            for col, value in zip(blk.term.group, lv.split(":"), strict=True):
                g[col] = _column_value(frame[col], value)
            rows.append(g)
        # this factor's effects only: crossed factors stay at the population level
        bars = " + ".join(str(b.term) for b in fit.design.blocks if b.factor == factor)
        partial = _predict_mean(fit, pd.concat(rows, ignore_index=True), re_form=f"~ {bars}")
        partial = partial.reshape(len(shown), -1)
    fig, axes = panel_figure(len(shown), ncols=ncols or min(len(shown), 6), panel=(2.4, 2.1),
                        sharex=True, sharey=True)
    for k, (ax, lv) in enumerate(zip(axes, shown, strict=True)):
        sel = labels == lv
        ax.scatter(xs[sel], y[sel], s=9, color="0.3", zorder=3)
        if "complete" in pooling:
            ax.plot(grid_pos, complete, color=COMPLETE, ls=":", lw=1.3, label="complete pooling")
        if "none" in pooling:
            ax.plot(grid_pos, _ols_line(xs[sel], y[sel], categorical, grid_x), color=NONE, ls="--",
                    lw=1.3, label="no pooling")
        if partial is not None:
            ax.plot(grid_pos, partial[k], color=PARTIAL, lw=1.6, label="partial pooling")
        ax.set_title(f"{factor} {lv}", fontsize=9)
        ax.set_xlabel(x)
        ax.set_ylabel(fit.design.response_label)
        if categorical:
            ax.set_xticks(range(len(levels)), [str(v) for v in levels], rotation=45, fontsize=7)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=3, frameon=False)
    fig.suptitle(f"{fit.design.response_label} by {x}, one panel per {factor}")
    return fig


def _column_value(column: pd.Series, label: str) -> Any:
    """The value in a column whose label is ``label`` (so 308 matches '308')."""
    for v in pd.unique(column):
        if level_label(v) == label:
            return v
    return label


def _no_pooling(fit: Any, factor: str) -> tuple[list[str], list[str], np.ndarray]:
    """Per level, least squares of y (minus the fixed effects of the other predictors) on the
    factor's random-effect columns. Returns terms, levels and a (levels, terms) array."""
    d = fit.design
    blocks = [b for b in d.blocks if b.factor == factor]
    terms = list(dict.fromkeys(t for b in blocks for t in b.terms))
    Z = np.zeros((d.n_obs, len(terms)))
    for b in blocks:
        for j, t in enumerate(b.terms):
            Z[:, terms.index(t)] = b.Z[:, j]
    beta = fit.fixef()["Estimate"].to_numpy()
    other = [j for j, n in enumerate(d.fixef_names) if n not in terms]
    y = d.y - linear_predictor(d.X[:, other], beta[other])
    index, levels = blocks[0].index, blocks[0].levels
    out = np.full((len(levels), len(terms)), np.nan)
    for k in range(len(levels)):
        sel = index == k
        A = Z[sel]
        if sel.sum() > len(terms) and np.linalg.matrix_rank(A) == len(terms):
            out[k] = np.linalg.lstsq(A, y[sel], rcond=None)[0]
    return terms, levels, out


def _partial_pooling(fit: Any, factor: str, terms: list[str]) -> np.ndarray:
    coef = fit.coef() if not is_bayes(fit) else fit.coef(group=factor)
    coef = coef[coef["group"] == factor]
    levels = next(b for b in fit.design.blocks if b.factor == factor).levels
    table = coef.pivot(index="level", columns="term", values="Estimate")
    return table.loc[levels, terms].to_numpy()


def plot_shrinkage(fit: Any, group: str | None = None):
    """Each group's no-pooling estimate moving to its partial-pooling (mixed-model) estimate.

    With an intercept and a slope varying by group, the plane of the two with
    an arrow per group; the population estimate (fixed effects) and the
    complete-pooling fit are marked. With one varying term, the two estimates
    side by side, a line per group. Groups too small for their own fit are
    left out. Gaussian models only: the no-pooling estimates are least squares.
    """
    if not gaussian(fit):
        raise ValueError(f"plot_shrinkage compares least-squares no-pooling estimates with the "
                         f"mixed model's, which is defined for gaussian models; this is a "
                         f"{fit.design.family.name} model. plot_caterpillar shows its group effects.")
    factor = _factor(fit, group)
    terms, levels, none = _no_pooling(fit, factor)
    partial = _partial_pooling(fit, factor, terms)
    d = fit.design
    fx = fit.fixef()["Estimate"]
    ok = np.isfinite(none).all(axis=1)
    fig, (ax,) = panel_figure(1, panel=(5.2, 4.4))
    if len(terms) >= 2:
        t0, t1 = terms[0], terms[1]
        for a, b in zip(none[ok], partial[ok], strict=True):
            ax.annotate("", xy=(b[0], b[1]), xytext=(a[0], a[1]),
                        arrowprops={"arrowstyle": "->", "color": GREY, "lw": 0.8})
        ax.scatter(none[ok, 0], none[ok, 1], facecolors="none", edgecolors=NONE, label="no pooling")
        ax.scatter(partial[ok, 0], partial[ok, 1], color=PARTIAL, label="partial pooling")
        pop = [fx.get(t0, 0.0), fx.get(t1, 0.0)]
        ax.scatter(*pop, marker="X", s=90, color="k", label="population (fixed effects)", zorder=4)
        Xc = np.column_stack([b.Z for b in d.blocks if b.factor == factor])[:, :2]
        complete = np.linalg.lstsq(Xc, d.y, rcond=None)[0]
        ax.scatter(*complete, marker="D", s=50, color=COMPLETE, label="complete pooling", zorder=4)
        ax.set_xlabel(t0)
        ax.set_ylabel(t1)
    else:
        t0 = terms[0]
        for a, b in zip(none[ok, 0], partial[ok, 0], strict=True):
            ax.plot([0, 1], [a, b], color=GREY, lw=0.8)
        ax.scatter(np.zeros(ok.sum()), none[ok, 0], facecolors="none", edgecolors=NONE, label="no pooling")
        ax.scatter(np.ones(ok.sum()), partial[ok, 0], color=PARTIAL, label="partial pooling")
        ax.axhline(fx.get(t0, 0.0), color="k", lw=1, ls="--", label="population (fixed effect)")
        ax.set_xticks([0, 1], ["no pooling", "partial pooling"])
        ax.set_xlim(-0.4, 1.4)
        ax.set_xlabel("estimate")
        ax.set_ylabel(t0)
    ax.legend(fontsize=8)
    ax.set_title(f"Shrinkage toward the population: {factor}", fontsize=10)
    return fig


def _observed_mean_scale(fit: Any) -> np.ndarray:
    """The response on the scale of the family's mean: a binomial's proportions of its trials."""
    d = fit.design
    return d.y if d.trials is None else d.y / d.trials


def _typical_offset(fit: Any) -> float | None:
    """The mean of an ``offset=`` argument's values: the exposure the effect curve is drawn at
    (the formula's ``offset()`` terms are evaluated on the grid's typical values instead)."""
    part = offset_argument(fit.design)
    return None if part is None else float(np.mean(part))


def _points_at_typical_offset(fit: Any, grid_offset: float) -> np.ndarray:
    """The data moved to the curve's exposure: each row's response as if its offset were the
    grid's (``y exp(o* - o)`` under a log link, ``y - o + o*`` under the identity)."""
    d = fit.design
    y = _observed_mean_scale(fit)
    if d.offset is None:
        return y
    shift = grid_offset - d.offset
    return y * np.exp(shift) if d.family.link.name == "log" else y + shift


def plot_effect(fit: Any, x: str, prob: float = 0.95, n_sims: int = 1000, seed: int | None = 1,
                data: bool = True, interval: str = "sim"):
    """The population regression curve of ``x`` with its band, other predictors typical.

    Other predictors sit at their means (numeric) or reference levels
    (categorical); group effects are left out (``re_form="~0"``). The band is
    the posterior's credible interval (Bayesian fit), the spread of
    ``arm::sim`` draws of the fixed effects (REML fit) or of draws from the
    fixed effects' Wald distribution (glmer fit). A GLMM's curve is on the
    response scale (the mean: a binomial's probability, a Poisson's rate at the
    typical exposure) and its data are shown on that scale (proportions of the
    trials; counts moved to the typical exposure when there is an offset). A
    categorical ``x`` gives a point and an interval per level.

    ``interval="boot"`` (REML/ML and glmer fits) draws the band from a
    parametric bootstrap instead: ``n_sims`` refits (bootMer, as seed 003 of
    the tutorials does with ``FUN = predict(., newdata, re.form = ~0)``), each
    predicting the curve, and their percentile interval.
    """
    if interval not in ("sim", "boot"):
        raise ValueError(f"interval must be 'sim' or 'boot', not {interval!r}.")
    if interval == "boot" and is_bayes(fit):
        raise ValueError("interval='boot' is for REML/ML and glmer fits; a Bayesian fit's band "
                         "is its credible interval.")
    grid, categorical = _grid(fit, x, points=100)
    levels = list(grid[x])
    pos = np.arange(len(levels), dtype=float) if categorical else grid[x].to_numpy(dtype=float)
    fam = fit.design.family
    typical = _typical_offset(fit)
    off = None if typical is None else np.full(len(grid), typical)
    if is_bayes(fit):
        pred = fit.predict(grid, re_form="~0", kind="mean", prob=prob, seed=0, offset=off)
        est, lo, hi = (pred[c].to_numpy() for c in ("Estimate", "conf_low", "conf_high"))
        band = f"{prob * 100:g}% credible interval"
    else:
        rows = prediction_rows(fit.design, grid, re_form="~0", offset=off)
        shift = 0.0 if rows.offset is None else rows.offset
        est = fam.inverse_link(linear_predictor(rows.X, fit.estimates.beta) + shift)
        if interval == "boot":
            def curve(f: Any) -> np.ndarray:
                kind = {} if gaussian(f) else {"type": "response"}
                return f.predict(grid, re_form="~0", offset=off, **kind).to_numpy()

            reps = fit.bootstrap(curve, n_sims=n_sims, seed=seed, progressbar=False)
            ends = reps.conf_int(prob, type="perc")
            lo, hi = ends["conf_low"].to_numpy(), ends["conf_high"].to_numpy()
            band = f"{prob * 100:g}% interval (parametric bootstrap, {n_sims} refits)"
        elif gaussian(fit):
            beta = fit.sim(n_sims, seed=seed).fixef.to_numpy()
            band = f"{prob * 100:g}% interval (arm::sim, {n_sims} draws)"
        else:
            rng = np.random.default_rng(seed)
            beta = rng.multivariate_normal(fit.estimates.beta, fit.estimates.vcov_beta, n_sims)
            band = f"{prob * 100:g}% interval (Wald draws of the fixed effects)"
        if interval != "boot":
            draws = fam.inverse_link(linear_predictor(rows.X, beta) + shift)
            lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    fig, (ax,) = panel_figure(1, panel=(5.2, 4.0))
    if data:
        frame = _frame(fit)
        xs = _x_positions(frame[x], categorical, levels)
        jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(xs)) if categorical else 0.0
        grid_offset = formula_offset(fit.design, grid)
        at = (0.0 if grid_offset is None else grid_offset[0]) + (typical or 0.0)
        ax.scatter(xs + jitter, _points_at_typical_offset(fit, at), s=6, color=GREY, alpha=0.4,
                   label="data")
    if categorical:
        ax.errorbar(pos, est, yerr=[est - lo, hi - est], fmt="o", color=PARTIAL, capsize=4, label=band)
        ax.set_xticks(range(len(levels)), [str(v) for v in levels])
    else:
        ax.fill_between(pos, lo, hi, color=PARTIAL, alpha=0.25, label=band)
        ax.plot(pos, est, color=PARTIAL, lw=2, label="population estimate")
    ax.set_xlabel(x)
    d = fit.design
    ylabel = d.response_label
    if not gaussian(fit):
        what = "probability" if d.family.name in ("binomial", "bernoulli") else "mean"
        ylabel = f"{ylabel}: {what} ({fam.name}, {fam.link.name} link)"
    ax.set_ylabel(ylabel)
    ax.set_title(f"Effect of {x} (others at means / reference levels)")
    ax.legend(fontsize=8)
    return fig


def _qq(ax, values: np.ndarray, title: str) -> None:
    values = np.sort(values[np.isfinite(values)])
    n = len(values)
    theo = stats.norm.ppf((np.arange(1, n + 1) - 0.5) / n)
    ax.scatter(theo, values, s=8, color=PARTIAL)
    q = np.quantile(values, [0.25, 0.75])
    slope = (q[1] - q[0]) / (stats.norm.ppf(0.75) - stats.norm.ppf(0.25))
    ax.plot(theo, q[0] + slope * (theo - stats.norm.ppf(0.25)), color=GREY, lw=1)
    ax.set_title(title)
    ax.set_xlabel("normal quantiles")
    ax.set_ylabel("sample quantiles")


def plot_diagnostics(fit: Any):
    """Residuals against fitted values, a normal QQ plot of the residuals and of each group effect.

    Fitted values include the group effects (the posterior mean, for a
    Bayesian fit); group effects are posterior means or conditional modes.
    A GLMM's residuals are randomized quantile residuals
    (:func:`quantile_residuals`), standard normal under the model, against the
    fitted mean; a Gaussian model's are ``y`` minus the fitted value, or its
    normalised residuals (nlme's) under a residual structure.
    """
    d = fit.design
    if gaussian(fit) and not d.residual.is_iid:
        # under sigma= or correlation=, nlme's normalised residuals: standard normal under the model
        fitted = fitted_mean(fit)
        resid = fit.normalized_residuals()
        kind, ylab = "Normalized residuals", "normalized residual"
    elif gaussian(fit):
        fitted = fitted_mean(fit)
        resid = d.y - fitted
        kind, ylab = "Residuals", "residual"
    else:
        fitted, resid = quantile_residuals(fit)
        kind, ylab = "Quantile residuals", "randomized quantile residual"
    panels = [(b, j) for b in d.blocks for j in range(b.n_terms)]
    fig, axes = panel_figure(2 + len(panels), ncols=3, panel=(3.6, 3.0))
    ax = axes[0]
    ax.scatter(fitted, resid, s=8, color=PARTIAL, alpha=0.7)
    ax.axhline(0.0, color=GREY, lw=1)
    ax.set_title(f"{kind} against fitted values")
    ax.set_xlabel("fitted mean" if not gaussian(fit) else "fitted value")
    ax.set_ylabel(ylab)
    _qq(axes[1], resid, f"Normal QQ: {kind.lower()}")
    effects = {}
    for factor in d.ngrps():
        e = group_effects(fit, factor)
        for term, part in e.groupby("term", sort=False):
            effects[(factor, term)] = part["estimate"].to_numpy()
    for ax, (b, j) in zip(axes[2:], panels, strict=True):
        _qq(ax, effects[(b.factor, b.terms[j])], f"Normal QQ: {b.factor} {b.terms[j]}")
    fig.suptitle(f"Diagnostics: {d.formula.formula}")
    return fig


def plot_compare_table(table: pd.DataFrame, method: str, prob: float, formula: str):
    """Posterior intervals against REML intervals, one small panel per parameter.

    ``table`` is :func:`hierbayes.compare`'s (what :func:`hierbayes.plot_compare`
    draws); ``method`` names the frequentist fit (``"REML"`` or ``"ML"``). Each
    parameter has its own axis, since their scales differ (an intercept of 250
    beside a correlation).
    """
    fig, axes = panel_figure(len(table), ncols=1, panel=(6.0, 0.85))
    for ax, (param, row) in zip(axes, table.iterrows(), strict=True):
        ax.hlines([1, 0], [row["posterior_low"], row[f"{method}_low"]],
                  [row["posterior_high"], row[f"{method}_high"]],
                  colors=[PARTIAL, NONE], lw=2)
        ax.scatter([row["posterior"], row[method]], [1, 0], color=[PARTIAL, NONE], zorder=3, s=20)
        ax.set_yticks([1, 0], ["Bayes", method], fontsize=8)
        ax.set_ylim(-0.6, 1.6)
        ax.set_title(param, fontsize=9, loc="left")
        ax.set_xlabel("estimate and interval", fontsize=8)
    fig.suptitle(f"Bayes ({prob * 100:g}% CrI) against {method} ({prob * 100:g}% CI)\n"
                 f"{formula}", fontsize=10)
    return fig
