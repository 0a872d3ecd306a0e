"""The execution layer with real parts: a process pool, a Dask LocalCluster with worker processes,
and a scheduler and two workers started from the command line on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.execution import run_tasks, task_seeds


def noisy(shared, item, rng):
    """A task: its item, the shared offset and a draw from its own stream."""
    return item + shared + rng.standard_normal()


def dies_once(shared, item, rng):
    """A task whose worker process dies the first time item 3 runs (a worker killed mid-run)."""
    marker = Path(shared) / f"died-{item}"
    if item == 3 and not marker.exists():
        marker.write_text("x")
        os._exit(1)
    return item * 10 + rng.integers(1000)


@pytest.fixture(scope="module")
def local_cluster():
    import distributed  # a test dependency (pyproject's test extra): a failure, never a skip

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, host="127.0.0.1")
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_seeds_depend_on_the_index_only():
    a = [s.generate_state(2).tolist() for s in task_seeds(5, 3)]
    b = [s.generate_state(2).tolist() for s in task_seeds(5, 10)[:3]]
    assert a == b


def test_the_same_results_on_every_executor(local_cluster):
    serial = run_tasks(noisy, range(20), shared=0.5, seed=3, progressbar=False)
    assert run_tasks(noisy, range(20), shared=0.5, seed=3, batch_size=7, progressbar=False) == serial
    assert run_tasks(noisy, range(20), shared=0.5, seed=3, n_jobs=2, progressbar=False) == serial
    with ProcessPoolExecutor(2) as pool:
        assert run_tasks(noisy, range(20), shared=0.5, seed=3, executor=pool,
                         progressbar=False) == serial
    assert run_tasks(noisy, range(20), shared=0.5, seed=3, client=local_cluster,
                     progressbar=False) == serial
    assert run_tasks(noisy, range(20), shared=0.5, seed=3, executor=local_cluster.get_executor(),
                     progressbar=False) == serial
    assert serial != run_tasks(noisy, range(20), shared=0.5, seed=4, progressbar=False)


def test_a_killed_worker_loses_no_results(tmp_path, local_cluster):
    undisturbed = tmp_path / "undisturbed"
    undisturbed.mkdir()
    (undisturbed / "died-3").write_text("x")  # already "died": this run is never interrupted
    expected = run_tasks(dies_once, range(8), shared=str(undisturbed), seed=1, progressbar=False)
    pool_dir, dask_dir = tmp_path / "pool", tmp_path / "dask"
    pool_dir.mkdir()
    dask_dir.mkdir()
    on_pool = run_tasks(dies_once, range(8), shared=str(pool_dir), seed=1, n_jobs=2,
                        batch_size=1, progressbar=False)
    assert (pool_dir / "died-3").exists() and on_pool == expected
    on_dask = run_tasks(dies_once, range(8), shared=str(dask_dir), seed=1, client=local_cluster,
                        batch_size=1, progressbar=False)
    assert (dask_dir / "died-3").exists() and on_dask == expected


def test_bootstrap_on_a_cluster_equals_serial(sleepstudy, local_cluster):
    fit = hb.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
    serial = fit.confint(method="boot", n_sims=40, seed=2, progressbar=False)
    on_cluster = fit.confint(method="boot", n_sims=40, seed=2, progressbar=False,
                             client=local_cluster)
    pd.testing.assert_frame_equal(serial, on_cluster)
    # a statistic sent to Dask may be a lambda (Dask pickles it by value)
    b = fit.bootstrap(lambda f: f.sigma, n_sims=10, seed=2, progressbar=False,
                      client=local_cluster)
    np.testing.assert_array_equal(b.t["t1"], serial.attrs["replicates"]["sigma"].iloc[:10])


def test_ctrl_c_cancels_pending_tasks(tmp_path):
    script = tmp_path / "interrupted.py"
    script.write_text(textwrap.dedent("""
        import time
        from hierbayes.execution import run_tasks

        def slow(shared, item, rng):
            time.sleep(0.5)
            return item

        if __name__ == "__main__":
            try:
                run_tasks(slow, range(400), n_jobs=2, batch_size=1, progressbar=False)
            except KeyboardInterrupt:
                print("interrupted")
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    time.sleep(3)
    start = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    # 400 half-second tasks on two workers would take 100 s; cancelled, the pool stops at once
    assert "interrupted" in out and time.perf_counter() - start < 10


@pytest.mark.slow
def test_a_cluster_started_from_the_command_line(tmp_path, sleepstudy):
    import distributed

    dask = shutil.which("dask", path=os.path.dirname(sys.executable)) or shutil.which("dask")
    if dask is None:
        pytest.fail("the dask command is not installed (it comes with distributed)")
    file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen(
                [dask, "worker", "--scheduler-file", str(file), "--nthreads", "1",
                 "--nworkers", "1", "--no-dashboard", "--host", "127.0.0.1"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(300):
            if file.exists():
                break
            time.sleep(0.1)
        import json

        address = json.loads(file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            fit = hb.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
            serial = fit.confint(method="boot", n_sims=30, seed=5, progressbar=False)
            remote = fit.confint(method="boot", n_sims=30, seed=5, progressbar=False, client=client)
            pd.testing.assert_frame_equal(serial, remote)
            # the two workloads: k-fold by subject and a power curve, by address
            kf = fit.kfold(K=6, group="Subject", seed=2, progressbar=False)
            kf_remote = fit.kfold(K=6, group="Subject", seed=2, progressbar=False, client=client)
            pd.testing.assert_frame_equal(kf.pointwise, kf_remote.pointwise)
            curve = dict(effect={"Days": 3.0}, n_sims=10, along="Subject", levels=[6, 12], seed=3,
                         progressbar=False)
            pd.testing.assert_frame_equal(hb.power(fit, **curve).table,
                                          hb.power(fit, client=client, **curve).table)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
