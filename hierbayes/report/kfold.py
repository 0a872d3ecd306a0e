"""k-fold cross-validation of a fit, as brms's ``kfold``, and the comparison of fits by it.

:func:`kfold` splits the fitted rows into K folds (at random, or keeping each
level of a grouping factor in one fold, as loo's ``kfold_split_random`` and
``kfold_split_grouped``), refits the model K times without one fold
(:func:`hierbayes.report.refit.update_fit`'s way: the same formula, family,
weights, priors and settings) and scores each held-out row by its log
predictive density. The K refits run through
:func:`hierbayes.execution.run_tasks`, serially, on a process pool or on a
Dask cluster, with the same numbers everywhere. :func:`kfold_compare` ranks
fits by their k-fold elpd on one shared split, as ``hb.loo_compare`` ranks
them by PSIS-LOO. This is the check that LOO's Pareto-k warning asks for. The split,
the folds' task and the held-out rows' densities are :mod:`hierbayes.report.kfold_folds`'.

Examples
--------
>>> import hierbayes as hb
>>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> kf = kfold(fit, K=3, group="Subject", seed=1, progressbar=False)
>>> kf.K, kf.pointwise.groupby("fold").size().tolist()
(3, [60, 60, 60])
>>> bool(kf.elpd_kfold < 0 and kf.se > 0)
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import ConvergenceWarning, DataError, check_count
from hierbayes.report.kfold_folds import (
    FoldJob,
    check_seed,
    fit_method,
    fold_ids,
    fold_settings,
    fold_task,
    full_lpd,
    kfold_split_grouped,
    kfold_split_random,
    per_row_settings,
    source_positions,
)

__all__ = ["KFold", "kfold", "kfold_compare", "kfold_split_grouped", "kfold_split_random"]


# ---------------------------------------------------------------- the result


@dataclass
class KFold:
    """k-fold cross-validation of a fit: brms's ``kfold`` object.

    Attributes
    ----------
    elpd_kfold, se
        The sum of the held-out rows' log predictive densities, and its SE
        ``sqrt(n) * sd(pointwise)`` (loo's).
    p_kfold, se_p_kfold
        ``lpd_full - elpd_kfold`` (loo's effective number of parameters) with
        its SE: for a Bayesian fit lpd_full is the in-sample log pointwise
        predictive density; for REML/ML and glmer fits the plug-in analogue, the
        conditional log-likelihood at the full fit's estimates and modes.
    pointwise
        One row per fitted row (indexed as ``design.rows``): ``elpd``, ``fold``
        and ``p_kfold``.
    folds
        Each fitted row's fold, 1..K.
    K, group, seed
        The number of folds, the grouping they keep together (None: rows at
        random) and the seed of the split and the refits.
    method
        ``"bayes"``, ``"reml"``, ``"ml"`` or ``"glmer"``.
    formula
        The fit's formula.
    y
        The response, to check that compared fits saw the same data.
    warned
        The folds whose refit failed its convergence checks.
    """

    elpd_kfold: float
    se: float
    p_kfold: float
    se_p_kfold: float
    pointwise: pd.DataFrame
    folds: np.ndarray
    K: int
    group: str | None
    seed: int
    method: str
    formula: str
    y: np.ndarray = field(repr=False)
    warned: list[int] = field(default_factory=list)

    @property
    def kfoldic(self) -> float:
        """``-2 elpd_kfold``, on the deviance scale."""
        return -2 * self.elpd_kfold

    @property
    def estimates(self) -> pd.DataFrame:
        """brms's ``estimates``: rows elpd_kfold, p_kfold and kfoldic, columns Estimate and SE."""
        return pd.DataFrame({"Estimate": [self.elpd_kfold, self.p_kfold, self.kfoldic],
                             "SE": [self.se, self.se_p_kfold, 2 * self.se]},
                            index=["elpd_kfold", "p_kfold", "kfoldic"])

    def __str__(self) -> str:
        est = self.estimates
        cells = [[f"{v:.1f}" for v in est[c]] for c in est.columns]
        widths = [max(len(c), *(len(v) for v in col)) for c, col in zip(est.columns, cells, strict=True)]
        name_w = max(len(i) for i in est.index)
        head = " " * name_w + "".join(f" {c:>{w}}" for c, w in zip(est.columns, widths, strict=True))
        lines = ["", f"Based on {self.K}-fold cross-validation.", "", head]
        for r, name in enumerate(est.index):
            lines.append(f"{name:<{name_w}}" + "".join(f" {col[r]:>{w}}"
                                                      for col, w in zip(cells, widths, strict=True)))
        how = f"each level of {self.group} in one fold" if self.group else "rows at random"
        lines += ["", f"Folds: {how}; seed {self.seed}."]
        if self.method != "bayes":
            lines.append(f"{self.method.upper()} plug-in predictive; p_kfold from the conditional "
                         "log-likelihood at the full fit's estimates.")
        if self.warned:
            lines.append(f"Refits that failed their convergence checks: fold(s) "
                         f"{', '.join(map(str, self.warned))}.")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.__str__()


def summarise(elpd: np.ndarray, lpd_full: np.ndarray, folds: np.ndarray, rows: pd.Index,
              **info: Any) -> KFold:
    """The KFold of the held-out rows' elpd and the full fit's lpd."""
    n = len(elpd)
    p = lpd_full - elpd
    pointwise = pd.DataFrame({"elpd": elpd, "fold": folds, "p_kfold": p}, index=rows)
    return KFold(elpd_kfold=float(elpd.sum()), se=float(np.sqrt(n * np.var(elpd, ddof=1))),
                 p_kfold=float(p.sum()), se_p_kfold=float(np.sqrt(n * np.var(p, ddof=1))),
                 pointwise=pointwise, folds=folds, **info)


# ---------------------------------------------------------------- the entry points


def report_warnings(caught: list[list[tuple[type, str]]], K: int, sizes: list[int]) -> list[int]:
    """One warning per fold whose refit failed its convergence checks (naming the fold), the
    folds' other warnings once each; returns the folds that failed."""
    failed, seen = [], set()
    for k, (messages, size) in enumerate(zip(caught, sizes, strict=True), start=1):
        convergence = [m for c, m in messages if issubclass(c, ConvergenceWarning)]
        if convergence:
            failed.append(k)
            more = f" (and {len(convergence) - 1} more)" if len(convergence) > 1 else ""
            warnings.warn(f"k-fold: the refit of fold {k} of {K} ({size} rows held out) failed its "
                          f"convergence checks: {convergence[0]}{more} Its elpd is less reliable; "
                          "refit with more draws/tune (Bayes) or check the model.",
                          ConvergenceWarning, stacklevel=3)
        for category, message in messages:
            if not issubclass(category, ConvergenceWarning) and (category, message) not in seen:
                seen.add((category, message))
                warnings.warn(f"k-fold, fold {k}: {message}", category, stacklevel=3)
    return failed


def kfold(fit: Any, K: int = 10, group: str | None = None, folds: Any = None,
          seed: int | None = None, executor: Any = None, client: Any = None,
          n_jobs: int | None = 1, progressbar: bool = True, **fit_settings: Any) -> KFold:
    """k-fold cross-validation, as brms's ``kfold``: K refits, each without one fold.

    Each fold's refit is :func:`~hierbayes.report.refit.update_fit`'s (the same
    formula, family, weights, offset and priors; a Bayesian fit's draws, tune,
    chains, sampler, target_accept and max_treedepth) on the other folds' rows,
    and each held-out row is scored by its log predictive density:

    * Bayesian fits: ``elpd_i = log mean_s p(y_i | theta_s)`` over the refit's
      draws, with the family's log density at each draw's dispersion; a level the
      refit never saw gets group effects drawn from the fitted population
      distribution per draw, shared by its rows within a draw (brms's
      ``sample_new_levels = "gaussian"``). Each refit's sampler seed and those
      draws come from the fold's random stream.
    * REML/ML fits (plug-in): ``N(x'beta + z'b, sigma^2 / w)`` at a seen level
      (its conditional mode ``b``); at a new level ``N(x'beta, z' G z + sigma^2 / w)``,
      the new effects marginalised exactly, per row (as brms scores per row).
    * glmer fits (plug-in): the family's density at the modes for seen levels; a
      new level's effects integrated out by adaptive Gauss-Hermite quadrature
      (:data:`~hierbayes.report.kfold_folds.AGQ_NODES` nodes; one dimension per row,
      since they enter it as the scalar ``z'u ~ N(0, z' G z)`` whatever the terms);
      no Monte Carlo.

    Parameters
    ----------
    fit
        An :class:`~hierbayes.LmerFit`, :class:`~hierbayes.GlmerFit` or
        :class:`~hierbayes.BayesFit` that holds its data.
    K
        Number of folds, 2 to the number of rows (of levels with ``group``).
        Ignored when ``folds`` is given, as in brms.
    group
        Keep all rows of each level together (loo's ``kfold_split_grouped``): a
        grouping factor of the model (``"Subject"``, ``"ward:hospital"``) or a
        column of the data. Levels are split evenly and at random over the
        folds, so a held-out level is a new level. None: rows at random in K
        balanced folds.
    folds
        One fold id per fitted row (any labels; numbered 1..K in sorted order);
        overrides ``K`` and the random split (with ``group`` it must keep each
        level in one fold).
    seed
        Seeds the split and each fold's refit (its stream of ``SeedSequence(seed)``),
        so the result is the same on any executor. None: a fresh seed, recorded in
        ``KFold.seed``.
    executor, client, n_jobs, progressbar
        Where the refits run (:func:`hierbayes.execution.run_tasks`).
    **fit_settings
        Changes to the refits: Bayes ``draws``, ``tune``, ``chains``, ``sampler``,
        ``target_accept``, ``cores``, ``check``, ``centred``, ``marginal``,
        ``max_treedepth``, ``priors``; lmer ``reml``, ``optimizer``; glmer
        ``nAGQ``, ``information``.

    Returns
    -------
    KFold
        ``elpd_kfold``, ``se``, ``p_kfold`` (Bayes: ``lpd_full - elpd_kfold`` with the
        in-sample lpd, as loo; REML/ML and glmer: the plug-in analogue, the
        conditional log-likelihood at the full fit's estimates less elpd_kfold),
        ``pointwise``, ``folds``; prints as brms's ``kfold``. A fold whose refit fails
        its convergence checks gives a :class:`~hierbayes.ConvergenceWarning`
        naming the fold.

    Examples
    --------
    >>> import hierbayes as hb
    >>> df = hb.datasets.load("sleepstudy")
    >>> kf = kfold(hb.lmer("Reaction ~ Days + (Days | Subject)", df), K=18, group="Subject",
    ...            seed=2, progressbar=False)
    >>> print(kf)  # doctest: +ELLIPSIS
    <BLANKLINE>
    Based on 18-fold cross-validation.
    <BLANKLINE>
               Estimate   SE
    elpd_kfold ...
    """
    from hierbayes.execution import run_tasks

    method = fit_method(fit)
    design = fit.design
    check_count("K", K, minimum=2)
    check_seed(seed)
    if group is not None and not isinstance(group, str):
        raise DataError(f"group= names a grouping factor or a column, not {group!r}.")
    if not design.residual.is_iid:
        raise DataError("kfold scores held-out rows one by one, which a model with sigma= or "
                        "correlation= residuals does not factorise into; it covers models with "
                        "independent errors.")
    positions = source_positions(design)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy)
    fold = fold_ids(design, positions, K, group, folds, seed)
    K = int(fold.max())
    parallel = executor is not None or client is not None or n_jobs != 1
    changes, settings = fold_settings(fit, method, dict(fit_settings), parallel)
    job = FoldJob(method=method, refitter=fit.model if method == "bayes" else fit, folds=fold,
                  positions=positions, changes=changes, fit_settings=settings,
                  per_row=per_row_settings(design))
    out = run_tasks(fold_task, range(1, K + 1), shared=job, seed=seed, executor=executor,
                    client=client, n_jobs=n_jobs, progressbar=progressbar, label="k-fold refits")
    elpd = np.empty(design.n_obs)
    for k, (values, _) in enumerate(out, start=1):
        elpd[fold == k] = values
    failed = report_warnings([m for _, m in out], K, np.bincount(fold)[1:].tolist())
    return summarise(elpd, full_lpd(fit, method), fold, design.rows, K=K, group=group, seed=seed,
                     method=method, formula=design.formula.formula, y=np.asarray(design.y),
                     warned=failed)


def kfold_compare(fits: dict[str, Any], K: int = 10, group: str | None = None,
                  folds: Any = None, seed: int | None = None, executor: Any = None,
                  client: Any = None, n_jobs: int | None = 1, progressbar: bool = True,
                  **fit_settings: Any) -> pd.DataFrame:
    """Rank fits by k-fold elpd, as ``hb.loo_compare`` (loo's ``loo_compare``) ranks them by LOO.

    Parameters
    ----------
    fits
        Name -> :class:`KFold` or fit. Fits are cross-validated on one shared
        split: a given KFold's folds, else ``folds``, else a split of ``K``
        folds (by ``group``) drawn from ``seed``; the other arguments as
        :func:`kfold`'s.

    Returns
    -------
    pandas.DataFrame
        Best first, indexed by name: rank, elpd_kfold, p_kfold, elpd_diff (to the
        best), se, se_diff (``sqrt(n) * sd`` of the pointwise differences from the
        best), warning (a fold's refit failed its checks), scale (``"log"``).

    Examples
    --------
    >>> import hierbayes as hb
    >>> df = hb.datasets.load("sleepstudy")
    >>> fits = {"slope": hb.lmer("Reaction ~ Days + (Days | Subject)", df),
    ...         "intercept": hb.lmer("Reaction ~ Days + (1 | Subject)", df)}
    >>> table = kfold_compare(fits, K=6, group="Subject", seed=1, progressbar=False)
    >>> table.index.tolist(), table.columns.tolist()[:4]
    (['slope', 'intercept'], ['rank', 'elpd_kfold', 'p_kfold', 'elpd_diff'])
    """
    if not isinstance(fits, dict) or len(fits) < 2:
        raise DataError("kfold_compare needs a dict of at least two named fits or KFold results, "
                        "e.g. {'slope': fit_a, 'intercept': fit_b}.")
    check_seed(seed)
    for name, item in fits.items():
        if not isinstance(item, KFold):
            try:
                fit_method(item)
            except DataError as err:
                raise DataError(f"'{name}': {err}") from None
    done = {name: item for name, item in fits.items() if isinstance(item, KFold)}
    todo = {name: item for name, item in fits.items() if not isinstance(item, KFold)}
    if todo:
        first = next(iter(todo.values()))
        if done:
            shared = next(iter(done.values())).folds
        else:
            check_count("K", K, minimum=2)
            if seed is None:
                seed = int(np.random.SeedSequence().entropy)
            shared = fold_ids(first.design, source_positions(first.design), K, group, folds, seed)
        for name, f in todo.items():
            if f.design.n_obs != len(shared):
                raise DataError(f"'{name}' has {f.design.n_obs} fitted rows, the shared folds "
                                f"{len(shared)}: compare fits of the same rows.")
        done.update({name: kfold(f, group=group, folds=shared, seed=seed, executor=executor,
                                 client=client, n_jobs=n_jobs, progressbar=progressbar,
                                 **fit_settings) for name, f in todo.items()})
    results = {name: done[name] for name in fits}
    ref_name, ref = next(iter(results.items()))
    for name, kf in results.items():
        if len(kf.y) != len(ref.y) or not np.array_equal(kf.y, ref.y) or \
                not kf.pointwise.index.equals(ref.pointwise.index):
            raise DataError(f"'{name}' and '{ref_name}' were not fitted to the same rows: k-fold "
                            "compares models of the same data only.")
        if not np.array_equal(kf.folds, ref.folds):
            raise DataError(f"'{name}' and '{ref_name}' were cross-validated on different folds; "
                            "the pointwise differences need one split: pass folds=ref.folds, or "
                            "give kfold_compare the fits.")
    order = sorted(results, key=lambda n: -results[n].elpd_kfold)
    best = results[order[0]].pointwise["elpd"].to_numpy()
    n = len(best)
    rows = []
    for rank, name in enumerate(order):
        kf = results[name]
        diff = best - kf.pointwise["elpd"].to_numpy()
        rows.append({"rank": rank, "elpd_kfold": kf.elpd_kfold, "p_kfold": kf.p_kfold,
                     "elpd_diff": float(diff.sum()),
                     "se": kf.se, "se_diff": float(np.sqrt(n * np.var(diff, ddof=1))) if rank else 0.0,
                     "warning": bool(kf.warned), "scale": "log"})
    table = pd.DataFrame(rows, index=pd.Index(order))
    table.attrs.update({"K": ref.K, "group": ref.group, "seed": ref.seed})
    return table
