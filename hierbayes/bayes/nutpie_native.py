"""Sampling hierbayes's compiled log density with nutpie's NUTS, through nutpie's function-pointer interface.

nutpie samples a PyMC model by compiling its graph with numba into a C
function, whose address it hands to its Rust sampler with
``nutpie._lib.LogpFunc``. hierbayes's kernels are already such a function:
``hb_nutpie_logp`` (``kernels/nutpie.c``) has that signature over the packed
model (:mod:`hierbayes.bayes.pack`), with one work buffer per chain's thread
claimed without a lock (:class:`hierbayes.bayes.native.WorkPool`). So
``fit(sampler="nutpie")`` compiles nothing, runs no Python per gradient, and
samples the very density hierbayes's own sampler does, in any of its forms
(centred, non-centred, marginal): a second opinion on the sampler, not on the
model. The draws come back unconstrained (``hb_nutpie_expand`` copies them)
and are constrained as our own sampler's are.

The interface is nutpie's private ``_lib``, so it is used only with the
versions in :data:`TESTED`; :func:`unsupported` says why not elsewhere, and
the fit then samples the PyMC graph (:func:`hierbayes.bayes.sampler.choose_sampler`
warns). Before 0.16.3 nutpie's ``maxdepth`` setting set the minimum depth
(0.16.2 ran trees of depth 4 to 6 when asked for at most 3), and 0.15 had
another ``_make_sampler``. 0.16.9 passes two more arguments to
``_make_sampler`` and chooses the metric by ``adaptation=``; with those two
changes 0.16.11 samples this density and agrees with ours, but its ``energy``
statistic (nuts-rs 0.18's) is ``kinetic - (logp + log det)`` of the metric's
transformation, not Stan's ``energy__``, which E-BFMI and energy plots read.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.bayes.pack import pack
>>> from hierbayes.bayes.nutpie_native import STAT_NAMES, sample
>>> m = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
>>> run = sample(pack(m.design, m.priors), draws=50, tune=50, chains=2, seed=1,
...              progressbar=False)
>>> run.draws.shape, sorted(run.stats) == sorted(STAT_NAMES)
((2, 50, 4), True)
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from hierbayes.bayes.native import WorkPool, load
from hierbayes.bayes.nuts import STAT_NAMES, NutsRun, load_kernels
from hierbayes.errors import SamplerError

#: The nutpie versions ``[low, high)`` whose private interface this module was tested with.
TESTED = ((0, 16, 3), (0, 16, 9))
#: The same versions as a pip requirement.
REQUIREMENT = f"nutpie>={'.'.join(map(str, TESTED[0]))},<{'.'.join(map(str, TESTED[1]))}"

#: nutpie's sample statistic for each of ours (:data:`hierbayes.bayes.nuts.STAT_NAMES`).
STATS = {"lp": "logp", "acceptance_rate": "mean_tree_accept", "n_steps": "n_steps",
         "tree_depth": "depth", "diverging": "diverging", "energy": "energy",
         "step_size": "step_size"}

_VARIABLE = "theta"  # the one variable nutpie stores: the unconstrained draw


def installed_version() -> str | None:
    """nutpie's installed version, read from its metadata (nutpie is not imported), or None."""
    try:
        return importlib.metadata.version("nutpie")
    except importlib.metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...]:
    """The leading numbers of a version: ``"0.16.8"`` and ``"0.16.8.dev1"`` are (0, 16, 8)."""
    match = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(p) for p in match.group(0).split(".")) if match else ()


def unsupported() -> str | None:
    """Why nutpie cannot sample the compiled density here (its version, or no kernels), or None.

    Examples
    --------
    >>> unsupported() is None or "nutpie" in unsupported()
    True
    """
    version = installed_version()
    if version is None:
        return "nutpie is not installed"
    low, high = TESTED
    if not low <= _release(version) < high:
        return (f"nutpie {version} is not a version whose private interface (nutpie._lib) hierbayes "
                f"was tested with; install '{REQUIREMENT}' to sample the compiled density with nutpie")
    try:
        load()
    except SamplerError as err:  # an incomplete install: nutpie can still sample the graph
        return f"hierbayes's compiled kernels cannot be loaded ({err})"
    return None


def sample(
    packed,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 0,
    target_accept: float = 0.9,
    cores: int | None = None,
    progressbar: bool = True,
    max_treedepth: int = 10,
    init_jitter: float = 1.0,
    low_rank: bool = False,
) -> NutsRun:
    """Sample a packed model's posterior with nutpie's NUTS, as :func:`hierbayes.bayes.nuts.sample` does with ours.

    Parameters
    ----------
    packed
        A :class:`hierbayes.bayes.pack.Packed` model.
    draws, tune, chains, seed, target_accept, cores, progressbar, max_treedepth, init_jitter
        As :func:`hierbayes.bayes.nuts.sample` (``max_treedepth`` is nutpie's
        ``maxdepth``); nutpie's own warm-up and metric adaptation are used.
    low_rank
        nutpie's low-rank modified mass matrix instead of its diagonal one.

    Returns
    -------
    NutsRun
        As our sampler's, with ``stats`` under our names (:data:`STATS`);
        ``metric`` is NaN (nutpie does not return its mass matrix here).

    Raises
    ------
    SamplerError
        When the installed nutpie is not one this was tested with
        (:func:`unsupported`), or no start has a finite log density.
    """
    why = unsupported()
    if why is not None:
        raise SamplerError(f"nutpie cannot sample hierbayes's compiled density: {why}.")
    import nutpie

    t0 = time.perf_counter()
    load_kernels()
    # every chain may run at once, each in its own thread: a work buffer for each
    pool = WorkPool(packed.native, chains)
    model = _density_model_class()(dims={_VARIABLE: ("unconstrained",)}, pool=pool,
                                   start=_Starts(packed, init_jitter))
    compile_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    settings: dict[str, Any] = {"target_accept": float(target_accept), "maxdepth": int(max_treedepth)}
    cores = cores or min(chains, os.cpu_count() or 1)  # as our sampler's default
    running = nutpie.sample(model, draws=draws, tune=tune, chains=chains, cores=cores,
                            seed=seed, save_warmup=False, progress_bar=progressbar,
                            low_rank_modified_mass_matrix=low_rank, blocking=False, **settings)
    try:
        idata = running.wait()
    except BaseException:
        # as our sampler: an interrupted fit raises, it does not return part of a trace
        running.cancel()
        raise
    sampling_s = time.perf_counter() - t1
    theta = np.ascontiguousarray(idata.posterior[_VARIABLE].to_numpy())
    found = idata.sample_stats
    # float columns, as our sampler's (its diverging column is 0/1 too)
    stats = {name: found[STATS[name]].to_numpy().astype(float) for name in STAT_NAMES}
    return NutsRun(draws=theta, stats=stats, metric=np.full((chains, packed.dim), np.nan),
                   step_size=stats["step_size"][:, -1].copy(), compile_seconds=compile_s,
                   sampling_seconds=sampling_s)


class _Starts:
    """nutpie's start for each chain: the model's central values plus jitter, with a finite density."""

    def __init__(self, packed, jitter: float) -> None:
        self.packed, self.jitter = packed, jitter

    def __call__(self, seed: int) -> np.ndarray:
        q = self.packed.finite_start(seed, jitter=self.jitter)
        if q is not None:
            return q
        raise SamplerError("No finite log density at 20 starting points. Check that the priors and "
                           "data are on sensible scales.")


@cache
def _density_model_class() -> type:
    """nutpie's ``CompiledModel`` over a :class:`WorkPool` (made once: it subclasses nutpie's)."""
    from nutpie import _lib
    from nutpie.sample import CompiledModel

    @dataclass(frozen=True)
    class DensityModel(CompiledModel):
        pool: WorkPool
        start: _Starts

        @property
        def n_dim(self) -> int:
            return self.pool.dim

        @property
        def shapes(self) -> dict[str, tuple[int, ...]]:
            return {_VARIABLE: (self.pool.dim,)}

        @property
        def coords(self) -> dict[str, Any]:
            return {}

        def _make_model(self, init_mean):
            pool = self.pool
            # the pool is what keeps the kernels' work and the packed arrays alive
            logp = _lib.LogpFunc(pool.logp_address, pool.address, pool)
            expand = _lib.ExpandFunc(pool.dim, pool.dim, pool.expand_address, pool.address, pool)
            variables = _lib.PyVariable.new_variables([_VARIABLE], ["float64"], [[pool.dim]],
                                                      {"unconstrained": pool.dim}, dict(self.dims))
            return _lib.PyMcModel(logp, expand, variables, pool.dim, {"unconstrained": pool.dim}, {},
                                  self.start, None)

        def _make_sampler(self, settings, init_mean, cores, progress_type, store):
            return _lib.PySampler.from_pymc(settings, cores, self._make_model(init_mean),
                                            progress_type, store)

    return DensityModel
