"""Sampling: reproducible draws, sampler choice, settings checked, convergence warnings."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.bayes.pymc_model import PymcFingerprint


def quiet_fit(model, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        return model.fit(progressbar=False, **kw)


def test_same_seed_same_draws(sleep_model, sleep_fit):
    a = quiet_fit(sleep_model, draws=50, tune=50, chains=2, seed=5)
    b = quiet_fit(sleep_model, draws=50, tune=50, chains=2, seed=5)
    c = quiet_fit(sleep_model, draws=50, tune=50, chains=2, seed=6)
    for name in ("fixef", "sd_Subject", "r_Subject", "sigma"):
        np.testing.assert_array_equal(a.posterior[name], b.posterior[name])
    assert not np.array_equal(a.posterior["fixef"], c.posterior["fixef"])
    assert a.info.seed == 5 and a.info.sampler == "hierbayes"


def test_default_sampler_is_our_own_then_nutpie():
    assert hb.available_samplers()[:2] == ["hierbayes", "nutpie"]


def test_gaussian_single_factor_models_are_sampled_marginally(sleep_model, sleep_fit):
    assert sleep_fit.info.marginal and sleep_model.use_marginal()
    bern = hb.Model("y ~ x + (1 | g)", pd.DataFrame({"y": [0, 1] * 10, "x": range(20),
                                                     "g": list("abcde") * 4}), family="bernoulli")
    assert not bern.use_marginal()
    with pytest.raises(ValueError, match="needs a Gaussian model"):
        bern.use_marginal(True)


def test_an_extended_pymc_model_is_not_sampled_by_our_kernel(sleepstudy):
    import pymc as pm

    model = hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy)
    assert model.own_sampler_obstacle() is None
    with model.pymc_model:
        pm.Potential("pull", -0.5 * model.pymc_model["Intercept"] ** 2 / 1e4)
    assert "extended" in model.own_sampler_obstacle()
    with pytest.raises(hb.SamplerError, match="extended.*sampler='nutpie'"):
        model.fit(sampler="hierbayes", progressbar=False)


class Reached(Exception):
    """Raised by a stand-in sampler: the fit got as far as sampling."""


def stand_in(monkeypatch, *names):
    import hierbayes.bayes.sampler

    def reached(*args, **kwargs):
        raise Reached

    for name in names:
        monkeypatch.setattr(hierbayes.bayes.sampler, name, reached)


def switch_warnings(call) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(Reached):
            call()
    return [str(w.message) for w in caught if issubclass(w.category, hb.HierbayesWarning)]


def test_a_prior_the_kernel_lacks_switches_with_a_warning(sleepstudy, monkeypatch):
    stand_in(monkeypatch, "_hierbayes", "_nutpie")
    model = hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy, priors={"b": "uniform(-100, 100)"})
    (message,) = switch_warnings(lambda: model.fit(progressbar=False))
    assert "Sampling with nutpie, not hierbayes's own sampler" in message
    assert "uniform(-100, 100) on b" in message and "sampler='nutpie'" in message
    # chosen explicitly: no switch, no warning
    assert switch_warnings(lambda: model.fit(sampler="nutpie", progressbar=False)) == []


def test_missing_kernels_are_an_error_not_a_switch(sleep_model, monkeypatch):
    import hierbayes.bayes.sampler

    stand_in(monkeypatch, "_nutpie")
    monkeypatch.setattr(hierbayes.bayes.sampler, "available_samplers", lambda: ["nutpie", "pymc"])
    for sampler in (None, "hierbayes"):
        with pytest.raises(hb.SamplerError, match="compiled kernels are not available.*sampler='nutpie'"):
            sleep_model.fit(sampler=sampler, progressbar=False)
    monkeypatch.setattr(hierbayes.bayes.sampler, "available_samplers", lambda: ["hierbayes"])
    uniform = hb.Model("Reaction ~ Days + (1 | Subject)", sleep_model.design.frame,
                       priors={"b": "uniform(-100, 100)"})
    with pytest.raises(hb.SamplerError, match="no sampler of PyMC graphs is installed: pip install nutpie"):
        uniform.fit(progressbar=False)


def test_forms_of_the_compiled_density_warn_only_where_the_graph_is_sampled(sleep_model, monkeypatch):
    stand_in(monkeypatch, "_nutpie", "_pymc")
    asks = {"marginal": True, "centred": {"Subject": True}, "progressbar": False}
    # nutpie samples the compiled density here, in the form asked for
    assert switch_warnings(lambda: sleep_model.fit(sampler="nutpie", **asks)) == []
    (message,) = switch_warnings(lambda: sleep_model.fit(sampler="pymc", **asks))
    assert "marginal=True and centred={'Subject': True} ignored" in message
    assert "pymc samples the PyMC model as built" in message and "same" in message
    assert switch_warnings(lambda: sleep_model.fit(sampler="pymc", marginal=False, centred=False,
                                                   progressbar=False)) == []


def test_a_changed_pymc_model_is_seen_by_the_next_nutpie_fit(sleepstudy, tmp_path):
    import pymc as pm

    model = hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy)
    before = quiet_fit(model, draws=200, tune=200, chains=2, seed=1, sampler="nutpie")
    assert not model.pymc_model_changed()
    with model.pymc_model:
        # pins the intercept of the centred predictors near 200 (the data say about 299)
        pm.Potential("pin", -0.5 * ((model.pymc_model["Intercept"] - 200.0) / 0.5) ** 2)
        pm.Deterministic("days_per_week", model.pymc_model["fixef"][1] * 7)
    assert model.pymc_model_changed()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        after = model.fit(draws=200, tune=200, chains=2, seed=1, progressbar=False, check=False)
    (message,) = [str(w.message) for w in caught if issubclass(w.category, hb.HierbayesWarning)]
    assert "Sampling with nutpie, not hierbayes's own sampler" in message and "extended" in message
    assert after.info.sampler == "nutpie"
    assert before.posterior["Intercept"].mean() > 280
    assert abs(after.posterior["Intercept"].mean() - 200.0) < 2
    np.testing.assert_allclose(after.posterior["days_per_week"], 7 * after.posterior["fixef"][..., 1])
    # a third change (a new free variable) is seen too, with the sampler chosen explicitly
    with model.pymc_model:
        pm.Normal("extra", 5.0, 0.1)
    third = quiet_fit(model, draws=100, tune=100, chains=2, seed=1, sampler="nutpie")
    assert abs(third.posterior["extra"].mean() - 5.0) < 0.05
    assert third.info.pymc_changed and not before.info.pymc_changed
    # the saved fit keeps the added variables' draws and says the extension itself is not saved
    with pytest.warns(hb.HierbayesWarning, match="extensions are code"):
        back = hb.load_fit(third.save(tmp_path / "extended.nc"))
    np.testing.assert_array_equal(back.posterior["extra"], third.posterior["extra"])
    assert str(back.summary()) == str(third.summary())


def test_fingerprint_sees_replaced_variables_and_data(sleepstudy):
    import pymc as pm

    model = hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy)
    m = model.pymc_model
    with m:
        pm.Potential("p", 0.0 * m["Intercept"])
    model._pymc_fingerprint = PymcFingerprint.of(m)  # as if built this way
    assert not model.pymc_model_changed()
    m.potentials.pop()   # replaced by another of the same name
    del m.named_vars["p"]
    with m:
        pm.Potential("p", 1.0 * m["Intercept"])
    assert model.pymc_model_changed()
    model._pymc_fingerprint = PymcFingerprint.of(m)
    with m:
        w = pm.Data("w", np.ones(3))
    model._pymc_fingerprint = PymcFingerprint.of(m)
    w.set_value(np.zeros(3))
    assert model.pymc_model_changed()


@pytest.mark.slow
def test_nutpie_on_the_pymc_graph_agrees_with_ours(sleep_model, sleep_fit, monkeypatch):
    from hierbayes.bayes import nutpie_native

    # an untested nutpie samples the graph (the tested ones sample our density:
    # tests/bayes/test_nutpie_agreement.py)
    monkeypatch.setattr(nutpie_native, "installed_version", lambda: "0.0.0")
    with pytest.warns(hb.HierbayesWarning, match="nutpie samples the PyMC graph"):
        fit = quiet_fit(sleep_model, draws=500, tune=500, chains=4, seed=3, sampler="nutpie")
    assert fit.info.sampler == "nutpie" and not fit.info.marginal  # as the graph is built
    ours, theirs = sleep_fit.varcorr(), fit.varcorr()
    # both posteriors' SD estimates within 0.25 posterior SD of each other
    diff = np.abs(ours["sdcor"] - theirs["sdcor"]) / ours["Est.Error"]
    assert diff.max() < 0.25, diff
    fx = np.abs(sleep_fit.fixef()["Estimate"] - fit.fixef()["Estimate"]) / sleep_fit.fixef()["Est.Error"]
    assert fx.max() < 0.15, fx


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"sampler": "stan"}, "Unknown sampler 'stan'"),
        ({"draws": 0}, "draws must be an integer of at least 1"),
        ({"chains": 1.5}, "chains must be an integer"),
        ({"target_accept": 1.2}, "target_accept must lie between 0 and 1"),
    ],
)
def test_bad_settings_raise_before_sampling(sleep_model, kw, words):
    with pytest.raises(hb.SamplerError, match=words):
        sleep_model.fit(progressbar=False, **kw)


def test_unavailable_sampler_says_how_to_install(sleep_model, monkeypatch):
    import hierbayes.bayes.sampler

    # As on a machine without numpyro, whether or not this one has it.
    monkeypatch.setattr(hierbayes.bayes.sampler, "available_samplers", lambda: ["nutpie", "pymc"])
    with pytest.raises(hb.SamplerError, match="pip install numpyro"):
        sleep_model.fit(sampler="numpyro", progressbar=False)


def _altered(fit, variables=None, stats=None):
    """A copy of a fit with some draws or sampler statistics replaced (its diagnostics recomputed)."""
    from copy import copy

    out = copy(fit)
    out._diagnostics = None
    out.posterior = copy(fit.posterior)
    out.posterior.variables = {**fit.posterior.variables, **(variables or {})}
    out.posterior.stats = {**fit.posterior.stats, **(stats or {})}
    return out


def _convergence_messages(fit):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit.check_convergence()
    return [str(w.message) for w in caught if issubclass(w.category, hb.ConvergenceWarning)]


def test_short_runs_warn_with_advice(sleep_model, sleep_fit):
    # 2 chains x 40 draws: bulk ESS cannot reach 400 (it is at most n log10 n = 152), so that
    # warning is certain; chains moved apart by 10 posterior SDs make R-hat certain too.
    fit = quiet_fit(sleep_model, draws=40, tune=40, chains=2, seed=3)
    fx = fit.posterior["fixef"].copy()
    fx[1] += 10 * fx.std(axis=(0, 1))
    messages = _convergence_messages(_altered(fit, {"fixef": fx}))
    table = _altered(fit, {"fixef": fx}).diagnostics().table
    high = table.index[table["rhat"] > 1.01].tolist()
    low = table.index[table["ess_bulk"] < 400].tolist()
    assert {"(Intercept)", "Days"} <= set(high)
    assert low == table.index.tolist()
    (rhat_msg,) = [m for m in messages if m.startswith("R-hat")]
    (ess_msg,) = [m for m in messages if m.startswith("Bulk ESS")]
    assert rhat_msg.split(":")[0].endswith(", ".join(high)) and "centred=" in rhat_msg
    assert ", ".join(low) in ess_msg and "Increase draws" in ess_msg


def test_warnings_name_divergences(sleep_fit):
    diverging = np.zeros_like(sleep_fit.posterior.stats["diverging"], dtype=bool)
    diverging[0, :7] = diverging[2, 100] = True
    messages = _convergence_messages(_altered(sleep_fit, stats={"diverging": diverging}))
    (msg,) = [m for m in messages if "divergence" in m]
    total = diverging.size
    assert msg.startswith(f"8 of {total} post-warmup draws ended in a divergence") and "target_accept" in msg


def test_saturated_trees_warn_and_max_treedepth_reaches_the_sampler(sleep_model):
    # max_treedepth=1: a tree stops at depth 1 unless its first step diverges, so nearly every
    # draw is at the limit, whatever the seed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = sleep_model.fit(draws=100, tune=100, chains=2, seed=1, progressbar=False, max_treedepth=1)
    d = fit.diagnostics()
    assert fit.info.max_treedepth == 1 and d.max_treedepth == 1
    assert fit.posterior.stats["tree_depth"].max() == 1
    assert d.treedepth_hits == int((fit.posterior.stats["tree_depth"] == 1).sum()) > 150
    (msg,) = [str(w.message) for w in caught if "maximum tree depth" in str(w.message)]
    assert msg.startswith(f"{d.treedepth_hits} of 200 post-warmup draws") and "max_treedepth=3" in msg
    assert "tree depth at max_treedepth" in repr(d)


def test_low_ebfmi_warns(sleep_fit):
    # an energy that wanders as a random walk changes little between draws next to its spread
    rng = np.random.default_rng(0)
    energy = sleep_fit.posterior.stats["energy"].copy()
    energy[1] = np.cumsum(rng.normal(size=energy.shape[1]))
    energy[3] = np.cumsum(rng.normal(size=energy.shape[1]))
    fit = _altered(sleep_fit, stats={"energy": energy})
    d = fit.diagnostics()
    assert d.low_ebfmi() == [1, 3] and all(v > 0.3 for c, v in enumerate(d.ebfmi) if c in (0, 2))
    (msg,) = [m for m in _convergence_messages(fit) if "E-BFMI" in m]
    assert msg.startswith("E-BFMI below 0.3 in chains 1, 3") and "centred=" in msg
    assert "chains 1, 3 below 0.3" in repr(d)
    assert not [m for m in _convergence_messages(sleep_fit) if "E-BFMI" in m or "tree depth" in m]


@pytest.mark.parametrize("value", [0, -1, 2.5, True, 21])
def test_bad_max_treedepth_is_refused(sleep_model, value):
    with pytest.raises(hb.SamplerError, match="max_treedepth"):
        sleep_model.fit(max_treedepth=value, progressbar=False)


@pytest.mark.slow
def test_pymc_sampler_runs_and_agrees(sleepstudy):
    model = hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy)
    fit = quiet_fit(model, draws=300, tune=300, chains=2, seed=1, sampler="pymc", cores=1)
    assert fit.info.sampler == "pymc"
    fx = fit.fixef()
    assert fx.loc["Days", "Estimate"] == pytest.approx(10.47, abs=0.5)
    assert {"posterior", "log_likelihood", "observed_data"} <= set(fit.idata.groups())


def test_no_blas_warning_during_a_fit(sleepstudy):
    import subprocess
    import sys

    code = (
        "import warnings; warnings.simplefilter('error', UserWarning)\n"
        "import hierbayes as hb\n"
        "m = hb.Model('Reaction ~ 1 + (1 | Subject)', hb.datasets.load('sleepstudy'))\n"
        "m.fit(draws=20, tune=20, chains=1, seed=1, progressbar=False, check=False)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "BLAS" not in proc.stderr


DIGEST = """
import hashlib, sys, warnings
import hierbayes as hb
warnings.simplefilter("ignore")
formula, marginal = sys.argv[1], {"none": None, "0": False}[sys.argv[2]]
m = hb.Model(formula, hb.datasets.load("sleepstudy"))
fit = m.fit(draws=150, tune=150, chains=2, seed=11, progressbar=False, check=False, marginal=marginal)
h = hashlib.sha256()
for name in sorted(fit.posterior.variables):
    h.update(name.encode())
    h.update(fit.posterior[name].tobytes())
print(h.hexdigest())
"""


@pytest.mark.parametrize(("formula", "marginal"), [
    ("Reaction ~ Days + (Days | Subject)", "none"),   # marginal form, effects drawn afterwards
    ("Reaction ~ Days + (Days | Subject)", "0"),      # full model, chains in threads
    ("Reaction ~ Days + (1 | Subject)", "none"),      # a collapsed intercept block
])
def test_same_seed_bit_identical_across_processes(formula, marginal):
    import subprocess
    import sys

    runs = [subprocess.run([sys.executable, "-c", DIGEST, formula, marginal], capture_output=True,
                           text=True, check=True).stdout.strip() for _ in range(2)]
    assert len(runs[0]) == 64 and runs[0] == runs[1]


def test_undefined_diagnostics_warn_and_print_as_na(sleep_model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = sleep_model.fit(draws=3, tune=20, chains=2, seed=1, progressbar=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, hb.ConvergenceWarning)]
    (na,) = [m for m in messages if "are NA" in m]
    headline = fit.diagnostics().table.index.tolist()
    assert na.startswith(f"R-hat and ESS are NA for {', '.join(headline)}:")
    assert "3 were drawn" in na and "Draw more" in na
    text = str(fit.summary())
    assert "nan" not in text and "max R-hat NA; min ESS-bulk NA; min ESS-tail NA" in text

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        one = sleep_model.fit(draws=100, tune=100, chains=1, seed=1, progressbar=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, hb.ConvergenceWarning)]
    (na,) = [m for m in messages if "is NA" in m]
    assert na.startswith(f"R-hat is NA for {', '.join(headline)}:") and "fit(chains=4)" in na
    with pytest.warns(hb.ConvergenceWarning):
        assert one.check_convergence() == messages  # the same messages on request


def test_stuck_parameters_warn(sleep_fit):
    from copy import copy

    stuck = copy(sleep_fit)
    stuck._diagnostics = None
    stuck.posterior = copy(sleep_fit.posterior)
    stuck.posterior.variables = dict(sleep_fit.posterior.variables)
    stuck.posterior.variables["sigma"] = np.full_like(sleep_fit.posterior["sigma"], 25.0)
    with pytest.warns(hb.ConvergenceWarning, match="not finite for sigma: .*stuck"):
        stuck.check_convergence()


def test_a_collapsed_block_is_reported_as_collapsed_not_centred(sleepstudy):
    # the full Gaussian model integrates a plain random intercept out level by level: fit.info says
    # so, and does not list the block among the centred or non-centred ones
    m = hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy)
    fit = quiet_fit(m, draws=50, tune=50, chains=1, seed=1, marginal=False, centred=True)
    assert fit.info.collapsed == "Subject" and fit.info.centred == {}
    both = hb.Model("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleepstudy)
    fit = quiet_fit(both, draws=50, tune=50, chains=1, seed=1, marginal=False, centred=True)
    assert fit.info.collapsed == "Subject" and len(fit.info.centred) == 1
    assert quiet_fit(m, draws=50, tune=50, chains=1, seed=1).info.collapsed is None  # marginal
