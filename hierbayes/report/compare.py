"""Comparing fits: likelihood-ratio tests (lme4's anova) and Bayes against REML side by side.

Examples
--------
>>> import hierbayes as hb
>>> df = hb.datasets.load("sleepstudy")
>>> a = hb.lmer("Reaction ~ Days + (Days | Subject)", df)
>>> b = hb.lmer("Reaction ~ Days + (1 | Subject)", df)
>>> table = hb.anova(b, a)   # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError, HierbayesWarning
from hierbayes.report.format import Block
from hierbayes.report.rprint import SIGNIF_LEGEND, coefmat_cells, r_format
from hierbayes.spec.naming import cor_name, sd_name, varcomp_labels


class Table(pd.DataFrame):
    """A DataFrame that prints a heading above itself (anova's model list, compare's notes).

    Numeric columns print as R's ``print.data.frame`` does, each column
    formatted together to 4 significant digits; an ``anova`` table prints as
    R's ``print.anova`` (``printCoefmat``, 5 digits, significance stars).
    """

    _metadata = ["heading", "rstyle"]

    @property
    def _constructor(self):
        return Table

    def _block(self) -> Block:
        if getattr(self, "rstyle", "") == "anova" and list(self.columns) == ANOVA_COLUMNS:
            cols = list(self.columns)
            zap = [cols.index(c) for c in ("npar", "AIC", "BIC", "logLik", "deviance")]
            heads, cells, legend = coefmat_cells(
                cols, self.to_numpy(dtype=float), digits=5, cs_ind=[], tst_ind=[cols.index("Chisq")],
                zap_ind=zap, has_p=True, na_print="")
            return Block(heads, cells, [str(i) for i in self.index], right=True,
                         notes=["---", SIGNIF_LEGEND] if legend else [])
        columns = []
        for col in self.columns:
            values = self[col]
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                columns.append(r_format(values.to_numpy(dtype=float), 4, na=""))
            else:
                columns.append(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                                for v in values])
        rows = [list(r) for r in zip(*columns, strict=True)] if columns else []
        return Block([str(c) for c in self.columns], rows, [str(i) for i in self.index], right=True)

    def __str__(self) -> str:
        body = "\n".join(self._block().lines())
        return f"{self.heading}\n{body}" if getattr(self, "heading", "") else body

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_html_(self) -> str:
        head = getattr(self, "heading", "")
        head = head.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>")
        return f"<p style='font-family:monospace'>{head}</p>" + self._block().html()


ANOVA_COLUMNS = ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]


def anova(*fits: Any, **named: Any) -> Table:
    """Likelihood-ratio tests between nested REML/ML fits, as lme4's ``anova``.

    REML fits are refitted by ML first (with a warning), as lme4 does. Models
    are ordered by their number of parameters; each row after the first is
    tested against the row above.

    Parameters
    ----------
    *fits, **named
        REML or ML fits (:class:`~hierbayes.LmerFit`, or the engine's
        :class:`~hierbayes.freq.mermod.MerMod`), positionally (named by their
        formulas' right-hand sides) or as keywords (named by the keyword).

    Returns
    -------
    Table
        Columns npar, AIC, BIC, logLik, deviance, Chisq, Df, Pr(>Chisq).
    """
    from scipy.stats import chi2

    from hierbayes.freq.fit import fit_design
    from hierbayes.freq.glmermod import GlmerMod
    from hierbayes.freq.mermod import MerMod

    items = [(f"m{i + 1}", f) for i, f in enumerate(fits)] + list(named.items())
    if len(items) < 2:
        raise DataError("anova needs at least two fits to compare.")
    for name, f in items:
        # the test reads the engine's record only (an LmerFit is one), so the report is not needed
        if not isinstance(f, (MerMod, GlmerMod)):
            raise DataError(
                f"anova compares REML/ML fits (hb.lmer, model.fit_reml) or glmer fits (hb.glmer); "
                f"'{name}' is {type(f).__name__}. For Bayesian fits use hb.loo_compare."
            )
    glmm = [isinstance(f, GlmerMod) for _, f in items]
    if any(glmm) and not all(glmm):
        raise DataError("anova compares lmer fits with lmer fits and glmer fits with glmer fits; "
                        "their likelihoods are of different models of the response.")
    if all(glmm) and len({f.nAGQ > 1 for _, f in items}) > 1:
        raise DataError("With nAGQ > 1 glmer's logLik is on its own scale (deviance residuals, not "
                        "the full likelihood), so it cannot be compared with a Laplace fit's: refit "
                        "the models with one nAGQ.")
    n = {f.nobs for _, f in items}
    if len(n) > 1:
        raise DataError(f"The fits use different numbers of observations ({sorted(n)}); compare fits of the same data.")
    ys = [f.design.y for _, f in items]
    if any(len(y) != len(ys[0]) or not np.allclose(y, ys[0]) for y in ys):
        raise DataError("The fits have different responses; a likelihood-ratio test needs the same data.")
    if any(getattr(f, "reml", False) for _, f in items):
        warnings.warn("refitting model(s) with ML (instead of REML)", HierbayesWarning, stacklevel=2)
        # stacklevel 3: a refit's convergence warnings point at the user's call of anova
        items = [(name, fit_design(f.design, reml=False, stacklevel=3) if f.reml else f) for name, f in items]
    items.sort(key=lambda item: item[1].n_params)
    rows = []
    for i, (_name, f) in enumerate(items):
        # anova's deviance is -2 logLik (for a glmer fit not lme4's deviance(), the deviance
        # residuals' sum; for an ML lmer fit the two are the same number)
        row = {"npar": f.n_params, "AIC": f.aic, "BIC": f.bic, "logLik": f.loglik, "deviance": -2 * f.loglik,
               "Chisq": np.nan, "Df": np.nan, "Pr(>Chisq)": np.nan}
        if i:
            prev = items[i - 1][1]
            chisq = max(-2 * prev.loglik + 2 * f.loglik, 0.0)
            df = f.n_params - prev.n_params
            row.update({"Chisq": chisq, "Df": df, "Pr(>Chisq)": chi2.sf(chisq, df) if df > 0 else np.nan})
        rows.append(row)
    table = Table(rows, index=[name for name, _ in items], columns=ANOVA_COLUMNS)
    table.rstyle = "anova"
    data = items[0][1].design.data_name
    table.heading = f"Data: {data}\nModels:\n" + "\n".join(f"{name}: {f.design.formula.formula}" for name, f in items)
    return table


def estimate_column(fit: Any) -> str:
    """The name of a frequentist fit's column in :func:`compare`: ``"REML"``, or ``"ML"`` for an
    ML or glmer fit (whose estimates are not REML's)."""
    return "REML" if getattr(fit, "reml", False) else "ML"


def compare(bayes: Any, reml: Any, prob: float = 0.95, threshold: float = 0.5) -> Table:
    """The Bayesian fit beside the REML (or ML) fit of the same formula, parameter by parameter.

    For every fixed effect, group-level SD, correlation and sigma: posterior
    mean with its equal-tailed credible interval (``posterior``,
    ``posterior_low``, ``posterior_high``), and the REML estimate (column
    ``REML``, interval ``REML_low``, ``REML_high``; ``ML`` for an ML or glmer
    fit) with a confidence interval (Wald for fixed effects; for SDs, correlations and
    sigma, Wald on the log-SD / atanh-correlation scale from the deviance's
    curvature, mapped back). ``shift`` is (posterior mean - REML estimate) /
    posterior SD; a note flags a REML estimate outside the credible interval,
    or a shift beyond ``threshold`` (the priors or the uncertainty in the
    variance components moved the estimate). ``prior_sensitivity`` is the
    power-scaling diagnosis of each parameter (:meth:`BayesFit.prior_sensitivity`:
    ``-``, or a potential prior-data conflict or strong prior / weak likelihood).

    Returns
    -------
    Table
        One row per parameter; prints as a table, HTML in notebooks.
    """
    from hierbayes.freq.wald import glmer_varcomp_wald, varcomp_wald
    from hierbayes.report.bayes import BayesFit
    from hierbayes.report.glmer import GlmerFit
    from hierbayes.report.lmer import LmerFit

    if not isinstance(bayes, BayesFit) or not isinstance(reml, (LmerFit, GlmerFit)):
        raise DataError("compare(bayes_fit, reml_fit): a Model.fit() result, then a hb.lmer / fit_reml "
                        "or hb.glmer / fit_laplace result.")
    if bayes.design.formula.formula != reml.design.formula.formula or bayes.design.n_obs != reml.design.n_obs:
        raise DataError("compare needs the same formula fitted to the same data both ways.")
    from scipy.stats import norm

    z = norm.ppf(0.5 + prob / 2)
    lo_q, hi_q = (1 - prob) / 2, (1 + prob) / 2
    rows = []
    glmm = isinstance(reml, GlmerFit)
    col = estimate_column(reml)

    def add(param: str, draws: np.ndarray, est: float, lo: float, hi: float) -> None:
        m, s = float(np.mean(draws)), float(np.std(draws, ddof=1))
        q = np.quantile(draws, [lo_q, hi_q])
        shift = (m - est) / s if s > 0 else np.nan
        note = ""
        if not q[0] <= est <= q[1]:
            note = f"{col} estimate outside CrI"
        elif abs(shift) > threshold:
            note = f"shift > {threshold:g} SD"
        rows.append({"parameter": param, "posterior": m, "posterior_low": q[0], "posterior_high": q[1],
                     col: est, f"{col}_low": lo, f"{col}_high": hi, "shift": shift, "note": note})

    fx = reml.fixef()
    post_fx = bayes._flat("fixef")
    for i, name in enumerate(bayes.design.fixef_names):
        e, se = fx.loc[name, "Estimate"], fx.loc[name, "Std. Error"]
        add(name, post_fx[:, i], e, e - z * se, e + z * se)
    ci = glmer_varcomp_wald(reml, prob) if glmm else varcomp_wald(reml.deviance_function, reml.varcorr(), prob)
    label = varcomp_labels(bayes.design)
    for r in ci.itertuples():
        if r.grp == "Residual":
            add("sigma", bayes._flat("sigma"), r.estimate, r.lower, r.upper)
            continue
        blk = bayes.design.block(r.grp)
        i = blk.terms.index(r.var1)
        if not isinstance(r.var2, str):  # None, read back as NaN
            add(sd_name(r.var1, label[r.grp]), bayes._flat(f"sd_{r.grp}")[:, i], r.estimate,
                r.lower, r.upper)
        else:
            add(cor_name(r.var2, r.var1, label[r.grp]), bayes.cor_draws(r.grp, r.var1, r.var2),
                r.estimate, r.lower, r.upper)
    table = Table(rows).set_index("parameter")
    table.attrs["conf_level"] = float(prob)
    sensitivity_note = ""
    try:
        from hierbayes.report.sensitivity import sensitivity_column

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            column = sensitivity_column(bayes)
        unreliable = [str(w.message) for w in caught if issubclass(w.category, Warning)]
        table["prior_sensitivity"] = [column.get(p, "") for p in table.index]
        if unreliable:
            sensitivity_note = "\nprior_sensitivity: " + unreliable[0].split(". ")[0] + "."
    except DataError as err:
        # a pm.Model the user changed has priors the table does not describe: said, not guessed
        table["prior_sensitivity"] = ""
        sensitivity_note = f"\nprior_sensitivity not computed: {err}"
    pct = f"{prob * 100:g}%"
    method = "ML (glmer)" if glmm else "REML" if reml.reml else "ML"
    table.heading = (
        f"Bayes (posterior mean, {pct} CrI) against {method} (estimate, {pct} CI)\n"
        f"Formula: {bayes.design.formula.formula}\n"
        f"{col} intervals: Wald for fixed effects; Wald on log-SD / atanh-correlation scale for the rest.\n"
        "prior_sensitivity: priorsense's power-scaling diagnosis (fit.prior_sensitivity())"
        + sensitivity_note
    )
    return table


def plot_compare(bayes: Any, reml: Any, prob: float = 0.95):
    """Posterior intervals against REML intervals, one small panel per parameter; returns the Figure.

    The table is :func:`compare`'s: posterior mean and credible interval, REML
    estimate with a Wald-type interval. Each parameter has its own axis, since
    their scales differ (an intercept of 250 beside a correlation); the drawing
    is :func:`hierbayes.report.plots.plot_compare_table`.
    """
    from hierbayes.report.plots import plot_compare_table  # matplotlib and SciPy on first use

    table = compare(bayes, reml, prob=prob)
    return plot_compare_table(table, estimate_column(reml), prob, bayes.design.formula.formula)


def loo_compare(fits: dict[str, Any], warn: bool = True) -> pd.DataFrame:
    """Compare Bayesian fits by PSIS-LOO, as ArviZ's ``compare`` (brms's ``loo_compare``).

    Parameters
    ----------
    fits
        Name -> :class:`~hierbayes.BayesFit`, all fitted to the same observations.
    warn
        Warn, per fit, when Pareto k is high for some observations.

    Returns
    -------
    pandas.DataFrame
        ArviZ's table, best model first: rank, elpd_loo, p_loo, elpd_diff,
        weight (stacking), se, dse, warning, scale.

    Examples
    --------
    >>> import hierbayes as hb
    >>> df = hb.datasets.load("sleepstudy")
    >>> fits = {f: hb.Model(f, df).fit(seed=1, progressbar=False)
    ...         for f in ["Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)"]}  # doctest: +SKIP
    >>> hb.loo_compare(fits)  # doctest: +SKIP
    """
    import arviz as az

    from hierbayes.report.bayes import BayesFit

    if not isinstance(fits, dict) or len(fits) < 2:
        raise ValueError("loo_compare needs a dict of at least two named fits, e.g. "
                         "{'slope': fit_a, 'intercept': fit_b}.")
    for name, fit in fits.items():
        if not isinstance(fit, BayesFit):
            raise TypeError(f"'{name}' is a {type(fit).__name__}, not a Bayesian fit; LOO needs "
                            "posterior draws. Compare REML/ML fits with hb.anova.")
    sizes = {name: fit.design.n_obs for name, fit in fits.items()}
    ys = [fit.design.y for fit in fits.values()]
    if len(set(sizes.values())) > 1 or any(not np.array_equal(ys[0], y) for y in ys[1:]):
        raise ValueError(f"The fits do not share their observations ({sizes} rows): LOO compares "
                         "models of the same data only. Fit each on the same rows (drop missing "
                         "values first).")
    elpds = {}
    for name, fit in fits.items():  # a loop, not a comprehension: the warning names the caller
        elpds[name] = fit.loo(warn=warn, label=f"'{name}' ({fit.design.formula.formula})",
                              stacklevel=3)
    with warnings.catch_warnings():
        # ArviZ repeats the Pareto k warning given above, and pandas warns about ArviZ's
        # own calls; neither tells the user anything.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return az.compare(elpds, ic="loo")
