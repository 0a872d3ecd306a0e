"""One execution layer for every many-fit workload: serial, a local process pool, or a cluster.

A workload (bootstrap refits, k-fold folds, power simulations, SBC
replicates) is a function applied to many items. :func:`run_tasks` runs it

* serially (the default),
* on a local process pool (``n_jobs=2``, or ``-1`` for one worker per core),
* on any :class:`concurrent.futures.Executor` (``executor=``), or
* on a Dask cluster (``client=`` a ``distributed.Client``, or
  ``executor=client.get_executor()``), where the shared data is scattered
  to every worker once.

and gives the same results, bit for bit, in each: item ``i`` draws its random
numbers from the ``i``-th child of ``SeedSequence(seed)``, whatever worker runs
it and whenever. Items go in batches (several per worker, so a task carries
many fits), the shared data travels once per worker (a pool started here gives
it to each worker as it starts; Dask scatters it), and each worker runs its BLAS on one thread: two workers with two BLAS
threads each on two cores made REML fits up to 10 times slower. A serial run
does too, since a threaded BLAS sums in another order: a sampler's
trajectories, which amplify the last bit, would then differ from the pool's.

Faults: a batch whose worker dies is run again (Dask reschedules it itself;
a local pool that breaks is replaced and the unfinished batches resubmitted),
so a killed worker loses no results and the numbers equal an undisturbed run.
Ctrl-C cancels the pending batches and re-raises. One progress bar counts the
items.

Examples
--------
>>> def draw(shared, item, rng):
...     return item + shared * rng.standard_normal()
>>> a = run_tasks(draw, range(6), shared=0.5, seed=1, progressbar=False)
>>> b = run_tasks(draw, range(6), shared=0.5, seed=1, batch_size=4, progressbar=False)
>>> a == b  # the same on a pool or a cluster (tests/test_execution.py), whatever the batches
True
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from hierbayes.errors import SettingsError
from hierbayes.progress import Progress

#: Batches per worker: enough to balance uneven fits, few enough to keep task overhead small.
BATCHES_PER_WORKER = 4


def task_seeds(seed: int | np.random.SeedSequence | None, n: int) -> list[np.random.SeedSequence]:
    """The seed of each of ``n`` tasks: the children of ``SeedSequence(seed)``, by index only.

    Examples
    --------
    >>> [int(s.generate_state(1)[0]) for s in task_seeds(7, 2)] == \\
    ...     [int(s.generate_state(1)[0]) for s in task_seeds(7, 3)[:2]]
    True
    >>> root = np.random.SeedSequence(7)
    >>> task_seeds(root, 1)[0].generate_state(1) == task_seeds(root, 1)[0].generate_state(1)
    array([ True])
    """
    if isinstance(seed, np.random.SeedSequence):
        # a copy: spawn() advances the object it is called on, so a second call with the same
        # SeedSequence would get other children
        seed = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key,
                                      pool_size=seed.pool_size)
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return root.spawn(int(n))


def one_blas_thread() -> Any:
    """A context in which BLAS runs on one thread (threadpoolctl, which comes with PyMC's
    dependencies; without it BLAS is left as it is)."""
    from contextlib import nullcontext

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def apply_batch(function: Callable, shared: Any, batch: Sequence[tuple[int, Any, Any]]
                ) -> list[tuple[int, Any]]:
    """``function`` on each ``(index, item, seed)`` of a batch; the results with their indices."""
    return [(i, function(shared, item, np.random.default_rng(ss))) for i, item, ss in batch]


def run_batch(function: Callable, shared: Any, batch: Sequence[tuple[int, Any, Any]]
              ) -> list[tuple[int, Any]]:
    """Run one batch in this process with BLAS on one thread, as a worker runs it."""
    with one_blas_thread():
        return apply_batch(function, shared, batch)


#: In a worker of a pool that run_tasks started: the shared data, sent once per worker process.
WORKER_SHARED: dict[str, Any] = {}


def init_worker(token: str, shared: Any) -> None:
    """A pool worker's initializer: keep the call's shared data for all its batches."""
    WORKER_SHARED[token] = shared


def run_shared_batch(function: Callable, token: str, batch: Sequence[tuple[int, Any, Any]]
                     ) -> list[tuple[int, Any]]:
    """:func:`run_batch` with the shared data this worker received when it started."""
    return run_batch(function, WORKER_SHARED[token], batch)


def _workers(n_jobs: int | None) -> int:
    return (os.cpu_count() or 1) if n_jobs in (None, -1) else int(n_jobs)


def _batches(tasks: list[tuple[int, Any, Any]], workers: int,
             batch_size: int | None) -> list[list[tuple[int, Any, Any]]]:
    size = batch_size or max(1, math.ceil(len(tasks) / (BATCHES_PER_WORKER * max(workers, 1))))
    return [tasks[k:k + size] for k in range(0, len(tasks), size)]


def _dask_client(executor: Any, client: Any) -> Any:
    """The distributed.Client behind ``client=`` or ``executor=client.get_executor()``."""
    if client is not None:
        return client
    inner = getattr(executor, "_client", None)
    if inner is not None and type(executor).__module__.startswith("distributed"):
        return inner
    return None


def run_tasks(function: Callable, items: Iterable[Any], *, shared: Any = None,
              seed: int | np.random.SeedSequence | None = None, executor: Executor | None = None,
              client: Any = None, n_jobs: int | None = 1, progressbar: bool = True,
              label: str = "Tasks", batch_size: int | None = None, retries: int = 3) -> list:
    """``function(shared, item, rng)`` for every item, in item order, on the chosen executor.

    Parameters
    ----------
    function
        A module-level function (it is pickled to the workers): gets the
        shared data, one item and a ``numpy.random.Generator`` seeded from
        ``seed`` and the item's index.
    items
        The tasks' inputs.
    shared
        Data every task needs (a fit, a data set): sent once per batch, or
        scattered once to every Dask worker.
    seed
        The call's seed; the results depend on it and on each item's index only.
    executor, client, n_jobs
        Where to run: ``executor`` (any ``concurrent.futures.Executor``; a Dask
        ``client.get_executor()`` is recognised and used through its client),
        ``client`` (a ``distributed.Client``), else a local pool of ``n_jobs``
        processes (1: serial, in this process; -1 or None: one per core).
    progressbar, label
        One bar over all items.
    batch_size
        Items per task (default: about four batches per worker).
    retries
        How many times a batch whose worker died is run again.

    Returns
    -------
    list
        ``function``'s results, in the order of ``items``.
    """
    items = list(items)
    seeds = task_seeds(seed, len(items))
    tasks = [(i, item, ss) for i, (item, ss) in enumerate(zip(items, seeds, strict=True))]
    if executor is not None and not isinstance(executor, Executor):
        raise SettingsError(f"executor must be a concurrent.futures.Executor (a process pool, or a "
                            f"Dask client's get_executor()), not {type(executor).__name__}.")
    if not (isinstance(n_jobs, int) or n_jobs is None) or (isinstance(n_jobs, int) and
                                                             (n_jobs == 0 or n_jobs < -1)):
        raise SettingsError(f"n_jobs must be a positive whole number, or -1 for one worker per "
                            f"core; not {n_jobs!r}.")
    bar = Progress(len(tasks), 1, progressbar, label=label)
    results: dict[int, Any] = {}
    dask = _dask_client(executor, client)
    try:
        if dask is not None:
            _run_dask(dask, function, shared, tasks, batch_size, retries, results, bar)
        elif executor is not None:
            workers = getattr(executor, "_max_workers", None) or os.cpu_count() or 1
            _run_pool(lambda: executor, None, function, shared,
                      _batches(tasks, workers, batch_size), retries, results, bar)
        elif _workers(n_jobs) == 1:
            # one BLAS thread here too, entered once for the whole run
            with one_blas_thread():
                for batch in _batches(tasks, 1, batch_size or 1):
                    for i, value in apply_batch(function, shared, batch):
                        results[i] = value
                    bar.draw(len(results))
        else:
            # the pool's workers get the shared data once, when they start
            workers = _workers(n_jobs)
            token = uuid.uuid4().hex
            _run_pool(lambda: ProcessPoolExecutor(max_workers=workers, initializer=init_worker,
                                                  initargs=(token, shared)),
                      token, function, shared, _batches(tasks, workers, batch_size), retries,
                      results, bar)
    except KeyboardInterrupt:
        bar.interrupted()
        raise
    bar.draw(len(results), final=True)
    return [results[i] for i in range(len(tasks))]


def _run_pool(make: Callable[[], Executor], token: str | None, function: Callable, shared: Any,
              batches: list, retries: int, results: dict, bar: Progress) -> None:
    """Submit every batch; when the pool breaks (a worker died), start another and resubmit the
    batches without results. ``token`` names the shared data that a pool started here gave its
    workers (None: the caller's executor, whose batches carry the data)."""
    owned = token is not None
    pending = list(range(len(batches)))
    attempts = 0
    while pending:
        pool = make()
        futures = {}
        try:
            futures = {(pool.submit(run_shared_batch, function, token, batches[b]) if owned else
                        pool.submit(run_batch, function, shared, batches[b])): b for b in pending}
            remaining = set(futures)
            while remaining:
                done, remaining = wait(remaining, return_when="FIRST_COMPLETED")
                for fut in done:
                    for i, value in fut.result():
                        results[i] = value
                    pending.remove(futures[fut])
                    bar.draw(len(results))
        except BrokenProcessPool:
            attempts += 1
            if attempts > retries or not owned:
                raise
        except BaseException:
            # Ctrl-C or a task's own error: nothing pending is left running
            for fut in futures:
                fut.cancel()
            raise
        finally:
            if owned:
                pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(client: Any, function: Callable, shared: Any, tasks: list, batch_size: int | None,
              retries: int, results: dict, bar: Progress) -> None:
    """Dask: the shared data scattered to every worker once, batches as futures that the
    scheduler reruns elsewhere when their worker dies."""
    from distributed import as_completed

    workers = max(len(client.nthreads()), 1)
    # hash=False: a key of its own, which the release of an earlier call's equal data cannot drop
    data = client.scatter(shared, broadcast=True, hash=False) if shared is not None else None
    futures = [client.submit(run_batch, function, data, batch, pure=False, retries=retries)
               for batch in _batches(tasks, workers, batch_size)]
    try:
        for fut in as_completed(futures):
            for i, value in fut.result():
                results[i] = value
            bar.draw(len(results))
    except BaseException:
        client.cancel(futures)
        raise
