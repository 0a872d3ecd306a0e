"""nutpie on the compiled density: the C adapter, its threads, the version gate, the settings passed."""

from __future__ import annotations

import gc
import threading
import warnings

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.bayes import native, nutpie_native, sampler
from hierbayes.bayes.native import WorkPool
from hierbayes.bayes.nuts import STAT_NAMES
from hierbayes.bayes.pack import pack

needs_tested_nutpie = pytest.mark.skipif(
    nutpie_native.unsupported() is not None,
    reason=f"needs {nutpie_native.REQUIREMENT} (installed: {nutpie_native.installed_version()})")


def _bernoulli_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(12), 10)
    x = rng.normal(size=g.size)
    eta = -0.3 + 0.8 * x + rng.normal(0, 0.7, 12)[g]
    return pd.DataFrame({"y": (rng.uniform(size=g.size) < 1 / (1 + np.exp(-eta))).astype(int),
                         "x": x, "g": g.astype(str)})


def _models() -> dict[str, tuple[hb.Model, dict]]:
    sleep = hb.datasets.load("sleepstudy")
    slope = hb.Model("Reaction ~ Days + (Days | Subject)", sleep)
    return {
        "full non-centred": (slope, {"centred": [False], "marginal": False}),
        "full centred": (slope, {"centred": [True], "marginal": False}),
        "marginal": (slope, {"marginal": True}),
        "bernoulli": (hb.Model("y ~ x + (1 | g)", _bernoulli_frame(), family="bernoulli"), {}),
        "poisson": (hb.Model("TICKS ~ YEAR + (1 | LOCATION)", hb.datasets.load("grouseticks"),
                             family="poisson"), {}),
    }


MODELS = _models()


@pytest.fixture(scope="module")
def sleep_packed():
    model, forms = MODELS["full non-centred"]
    return pack(model.design, model.priors, **forms)


@pytest.mark.parametrize("name", list(MODELS))
def test_the_adapter_is_hb_logp_bit_for_bit(name):
    model, forms = MODELS[name]
    packed = pack(model.design, model.priors, **forms)
    pool = WorkPool(packed.native, 2)
    for seed in range(5):
        q = packed.initial_point(seed, jitter=2.0)
        code, lp, grad = pool.logp_grad(q)
        want_lp, want_grad = packed.logp_grad(q)
        assert code == 0
        assert lp == want_lp and np.isfinite(lp)
        np.testing.assert_array_equal(grad, want_grad)


def test_the_codes_nutpie_reads(sleep_packed):
    pool = WorkPool(sleep_packed.native, 1)
    q = sleep_packed.initial_point(1)
    # positive: a point without a finite density, which nutpie rejects as a divergence
    assert pool.logp_grad(np.full_like(q, np.nan))[0] > 0
    # negative: a call nutpie must not go on from (the wrong dimension)
    assert pool.logp_grad(q, dim=q.size + 1)[0] < 0
    lib = native.load()
    out = np.zeros_like(q)
    assert lib.hb_nutpie_expand(q.size, q.size, q.ctypes.data, out.ctypes.data, pool.address) == 0
    np.testing.assert_array_equal(out, q)
    assert lib.hb_nutpie_expand(q.size, q.size + 1, q.ctypes.data, out.ctypes.data, pool.address) < 0
    assert lib.hb_nutpie_expand(q.size - 1, q.size - 1, q.ctypes.data, out.ctypes.data,
                                pool.address) < 0


@pytest.mark.parametrize("slots", [4, 1])
def test_calls_from_four_threads_at_once_are_the_serial_calls(sleep_packed, slots):
    # ctypes releases the GIL, so the four threads evaluate at once; with one slot
    # three of them wait for it on every call
    points = [[sleep_packed.initial_point(100 * t + i, jitter=2.0) for i in range(40)]
              for t in range(4)]
    want = [[sleep_packed.logp_grad(q) for q in row] for row in points]
    pool = WorkPool(sleep_packed.native, slots)
    got: list[list] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def work(t: int) -> None:
        start.wait()
        for _ in range(5):
            got[t] = [pool.logp_grad(q) for q in points[t]]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for t in range(4):
        for (code, lp, grad), (want_lp, want_grad) in zip(got[t], want[t], strict=True):
            assert code == 0 and lp == want_lp
            np.testing.assert_array_equal(grad, want_grad)


@needs_tested_nutpie
def test_four_chains_in_four_threads_draw_what_one_thread_draws(sleep_packed):
    kw = {"draws": 60, "tune": 60, "chains": 4, "seed": 3, "progressbar": False}
    parallel = nutpie_native.sample(sleep_packed, cores=4, **kw)
    serial = nutpie_native.sample(sleep_packed, cores=1, **kw)
    np.testing.assert_array_equal(parallel.draws, serial.draws)
    for name in STAT_NAMES:
        np.testing.assert_array_equal(parallel.stats[name], serial.stats[name])
    other = nutpie_native.sample(sleep_packed, cores=4, **{**kw, "seed": 4})
    assert not np.array_equal(other.draws, parallel.draws)


@needs_tested_nutpie
def test_stats_are_ours_and_lp_is_the_density_at_the_draw(sleep_packed):
    run = nutpie_native.sample(sleep_packed, draws=50, tune=50, chains=2, seed=1, progressbar=False)
    assert run.draws.shape == (2, 50, sleep_packed.dim)
    assert sorted(run.stats) == sorted(STAT_NAMES)
    st = run.stats
    lp = np.array([[sleep_packed.logp_grad(q)[0] for q in chain] for chain in run.draws])
    np.testing.assert_array_equal(st["lp"], lp)
    assert np.all(st["energy"] >= -st["lp"])  # the kinetic energy is never negative
    assert np.all((st["acceptance_rate"] >= 0) & (st["acceptance_rate"] <= 1))
    # as Stan's treedepth__: the doublings kept, and at most one more built (then rejected)
    depth = st["tree_depth"]
    assert np.all((2**depth - 1 <= st["n_steps"]) & (st["n_steps"] <= 2 ** (depth + 1) - 1))
    assert set(np.unique(st["diverging"])) <= {0.0, 1.0}
    np.testing.assert_array_equal(run.step_size, st["step_size"][:, -1])


@needs_tested_nutpie
def test_settings_reach_nutpie(sleep_packed, monkeypatch):
    import nutpie

    seen: dict = {}
    real = nutpie.sample

    def spy(model, **kwargs):
        seen.update(kwargs)
        return real(model, **kwargs)

    monkeypatch.setattr(nutpie, "sample", spy)
    run = nutpie_native.sample(sleep_packed, draws=30, tune=40, chains=3, seed=7, target_accept=0.95,
                               cores=2, progressbar=False, max_treedepth=2)
    assert {k: seen[k] for k in ("draws", "tune", "chains", "seed", "cores", "target_accept",
                                 "maxdepth", "low_rank_modified_mass_matrix")} == \
        {"draws": 30, "tune": 40, "chains": 3, "seed": 7, "cores": 2, "target_accept": 0.95,
         "maxdepth": 2, "low_rank_modified_mass_matrix": False}
    assert run.draws.shape == (3, 30, sleep_packed.dim)
    # the depth limit is nutpie's maxdepth, not its mindepth (which 0.16.0-0.16.2 set)
    assert run.stats["tree_depth"].max() == 2 and run.stats["n_steps"].max() <= 3


@needs_tested_nutpie
def test_the_fit_passes_max_treedepth_and_the_forms(sleepstudy):
    model = hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy)
    post, _, _, _ = sampler._nutpie(model, 40, 40, 2, 1, 0.9, None, False, [True], marginal=False,
                                    max_treedepth=2)
    assert post.stats["tree_depth"].max() == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        fit = model.fit(sampler="nutpie", draws=100, tune=100, chains=2, seed=1, centred=True,
                        marginal=False, progressbar=False)
        marg = model.fit(sampler="nutpie", draws=100, tune=100, chains=2, seed=1, marginal=True,
                         progressbar=False)
    # the full Gaussian form integrates the plain random intercept out level by level
    assert fit.info.sampler == "nutpie" and fit.info.collapsed == "Subject" and fit.info.centred == {}
    assert not fit.info.graph
    assert not fit.info.marginal and marg.info.marginal and marg.info.centred == {}
    assert fit.info.compile_seconds < 1  # nothing compiled
    assert sorted(fit.posterior.stats) == sorted(STAT_NAMES)
    assert fit.posterior.stats["diverging"].dtype == bool
    assert fit.diagnostics().draws == 200
    for f in (fit, marg):
        assert f.posterior["r_Subject"].shape == (2, 100, 18, 1) and np.all(f.posterior["sigma"] > 0)


@pytest.mark.parametrize(("version", "ok"), [
    ("0.15.2", False), ("0.16.0", False), ("0.16.2", False), ("0.16.3", True), ("0.16.8", True),
    ("0.16.8.post1", True), ("0.16.9", False), ("0.16.11", False), ("0.17.0", False), ("1.0.0", False),
])
def test_the_version_gate(monkeypatch, version, ok):
    monkeypatch.setattr(nutpie_native, "installed_version", lambda: version)
    why = nutpie_native.unsupported()
    assert (why is None) == ok
    if not ok:
        assert f"nutpie {version} is not a version" in why and nutpie_native.REQUIREMENT in why
        with pytest.raises(hb.SamplerError, match="cannot sample hierbayes's compiled density"):
            nutpie_native.sample(None)


def test_no_nutpie_or_no_kernels_are_reasons_too(monkeypatch):
    monkeypatch.setattr(nutpie_native, "installed_version", lambda: None)
    assert nutpie_native.unsupported() == "nutpie is not installed"
    monkeypatch.setattr(nutpie_native, "installed_version", lambda: "0.16.8")

    def missing():
        raise hb.SamplerError("hierbayes's compiled kernels are missing")

    monkeypatch.setattr(nutpie_native, "load", missing)
    why = nutpie_native.unsupported()
    assert why.startswith("hierbayes's compiled kernels cannot be loaded") and "missing" in why


class Reached(Exception):
    """Raised where the fit starts compiling the PyMC graph."""


def test_an_untested_nutpie_samples_the_graph_with_a_warning(monkeypatch, sleepstudy):
    model = hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy)
    monkeypatch.setattr(nutpie_native, "installed_version", lambda: "0.17.0")

    def graph(*args, **kwargs):
        raise Reached

    def density(*args, **kwargs):
        raise AssertionError("the compiled density was sampled by an untested nutpie")

    monkeypatch.setattr(model, "compiled", graph)
    monkeypatch.setattr(nutpie_native, "sample", density)
    assert not sampler.runs_on_density(model, "nutpie") and sampler.runs_on_density(model, "hierbayes")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(Reached):
            model.fit(sampler="nutpie", marginal=True, progressbar=False)
    fallback, ignored = [str(w.message) for w in caught if issubclass(w.category, hb.HierbayesWarning)]
    assert "nutpie samples the PyMC graph" in fallback and "nutpie 0.17.0 is not a version" in fallback
    assert f"install '{nutpie_native.REQUIREMENT}'" in fallback
    assert "marginal=True ignored" in ignored


def test_a_model_the_kernel_cannot_express_goes_to_the_graph(sleepstudy):
    uniform = hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy, priors={"b": "uniform(-100, 100)"})
    assert not sampler.runs_on_density(uniform, "nutpie")
    assert not sampler.runs_on_density(hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy), "pymc")


def test_the_pool_keeps_the_packed_model_alive():
    model, forms = MODELS["bernoulli"]
    packed = pack(model.design, model.priors, **forms)
    q = packed.initial_point(0)
    want_lp, want_grad = packed.logp_grad(q)
    pool = WorkPool(packed.native, 1)
    del packed
    gc.collect()
    code, lp, grad = pool.logp_grad(q)
    assert code == 0 and lp == want_lp
    np.testing.assert_array_equal(grad, want_grad)
