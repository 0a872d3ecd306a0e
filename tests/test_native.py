"""The compiled kernels' plumbing: cache location, missing compiler, row order, seeds."""

from __future__ import annotations

import numpy as np
import pytest

import hierbayes as hb
from hierbayes import native
from hierbayes.errors import SamplerError
from hierbayes.logdensity import pack
from hierbayes.nuts import sample


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERBAYES_CACHE_DIR", str(tmp_path / "kernels"))
    assert native.cache_dir() == tmp_path / "kernels"
    (tmp_path / "kernels" / "_ckernels-0123456789abcdef.so").write_bytes(b"")
    (tmp_path / "kernels" / "unrelated.txt").write_text("kept")
    assert native.clear_cache() == 1
    assert [f.name for f in (tmp_path / "kernels").iterdir()] == ["unrelated.txt"]


def test_a_missing_compiler_is_named_with_a_way_out(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SamplerError, match="no C compiler was found.*sampler='nutpie'"):
        native._compiler()
    assert not native.available()


def test_a_broken_build_reports_the_compiler_output(tmp_path, monkeypatch):
    bad = tmp_path / "bad.c"
    bad.write_text("this is not C\n")
    monkeypatch.setattr(native, "SOURCE", bad)
    with pytest.raises(SamplerError, match="failed"):
        native._build(native._compiler(), tmp_path / "out.so")
    assert not (tmp_path / "out.so").exists()


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
