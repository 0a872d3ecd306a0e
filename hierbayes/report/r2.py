"""Bayesian R-squared of a fit, as brms's ``bayes_R2`` (Gelman, Goodrich, Gabry and Vehtari 2019).

For each posterior draw ``s``, with ``mu_s`` the expected response of every
fitted row (brms's ``posterior_epred``) and ``e_s = y - mu_s``::

    R2_s = var(mu_s) / (var(mu_s) + var(e_s))

the variances taken over the rows (R's ``var``, divisor ``n - 1``), as brms's
``.bayes_R2`` for every family: the residual variance is that of the draws'
residuals, not the family's modelled variance. A binomial's ``mu`` is the
expected number of successes (probability times trials) against ``y``, the
successes, as brms's. Prior weights are ignored, as brms ignores them.

The *conditional* R2 uses every group effect (brms's ``bayes_R2(fit)``), the
*marginal* none (``re_formula = NA``): how much the fixed effects alone
explain. Offsets are part of ``mu`` in both.

Reference: Gelman, A., Goodrich, B., Gabry, J. and Vehtari, A. (2019).
R-squared for Bayesian regression models. *The American Statistician* 73(3),
307-309.

Examples
--------
>>> import hierbayes as hb
>>> fit = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy")).fit(
...     draws=300, tune=300, chains=2, seed=1, progressbar=False, check=False)
>>> r2 = bayes_r2(fit)
>>> r2.index.tolist(), list(r2.columns)
(['conditional', 'marginal'], ['estimate', 'est_error', 'conf_low', 'conf_high'])
>>> bool(r2.loc["marginal", "estimate"] < r2.loc["conditional", "estimate"])
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError, SettingsError

BOTH = "both"


def _label(re_form: Any) -> str:
    """The table's row name for a ``re_form`` (prediction_rows checks the value itself)."""
    if re_form is None:
        return "conditional"
    if isinstance(re_form, float) and np.isnan(re_form):
        return "marginal"
    if isinstance(re_form, str) and re_form.replace(" ", "") in ("~0", "NA", "0"):
        return "marginal"
    return str(re_form)


def r2_draws(fit: Any, re_form: Any = None) -> np.ndarray:
    """Each posterior draw's R2 with the group effects ``re_form`` keeps (None: all, "~0": none).

    The rows are taken in blocks (:func:`hierbayes.report.predict.iter_posterior_draws`), each
    draw's variances merged block by block (Chan, Golub and LeVeque's update), so that a large
    data set is never held as draws by rows at once.

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy")).fit(
    ...     draws=300, tune=300, chains=2, seed=1, progressbar=False, check=False)
    >>> r2_draws(fit).shape
    (600,)
    """
    from hierbayes.report.predict import iter_posterior_draws, prediction_rows

    d = fit.design
    if d.n_obs < 2:
        raise DataError("R2 needs at least two fitted rows.")
    rows = prediction_rows(d, None, re_form)
    y = np.asarray(d.y, dtype=float)
    trials = None if d.trials is None else np.asarray(d.trials, dtype=float)
    S = fit.posterior.n_chains * fit.posterior.n_draws
    n = 0
    mean = {k: np.zeros(S) for k in ("mu", "e")}
    m2 = {k: np.zeros(S) for k in ("mu", "e")}
    for sl, mu in iter_posterior_draws(fit, rows, "mean"):
        if trials is not None:
            mu = mu * trials[sl]  # expected successes, against y's successes
        parts = {"mu": mu, "e": y[sl] - mu}
        k = mu.shape[1]
        for name, x in parts.items():
            bm = x.mean(axis=1)
            bm2 = ((x - bm[:, None]) ** 2).sum(axis=1)
            delta = bm - mean[name]
            mean[name] = mean[name] + delta * k / (n + k)
            m2[name] = m2[name] + bm2 + delta**2 * n * k / (n + k)
        n += k
    var_mu, var_e = m2["mu"] / (n - 1), m2["e"] / (n - 1)
    return var_mu / (var_mu + var_e)


def bayes_r2(fit: Any, re_form: Any = BOTH, summary: bool = True, prob: float = 0.95,
             point: str = "mean") -> pd.DataFrame:
    """Bayesian R2 (brms's ``bayes_R2``): conditional and marginal, or one of them.

    Parameters
    ----------
    fit
        A :class:`hierbayes.BayesFit`.
    re_form
        ``"both"`` (the default): rows ``conditional`` (every group effect, brms's
        ``bayes_R2(fit)``) and ``marginal`` (none, ``re_formula = NA``). Or one row:
        None (``conditional``), ``"~0"`` (``marginal``) or a formula naming some of the
        model's bars (the row is named by it), as :meth:`hierbayes.BayesFit.predict` reads it.
    summary
        True: the summary table; False: the draws, one column per row of the table.
    prob
        Mass of the equal-tailed credible interval.
    point
        ``"mean"`` or ``"median"`` for ``estimate``.

    Returns
    -------
    pandas.DataFrame
        ``estimate``, ``est_error`` (posterior SD), ``conf_low``, ``conf_high``, indexed by
        ``conditional`` / ``marginal``; ``attrs["conf_level"]`` is ``prob``. With
        ``summary=False``, the draws (chains * draws rows).

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy")).fit(
    ...     draws=300, tune=300, chains=2, seed=1, progressbar=False, check=False)
    >>> bayes_r2(fit, re_form="~0", summary=False).columns.tolist()
    ['marginal']
    """
    from hierbayes.report.fitted import is_bayes

    if not is_bayes(fit):
        raise SettingsError("bayes_r2 needs a Bayesian fit (hierbayes.Model(...).fit()); a REML or "
                            "glmer fit has no posterior draws to take R2 over.")
    if not isinstance(summary, bool):
        raise SettingsError(f"summary must be True or False, not {summary!r}.")
    if isinstance(prob, bool) or not isinstance(prob, int | float) or not 0 < prob < 1:
        raise SettingsError(f"prob must be a number between 0 and 1 (e.g. 0.95), not {prob!r}.")
    if point not in ("mean", "median"):
        raise SettingsError(f"point must be 'mean' or 'median', not {point!r}.")
    forms = [None, "~0"] if isinstance(re_form, str) and re_form == BOTH else [re_form]
    draws = pd.DataFrame({_label(f): r2_draws(fit, f) for f in forms})
    if not summary:
        return draws
    q = draws.quantile([(1 - prob) / 2, (1 + prob) / 2])
    out = pd.DataFrame({
        "estimate": draws.median() if point == "median" else draws.mean(),
        "est_error": draws.std(ddof=1),
        "conf_low": q.iloc[0],
        "conf_high": q.iloc[1],
    })
    out.attrs["conf_level"] = float(prob)
    return out
