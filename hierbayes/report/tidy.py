"""Tidy tables of any fit, as broom.mixed's ``tidy()`` and ``glance()`` give them.

One row per estimated quantity, in long form, with the columns of the table
vocabulary (docs/report.md): ``effect``, ``group``, ``level``, ``term``,
``estimate``, ``std_error``, ``statistic``, ``df``, ``p_value``, ``conf_low``,
``conf_high``. ``effects`` picks the rows:

* ``"fixed"``: the fixed effects (REML/ML: Wald SEs, t or z statistics;
  ``ddf=`` adds lmerTest's df and p-values; Bayes: posterior mean and SD);
* ``"ran_pars"``: the group-level SDs and correlations and the residual SD,
  terms ``sd_(Intercept)``, ``cor_Days.(Intercept)`` and ``sigma`` in the
  group they belong to (``term|group`` is the parameter's name in every other
  table), with ``var_prop``: each variance's share of the total (mixedup's
  ``extract_vc``; with random slopes it adds variances of different units,
  so it is a description, not an intraclass correlation);
* ``"ran_vals"``: every level's group effect (conditional mode and
  conditional SD for REML; posterior mean and SD for Bayes);
* ``"ran_coefs"``: every level's coefficient, fixed plus group effect, as
  lme4's ``coef``, with an SE (REML: ``sqrt(SE(beta)^2 + condsd^2)``, the
  approximation mixedup's ``extract_random_coefs`` and merTools make, which
  leaves out the covariance of the two; Bayes: from the draws) and interval.

Examples
--------
>>> import hierbayes as hb
>>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> t = tidy(fit, effects="ran_pars")
>>> t[["group", "term"]].values.tolist()
[['Subject', 'sd_(Intercept)'], ['Subject', 'cor_Days.(Intercept)'], ['Subject', 'sd_Days'], ['Residual', 'sigma']]
>>> round(float(t["var_prop"].iloc[0]), 3)
0.47
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import SettingsError
from hierbayes.spec.naming import varcomp_labels

EFFECTS = ("fixed", "ran_pars", "ran_vals", "ran_coefs")
COLUMNS = ["effect", "group", "level", "term", "estimate", "std_error", "statistic", "df",
           "p_value", "conf_low", "conf_high", "var_prop"]


def _is_bayes(fit: Any) -> bool:
    return hasattr(fit, "posterior") and hasattr(fit, "headline_draws")


def _effects(effects: Any) -> list[str]:
    chosen = [effects] if isinstance(effects, str) else list(effects)
    bad = [e for e in chosen if e not in EFFECTS]
    if bad or not chosen:
        raise SettingsError(f"effects must be one or more of {list(EFFECTS)}, not {effects!r}.")
    return chosen


def _level(conf_level: Any) -> float:
    if isinstance(conf_level, bool) or not isinstance(conf_level, int | float) or \
            not 0 < conf_level < 1:
        raise SettingsError(f"conf_level must be a number between 0 and 1 (e.g. 0.95), not "
                            f"{conf_level!r}.")
    return float(conf_level)


def tidy(fit: Any, effects: Any = ("fixed", "ran_pars"), conf_int: bool = False,
         conf_level: float = 0.95, conf_method: str = "wald", ddf: str | None = None
         ) -> pd.DataFrame:
    """The fit's estimates as one long table (broom.mixed's ``tidy``).

    Parameters
    ----------
    fit
        A :class:`~hierbayes.LmerFit`, :class:`~hierbayes.GlmerFit` or
        :class:`~hierbayes.BayesFit`.
    effects
        One or more of ``"fixed"``, ``"ran_pars"``, ``"ran_vals"``,
        ``"ran_coefs"`` (broom.mixed's default: fixed and ran_pars).
    conf_int, conf_level
        Add ``conf_low`` and ``conf_high`` at ``conf_level`` (a Bayesian
        fit's are equal-tailed credible intervals).
    conf_method
        For REML/ML and glmer fits' fixed effects and ran_pars: ``"wald"``
        (broom.mixed's default; the variance parameters' intervals are NA, as
        lme4's Wald intervals), ``"profile"`` or ``"boot"`` (:meth:`confint`).
        Group effects and coefficients get Wald intervals from their SEs.
    ddf
        For an lmer fit's fixed effects: ``"satterthwaite"`` or
        ``"kenward-roger"`` add ``df`` and ``p_value`` (lmerTest's).

    Returns
    -------
    pandas.DataFrame
        One row per quantity; ``attrs["conf_level"]`` holds the level.
    """
    chosen = _effects(effects)
    level = _level(conf_level)
    parts = []
    for e in chosen:
        part = (_bayes_part if _is_bayes(fit) else _freq_part)(fit, e, level, conf_method, ddf)
        part.insert(0, "effect", e)
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    cols = [c for c in COLUMNS if c in out.columns]
    out = out[cols]
    if not conf_int:
        out = out.drop(columns=["conf_low", "conf_high"], errors="ignore")
    for col in ("group", "level"):
        if col in out.columns:
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    out = out.dropna(axis=1, how="all")
    out.attrs["conf_level"] = level
    return out


def _freq_part(fit: Any, effect: str, level: float, conf_method: str, ddf: str | None
               ) -> pd.DataFrame:
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    if effect == "fixed":
        fx = fit.fixef(ddf) if ddf is not None else fit.fixef()
        if ddf is not None and not hasattr(fit, "reml"):
            raise SettingsError("ddf= is for lmer fits; a glmer fit's tests are z tests.")
        stat = next(c for c in fx.columns if c.endswith("value"))
        part = pd.DataFrame({"group": None, "term": list(fx.index), "estimate": fx["Estimate"].to_numpy(),
                             "std_error": fx["Std. Error"].to_numpy(), "statistic": fx[stat].to_numpy()})
        if "df" in fx.columns:
            part["df"] = fx["df"].to_numpy()
        pcol = next((c for c in fx.columns if c.startswith("Pr(")), None)
        if pcol is not None:
            part["p_value"] = fx[pcol].to_numpy()
        if "df" in fx.columns and str(conf_method).lower() == "wald":
            # lmerTest's intervals: t quantiles on the df of each coefficient's test
            from scipy.stats import t as student

            half = student.ppf(0.5 + level / 2, part["df"].to_numpy()) * part["std_error"]
            part["conf_low"], part["conf_high"] = part["estimate"] - half, part["estimate"] + half
            return part
        ci = _freq_confint(fit, conf_method, level)
        part["conf_low"] = ci.loc[part["term"], "conf_low"].to_numpy()
        part["conf_high"] = ci.loc[part["term"], "conf_high"].to_numpy()
        return part
    if effect == "ran_pars":
        part = ran_pars_table(fit.varcorr(), fit.design, _residual_variance(fit))
        ci = _freq_confint(fit, conf_method, level)
        names = _param_names(part, fit.design)
        part["conf_low"] = [ci.loc[n, "conf_low"] if n in ci.index else np.nan for n in names]
        part["conf_high"] = [ci.loc[n, "conf_high"] if n in ci.index else np.nan for n in names]
        return part
    if effect == "ran_vals":
        re = fit.ranef(cond_var=True)
        part = pd.DataFrame({"group": re["group"], "level": re["level"], "term": re["term"],
                             "estimate": re["Estimate"], "std_error": re["Cond.SD"]})
    else:
        part = _freq_coefs(fit)
    part["conf_low"] = part["estimate"] - z * part["std_error"]
    part["conf_high"] = part["estimate"] + z * part["std_error"]
    return part


def _freq_confint(fit: Any, method: str, level: float) -> pd.DataFrame:
    key = str(method).lower()
    if key not in ("wald", "profile", "boot", "bootstrap"):
        raise SettingsError(f"conf_method must be 'wald', 'profile' or 'boot', not {method!r}.")
    # a table's intervals draw no bar, whichever method computes them
    return fit.confint(method=key, level=level, progressbar=False)


def _freq_coefs(fit: Any) -> pd.DataFrame:
    co = fit.coef()
    re = fit.ranef(cond_var=True)
    se_fixed = np.sqrt(np.diag(fit.estimates.vcov_beta))
    names = list(fit.design.fixef_names)
    # the conditional variance of each level's effect, summed over the blocks on its factor
    cond = re.groupby(["group", "term", "level"], sort=False, observed=True)["Cond.SD"] \
        .apply(lambda s: float(np.sqrt(np.sum(s**2))))
    se = []
    for r in co.itertuples():
        fixed_var = se_fixed[names.index(r.term)] ** 2 if r.term in names else 0.0
        key = (r.group, r.term, r.level)
        se.append(float(np.sqrt(fixed_var + (cond.loc[key] ** 2 if key in cond.index else 0.0))))
    return pd.DataFrame({"group": co["group"], "level": co["level"], "term": co["term"],
                         "estimate": co["Estimate"], "std_error": se})


def _residual_variance(fit: Any) -> float | None:
    """The residual variance var_prop divides by: sigma^2, the latent scale of a logit or
    probit GLMM, or None where the family has none (its share is then left out)."""
    fam = fit.design.family
    if getattr(fam, "residual_sd", False) or fam.name == "gaussian":
        return None  # varcorr has the Residual row
    disp = getattr(fit, "dispersion", None)
    latent = fam.latent_variance(np.array([disp]) if disp is not None else None)
    return None if latent is None else float(np.mean(latent))


def ran_pars_table(vc: pd.DataFrame, design: Any, latent: float | None = None,
                   value: str = "sdcor", extra: dict[str, Any] | None = None) -> pd.DataFrame:
    """broom.mixed's ran_pars rows from a varcorr table: group, term (``sd_<term>``,
    ``cor_<later>.<earlier>``, ``sigma``), estimate, and var_prop.

    The rows come in confint's order, not varcorr's; ``extra`` holds further columns given in
    varcorr's row order (a column of the same name replaces the computed one), reordered
    with the rows."""
    label = varcomp_labels(design)
    is_var = vc["var2"].map(lambda v: not isinstance(v, str))
    total = float(vc.loc[is_var, "vcov"].sum()) + (latent or 0.0)
    rows = []
    for _, r in vc.iterrows():
        grp = r["grp"]
        if grp == "Residual" or not isinstance(r["var1"], str):
            rows.append({"group": "Residual", "term": "sigma", "estimate": r[value],
                         "var_prop": r["vcov"] / total})
        elif not isinstance(r["var2"], str):
            rows.append({"group": label.get(grp, grp), "term": f"sd_{r['var1']}",
                         "estimate": r[value], "var_prop": r["vcov"] / total})
        else:
            rows.append({"group": label.get(grp, grp), "term": f"cor_{r['var2']}.{r['var1']}",
                         "estimate": r[value], "var_prop": np.nan})
    # confint's order (lme4's theta order): each term's SD, then its correlations with later terms
    order = {}
    for b in design.blocks:
        for j, t in enumerate(b.terms):
            order[(label[b.group], f"sd_{t}")] = len(order)
            for later in b.terms[j + 1:]:
                order[(label[b.group], f"cor_{later}.{t}")] = len(order)
    for name, column in (extra or {}).items():
        for r, v in zip(rows, np.asarray(column), strict=True):
            r[name] = v
    keys = [order.get((r["group"], r["term"]), len(order)) for r in rows]
    return pd.DataFrame([rows[i] for i in np.argsort(keys, kind="stable")])


def _param_names(part: pd.DataFrame, design: Any) -> list[str]:
    return [t if g == "Residual" else f"{t}|{g}" for g, t in zip(part["group"], part["term"],
                                                                   strict=True)]


def _bayes_part(fit: Any, effect: str, level: float, conf_method: str, ddf: str | None
                ) -> pd.DataFrame:
    if ddf is not None:
        raise SettingsError("ddf= is for REML/ML fits; a Bayesian fit has no t tests.")
    if effect == "fixed":
        fx = fit.fixef(prob=level)
        return pd.DataFrame({"group": None, "term": list(fx.index), "estimate": fx["Estimate"].to_numpy(),
                             "std_error": fx["Est.Error"].to_numpy(),
                             "conf_low": fx["conf_low"].to_numpy(), "conf_high": fx["conf_high"].to_numpy()})
    if effect == "ran_pars":
        return _bayes_ran_pars(fit, level)
    table = fit.ranef(prob=level) if effect == "ran_vals" else fit.coef(prob=level)
    return pd.DataFrame({"group": table["group"], "level": table["level"], "term": table["term"],
                         "estimate": table["Estimate"], "std_error": table["Est.Error"],
                         "conf_low": table["conf_low"], "conf_high": table["conf_high"]})


def _bayes_ran_pars(fit: Any, level: float) -> pd.DataFrame:
    vc = fit.varcorr(prob=level)
    # the share of variance per draw, averaged: the posterior mean of the proportion
    d = fit.design
    variances = {}
    for b in d.blocks:
        sd = fit._flat(f"sd_{b.group}")
        for i, t in enumerate(b.terms):
            variances[(b.group, t)] = sd[:, i] ** 2
    fam = d.family
    resid = None
    if d.residual.group in set(vc["grp"]):
        resid = fit._flat(d.residual.scale) ** 2
    else:
        resid = fam.latent_variance(fit._flat(fam.dispersion) if fam.dispersion else None)
    total = sum(variances.values()) + (resid if resid is not None else 0.0)
    props = []
    for _, r in vc.iterrows():
        if not isinstance(r["var1"], str):
            props.append(float(np.mean(resid / total)))
        elif isinstance(r["var2"], str):
            props.append(np.nan)
        else:
            props.append(float(np.mean(variances[(r["grp"], r["var1"])] / total)))
    # every column in varcorr's row order, reordered with the rows (a correlation's interval
    # belongs to the correlation's row, wherever confint's order puts it)
    return ran_pars_table(vc, d, extra={"std_error": vc["Est.Error"], "conf_low": vc["conf_low"],
                                        "conf_high": vc["conf_high"], "var_prop": props})


def glance(fit: Any) -> pd.DataFrame:
    """One row describing the fit (broom.mixed's ``glance``).

    REML/ML and glmer fits: ``nobs``, ``sigma``, ``logLik``, ``AIC``,
    ``BIC``, ``REMLcrit`` (a REML fit's criterion) or ``deviance`` (an ML
    fit's -2 logLik; a glmer fit's lme4 ``deviance()``, the deviance
    residuals' sum), ``df_residual``. Bayesian fits: ``algorithm``, ``pss`` (posterior sample
    size), ``nobs``, ``sigma`` (posterior mean, where the family has one),
    ``chains``, ``divergences``, ``max_rhat`` and ``min_ess_bulk``.

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
    >>> glance(fit)[["nobs", "AIC"]].round(2).values.tolist()
    [[180.0, 1755.63]]
    """
    if _is_bayes(fit):
        d = fit.diagnostics()
        post = fit.posterior
        row = {"algorithm": f"NUTS ({fit.info.sampler})", "pss": post.n_chains * post.n_draws,
               "nobs": fit.design.n_obs}
        scale = fit.design.residual.scale
        if scale in post:
            row["sigma"] = float(np.mean(fit._flat(scale)))
        row.update({"chains": post.n_chains, "divergences": d.divergences,
                    "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk})
        return pd.DataFrame([row])
    row = {"nobs": fit.nobs, "sigma": float(fit.sigma), "logLik": fit.loglik, "AIC": fit.aic,
           "BIC": fit.bic}
    # broom.mixed: a REML fit's criterion is REMLcrit; an ML or glmer fit's lme4's deviance()
    row["REMLcrit" if getattr(fit, "reml", False) else "deviance"] = float(fit.deviance)
    row["df_residual"] = fit.nobs - fit.n_params
    return pd.DataFrame([row])
