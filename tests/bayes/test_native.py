"""The compiled kernels' plumbing: built at install, checked at load, stopped by Ctrl-C,
any number of bars; row order and seeds."""

from __future__ import annotations

import _thread
import ctypes
import ctypes.util
import importlib.machinery
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.bayes import native
from hierbayes.bayes.nuts import sample
from hierbayes.bayes.pack import pack
from hierbayes.bayes.posterior import linear_predictor
from hierbayes.errors import SamplerError

# ---- built when the package is installed ----


def test_the_kernels_are_the_extension_built_beside_the_package():
    path = native.library_path()
    assert path.parent == Path(native.__file__).parent
    assert any(path.name == "_ckernels" + sfx for sfx in importlib.machinery.EXTENSION_SUFFIXES)
    assert native.load()._name == str(path)


def test_a_fit_compiles_nothing_and_writes_no_cache(tmp_path):
    # no compiler on the PATH, and every place the old run-time cache used pointed
    # at an empty folder: the fit still samples with hierbayes's own kernels and
    # leaves that folder empty (nothing is built, nothing is cached, no silent nutpie)
    home = tmp_path / "home"
    home.mkdir()
    pycache = Path(native.__file__).parent / "__pycache__"
    before = sorted(pycache.glob("_ckernels*")) if pycache.exists() else []
    env = {**os.environ, "PATH": str(tmp_path / "no-bin"), "CC": "no-such-compiler", "HOME": str(home),
           "XDG_CACHE_HOME": str(home / "cache"), "HIERBAYES_CACHE_DIR": str(home / "kernels")}
    code = textwrap.dedent("""
        import hierbayes as hb
        fit = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy")).fit(
            draws=50, tune=50, chains=2, seed=1, progressbar=False, check=False)
        print(fit.info.sampler)
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "hierbayes"
    assert list(home.rglob("*")) == []
    assert (sorted(pycache.glob("_ckernels*")) if pycache.exists() else []) == before


def test_missing_kernels_raise_a_reinstall_error_not_another_sampler(sleepstudy, monkeypatch):
    monkeypatch.setattr(native, "EXTENSION", "hierbayes._no_such_kernels")
    monkeypatch.setattr(native, "_lib", None)
    model = hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy)
    with pytest.raises(SamplerError, match=r"missing.*pip install --force-reinstall.*make clean-venv"):
        model.fit(draws=20, tune=20, chains=1, progressbar=False)
    with pytest.raises(SamplerError, match="missing"):
        packed = pack(model.design, model.priors)
        packed.logp_grad(packed.start)


def _changed_mirror(fields):
    return type("Model", (ctypes.Structure,), {"_fields_": fields})


def test_a_ctypes_mirror_out_of_step_with_the_c_record_is_refused(monkeypatch):
    lib, path = native.load(), native.library_path()
    native.check_library(lib, path)  # the real pair agrees
    fields, size = list(native.Model._fields_), ctypes.sizeof(native.Model)
    # a field forgotten in the mirror: sizes and counts differ
    monkeypatch.setattr(native, "Model", _changed_mirror(fields[:-1]))
    with pytest.raises(SamplerError, match=rf"in {size} bytes over {len(fields)} fields.*"
                                           rf"{size - 8} bytes over {len(fields) - 1}.*ctypes mirror"):
        native.check_library(lib, path)
    # a field of the wrong size: the count agrees, the offsets after it do not
    monkeypatch.setattr(native, "Model", _changed_mirror([("mode", ctypes.c_int64 * 2), *fields[1:]]))
    with pytest.raises(SamplerError, match="first different offset: field 'dim'"):
        native.check_library(lib, path)


def test_a_library_without_the_layout_checks_is_refused():
    libm = ctypes.util.find_library("m")
    with pytest.raises(SamplerError, match="does not export this version's layout checks.*Reinstall"):
        native.check_library(ctypes.CDLL(libm), Path(libm))


def test_a_library_built_from_another_source_is_refused(tmp_path):
    edited = tmp_path / "_ckernels.c"
    edited.write_bytes(native.SOURCE.read_bytes() + b"/* edited */\n")
    with pytest.raises(SamplerError, match="another version of _ckernels.c.*Rebuild"):
        native.check_library(native.load(), native.library_path(), source=edited)
    native.check_library(native.load(), native.library_path(), source=tmp_path / "absent.c")


# ---- Ctrl-C ----

LONG_FIT = textwrap.dedent("""
    import threading, time
    import hierbayes as hb

    def announce():
        # the chains run in the executor's threads: say so once they exist
        while not any(t.name.startswith("ThreadPoolExecutor") for t in threading.enumerate()):
            time.sleep(0.01)
        print("sampling", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    df = hb.datasets.load("sleepstudy")
    hb.Model("Reaction ~ Days + (Days | Subject)", df).fit(draws=200000, tune=1000, chains=4, seed=1)
    print("finished", flush=True)
""")


def test_ctrl_c_stops_a_fit_within_two_seconds():
    proc = subprocess.Popen([sys.executable, "-c", LONG_FIT], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "sampling"
        time.sleep(0.5)
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        waited = time.perf_counter() - t0
    finally:
        proc.kill()
        proc.wait()
    assert "KeyboardInterrupt" in err
    assert "finished" not in out
    assert waited < 2.0, f"the process exited {waited:.1f} s after Ctrl-C"


def test_an_interrupted_sample_leaves_no_thread_running(sleep_model):
    packed = pack(sleep_model.design, sleep_model.priors)
    before = set(threading.enumerate())
    sent = []

    def interrupt():
        deadline = time.perf_counter() + 60
        while time.perf_counter() < deadline:
            if any(t.name.startswith("ThreadPoolExecutor") for t in threading.enumerate()):
                time.sleep(0.3)
                sent.append(time.perf_counter())
                _thread.interrupt_main()
                return
            time.sleep(0.01)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        sample(packed, draws=200000, tune=1000, chains=4, seed=2, progressbar=False)
    stopped = time.perf_counter()
    assert sent and stopped - sent[0] < 1.0
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert [t for t in left if t.name.startswith("ThreadPoolExecutor")] == []


# ---- any number of bars ----


@pytest.fixture(scope="module")
def many_bars():
    rng = np.random.default_rng(7)
    n, groups = 300, 18
    df = pd.DataFrame({f"g{k}": rng.integers(0, 4, n).astype(str) for k in range(1, groups + 1)})
    effects = sum(rng.normal(0, 0.5, 4)[df[f"g{k}"].astype(int)] for k in range(1, groups + 1))
    df["x"] = rng.normal(size=n)
    df["y"] = 1.0 + 0.5 * df["x"] + effects + rng.normal(size=n)
    formula = "y ~ 1 + x + " + " + ".join(f"(1 | g{k})" for k in range(1, groups + 1))
    return hb.Model(formula, df)


def test_the_seventeenth_and_eighteenth_bars_count_in_the_density(many_bars):
    # the kernel's density against NumPy's: between two points that differ only in
    # the last two blocks' (non-centred) effects z, the log density changes by the
    # likelihood's change plus the N(0, 1) prior's on z; and the gradient in those
    # z is sd * Z'(y - eta) / sigma^2 - z
    design = many_bars.design
    packed = pack(design, many_bars.priors, centred=[False] * 18, collapse=False, marginal=False)
    assert len(design.blocks) == 18 and packed.collapsed == -1
    last = design.blocks[16:]
    spans = {blk.group: slice(packed.layout[f"eff_{blk.group}"][0],
                              packed.layout[f"eff_{blk.group}"][0] + blk.n_levels) for blk in last}
    rng = np.random.default_rng(1)
    a = packed.initial_point(0) + rng.normal(0, 0.3, packed.dim)
    b = a.copy()
    for span in spans.values():
        b[span] += rng.normal(0, 1.0, span.stop - span.start)

    def loglik(theta):
        post = packed.constrain(theta[None, None, :])
        resid = design.y - linear_predictor(design, post)[0, 0]
        sigma = float(post["sigma"][0, 0])
        return -len(resid) * np.log(sigma) - 0.5 * np.sum(resid**2) / sigma**2, resid, sigma

    def z_prior(theta):
        return -0.5 * sum(np.sum(theta[span] ** 2) for span in spans.values())

    (lp_a, grad_a), (lp_b, _) = packed.logp_grad(a), packed.logp_grad(b)
    (ll_a, resid, sigma), (ll_b, _, _) = loglik(a), loglik(b)
    assert lp_a - lp_b == pytest.approx(ll_a - ll_b + z_prior(a) - z_prior(b), rel=1e-9)
    for blk in last:
        span = spans[blk.group]
        sd = np.exp(a[packed.layout[f"sd_{blk.group}"][0]])
        want = sd * np.bincount(blk.index, weights=resid, minlength=blk.n_levels) / sigma**2 - a[span]
        np.testing.assert_allclose(grad_a[span], want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("marginal", [False, True])
def test_eighteen_bars_fit(many_bars, marginal):
    fit = many_bars.fit(draws=100, tune=150, chains=2, seed=3, progressbar=False, marginal=marginal,
                        check=False)
    assert fit.info.sampler == "hierbayes" and fit.info.marginal is marginal
    sds = fit.posterior["sd_g18"]
    assert sds.shape == (2, 100, 1) and np.all(np.isfinite(sds)) and np.all(sds > 0)
    assert np.all(np.isfinite(fit.posterior["r_g18"]))


def test_the_row_order_does_not_change_the_density(sleepstudy):
    # the kernel sorts rows by the collapsed block's level; shuffled data must give the same value
    formula = "Reaction ~ Days + (1 | Subject)"
    m = hb.Model(formula, sleepstudy)
    shuffled = sleepstudy.sample(frac=1.0, random_state=3).reset_index(drop=True)
    m2 = hb.Model(formula, shuffled)
    a = pack(m.design, m.priors, centred=[True], collapse=True)
    b = pack(m2.design, m2.priors, centred=[True], collapse=True)
    assert a.collapsed == 0 and b.collapsed == 0
    theta = a.initial_point(2)
    lp_a, g_a = a.logp_grad(theta)
    lp_b, g_b = b.logp_grad(theta)
    assert lp_a == pytest.approx(lp_b, rel=1e-12)
    np.testing.assert_allclose(g_a, g_b, rtol=1e-10, atol=1e-10)
    # and the level effects drawn afterwards (same seed) belong to the same levels
    ra = a.constrain(np.tile(theta, (1, 20, 1)), seed=1)["r_Subject"]
    rb = b.constrain(np.tile(theta, (1, 20, 1)), seed=1)["r_Subject"]
    np.testing.assert_allclose(ra, rb, rtol=1e-8, atol=1e-8)


def test_chains_are_reproducible_and_seeds_differ(sleepstudy):
    m = hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy)
    p = pack(m.design, m.priors, marginal=True)
    a = sample(p, draws=50, tune=50, chains=2, seed=11, progressbar=False)
    b = sample(p, draws=50, tune=50, chains=2, seed=11, progressbar=False)
    c = sample(p, draws=50, tune=50, chains=2, seed=12, progressbar=False)
    np.testing.assert_array_equal(a.draws, b.draws)
    np.testing.assert_array_equal(a.stats["n_steps"], b.stats["n_steps"])
    assert not np.array_equal(a.draws, c.draws)
    assert not np.array_equal(a.draws[0], a.draws[1])
