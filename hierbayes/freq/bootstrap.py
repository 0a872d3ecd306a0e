"""The parametric bootstrap of a REML/ML or GLMM fit (lme4's ``bootMer``) and its percentile intervals.

Each replicate simulates a response from the fit with new group effects and
noise (:func:`hierbayes.freq.sim.simulate_responses`; a GLMM's by
:func:`hierbayes.freq.glmersim.simulate_glmer_responses`), refits it
(:func:`hierbayes.freq.fit.refit`, from the fit's theta; a GLMM by
:func:`hierbayes.freq.glmer.refit`) and records every
parameter (:func:`hierbayes.freq.params.parameter_values`); :func:`boot`
takes percentile intervals from the replicates (``boot.ci(type = "perc")``,
with its interpolation, :func:`percentile`).

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.freq.fit import fit_design
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("Reaction ~ Days + (1 | Subject)"), hb.datasets.load("sleepstudy"))
>>> reps = bootstrap(fit_design(d), n_sims=5, seed=1, progressbar=False)
>>> reps.shape
(5, 4)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from hierbayes.errors import ConvergenceWarning, check_count
from hierbayes.freq.fit import refit
from hierbayes.freq.params import check_level, fit_param_names, interval_columns, parameter_values
from hierbayes.freq.sim import simulate_responses

if TYPE_CHECKING:
    from hierbayes.freq.mermod import MerMod


def percentile(t: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """boot's ``norm.inter``: order statistics at ``(R + 1) alpha``, interpolated on normal scores."""
    t = np.sort(t[np.isfinite(t)])
    R = len(t)
    out = np.empty(len(alpha))
    for m, a in enumerate(alpha):
        rk = (R + 1) * a
        k = int(np.trunc(rk))
        if k == rk and 0 < k <= R:
            out[m] = t[k - 1]
        elif k <= 0:
            out[m] = t[0]
        elif k >= R:
            out[m] = t[-1]
        else:
            z, zk, zk1 = stats.norm.ppf([a, k / (R + 1), (k + 1) / (R + 1)])
            out[m] = t[k - 1] + (z - zk) / (zk1 - zk) * (t[k] - t[k - 1])
    return out


def one_blas_thread(fit: MerMod):
    """A context in which BLAS runs on one thread, for a small model's many small products.

    Threaded BLAS spent both of this machine's cores on sleepstudy's tiny products for
    little gain: 500 refits took 13.6 s and 28.7 s of CPU, against 15.4 s and 16.0 s of
    CPU on one thread. The freed core is what worker processes need: with
    ``n_jobs=2`` the 500 refits take 7.3 s (15.8 s with threaded BLAS). A large model
    (one factored with sparse matrices) keeps BLAS's threads for its big dense blocks.
    """
    from contextlib import nullcontext

    if not fit.deviance_function.dense:
        return nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl comes with PyMC; without it, leave BLAS as it is
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def replicate(shared: tuple, item: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """One replicate (a task of :func:`hierbayes.execution.run_tasks`): simulate, refit, record.

    ``shared`` is ``(fit, statistic, use_u)``. Returns the statistic's values and whether the
    refit failed lme4's convergence checks. A refit's own convergence warning is counted, not
    shown: hundreds of refits would bury the one summary that matters (bootMer likewise
    collects them).
    """
    from hierbayes.freq.glmermod import GlmerMod

    fit, statistic, use_u = shared
    if isinstance(fit, GlmerMod):
        # a GLMM's replicates: lme4's simulate and refit of a glmerMod
        from hierbayes.freq.glmer import refit as refit_fit
        from hierbayes.freq.glmersim import simulate_glmer_responses as simulate
    else:
        refit_fit, simulate = refit, simulate_responses
    y = simulate(fit, 1, rng, use_u=use_u)[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        again = refit_fit(fit, y)
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    failed = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    values = parameter_values(again) if statistic is None else statistic(again)
    return np.asarray(values, dtype=float).ravel(), failed


def bootstrap(fit: MerMod, n_sims: int = 500, seed: int | None = None, progressbar: bool = True,
              n_jobs: int | None = 1, statistic: Callable | None = None,
              names: list[str] | None = None, use_u: bool = False, executor: Any = None,
              client: Any = None) -> pd.DataFrame:
    """Parametric bootstrap replicates (lme4's ``bootMer``, ``use.u = FALSE`` by default).

    Each replicate simulates a response with new group effects and noise
    (:func:`hierbayes.freq.sim.simulate_responses`) and refits it
    (:func:`hierbayes.freq.fit.refit`), starting from this fit's theta.
    Replicate ``i`` draws from its own stream of ``SeedSequence(seed)``, so the
    result does not depend on where the replicates run: serially, on ``n_jobs``
    worker processes (-1 or None for one per core), on ``executor`` or on a
    Dask ``client`` (:func:`hierbayes.execution.run_tasks`).

    ``statistic`` (bootMer's ``FUN``) maps each refit (an engine fit of the
    same class as ``fit``) to a number or a vector of fixed length, named by
    ``names``; None records every parameter. Off this process it must be
    picklable (a module-level function, not a lambda). ``use_u`` simulates
    with the fitted group effects (bootMer's ``use.u = TRUE``).

    Returns
    -------
    pandas.DataFrame
        One row per replicate, columns ``names`` (or as :func:`param_names`); ``attrs
        ["convergence_failures"]`` counts the refits that failed lme4's
        convergence checks (one :class:`~hierbayes.errors.ConvergenceWarning`
        gives the count, instead of one warning per refit).
    """
    from hierbayes.execution import run_tasks

    check_count("n_sims", n_sims, minimum=2)
    # run_tasks gives every replicate, here or in a worker, BLAS on one thread
    out = run_tasks(replicate, range(int(n_sims)), shared=(fit, statistic, use_u), seed=seed,
                    executor=executor, client=client, n_jobs=n_jobs, progressbar=progressbar,
                    label="Bootstrap refits")
    failed = sum(bad for _, bad in out)
    if failed:
        warnings.warn(
            f"{failed} of {len(out)} bootstrap refits did not pass lme4's convergence checks "
            "(their replicates are kept, as bootMer keeps them). Many failures mean the "
            "model is hard to fit: rescale predictors or simplify the random effects.",
            ConvergenceWarning, stacklevel=3)
    columns = fit_param_names(fit) if statistic is None else names
    table = pd.DataFrame(np.array([values for values, _ in out]), columns=columns)
    table.attrs["convergence_failures"] = failed
    return table


def boot(fit: MerMod, level: float = 0.95, n_sims: int = 500, seed: int | None = None,
         progressbar: bool = True, n_jobs: int | None = 1, executor: Any = None,
         client: Any = None) -> pd.DataFrame:
    """Percentile intervals from :func:`bootstrap` replicates."""
    check_level(level)
    reps = bootstrap(fit, n_sims, seed, progressbar, n_jobs, executor=executor, client=client)
    alpha = np.array([(1 - level) / 2, (1 + level) / 2])
    ci = np.array([percentile(reps[c].to_numpy(), alpha) for c in reps.columns])
    out = pd.DataFrame(ci, index=reps.columns, columns=interval_columns(level))
    out.attrs["replicates"] = reps
    return out


BOOT_TYPES = ("perc", "norm", "basic")


def boot_intervals(t0: np.ndarray, t: np.ndarray, level: float = 0.95,
                   type: str = "perc") -> np.ndarray:
    """boot's ``boot.ci`` for each statistic (column of ``t``): ``(k, 2)`` lower and upper ends.

    ``"perc"``: the replicates' quantiles (``norm.inter``'s interpolation,
    :func:`percentile`); ``"norm"``: ``t0 - bias -+ z sd(t)``, with
    ``bias = mean(t) - t0``; ``"basic"``: ``2 t0`` less the percentile
    interval's ends, reversed. Non-finite replicates are left out, as boot
    leaves them out.

    Examples
    --------
    >>> t = np.arange(1.0, 100.0)[:, None]
    >>> boot_intervals(np.array([50.0]), t, 0.9, "perc").round(2).tolist()
    [[5.0, 95.0]]
    >>> boot_intervals(np.array([40.0]), t, 0.9, "basic").round(2).tolist()
    [[-15.0, 75.0]]
    """
    check_level(level)
    if type not in BOOT_TYPES:
        raise ValueError(f"type must be one of {list(BOOT_TYPES)}, not {type!r}.")
    t = np.asarray(t, dtype=float).reshape(len(t), -1)
    t0 = np.asarray(t0, dtype=float).ravel()
    alpha = np.array([(1 - level) / 2, (1 + level) / 2])
    out = np.empty((t.shape[1], 2))
    for k in range(t.shape[1]):
        col = t[:, k][np.isfinite(t[:, k])]
        if len(col) < 2:
            out[k] = np.nan
        elif type == "perc":
            out[k] = percentile(col, alpha)
        elif type == "norm":
            bias = col.mean() - t0[k]
            half = np.std(col, ddof=1) * stats.norm.ppf(alpha[1])
            out[k] = [t0[k] - bias - half, t0[k] - bias + half]
        else:
            q = percentile(col, alpha[::-1])
            out[k] = 2 * t0[k] - q
    return out
