"""What "the same seed gives the same draws" means, tested: the kernels' arithmetic does not depend on the CPU.

The kernels are built with ``-ffp-contract=off`` (``kernel_sources.UNIX_FLAGS``),
so no compiler may fuse ``a * b + c`` into one rounding, and without
``-march=native``. Here the same sources are built again for this machine's
own instruction set (``-march=native``: AVX, FMA where the CPU has them), and a
chain from one seed must give the same draws, bit for bit, as the installed
build. Without ``-ffp-contract=off`` on a CPU with FMA the draws part within a
few iterations, which shows the comparison can fail.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest

import hierbayes as hb
from hierbayes import kernel_sources
from hierbayes.bayes import codes, native
from hierbayes.bayes.pack import pack

pytestmark = pytest.mark.slow


def build(tmp: Path, name: str, extra: list[str]) -> Path:
    unity = tmp / "hb_kernels.c"
    unity.write_text(kernel_sources.unity_source())
    out = tmp / f"{name}.so"
    flags = [f for f in kernel_sources.UNIX_FLAGS if not (f.startswith("-ffp-contract") and
                                                          any(e.startswith("-ffp-contract") for e in extra))]
    cmd = ["cc", *flags, *extra, "-fPIC", "-shared", f"-I{kernel_sources.KERNELS}",
           f'-DHB_SOURCE_SHA256="{kernel_sources.source_sha256()}"', str(unity), "-lm", "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


def chain(packed, lib=None, n=100):
    q0 = packed.initial_point(7, jitter=1.0)
    draws, stats = np.empty((n, packed.dim)), np.empty((n, codes.STAT_N))
    metric = np.empty(packed.dim)
    native.run_chain(packed.native.ref, q0, 13, n, draws, stats, metric, 0.9, 10,
                     np.zeros(1, dtype=np.int64), 0, np.zeros(1, dtype=np.int32), lib=lib)
    return draws


@pytest.fixture(scope="module")
def models():
    sleep = hb.datasets.load("sleepstudy")
    m = hb.Model("Reaction ~ Days + (Days | Subject)", sleep)
    d = hb.datasets.load("speed_dating").dropna(subset=["attractive_sc", "sincere_sc"]).iloc[:1500]
    b = hb.Model("decision ~ attractive_sc + sincere_sc + (1 | iid)", d, family="bernoulli")
    return {"marginal": pack(m.design, m.priors, marginal=True),
            "full": pack(m.design, m.priors, centred=[False], marginal=False),
            "bernoulli": pack(b.design, b.priors, centred=[True], marginal=False)}


@pytest.fixture(scope="module")
def native_build(tmp_path_factory):
    return native.open_library(build(tmp_path_factory.mktemp("native"), "native", ["-march=native"]))


@pytest.mark.parametrize("form", ["marginal", "full", "bernoulli"])
def test_a_build_for_this_cpu_gives_the_same_draws(models, native_build, form):
    ours = chain(models[form])
    np.testing.assert_array_equal(chain(models[form], native_build), ours)


def _has_fma() -> bool:
    try:
        return " fma " in f" {Path('/proc/cpuinfo').read_text().replace(chr(10), ' ')} "
    except OSError:
        return False


def test_fused_multiply_adds_would_change_the_draws(models, tmp_path):
    # The counterfactual, where the CPU can fuse: contraction on, for this CPU's FMA units.
    if not _has_fma():
        assert "-ffp-contract=off" in kernel_sources.UNIX_FLAGS
        return
    fused = native.open_library(build(tmp_path, "fused", ["-march=native", "-ffp-contract=fast"]))
    assert not np.array_equal(chain(models["marginal"], fused), chain(models["marginal"]))


def test_the_flags_are_the_documented_ones():
    flags = kernel_sources.UNIX_FLAGS
    assert "-ffp-contract=off" in flags and not any(f.startswith("-march") for f in flags)
    assert not any("fast-math" in f or f == "-Ofast" for f in flags), shlex.join(flags)
