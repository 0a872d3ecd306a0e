"""The parametric bootstrap of any statistic of a REML/ML or glmer fit, as lme4's ``bootMer``.

``fit.bootstrap(fun, n_sims=...)`` simulates ``n_sims`` responses from the
fitted model, refits each (:mod:`hierbayes.freq.bootstrap`), and applies
``fun`` to every refit as bootMer applies ``FUN``: ``fun`` gets a fit of the
same kind as ``fit`` (an :class:`~hierbayes.LmerFit` with ``predict``,
``fixef``, ``varcorr``, ...) and returns a number, a vector, a dict or a
Series (whose keys name the statistics). The result holds the statistic on
the data (``t0``) and the replicates (``t``), as boot's object does, and
gives boot.ci's percentile, normal and basic intervals.

Examples
--------
>>> import hierbayes as hb
>>> fit = hb.lmer("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
>>> b = fit.bootstrap(lambda f: f.fixef()["Estimate"], n_sims=20, seed=1, progressbar=False)
>>> b.t.shape, list(b.t0.index)
((20, 2), ['(Intercept)', 'Days'])
>>> list(b.conf_int(type="perc").columns)
['conf_low', 'conf_high']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import SettingsError, check_count
from hierbayes.report.rprint import r_format


def _as_series(value: Any) -> pd.Series:
    if isinstance(value, pd.Series):
        return value.astype(float)
    if isinstance(value, dict):
        return pd.Series(value, dtype=float)
    if isinstance(value, pd.DataFrame):
        raise SettingsError("The statistic returned a DataFrame; return one number, a vector, a "
                            "dict or a Series (pick a column).")
    arr = np.asarray(value, dtype=float).ravel()
    return pd.Series(arr, index=[f"t{i + 1}" for i in range(len(arr))])


def covariate_frame(design: Any) -> pd.DataFrame | None:
    """The fitted rows' columns without the response's own: what a refit to a simulated
    response may keep (its predictions and offsets read them; the response is the new one)."""
    from hierbayes.spec.rexpr import parse

    if design.frame is None:
        return None

    def names(node: Any) -> set[str]:
        here = {str(node.value)} if node.kind == "name" else set()
        return here.union(*(names(a) for a in node.args)) if node.args else here

    response = names(parse(design.formula.response))
    kept = set(design.x_variables)
    for b in design.blocks:
        kept |= set(b.variables) | set(b.term.group)
    drop = [c for c in design.frame.columns if c in response and c not in kept]
    return design.frame.drop(columns=drop)


class ReportStatistic:
    """``fun`` applied to an engine refit wrapped in the report class of the fit (picklable when
    ``fun`` is, so worker processes can run it).

    The engine's refit drops the data frame, which holds the data's response; the
    covariates are put back (:func:`covariate_frame`) so that ``fun`` can predict.
    """

    def __init__(self, wrap: Callable, fun: Callable, size: int,
                 frame: pd.DataFrame | None = None) -> None:
        self.wrap, self.fun, self.size, self.frame = wrap, fun, size, frame

    def __call__(self, refit: Any) -> np.ndarray:
        import dataclasses

        if self.frame is not None and refit.design.frame is None:
            refit.design = dataclasses.replace(refit.design, frame=self.frame)
        values = _as_series(self.fun(self.wrap(refit))).to_numpy()
        if len(values) != self.size:
            raise SettingsError(f"The statistic gave {self.size} numbers on the data but "
                                f"{len(values)} on a refit; it must give the same number.")
        return values


class BootResult:
    """Bootstrap replicates of a statistic, as boot's ``boot`` object.

    Attributes
    ----------
    t0 : pandas.Series
        The statistic on the data.
    t : pandas.DataFrame
        One row per replicate; ``attrs["convergence_failures"]`` counts the
        refits that failed lme4's checks (kept, as bootMer keeps them).
    """

    def __init__(self, t0: pd.Series, t: pd.DataFrame, kind: str) -> None:
        self.t0, self.t, self.kind = t0, t, kind

    @property
    def n_sims(self) -> int:
        return len(self.t)

    def summary(self) -> pd.DataFrame:
        """``original``, ``bias`` (mean of the replicates less ``t0``) and ``std_error``, per
        statistic, as boot prints them."""
        t = self.t.to_numpy()
        return pd.DataFrame({"original": self.t0.to_numpy(),
                             "bias": np.nanmean(t, axis=0) - self.t0.to_numpy(),
                             "std_error": np.nanstd(t, axis=0, ddof=1)}, index=self.t0.index)

    def conf_int(self, level: float = 0.95, type: str = "perc") -> pd.DataFrame:
        """boot.ci's intervals: ``type="perc"`` (percentile, bootMer's usual), ``"norm"``
        (normal, bias-corrected) or ``"basic"``; columns ``conf_low`` and ``conf_high``."""
        from hierbayes.freq.bootstrap import BOOT_TYPES, boot_intervals

        if type not in BOOT_TYPES:
            raise SettingsError(f"type must be one of {list(BOOT_TYPES)}, not {type!r}.")
        if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
            raise SettingsError(f"level must be a number between 0 and 1, not {level!r}.")
        ends = boot_intervals(self.t0.to_numpy(), self.t.to_numpy(), level, type)
        out = pd.DataFrame(ends, index=self.t0.index, columns=["conf_low", "conf_high"])
        out.attrs.update({"conf_level": float(level), "type": type})
        return out

    def __repr__(self) -> str:
        s = self.summary()
        cells = [r_format(s[c].to_numpy(), 7) for c in s.columns]
        names = [f"{n}*" for n in s.index]
        w = max(len(n) for n in names)
        head = " " * w + " " + " ".join(c.rjust(len(cells[k][0])) for k, c in
                                          enumerate(["original", "bias", "std. error"]))
        rows = [n.ljust(w) + " " + " ".join(cells[k][i].rjust(max(len(cells[k][0]), len(h)))
                                            for k, h in enumerate(["original", "bias",
                                                                   "std. error"]))
                for i, n in enumerate(names)]
        failed = self.t.attrs.get("convergence_failures", 0)
        return "\n".join([f"PARAMETRIC BOOTSTRAP ({self.kind}; {self.n_sims} replicates"
                          + (f", {failed} refits failed lme4's checks" if failed else "") + ")",
                          "", "Bootstrap Statistics :", head, *rows])


def bootstrap_fit(fit: Any, fun: Callable | None = None, n_sims: int = 500,
                  seed: int | None = None, type: str = "parametric", use_u: bool = False,
                  progressbar: bool = True, n_jobs: int | None = 1, executor: Any = None,
                  client: Any = None) -> BootResult:
    """bootMer: ``n_sims`` parametric bootstrap refits of ``fit`` and ``fun`` of each.

    Parameters
    ----------
    fit
        A REML/ML fit (:class:`~hierbayes.LmerFit`) or a glmer fit
        (:class:`~hierbayes.GlmerFit`).
    fun
        The statistic: a function of a fit (of ``fit``'s class) returning a
        number, a vector, a dict or a Series. None: every parameter, named as
        :meth:`confint` names them.
    n_sims, seed
        Replicates, and the seed (the same seed, the same replicates, whatever
        ``n_jobs``).
    type
        ``"parametric"`` (bootMer's default; the only type).
    use_u
        Simulate with the fitted group effects held (bootMer's ``use.u = TRUE``)
        instead of new ones.
    progressbar, n_jobs, executor, client
        A progress bar; where the refits run: ``n_jobs`` local processes, any
        ``concurrent.futures.Executor``, or a Dask ``distributed.Client``
        (:func:`hierbayes.execution.run_tasks`). On local processes ``fun``
        must be picklable (a module-level function, not a lambda); Dask sends
        lambdas too.
    """
    from hierbayes.freq.bootstrap import bootstrap
    from hierbayes.freq.params import fit_param_names, parameter_values

    if type != "parametric":
        raise SettingsError(f"type={type!r} is not supported; bootstrap is parametric (lme4's "
                            "bootMer default). For resampling groups, refit with update(data=...) "
                            "on resampled data.")
    check_count("n_sims", n_sims, minimum=2)
    wrap = type_of(fit)
    if fun is None:
        t0 = pd.Series(parameter_values(fit).to_numpy(), index=fit_param_names(fit))
        statistic = None
    else:
        if not callable(fun):
            raise SettingsError(f"fun must be a function of a fit, not {fun!r}.")
        t0 = _as_series(fun(fit))
        statistic = ReportStatistic(wrap, fun, len(t0), covariate_frame(fit.design))
    local_pool = client is None and (n_jobs != 1 or executor is not None) and \
        not executor.__class__.__module__.startswith("distributed")
    if local_pool and fun is not None:
        import pickle

        try:
            pickle.dumps(statistic)
        except Exception as err:  # a lambda or a closure cannot reach worker processes
            raise SettingsError("With n_jobs other than 1 the statistic must be picklable (a "
                                "function defined at module level, not a lambda); or use "
                                f"n_jobs=1. ({err})") from err
    t = bootstrap(fit, n_sims, seed, progressbar, n_jobs, statistic=statistic,
                  names=list(t0.index), use_u=use_u, executor=executor, client=client)
    t.columns = t0.index
    return BootResult(t0, t, "use.u = TRUE" if use_u else "new group effects")


def type_of(fit: Any) -> Callable:
    """The constructor that wraps an engine refit in ``fit``'s report class."""
    for name in ("from_mermod", "from_glmermod"):
        if hasattr(type(fit), name):
            return getattr(type(fit), name)
    raise SettingsError(f"bootstrap() refits REML/ML and glmer fits, not {type(fit).__name__}.")
