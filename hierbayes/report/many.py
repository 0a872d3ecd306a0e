"""The same model over many outcomes, subsets or formulas: one fit per task, on any executor.

``hb.refit_many(fit, outcomes=["y1", "y2"])`` refits ``fit`` with each
response, ``subsets={"girls": df.sex == "female"}`` on each subset of the
data, ``formulas=["~ . + sex", "~ . - (1 | school)"]`` with each formula (R's
update notation); everything else (data, family, priors, settings) as
``fit`` has it, or as ``**changes`` say. The fits run through
:func:`hierbayes.execution.run_tasks`, so serially, on ``n_jobs`` processes,
an ``executor`` or a Dask ``client`` alike; a Bayesian fit's sampler seed is
drawn from the call's ``seed`` and the task's index, so the results are the
same on each.

Examples
--------
>>> import hierbayes as hb
>>> df = hb.datasets.load("sleepstudy").assign(logR=lambda d: np.log(d["Reaction"]))
>>> fit = hb.lmer("Reaction ~ Days + (1 | Subject)", df)
>>> fits = refit_many(fit, outcomes=["Reaction", "logR"], progressbar=False)
>>> {k: round(float(v.fixef().loc["Days", "Estimate"]), 4) for k, v in fits.items()}
{'Reaction': 10.4673, 'logR': 0.0337}
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError, SettingsError


def _tasks(fit: Any, outcomes: Any, subsets: Any, formulas: Any) -> list[tuple[str, str | None,
                                                                                 Any]]:
    """``(name, formula or None, data or None)`` per fit to make."""
    tasks: list[tuple[str, str | None, Any]] = []
    source = fit.design.source
    for y in outcomes or []:
        if not isinstance(y, str):
            raise SettingsError(f"outcomes must be column names (strings), not {y!r}.")
        if source is not None and y not in source.columns:
            raise DataError(f"The outcome {y!r} is not a column of the data; columns: "
                            f"{list(source.columns)}.")
        tasks.append((y, f"{y} ~ .", None))
    for name, rows in (subsets or {}).items():
        if source is None:
            raise DataError("This fit does not hold its data (read from a file?); pass data= "
                            "and subsets of it.")
        if callable(rows):
            part = rows(source)
        else:
            mask = np.asarray(rows)
            if mask.dtype != bool or len(mask) != len(source):
                raise SettingsError(f"The subset {name!r} must be a boolean mask with one value "
                                    f"per row of the data ({len(source)}), or a function of "
                                    "the data returning the rows.")
            part = source.loc[mask]
        if not isinstance(part, pd.DataFrame) or part.empty:
            raise DataError(f"The subset {name!r} has no rows.")
        tasks.append((str(name), None, part))
    for f in formulas or []:
        if not isinstance(f, str):
            raise SettingsError(f"formulas must be strings in R's update notation, not {f!r}.")
        tasks.append((f, f, None))
    names = [t[0] for t in tasks]
    if len(set(names)) < len(names):
        raise SettingsError(f"Two fits would have the same name among {names}; name the subsets "
                            "apart from the outcomes.")
    if not tasks:
        raise SettingsError("Give outcomes=, subsets= or formulas= (one fit each).")
    return tasks


def refit_one(shared: tuple, item: tuple, rng: np.random.Generator) -> Any:
    """One task: the fit with ``item``'s formula and data (a Bayesian fit's sampler seed drawn
    from the task's stream)."""
    from hierbayes.report.refit import update_fit

    fit, changes = shared
    _name, formula, data = item
    extra = dict(changes)
    if data is not None:
        extra["data"] = data
    if hasattr(fit, "posterior"):
        extra.setdefault("seed", int(rng.integers(2**31 - 1)))
        extra.setdefault("progressbar", False)
    return update_fit(fit, formula, **extra)


def refit_many(fit: Any, outcomes: list[str] | None = None, subsets: dict[str, Any] | None = None,
               formulas: list[str] | None = None, seed: int | None = None, executor: Any = None,
               client: Any = None, n_jobs: int | None = 1, progressbar: bool = True,
               **changes: Any) -> dict[str, Any]:
    """One refit of ``fit`` per outcome, subset or formula, as a dict keyed by their names.

    Parameters
    ----------
    fit
        An :class:`~hierbayes.LmerFit`, :class:`~hierbayes.GlmerFit` or
        :class:`~hierbayes.BayesFit` that holds its data.
    outcomes
        Response columns: each fit is ``update("y ~ .")``.
    subsets
        ``{name: rows}``, each a boolean mask over the data's rows or a function
        of the data returning a DataFrame of rows.
    formulas
        Formulas in R's update notation (``"~ . + sex"``), each a fit.
    seed
        A Bayesian fit's sampler seeds come from it and the task's index.
    executor, client, n_jobs, progressbar
        Where the fits run (:func:`hierbayes.execution.run_tasks`).
    **changes
        Applied to every fit (``reml=False``, ``draws=2000``, ...), as :meth:`update`.
    """
    from hierbayes.execution import run_tasks

    tasks = _tasks(fit, outcomes, subsets, formulas)
    out = run_tasks(refit_one, tasks, shared=(fit, changes), seed=seed, executor=executor,
                    client=client, n_jobs=n_jobs, progressbar=progressbar, label="Refits")
    return {name: value for (name, _, _), value in zip(tasks, out, strict=True)}
