"""The folds of k-fold cross-validation: the split, the refit of each fold, and the log
predictive density of each held-out row.

:func:`kfold_split_random` and :func:`kfold_split_grouped` are loo's; each fold is one task
of :func:`hierbayes.execution.run_tasks` (:func:`fold_task`, with :class:`FoldJob` as its
shared data), scored by :func:`lmer_elpd` (REML/ML plug-in, exact), :func:`glmer_elpd`
(plug-in, new levels by adaptive Gauss-Hermite quadrature) or :func:`bayes_elpd` (brms's
kfold); :func:`hierbayes.report.kfold.kfold` puts them together.

Examples
--------
>>> f = kfold_split_random(4, 10, seed=1)
>>> sorted(np.bincount(f)[1:].tolist())
[2, 2, 3, 3]
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError, HierbayesError, HierbayesWarning, SettingsError, check_count

#: Nodes of the adaptive Gauss-Hermite rule that integrates a glmer row's new group effects.
AGQ_NODES = 25

# ---------------------------------------------------------------- the split


def check_seed(seed: Any) -> None:
    """Refuse a seed that is not None or a non-negative integer."""
    if seed is not None and (isinstance(seed, bool | np.bool_) or
                             not isinstance(seed, int | np.integer) or seed < 0):
        raise SettingsError(f"seed must be None or a non-negative integer, not {seed!r}.")


def kfold_split_random(K: int, n: int, seed: int | None = None) -> np.ndarray:
    """Fold ids 1..K for ``n`` rows, in K balanced folds at random (loo's ``kfold_split_random``).

    Fold sizes differ by at most one; the split depends on ``seed`` only.

    Examples
    --------
    >>> f = kfold_split_random(3, 10, seed=1)
    >>> sorted(np.bincount(f)[1:].tolist()), bool((f == kfold_split_random(3, 10, seed=1)).all())
    ([3, 3, 4], True)
    """
    check_count("K", K, minimum=2)
    check_count("n", n)
    check_seed(seed)
    if K > n:
        raise DataError(f"K={K} folds need at least {K} rows; there are {n}. Choose K <= {n}.")
    # rep_len(1:K, n) shuffled, as loo does
    return np.random.default_rng(seed).permutation(np.resize(np.arange(1, K + 1), n))


def kfold_split_grouped(K: int, x: Any, seed: int | None = None) -> np.ndarray:
    """Fold ids 1..K per row with all rows of a level of ``x`` in one fold (loo's
    ``kfold_split_grouped``): the levels are split at random over the folds, as
    evenly as they go (level counts per fold differ by at most one).

    Examples
    --------
    >>> g = np.repeat(["a", "b", "c", "d"], [1, 2, 3, 4])
    >>> f = kfold_split_grouped(2, g, seed=3)
    >>> all(len(set(f[g == lv])) == 1 for lv in "abcd"), sorted(np.bincount(f[[0, 1, 3, 6]])[1:].tolist())
    (True, [2, 2])
    """
    check_count("K", K, minimum=2)
    check_seed(seed)
    codes, levels = pd.factorize(pd.Series(np.asarray(x, dtype=object)), sort=True)
    if (codes < 0).any():
        raise DataError(f"The grouping of the folds has {int((codes < 0).sum())} missing values; "
                        "each row needs a level.")
    if K > len(levels):
        raise DataError(f"K={K} grouped folds need at least {K} levels; the grouping has "
                        f"{len(levels)}. Choose K <= {len(levels)} (K={len(levels)}: leave one "
                        "level out).")
    per_level = np.random.default_rng(seed).permutation(np.resize(np.arange(1, K + 1), len(levels)))
    return per_level[codes]


def group_labels(design: Any, positions: np.ndarray, group: str) -> np.ndarray:
    """Each fitted row's level of ``group``: a grouping factor of the model (``"ward:hospital"``)
    or a column of the data."""
    for b in design.blocks:
        if group in (b.factor, b.group):
            return np.asarray(b.levels, dtype=object)[b.index]
    source = design.source
    if source is None or group not in source.columns:
        factors = [b.factor for b in design.blocks]
        columns = [] if source is None else [str(c) for c in source.columns]
        raise DataError(f"group={group!r} is neither a grouping factor of the model ({factors}) "
                        f"nor a column of the data ({columns}).")
    return source[group].iloc[positions].to_numpy(dtype=object)


def fold_ids(design: Any, positions: np.ndarray, K: int, group: str | None, folds: Any,
             seed: int) -> np.ndarray:
    """The fitted rows' fold ids 1..K: ``folds`` as given (renumbered in sorted order), else
    grouped by ``group``, else at random."""
    n = design.n_obs
    labels = None if group is None else group_labels(design, positions, group)
    if folds is None:
        if labels is not None:
            return kfold_split_grouped(K, labels, seed)
        return kfold_split_random(K, n, seed)
    values = np.asarray(folds)
    if values.ndim != 1 or len(values) != n:
        raise DataError(f"folds= needs one fold id per fitted row ({n} rows"
                        f"{f', after {design.dropped_rows} dropped for missing values' if design.dropped_rows else ''}), "
                        f"not an array of shape {values.shape}.")
    if pd.isna(values).any():
        raise DataError("folds= has missing values; give every row a fold id.")
    ids, out = np.unique(values, return_inverse=True)
    if len(ids) < 2:
        raise DataError("folds= has a single fold id: k-fold cross-validation needs at least 2.")
    out = out.reshape(-1) + 1
    if labels is not None:
        split = pd.Series(out).groupby(pd.Series(labels)).nunique()
        if (split > 1).any():
            raise DataError(f"folds= splits level(s) {list(split[split > 1].index[:5])} of "
                            f"'{group}' across folds; leave group= out, or keep each level in one fold.")
    return out


# ---------------------------------------------------------------- the held-out rows


def held_out_rows(fold_design: Any, design: Any, test: np.ndarray) -> Any:
    """The held-out rows in the fold fit's columns, with the full design's offset, trials and
    weights (the rows' own known values, whatever the fold's fit learnt)."""
    from hierbayes.report.predict import prediction_rows

    # a zero offset= keeps prediction_rows from asking for one; the rows' own replaces it below
    rows = prediction_rows(fold_design, design.frame.iloc[test], allow_new_levels=True,
                           offset=np.zeros(len(test)))

    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[test]

    return replace(rows, offset=cut(design.offset), trials=cut(design.trials),
                   weights=cut(design.weights))


def new_level_variance(rows: Any, covariances: list[np.ndarray]) -> np.ndarray:
    """Per row, the variance of its new levels' effects on the linear predictor: the sum over
    blocks where its level is new of ``z' G z``."""
    v = np.zeros(rows.n_rows)
    for Z, idx, G in zip(rows.Z, rows.index, covariances, strict=True):
        new = idx < 0
        v[new] += np.einsum("ij,jk,ik->i", Z[new], G, Z[new])
    return v


def lmer_elpd(fit: Any, design: Any, test: np.ndarray) -> np.ndarray:
    """REML/ML plug-in: ``N(x'beta + z'b, sigma^2 / w)`` at a seen level, the new levels' effects
    marginalised (``+ z' G z``) at a new one; exact, per row."""
    from hierbayes.report.predict import eta_point

    rows = held_out_rows(fit.design, design, test)
    eta = eta_point(rows, fit.estimates.beta, fit.estimates.b)
    w = np.ones(len(test)) if rows.weights is None else rows.weights
    var = fit.sigma**2 / w + new_level_variance(rows, fit.covariance())
    return -0.5 * (np.log(2 * np.pi * var) + (design.y[test] - eta) ** 2 / var)


def glmer_dispersion(fit: Any) -> float | None:
    """The family's dispersion at a glmer fit: glmer.nb's shape, the Gamma's ``1 / sigma^2``."""
    if fit.design.family.name == "negbinomial":
        return float(fit.dispersion)
    if fit.design.family.name == "gamma":
        return 1.0 / fit.sigma**2
    return None


def integrate_new_levels(family: Any, y: np.ndarray, eta0: np.ndarray, v: np.ndarray,
                         dispersion: float | None, trials: np.ndarray | None,
                         weights: np.ndarray | None, nodes: int = AGQ_NODES) -> np.ndarray:
    """``log int p(y | eta0 + sqrt(v) t) phi(t) dt`` per row by adaptive Gauss-Hermite
    quadrature (lme4's AGQ: centred at the mode of the integrand, scaled by its curvature).

    The new effects enter a row only through ``z'u``, a scalar normal of variance ``v``,
    so one dimension suffices whatever the terms.
    """
    from scipy.special import logsumexp

    def g(t: np.ndarray) -> np.ndarray:  # t: (J, rows)
        d = None if dispersion is None else np.full(t.shape[0], dispersion)
        return family.loglik(y, eta0 + np.sqrt(v) * t, d, trials=trials, weights=weights) - t**2 / 2

    t, h = np.zeros(len(y)), 1e-3
    for _ in range(100):
        g3 = g(np.stack([t - h, t, t + h]))
        d1 = (g3[2] - g3[0]) / (2 * h)
        # the standard normal's -t^2/2 makes g at least that concave; the floor guards round-off
        d2 = np.minimum((g3[2] - 2 * g3[1] + g3[0]) / h**2, -0.5)
        step = np.clip(-d1 / d2, -2.0, 2.0)
        t = t + step
        if np.max(np.abs(step)) < 1e-9:
            break
    g3 = g(np.stack([t - h, t, t + h]))
    s = 1.0 / np.sqrt(-np.minimum((g3[2] - 2 * g3[1] + g3[0]) / h**2, -0.5))
    x, wts = np.polynomial.hermite.hermgauss(nodes)  # int exp(-x^2) f(x) dx
    tk = t + np.sqrt(2.0) * s * x[:, None]
    terms = g(tk) + x[:, None] ** 2 + np.log(wts)[:, None]
    return np.log(np.sqrt(2.0) * s) + logsumexp(terms, axis=0) - 0.5 * np.log(2 * np.pi)


def glmer_elpd(fit: Any, design: Any, test: np.ndarray) -> np.ndarray:
    """glmer plug-in: the family's density at the modes for seen levels, new levels' effects
    integrated out (:func:`integrate_new_levels`)."""
    from hierbayes.report.predict import eta_point

    rows = held_out_rows(fit.design, design, test)
    eta = eta_point(rows, fit.estimates.beta, fit.estimates.b)
    v = new_level_variance(rows, fit.covariance())
    disp = glmer_dispersion(fit)
    y = design.y[test]
    out = design.family.loglik(y, eta[None, :], None if disp is None else np.array([disp]),
                               trials=rows.trials, weights=rows.weights)[0]
    new = v > 1e-14
    if new.any():
        def at(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[new]

        out[new] = integrate_new_levels(design.family, y[new], eta[new], v[new], disp,
                                        at(rows.trials), at(rows.weights))
    return out


def bayes_elpd(fit: Any, design: Any, test: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """brms's kfold: ``log mean_s p(y_i | theta_s)``, new levels' effects drawn from the
    population distribution per draw (shared by a level's rows within a draw)."""
    from scipy.special import logsumexp

    from hierbayes.report.predict import iter_posterior_draws

    rows = held_out_rows(fit.design, design, test)
    post = fit.posterior
    S = post.n_chains * post.n_draws
    fam = design.family
    disp = np.asarray(post[fam.dispersion]).reshape(S) if fam.dispersion else None
    y = design.y[test]
    out = np.empty(len(test))
    for sl, eta in iter_posterior_draws(fit, rows, kind="link", seed=rng):
        ll = fam.loglik(y[sl], eta, disp,
                        trials=None if rows.trials is None else rows.trials[sl],
                        weights=None if rows.weights is None else rows.weights[sl])
        out[sl] = logsumexp(ll, axis=0) - np.log(S)
    return out


def full_lpd(fit: Any, method: str) -> np.ndarray:
    """Per row, the full fit's log predictive density of its own data: the posterior mean of the
    likelihood (Bayes), or the conditional likelihood at the estimates (REML/ML, glmer)."""
    design = fit.design
    if method == "bayes":
        from scipy.special import logsumexp

        ll = fit.idata.log_likelihood[fit.model.observed_name].to_numpy()
        ll = ll.reshape(-1, ll.shape[-1])
        return logsumexp(ll, axis=0) - np.log(ll.shape[0])
    if method == "glmer":
        disp = glmer_dispersion(fit)
        return design.family.loglik(design.y, fit.estimates.eta[None, :],
                                    None if disp is None else np.array([disp]),
                                    trials=design.trials, weights=design.weights)[0]
    from hierbayes.report.predict import eta_point, prediction_rows

    eta = eta_point(prediction_rows(design), fit.estimates.beta, fit.estimates.b)
    w = np.ones(design.n_obs) if design.weights is None else design.weights
    var = fit.sigma**2 / w
    return -0.5 * (np.log(2 * np.pi * var) + (design.y - eta) ** 2 / var)


# ---------------------------------------------------------------- the folds' task


@dataclass
class FoldJob:
    """What every fold needs (``shared`` of :func:`~hierbayes.execution.run_tasks`).

    ``refitter`` is the fit (REML/ML, glmer) or its model (Bayes: the fit's draws
    need not travel); ``changes`` go to the refit, ``per_row`` are ``weights=`` /
    ``offset=`` given one value per data row, cut to the training rows.
    """

    method: str
    refitter: Any
    folds: np.ndarray
    positions: np.ndarray
    changes: dict[str, Any]
    fit_settings: dict[str, Any]
    per_row: dict[str, np.ndarray]


def fold_task(job: FoldJob, k: int, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """Refit without fold ``k`` and score its rows; returns their elpd and the refit's
    warnings as ``(category, message)``, for the caller to say which fold gave them."""
    design = job.refitter.design
    test = np.flatnonzero(job.folds == k)
    train = job.positions[job.folds != k]
    changes = {**job.changes, "data": design.source.iloc[train],
               **{name: values[train] for name, values in job.per_row.items()}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", HierbayesWarning)
        try:
            if job.method == "bayes":
                seed = int(rng.integers(0, 2**32))
                fit = job.refitter.update(**changes).fit(seed=seed, progressbar=False,
                                                         **job.fit_settings)
                elpd = bayes_elpd(fit, design, test, rng)
            else:
                from hierbayes.report.refit import update_fit

                fit = update_fit(job.refitter, **changes)
                elpd = (glmer_elpd if job.method == "glmer" else lmer_elpd)(fit, design, test)
        except HierbayesError as err:
            raise type(err)(f"k-fold, fold {k} ({len(test)} rows held out): {err}") from err
    return elpd, [(w.category, str(w.message)) for w in caught]


def fit_method(fit: Any) -> str:
    """``"bayes"``, ``"reml"``, ``"ml"`` or ``"glmer"``; a fit of another type is refused."""
    # the engines' records and the report's marks, not the report classes, which reach this
    # module through their kfold method
    from hierbayes.freq.glmermod import GlmerMod
    from hierbayes.freq.mermod import MerMod

    if hasattr(fit, "posterior") and hasattr(fit, "headline_draws"):
        return "bayes"
    if isinstance(fit, GlmerMod) and hasattr(fit, "from_glmermod"):
        return "glmer"
    if isinstance(fit, MerMod) and hasattr(fit, "from_mermod"):
        return "reml" if fit.reml else "ml"
    raise DataError(f"kfold cross-validates a fit of hb.lmer, hb.glmer or Model.fit(), not a "
                    f"{type(fit).__name__}.")


def source_positions(design: Any) -> np.ndarray:
    """The fitted rows' positions in the data as given."""
    source = design.source
    if source is None:
        raise DataError("This fit does not hold the data it was fitted to (a fit read from a file "
                        "keeps only its formula's columns), so it cannot be refitted by fold. "
                        "Fit it again from the data.")
    if source.index.is_unique:
        return source.index.get_indexer(design.rows)
    if len(source) == design.n_obs:
        return np.arange(design.n_obs)
    raise DataError("The data's index has duplicate labels and rows were dropped for missing "
                    "values, so the fitted rows cannot be matched to the data: reset the index "
                    "(df.reset_index(drop=True)) or drop the rows first, and fit again.")


def fold_settings(fit: Any, method: str, fit_settings: dict[str, Any],
                  parallel: bool) -> tuple[dict, dict]:
    """``(refit changes, Bayesian fit() settings)`` for the folds, checked before any work."""
    from hierbayes.report.refit import BAYES_FIT_SETTINGS, GLMER_SETTINGS, LMER_SETTINGS

    allowed = {"bayes": ("priors", *BAYES_FIT_SETTINGS), "glmer": GLMER_SETTINGS}.get(
        method, LMER_SETTINGS)
    allowed = tuple(k for k in allowed if k not in ("seed", "progressbar"))
    bad = [k for k in fit_settings if k not in allowed]
    if bad:
        why = (" (each fold's seed derives from seed=; the bar is kfold's)"
               if set(bad) & {"seed", "progressbar"} else "")
        raise SettingsError(f"kfold cannot change {', '.join(map(repr, bad))} of the folds' refits"
                            f"{why}; it takes {', '.join(allowed)}. The data, formula, family, "
                            "weights and offset are the fit's.")
    if method != "bayes":
        if "reml" in fit_settings and not isinstance(fit_settings["reml"], bool):
            raise SettingsError(f"reml must be True or False, not {fit_settings['reml']!r}.")
        if "optimizer" in fit_settings:
            from hierbayes.freq.optimize import OPTIMIZERS

            if fit_settings["optimizer"] not in OPTIMIZERS:
                raise SettingsError(f"optimizer must be one of {OPTIMIZERS}, not "
                                    f"{fit_settings['optimizer']!r}.")
        if "nAGQ" in fit_settings:
            from hierbayes.freq.laplace import check_glmm

            check_glmm(fit.design, fit_settings["nAGQ"])
        if fit_settings.get("information", "expected") not in ("expected", "observed"):
            raise SettingsError(f"information must be 'expected' or 'observed', not "
                                f"{fit_settings['information']!r}.")
        return dict(fit_settings), {}
    from hierbayes.bayes.sampler import check_settings

    info = fit.info
    settings = {"draws": info.draws, "tune": info.tune, "chains": info.chains,
                "sampler": info.sampler, "target_accept": info.target_accept,
                "max_treedepth": info.max_treedepth, "check": True}
    if parallel:
        settings["cores"] = 1  # the folds are the parallel part; chains in turn in each worker
    changes = {k: fit_settings[k] for k in fit_settings if k == "priors"}
    settings.update({k: v for k, v in fit_settings.items() if k != "priors"})
    check_settings(fit.model, settings["draws"], settings["tune"], settings["chains"], None,
                   settings["sampler"], settings["target_accept"], settings.get("cores"), False,
                   settings.get("centred"), settings.get("marginal"), settings["max_treedepth"])
    return changes, settings


def per_row_settings(design: Any) -> dict[str, np.ndarray]:
    """``weights=`` and ``offset=`` given one value per data row (a column name needs nothing)."""
    out = {}
    for name in ("weights", "offset"):
        value = design.settings.get(name)
        if value is not None and not isinstance(value, str):
            out[name] = np.asarray(value)
    return out
