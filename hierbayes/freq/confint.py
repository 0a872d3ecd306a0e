"""Confidence intervals for REML/ML fits, as lme4's ``confint.merMod``: Wald, bootstrap, profile.

Parameters are named as lme4 names them with ``oldNames = FALSE``: per
random-effect term, in the order of theta (column-wise lower triangle),
``sd_<term>|<group>`` on the diagonal and ``cor_<row term>.<column term>|<group>``
below it; then ``sigma``; then the fixed effects.

* ``"wald"``: fixed effects +- z * SE (lme4 leaves the variance components NA).
* ``"boot"``: parametric bootstrap (lme4's ``bootMer``): simulate new responses
  from the fit with new group effects, refit, and take percentile intervals
  (``boot.ci(type = "perc")``, with its interpolation).
* ``"profile"``: see :mod:`hierbayes.freq.profile`.

Examples
--------
>>> import hierbayes as hb
>>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> fit.confint(method="wald").index.tolist()
['sd_(Intercept)|Subject', 'cor_Days.(Intercept)|Subject', 'sd_Days|Subject', 'sigma', '(Intercept)', 'Days']
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from hierbayes.errors import ConvergenceWarning, check_count
from hierbayes.progress import Progress

if TYPE_CHECKING:
    from hierbayes.report.lmer import LmerFit


def varcomp_names(design) -> list[str]:
    """lme4's ``oldNames = FALSE`` names of the variance components, in theta's order, and sigma."""
    def names_with(label) -> list[str]:
        out = []
        for blk in design.blocks:
            t, g = blk.terms, label(blk)
            for j in range(blk.n_terms):
                for i in range(j, blk.n_terms):
                    out.append(f"sd_{t[i]}|{g}" if i == j else f"cor_{t[i]}.{t[j]}|{g}")
        return out

    # lme4 names by grouping factor, so (Days || Subject) gives sd_(Intercept)|Subject and
    # sd_Days|Subject; only if that repeats a name do the unique names (Subject.1) step in.
    names = names_with(lambda b: b.factor)
    if len(set(names)) < len(names):
        names = names_with(lambda b: b.group)
    return [*names, "sigma"]


def param_names(design) -> list[str]:
    """Every parameter ``confint`` reports: variance components, sigma, fixed effects."""
    return varcomp_names(design) + list(design.fixef_names)


def sdcor(covariances: list[np.ndarray], sigma: float) -> np.ndarray:
    """Variance components on lme4's sd/cor scale, in :func:`varcomp_names`' order."""
    out = []
    for S in covariances:
        sd = np.sqrt(np.diag(S))
        q = len(sd)
        for j in range(q):
            for i in range(j, q):
                if i == j:
                    out.append(sd[i])
                else:
                    out.append(S[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan)
    return np.array([*out, sigma])


def estimates(fit: LmerFit) -> pd.Series:
    """The fit's parameters under :func:`param_names`."""
    values = np.concatenate([sdcor(fit.covariance(), fit.sigma), fit.estimates.beta])
    return pd.Series(values, index=param_names(fit.design))


def interval_columns(level: float) -> list[str]:
    lo = (1 - level) / 2 * 100
    return [f"{lo:g} %", f"{100 - lo:g} %"]


def check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must lie between 0 and 1, not {level!r}.")


def wald(fit: LmerFit, level: float = 0.95) -> pd.DataFrame:
    """Wald intervals: fixed effects +- z SE; variance components NA, as lme4."""
    check_level(level)
    z = stats.norm.ppf(0.5 + level / 2)
    beta = fit.estimates.beta
    se = np.sqrt(np.diag(fit.estimates.vcov_beta))
    n_vc = len(varcomp_names(fit.design))
    lower = np.concatenate([np.full(n_vc, np.nan), beta - z * se])
    upper = np.concatenate([np.full(n_vc, np.nan), beta + z * se])
    return pd.DataFrame(np.column_stack([lower, upper]), index=param_names(fit.design),
                        columns=interval_columns(level))


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


def one_blas_thread(fit: LmerFit):
    """A context in which BLAS runs on one thread, for a small model's many small products.

    Threaded BLAS spent both of this machine's cores on sleepstudy's tiny products for
    little gain: 500 refits took 13.6 s and 28.7 s of CPU, against 15.4 s and 16.0 s of
    CPU on one thread. The freed core is what worker processes need: with
    ``n_jobs=2`` the 500 refits take 7.3 s (15.8 s with threaded BLAS). A large model
    (one factored with sparse matrices) keeps BLAS's threads for its big dense blocks.
    """
    from contextlib import nullcontext

    if getattr(fit.deviance_function, "_AD1_dense", None) is None:
        return nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl comes with PyMC; without it, leave BLAS as it is
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _boot_chunk(fit: LmerFit, seeds: list) -> tuple[np.ndarray, int]:
    """Replicates for ``seeds``, and how many refits failed lme4's convergence checks.

    A refit's own convergence warning is counted, not shown: hundreds of refits would
    bury the one summary that matters (bootMer likewise collects them).
    """
    out, failed = [], 0
    with one_blas_thread(fit):
        for ss in seeds:
            y = fit.simulate(1, seed=np.random.default_rng(ss))["sim_1"].to_numpy()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                again = fit.refit(y)
            for w in caught:
                if not issubclass(w.category, ConvergenceWarning):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            failed += any(issubclass(w.category, ConvergenceWarning) for w in caught)
            out.append(estimates(again).to_numpy())
    return np.array(out), failed


def bootstrap(fit: LmerFit, n_sims: int = 500, seed: int | None = None, progressbar: bool = True,
              n_jobs: int | None = 1) -> pd.DataFrame:
    """Parametric bootstrap replicates (lme4's ``bootMer``, ``use.u = FALSE``).

    Each replicate simulates a response with new group effects and noise
    (:meth:`LmerFit.simulate`) and refits it, starting from this fit's theta.
    Replicate ``i`` draws from its own stream of ``SeedSequence(seed)``, so the
    result does not depend on ``n_jobs`` (worker processes; -1 or None for one
    per core).

    Returns
    -------
    pandas.DataFrame
        One row per replicate, columns as :func:`param_names`; ``attrs
        ["convergence_failures"]`` counts the refits that failed lme4's
        convergence checks (one :class:`~hierbayes.errors.ConvergenceWarning`
        gives the count, instead of one warning per refit).
    """

    check_count("n_sims", n_sims, minimum=2)
    seeds = np.random.SeedSequence(seed).spawn(int(n_sims))
    bar = Progress(int(n_sims), 1, progressbar, label="Bootstrap refits")
    rows: list[np.ndarray] = []
    failed = 0
    if n_jobs == 1:
        for i, ss in enumerate(seeds):
            reps, bad = _boot_chunk(fit, [ss])
            rows.append(reps[0])
            failed += bad
            if i % 10 == 0:
                bar.draw(i + 1)
    else:
        from concurrent.futures import ProcessPoolExecutor

        workers = (os.cpu_count() or 1) if n_jobs in (None, -1) else int(n_jobs)
        chunks = [seeds[k : k + 25] for k in range(0, len(seeds), 25)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for part, bad in pool.map(_boot_chunk, [fit] * len(chunks), chunks):
                rows.extend(part)
                failed += bad
                bar.draw(len(rows))
    bar.draw(len(rows), final=True)
    if failed:
        warnings.warn(
            f"{failed} of {len(rows)} bootstrap refits did not pass lme4's convergence checks "
            "(their replicates are kept, as bootMer keeps them). Many failures mean the "
            "model is hard to fit: rescale predictors or simplify the random effects.",
            ConvergenceWarning, stacklevel=3)
    out = pd.DataFrame(np.array(rows), columns=param_names(fit.design))
    out.attrs["convergence_failures"] = failed
    return out


def boot(fit: LmerFit, level: float = 0.95, n_sims: int = 500, seed: int | None = None,
         progressbar: bool = True, n_jobs: int | None = 1) -> pd.DataFrame:
    """Percentile intervals from :func:`bootstrap` replicates."""
    check_level(level)
    reps = bootstrap(fit, n_sims, seed, progressbar, n_jobs)
    alpha = np.array([(1 - level) / 2, (1 + level) / 2])
    ci = np.array([percentile(reps[c].to_numpy(), alpha) for c in reps.columns])
    out = pd.DataFrame(ci, index=reps.columns, columns=interval_columns(level))
    out.attrs["replicates"] = reps
    return out
