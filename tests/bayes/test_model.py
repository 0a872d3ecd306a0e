"""The PyMC model: structure, non-centred blocks, LKJ on correlated blocks, no dense Z."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from scipy import stats

import hierbayes as hb
from hierbayes.spec.naming import correlation_matrix, correlation_pairs, correlation_position


def shapes(model: pm.Model) -> dict[str, tuple[int, ...]]:
    point = model.initial_point()
    return {k: np.shape(v) for k, v in point.items()}


def test_sleepstudy_structure(sleep_model):
    m = sleep_model.pymc_model
    free = sorted(v.name for v in m.free_RVs)
    assert free == ["Intercept", "b", "cpc_Subject", "sd_Subject", "sigma", "z_Subject"]
    assert {"fixef", "cor_Subject", "r_Subject"} <= {v.name for v in m.deterministics}
    assert m.named_vars_to_dims["cor_Subject"] == ("Subject__cor",)
    assert list(m.coords["Subject__cor"]) == ["Days:(Intercept)"]
    assert shapes(m)["cpc_Subject"] == (1,)  # one partial correlation for a 2-term block
    assert m.named_vars_to_dims["z_Subject"] == ("Subject__level", "Subject__term")
    assert list(m.coords["Subject__term"]) == ["(Intercept)", "Days"]
    assert shapes(m)["z_Subject"] == (18, 2)


def test_no_variable_is_a_dense_z():
    pupils = hb.datasets.load("pupils")
    model = hb.Model("achievement ~ sex + (1 | primary_school_id) + (1 | secondary_school_id)", pupils)
    n = model.design.n_obs
    for name, shape in shapes(model.pymc_model).items():
        assert n not in shape, name
    assert not any(v.name.startswith("cpc_") for v in model.pymc_model.free_RVs)


def test_logp_equals_hand_computed_density(sleepstudy):
    """At a chosen point the model's log density is the sum we write by hand."""
    model = hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy, priors={
        "Intercept": "normal(250, 100)", "b": "normal(0, 50)", "sd": "half_normal(30)",
        "sigma": "half_normal(40)"})
    m = model.pymc_model
    rng = np.random.default_rng(0)
    z = rng.normal(size=(18, 1))
    point = {"Intercept": 300.0, "b": np.array([9.0]), "sd_Subject_log__": np.log([20.0]),
             "z_Subject": z, "sigma_log__": np.log(30.0)}
    logp = m.compile_logp(jacobian=False)(point)
    d = model.design
    xbar = d.X[:, 1].mean()
    eta = 300.0 + (d.X[:, 1] - xbar) * 9.0 + 20.0 * z[d.blocks[0].index, 0]
    expected = (
        stats.norm.logpdf(300, 250, 100) + stats.norm.logpdf(9, 0, 50)
        + stats.halfnorm.logpdf(20, scale=30) + stats.norm.logpdf(z).sum()
        + stats.halfnorm.logpdf(30, scale=40) + stats.norm.logpdf(d.y, eta, 30).sum()
    )
    assert logp == pytest.approx(expected, rel=1e-10)


def test_fixef_undoes_the_centring(sleepstudy):
    model = hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy)
    m = model.pymc_model
    [fixef_expr] = m.replace_rvs_by_values([m["fixef"]])
    fn = m.compile_fn(fixef_expr, inputs=m.value_vars, on_unused_input="ignore")
    point = m.initial_point()
    point.update({"Intercept": 300.0, "b": np.array([10.0])})
    fixef = fn(point)
    assert fixef == pytest.approx([300.0 - 10.0 * sleepstudy["Days"].mean(), 10.0])


def test_families(sleepstudy):
    df = sleepstudy.assign(slow=(sleepstudy["Reaction"] > 300).astype(int),
                           count=np.round(sleepstudy["Reaction"] / 50))
    assert "sigma" not in hb.Model("slow ~ Days + (1 | Subject)", df, family="bernoulli").pymc_model.named_vars
    assert hb.Model("count ~ Days + (1 | Subject)", df, family="poisson").family.link.name == "log"
    with pytest.raises(hb.DataError, match="other than 0 and 1"):
        hb.Model("Reaction ~ Days + (1 | Subject)", df, family="bernoulli")
    with pytest.raises(hb.DataError, match="non-negative integers"):
        hb.Model("Reaction ~ Days + (1 | Subject)", df, family="poisson")
    with pytest.raises(hb.DataError, match="gamma family needs its link said"):
        hb.Model("Reaction ~ Days + (1 | Subject)", df, family="gamma")
    with pytest.raises(hb.DataError, match="Unknown family 'beta'"):
        hb.Model("Reaction ~ Days + (1 | Subject)", df, family="beta")


def test_model_is_extensible(sleepstudy):
    model = hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy)
    with model.pymc_model:
        pm.Deterministic("days_effect_week", model.pymc_model["fixef"][1] * 7)
    assert "days_effect_week" in model.pymc_model.named_vars


def test_three_term_block_has_lkj_and_positive_definite_correlation(sleepstudy):
    model = hb.Model("Reaction ~ Days + (Days + I(Days**2) | Subject)", sleepstudy)
    m = model.pymc_model
    assert shapes(m)["cpc_Subject"] == (3,)
    [cor] = m.replace_rvs_by_values([m["cor_Subject"]])
    fn = m.compile_fn(cor, inputs=m.value_vars, on_unused_input="ignore")
    point = m.initial_point()
    point["cpc_Subject"] = np.array([2.0, -1.5, 0.7])
    pairs = fn(point)
    # only the three pairs below the diagonal are stored, labelled row:column in brms's order
    assert pairs.shape == (3,)
    t = model.design.blocks[0].terms  # (Intercept), Days, and the square as the formula names it
    assert list(m.coords["Subject__cor"]) == [f"{t[1]}:{t[0]}", f"{t[2]}:{t[0]}", f"{t[2]}:{t[1]}"]
    C = correlation_matrix(pairs, 3)
    assert np.allclose(np.diag(C), 1.0) and np.all(np.linalg.eigvalsh(C) > 0)
    assert C[2, 1] == C[1, 2] == pairs[2]


def test_correlation_pairs_follow_brms_order_and_round_trip():
    assert correlation_pairs(4) == [(1, 0), (2, 0), (3, 0), (2, 1), (3, 1), (3, 2)]
    assert [correlation_position(4, a, b) for a, b in [(0, 1), (2, 0), (3, 2)]] == [0, 1, 5]
    rng = np.random.default_rng(1)
    A = rng.normal(size=(4, 4))
    S = A @ A.T
    C = S / np.sqrt(np.outer(np.diag(S), np.diag(S)))
    pairs = np.array([C[i, j] for i, j in correlation_pairs(4)])
    np.testing.assert_array_equal(correlation_matrix(pairs[None], 4)[0], np.where(np.eye(4) == 1, 1.0, C))


def test_the_engine_model_needs_neither_reports_nor_the_reml_engine():
    import subprocess
    import sys

    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "import hierbayes as hb\n"
        "assert not [m for m in sys.modules if m.startswith(('scipy', 'matplotlib', 'pymc'))]\n"
        "from hierbayes.bayes.model import BayesModel\n"
        "from hierbayes.bayes.sampler import run_nuts\n"
        "m = hb.Model('Reaction ~ Days + (1 | Subject)', hb.datasets.load('sleepstudy'))\n"
        "assert isinstance(m, BayesModel) and type(m).__module__ == 'hierbayes.api'\n"
        "fit = m.fit(draws=30, tune=30, chains=2, seed=1, progressbar=False, check=False)\n"
        "print(fit.summary())\n"
        # the REML and glmer fits' records (freq.mermod, freq.glmermod, NumPy only) are the bases
        # of LmerFit and GlmerFit; nothing else of the frequentist engine may load
        "record = {'hierbayes.freq', 'hierbayes.freq.mermod', 'hierbayes.freq.glmermod'}\n"
        "loaded = [m for m in sys.modules if m.startswith(('hierbayes.freq', 'hierbayes.report.plots'))"
        " and m not in record]\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
