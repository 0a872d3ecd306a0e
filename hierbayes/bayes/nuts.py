"""Run hierbayes's own NUTS (``kernels/nuts.c``, through :mod:`hierbayes.bayes.native`) on a packed model.

Chains run in parallel threads (ctypes releases the GIL during each call); a
progress bar on stderr follows them. The main thread waits with a timeout, so
it sees Ctrl-C at once: it then raises a stop flag that every chain reads at
each leapfrog step, waits for the chains to return (within one step) and
re-raises KeyboardInterrupt, with no thread left running. The kernels were
built when hierbayes was installed (:mod:`hierbayes.bayes.native`).

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.bayes.pack import pack
>>> from hierbayes.bayes.nuts import sample
>>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> out = sample(pack(m.design, m.priors), draws=100, tune=100, chains=2, seed=1,
...              progressbar=False)
>>> out.draws.shape
(2, 100, 42)
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from hierbayes.bayes import native
from hierbayes.errors import SamplerError
from hierbayes.progress import Progress

STAT_NAMES = ("lp", "acceptance_rate", "n_steps", "tree_depth", "diverging", "energy", "step_size")


@dataclass
class NutsRun:
    """Raw output of :func:`sample`: unconstrained draws, per-draw statistics, timings."""

    draws: np.ndarray  # (chains, draws, dim)
    stats: dict[str, np.ndarray]  # each (chains, draws)
    metric: np.ndarray  # (chains, dim): adapted inverse metric
    step_size: np.ndarray  # (chains,)
    compile_seconds: float
    sampling_seconds: float


def load_kernels() -> float:
    """Load the installed kernels (:func:`hierbayes.bayes.native.load`); return the seconds it took."""
    t0 = time.perf_counter()
    native.load()
    return time.perf_counter() - t0


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
    curvature: bool = True,
) -> NutsRun:
    """Sample a packed model's posterior by NUTS.

    Parameters
    ----------
    packed
        A :class:`hierbayes.bayes.pack.Packed` model.
    draws, tune, chains, seed, target_accept
        As :meth:`hierbayes.Model.fit`.
    cores
        Threads to run chains in; all the machine's cores by default.
    max_treedepth
        Stan's limit on the trajectory's doublings.
    init_jitter
        Starts are the model's central values plus uniform jitter of this size
        (in units of each coordinate's scale).
    curvature
        Start the metric from the log density's curvature (hierbayes's
        addition to Stan's warm-up, docs/sampling.md); False is Stan's warm-up
        exactly, with a unit metric until the first window ends.
    """
    compile_s = load_kernels()
    model = packed.native
    ss = np.random.SeedSequence(seed)
    children = ss.spawn(chains)
    seeds = [int(c.generate_state(1)[0] % (2**31 - 1)) for c in children]
    inits = []
    for c, s in enumerate(seeds):
        q = packed.finite_start(s, jitter=init_jitter)
        if q is None:
            raise SamplerError(
                f"Chain {c}: no finite log density at 20 starting points. Check that the "
                "priors and data are on sensible scales."
            )
        inits.append(q)
    dim = packed.dim
    out = np.empty((chains, draws, dim))
    stats = np.empty((chains, draws, len(STAT_NAMES)))
    metric = np.empty((chains, dim))
    progress = np.zeros(chains, dtype=np.int64)
    stop = np.zeros(1, dtype=np.int32)
    step = np.empty(chains)
    bar = Progress(chains * (draws + tune), chains, progressbar)
    workers = cores or min(chains, os.cpu_count() or 1)

    def one(c: int) -> None:
        step[c] = model.run_chain(inits[c], seeds[c], tune, out[c], stats[c], metric[c],
                                  target_accept, max_treedepth, progress, c, stop, curvature)

    t0 = time.perf_counter()
    done = threading.Event()
    with ThreadPoolExecutor(max_workers=workers) as ex:
        futures = []
        try:
            futures.extend(ex.submit(one, c) for c in range(chains))
            # a timed wait: the signal handler runs, and Ctrl-C raises here, within 0.1 s
            while not all(f.done() for f in futures):
                bar.draw(int(progress.sum()))
                done.wait(0.1)
        except BaseException:
            # stop the running chains at their next leapfrog step and the queued ones
            # before they start; leaving the with block joins the threads
            stop[0] = 1
            for f in futures:
                f.cancel()
            bar.interrupted()
            raise
        for f in futures:
            f.result()
    bar.draw(int(progress.sum()), final=True)
    sampling_s = time.perf_counter() - t0
    return NutsRun(
        draws=out,
        stats={name: stats[:, :, i] for i, name in enumerate(STAT_NAMES)},
        metric=metric,
        step_size=step,
        compile_seconds=compile_s,
        sampling_seconds=sampling_s,
    )
