"""The compiled kernels' plumbing: built at install, checked at load (layout, shared codes,
sources), stopped by Ctrl-C, any number of bars, buffers reused per chain; row order and seeds."""

from __future__ import annotations

import _thread
import ctypes
import ctypes.util
import dataclasses
import importlib.machinery
import os
import shutil
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
from hierbayes.bayes import codes, native
from hierbayes.bayes.native import NativeModel
from hierbayes.bayes.nuts import sample
from hierbayes.bayes.pack import pack
from hierbayes.bayes.posterior import linear_predictor
from hierbayes.errors import SamplerError
from hierbayes.kernel_sources import KERNELS, c_sources, kernel_files, source_sha256

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
    # two fields swapped: size and count agree, one offset does not
    i = [name for name, _ in fields].index("collapsed")
    swapped = [*fields[:i - 1], fields[i], fields[i - 1], *fields[i + 1:]]
    monkeypatch.setattr(native, "Model", _changed_mirror(swapped))
    with pytest.raises(SamplerError, match="field 'collapsed' is 'disp_at' in the kernels"):
        native.check_library(lib, path)


def test_a_library_without_the_layout_checks_is_refused():
    libm = ctypes.util.find_library("m")
    with pytest.raises(SamplerError, match="does not export this version's layout checks.*Reinstall"):
        native.check_library(ctypes.CDLL(libm), Path(libm))


def test_a_library_built_from_other_sources_is_refused(tmp_path):
    # every kernel file counts, the header as much as a C file
    lib, path = native.load(), native.library_path()
    for name in ("nuts.c", "hb.h"):
        edited = tmp_path / name.replace(".", "_")
        shutil.copytree(KERNELS, edited)
        (edited / name).write_bytes((KERNELS / name).read_bytes() + b"/* edited */\n")
        with pytest.raises(SamplerError, match="built from other versions of the kernel files.*Rebuild"):
            native.check_library(lib, path, sources=edited)
    # a new file, even one that is not compiled, is another source too
    added = tmp_path / "added"
    shutil.copytree(KERNELS, added)
    (added / "family_new.c").write_text("/* a new family */\n")
    with pytest.raises(SamplerError, match="built from other versions"):
        native.check_library(lib, path, sources=added)
    # an installed package without the sources beside it is not checked
    (tmp_path / "empty").mkdir()
    native.check_library(lib, path, sources=tmp_path / "empty")
    native.check_library(lib, path, sources=tmp_path / "absent")


def test_the_source_hash_covers_every_kernel_file_in_name_order(tmp_path):
    files = kernel_files(KERNELS)
    assert [p.name for p in files] == sorted(p.name for p in files)
    assert {p.suffix for p in files} == {".c", ".h"} and (KERNELS / "hb.h") in files
    assert c_sources(KERNELS) == [p for p in files if p.suffix == ".c"]
    # what the library was built with (setup.py and tools/build_kernels.py share kernel_sources)
    assert native.load().hb_source_sha256().decode() == source_sha256(KERNELS)
    # moving text from one file to the next changes the hash, though the bytes joined are the same
    (tmp_path / "a.c").write_text("int x;\n")
    (tmp_path / "b.c").write_text("int y;\n")
    before = source_sha256(tmp_path)
    (tmp_path / "a.c").write_text("int x;\nint y;\n")
    (tmp_path / "b.c").write_text("")
    assert source_sha256(tmp_path) != before
    assert source_sha256(tmp_path / "absent") == ""


def test_every_c_file_is_short_and_says_what_it_is_for():
    for path in kernel_files(KERNELS):
        text = path.read_text()
        assert len(text.splitlines()) < 600, path.name
        assert text.startswith(f"/* {path.name}: "), path.name


def test_a_constant_out_of_step_with_the_c_header_is_refused(monkeypatch):
    lib, path = native.load(), native.library_path()
    theirs = native.library_constants(lib)
    assert theirs == codes.KERNEL_CONSTANTS  # every shared code, by name and value
    assert theirs["FAMILY_POISSON"] == codes.FAMILY_CODES["poisson"] and theirs["B_N"] == 17
    original = dict(codes.KERNEL_CONSTANTS)
    changed = {**original, "B_SKIP": 99}
    monkeypatch.setattr(codes, "KERNEL_CONSTANTS", changed)
    with pytest.raises(SamplerError, match="disagree on the constant B_SKIP: 12 in the kernels.*99 in"):
        native.check_library(lib, path)
    missing = {k: v for k, v in original.items() if k != "PRIOR_LOGNORMAL"}
    monkeypatch.setattr(codes, "KERNEL_CONSTANTS", missing)
    with pytest.raises(SamplerError, match="constant PRIOR_LOGNORMAL: 9 in the kernels.*not defined in"):
        native.check_library(lib, path)
    extra = {**original, "FAMILY_BETA": 6}
    monkeypatch.setattr(codes, "KERNEL_CONSTANTS", extra)
    with pytest.raises(SamplerError, match="constant FAMILY_BETA: not defined in the kernels"):
        native.check_library(lib, path)


def test_the_shared_codes_are_what_pack_writes(sleep_model):
    d, pri = sleep_model.design, sleep_model.priors
    full = pack(d, pri, centred=[True], collapse=False)
    blk = full.data.blocks
    assert blk.shape == (1, codes.B_N)
    assert blk[0, codes.B_K] == 2 and blk[0, codes.B_L] == 18 and blk[0, codes.B_CORR] == 1
    assert blk[0, codes.B_SD] == full.layout["sd_Subject"][0]
    assert blk[0, codes.B_EFF] == full.layout["eff_Subject"][0] and blk[0, codes.B_CENTRED] == 1
    rows = full.data.prior_index
    assert rows.shape[1] == codes.PRI_N
    assert rows[-1, codes.PRI_AT] == full.layout["sigma"][0] == full.data.disp_at
    assert rows[-1, codes.PRI_POSITIVE] == 1
    assert full.data.family == codes.FAMILY_CODES["gaussian"] and full.data.collapsed == -1
    marg = pack(d, pri, marginal=True).data
    mb = marg.blocks
    assert mb.shape == (1, codes.M_N)
    assert (mb[0, codes.M_K], mb[0, codes.M_L], mb[0, codes.M_OFF], mb[0, codes.M_CORR]) == (2, 18, 0, 1)
    assert mb[0, codes.M_SD] == full.layout["sd_Subject"][0] and marg.n_obs == d.n_obs == 180


def test_an_unknown_family_or_prior_code_is_refused_not_run_as_another(sleep_model):
    # before the split, an unknown family code fell silently into Poisson's branch
    packed = pack(sleep_model.design, sleep_model.priors, collapse=False)
    with pytest.raises(SamplerError, match="response family code"):
        NativeModel(dataclasses.replace(packed.data, family=len(codes.FAMILY_CODES)), packed.dim)
    rows = packed.data.prior_index.copy()
    rows[0, codes.PRI_CODE] = len(codes.PRIOR_CODES)
    with pytest.raises(SamplerError, match="prior code"):
        NativeModel(dataclasses.replace(packed.data, prior_index=rows), packed.dim)
    marg = pack(sleep_model.design, sleep_model.priors, marginal=True)
    rows = marg.data.prior_index.copy()
    rows[-1, codes.PRI_CODE] = -1
    with pytest.raises(SamplerError, match="prior code"):
        NativeModel(dataclasses.replace(marg.data, prior_index=rows), marg.dim)
    # the record itself is checked wherever work is allocated, not only by NativeModel
    model = NativeModel(packed.data, packed.dim)
    model.record.family = 7
    with pytest.raises(SamplerError, match="response family code"):
        model.logp_grad(packed.start)
    stats = np.empty((5, codes.STAT_N))
    with pytest.raises(SamplerError, match="response family code"):
        model.run_chain(packed.start, 1, 5, np.empty((5, packed.dim)), stats, np.empty(packed.dim),
                        0.8, 3, np.zeros(1, dtype=np.int64), 0, np.zeros(1, dtype=np.int32))


def test_a_link_or_weights_the_kernel_does_not_read_are_refused(sleep_model):
    packed = pack(sleep_model.design, sleep_model.priors, collapse=False)
    # a Gaussian kernel with a logit link: refused, not run with the identity
    with pytest.raises(SamplerError, match="link that the response family's kernel does not compute"):
        NativeModel(dataclasses.replace(packed.data, link=codes.LINK_CODES["logit"]), packed.dim)
    weights = np.ones(sleep_model.design.n_obs)
    # prior weights are read by the Gaussian rows only: a Poisson record with them is refused
    with pytest.raises(SamplerError, match="cannot evaluate"):
        NativeModel(dataclasses.replace(packed.data, family=codes.FAMILY_CODES["poisson"],
                                        link=codes.LINK_CODES["log"], disp_at=-1, weights=weights),
                    packed.dim)
    # and by no collapsed block
    intercepts = hb.Model("Reaction ~ Days + (1 | Subject)", sleep_model.design.frame)
    collapsed = pack(intercepts.design, intercepts.priors)
    assert collapsed.collapsed == 0
    with pytest.raises(SamplerError, match="cannot evaluate"):
        NativeModel(dataclasses.replace(collapsed.data, weights=weights), collapsed.dim)


@pytest.mark.parametrize("case", ["nested centred", "collapsed", "marginal crossed", "bernoulli",
                                  "binomial trials", "negbinomial"])
def test_a_chain_reusing_its_buffers_computes_what_a_fresh_call_does(case):
    # a chain allocates its work once and evaluates thousands of times; the lp it records for
    # each draw must be, to the last bit, what a call with freshly allocated buffers gives there
    rng = np.random.default_rng(11)
    n = 240
    teacher = rng.integers(0, 12, n)
    df = pd.DataFrame({"school": (teacher // 3).astype(str), "teacher": teacher.astype(str),
                       "cohort": rng.integers(0, 5, n).astype(str), "x": rng.normal(size=n)})
    df["y"] = 1 + 0.5 * df["x"] + rng.normal(size=4)[teacher // 3] + rng.normal(size=n)
    df["hit"] = (df["y"] > 1).astype(int)
    formula = "y ~ x + (1 | school) + (1 | teacher) + (1 | cohort)"
    df["n"] = rng.integers(1, 6, n)
    df["k"] = rng.binomial(df["n"], 0.4)
    df["count"] = rng.poisson(rng.gamma(2.0, 1.5, n))
    if case == "bernoulli":
        m = hb.Model("hit ~ x + (1 | school) + (x | cohort)", df, family="bernoulli")
        packed = pack(m.design, m.priors, centred=[True, False])
    elif case == "binomial trials":
        m = hb.Model("cbind(k, n - k) ~ x + (1 | school) + (x | cohort)", df,
                     family=hb.get_family("binomial", link="probit"), offset=0.1 * df["x"].to_numpy())
        packed = pack(m.design, m.priors, centred=[True, False])
    elif case == "negbinomial":
        m = hb.Model("count ~ x + (1 | teacher) + (1 | cohort)", df, family="negbinomial")
        packed = pack(m.design, m.priors, centred=[True, False])
    else:
        m = hb.Model(formula, df)
        kw = {"nested centred": dict(centred=[True] * 3, collapse=False),
              "collapsed": dict(centred=[False, True, False], collapse=True),
              "marginal crossed": dict(marginal=True)}[case]
        packed = pack(m.design, m.priors, **kw)
    if case == "nested centred":
        assert any(h >= 0 for h, _ in packed.parents)
    if case == "marginal crossed":
        assert packed.native.record.q2 > 0
    out = sample(packed, draws=30, tune=30, chains=1, seed=4, progressbar=False)
    # logp_grad keeps one work per model too: in reverse order, and fresh each time
    kept = [packed.logp_grad(q) for q in out.draws[0][::-1]][::-1]
    fresh = [NativeModel(packed.data, packed.dim).logp_grad(q) for q in out.draws[0]]
    np.testing.assert_array_equal(out.stats["lp"][0], [lp for lp, _ in fresh])
    np.testing.assert_array_equal(out.stats["lp"][0], [lp for lp, _ in kept])
    np.testing.assert_array_equal([g for _, g in kept], [g for _, g in fresh])


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


def test_the_build_compiles_every_kernel_file_once_in_one_unit():
    from hierbayes.kernel_sources import unity_source

    text = unity_source()
    included = [line.split('"')[1] for line in text.splitlines() if line.startswith("#include")]
    assert included == [p.resolve().as_posix() for p in c_sources()]
    assert len(set(included)) == len(included) and not any(p.endswith(".h") for p in included)
