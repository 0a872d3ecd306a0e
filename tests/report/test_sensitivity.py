"""Prior sensitivity by power-scaling (hierbayes/report/sensitivity.py), as R's priorsense.

The pieces are checked against independent computations (the PyMC graph's log densities
for lprior, nlme-style dense whitening for the AR(1) likelihood, an analytic conjugate
posterior for the weights, a brute-force integral for the CJS distance); the whole against
what the method must find on sleepstudy with default and with deliberately wrong priors.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import hierbayes as hb
from hierbayes.errors import SettingsError
from hierbayes.report.sensitivity import (
    CONFLICT,
    STRONG_PRIOR,
    cjs_dist,
    log_lik_draws,
    log_prior_draws,
    plot_prior_sensitivity,
    powerscale_log_weights,
    prior_sensitivity,
    sensitivity_column,
    sensitivity_variables,
)

FORMULA = "Reaction ~ Days + (Days | Subject)"
TIGHT = {"b": "normal(0, 1)"}  # Days is about 10.5 ms/day (SE 1.5): a tight, wrong prior
VARIED = {"Intercept": "student_t(3, 300, 50)", "b[Days]": "cauchy(0, 5)",
          "sd[Subject, (Intercept)]": "exponential(0.05)", "sd[Subject, Days]": "half_normal(10)",
          "cor": "lkj(2)", "sigma": "lognormal(3, 1)"}


def _fit(formula, data, draws=500, seed=1, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        return hb.Model(formula, data, **kw).fit(draws=draws, tune=500, chains=2, seed=seed,
                                                 progressbar=False)


@pytest.fixture(scope="module")
def tight_fit(sleepstudy):
    # 2 x 2000 draws: the likelihood's sensitivities carry importance-sampling noise of about
    # sd(loglik) / sqrt(draws), 0.05 at 1000 draws here; 4000 put Days's clearly below 0.05
    return _fit(FORMULA, sleepstudy, draws=2000, priors=TIGHT)


@pytest.fixture(scope="module")
def tight_intercept_fit(sleepstudy):
    return _fit("Reaction ~ Days + (1 | Subject)", sleepstudy, priors=TIGHT)


@pytest.fixture(scope="module")
def varied_fit(sleepstudy):
    return _fit(FORMULA, sleepstudy, draws=300, priors=VARIED)


@pytest.fixture(scope="module")
def nb_fit():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(20), 8)
    x = rng.normal(size=g.size)
    mu = np.exp(1 + 0.5 * x + rng.normal(0, 0.4, 20)[g])
    df = pd.DataFrame({"y": rng.poisson(rng.gamma(3, mu / 3)), "x": x, "g": [f"g{i}" for i in g]})
    return _fit("y ~ x + (1 | g)", df, draws=300, family="negbinomial",
                priors={"shape": "gamma(2, 0.5)"})


# ---- the pieces ------------------------------------------------------------------------------

def _cjs_by_integral(x, wp, wq, n=400_001):
    """The CJS distance from its definition, integrated on a fine grid (both signs, the larger)."""
    def one(x):
        t = np.linspace(x.min(), x.max(), n)
        order = np.argsort(x)
        xs = x[order]
        idx = np.searchsorted(xs, t, side="right")
        P = np.concatenate([[0], np.cumsum(wp[order])])[idx]
        Q = np.concatenate([[0], np.cumsum(wq[order])])[idx]
        mid = np.log2((P + Q) / 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.nan_to_num(P * (np.log2(P) - mid)) + np.nan_to_num(Q * (np.log2(Q) - mid))
        return math.sqrt(np.trapezoid(kl, t) / np.trapezoid(P + Q, t))
    wp, wq = wp / wp.sum(), wq / wq.sum()
    return max(one(x), one(-x))


def test_cjs_distance_matches_its_integral():
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, size=300)
    w = np.exp(0.3 * rng.normal(size=300) + 0.2 * x)
    got = cjs_dist(x, w)
    assert got == pytest.approx(_cjs_by_integral(x, np.ones(300), w), rel=2e-3)
    assert got > 0.05
    # both weightings given, and the distance's symmetry in them
    v = rng.uniform(0.5, 1.5, 300)
    assert cjs_dist(x, w, v) == pytest.approx(_cjs_by_integral(x, v, w), rel=2e-3)
    assert cjs_dist(x, w, v) == pytest.approx(cjs_dist(x, v, w), rel=1e-12)


def test_cjs_distance_is_zero_for_equal_weights_and_free_of_units():
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    w = np.exp(0.5 * x)
    assert cjs_dist(x, np.full(200, 3.0)) == 0.0
    assert cjs_dist(1000 * x + 7, w) == pytest.approx(cjs_dist(x, w), rel=1e-10)
    assert cjs_dist(np.full(200, 2.0), w) == 0.0  # a constant parameter cannot move


def test_weights_reproduce_the_analytic_power_scaled_posterior():
    # y ~ N(mu, 1), mu ~ N(m0, s0): power-scaling the prior by alpha gives N(m0, s0^2 / alpha),
    # the likelihood n -> alpha n; both posteriors are normal and known in closed form
    rng = np.random.default_rng(2)
    y = rng.normal(1.5, 1.0, 10)
    m0, s0, n = -1.0, 0.5, len(y)
    prec = 1 / s0**2 + n
    mu = rng.normal((m0 / s0**2 + y.sum()) / prec, 1 / math.sqrt(prec), 40_000)
    lprior = stats.norm.logpdf(mu, m0, s0)
    loglik = stats.norm.logpdf(y[:, None], mu, 1.0).sum(axis=0)
    for alpha in (0.7, 0.8, 1.25, 1.4, 2.0):
        for comp, a_prior, a_lik in (("prior", alpha, 1.0), ("lik", 1.0, alpha)):
            lw, k = powerscale_log_weights(lprior if comp == "prior" else loglik, alpha)
            w = np.exp(lw)
            assert w.sum() == pytest.approx(1.0)
            assert k < 0.5
            p = a_prior / s0**2 + a_lik * n
            mean, sd = (a_prior * m0 / s0**2 + a_lik * y.sum()) / p, 1 / math.sqrt(p)
            ess = 1 / (w @ w)
            assert abs(w @ mu - mean) < 4 * sd / math.sqrt(ess), (comp, alpha)
            assert math.sqrt(w @ (mu - w @ mu) ** 2) == pytest.approx(sd, rel=0.03)


def test_constant_component_gives_equal_weights():
    lw, k = powerscale_log_weights(np.full(50, -3.2), 1.01)
    assert np.allclose(np.exp(lw), 1 / 50) and k == -math.inf


def _pymc_lprior(fit) -> np.ndarray:
    """lprior from the PyMC graph: pm.logp of every free variable but the group effects'
    standard normals and LKJ's partial correlations (whose density is the LKJ one, checked by
    its beta form), at the posterior draws."""
    import pymc as pm

    post = fit.posterior
    S = post.n_chains * post.n_draws
    total = np.zeros(S)
    for rv in fit.model.pymc_model.free_RVs:
        name = rv.name
        if name.startswith(("z_", "cpc_")):
            continue
        if name in post:
            value = post[name].reshape(S, *post[name].shape[2:])
        else:  # an SD vector whose priors differ in family: one scalar each, sd_<g>_<i>
            base, i = re.fullmatch(r"(.+)_(\d+)", name).groups()
            value = post[base][..., int(i)].reshape(S)
        total += np.asarray(pm.logp(rv, value).eval()).reshape(S, -1).sum(axis=1)
    for blk in fit.design.blocks:
        if blk.lkj:  # two terms: (r + 1) / 2 ~ beta(eta, eta)
            eta = fit.model.priors.get("cor", blk.group).params["eta"]
            r = post[f"cor_{blk.group}"][..., 0].reshape(S)
            total += stats.beta.logpdf((r + 1) / 2, eta, eta) - math.log(2)
    return total


@pytest.mark.parametrize("which", ["varied_fit", "nb_fit"])
def test_lprior_equals_the_pymc_graphs_prior_densities(which, request):
    fit = request.getfixturevalue(which)
    got = log_prior_draws(fit)
    assert got.shape == (2, 300)
    assert np.std(got) > 0.01  # the priors are not flat where the draws lie
    # PyTensor's constants differ from SciPy's in the eighth decimal
    np.testing.assert_allclose(got.ravel(), _pymc_lprior(fit), rtol=1e-7, atol=1e-6)


def test_lprior_selection_keeps_one_class(tight_fit):
    days = tight_fit.posterior["fixef"][..., 1]
    np.testing.assert_allclose(log_prior_draws(tight_fit, ["b"]), stats.norm.logpdf(days, 0, 1))
    sigma = tight_fit.posterior["sigma"]
    scale = tight_fit.model.priors.get("sigma").params["sigma"]
    by_hand = math.log(2) + stats.t.logpdf(sigma, 3, 0, scale)
    np.testing.assert_allclose(log_prior_draws(tight_fit, "sigma"), by_hand)


def test_loglik_is_the_joint_density_given_the_group_effects(sleep_fit):
    post = sleep_fit.posterior
    ll = log_lik_draws(sleep_fit)
    d = sleep_fit.design
    subject = d.blocks[0].index
    for c, i in ((0, 0), (1, 17), (3, 499)):
        b, r = post["fixef"][c, i], post["r_Subject"][c, i]
        eta = b[0] + r[subject, 0] + (b[1] + r[subject, 1]) * d.X[:, 1]
        assert ll[c, i] == pytest.approx(stats.norm.logpdf(d.y, eta, post["sigma"][c, i]).sum())


def test_loglik_of_ar1_errors_is_the_joint_not_the_loo_density():
    gpa = hb.datasets.load("gpa")
    fit = _fit("gpa ~ occasion + (1 | student)", gpa, draws=100, sigma="~ factor(occasion)",
               correlation=hb.ar1(time="occasion"))
    from hierbayes.bayes.posterior import linear_predictor

    post, res = fit.posterior, fit.design.residual
    eta = linear_predictor(fit.design, post)
    ll = log_lik_draws(fit)
    loo = fit.idata.log_likelihood[fit.model.observed_name].sum("obs").to_numpy()
    assert np.max(np.abs(ll - loo)) > 1.0  # the sum of each row given the others differs
    for c, i in ((0, 0), (1, 99)):
        rho = np.concatenate([post["b_sigma"][c, i], [res.correlation.unconstrained(post["phi"][c, i])]])
        dense = res.log_density(fit.design.y - eta[c, i], post["sigma"][c, i], rho)
        assert ll[c, i] == pytest.approx(dense, rel=1e-10)
    assert sensitivity_variables(fit).keys() >= {"sigma", "phi", "b_sigma[factor(occasion)1]"}


# ---- the method on sleepstudy -----------------------------------------------------------------

def test_default_priors_are_not_flagged(sleep_fit):
    table = prior_sensitivity(sleep_fit)
    assert table["variable"].tolist() == [
        "(Intercept)", "Days", "sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject",
        "sd_Days|Subject", "sigma"]
    assert (table["prior"] < 0.05).all(), table
    assert (table["prior"] >= 0).all()
    assert (table["diagnosis"] == "-").all()
    # the data do move every parameter: the likelihood's sensitivity is not nil
    assert table.loc[table["variable"] == "sigma", "likelihood"].item() > 0.2
    assert max(max(k) for k in table.attrs["pareto_k"].values()) < table.attrs["k_threshold"]


def test_tight_wrong_prior_on_days_is_flagged(tight_fit, sleep_fit):
    table = prior_sensitivity(tight_fit).set_index("variable")
    base = prior_sensitivity(sleep_fit).set_index("variable")
    days = table.loc["Days"]
    assert days["prior"] > 0.15 and days["prior"] > 20 * base.loc["Days", "prior"]
    assert days["diagnosis"] != "-"
    # with random slopes the population slope is informed through the subjects' slopes, whose
    # N(0, sd) density is neither prior nor likelihood here (brms's lprior and log_lik), so
    # the likelihood barely moves it: the prior dominates
    assert days["likelihood"] < 0.05
    assert days["diagnosis"] == STRONG_PRIOR
    # the SD of the slopes absorbs the difference and feels the prior on Days too
    assert table.loc["sd_Days|Subject", "prior"] > 3 * base.loc["sd_Days|Subject", "prior"]
    only_b = prior_sensitivity(tight_fit, prior_selection=["b"]).set_index("variable")
    assert only_b.loc["Days", "prior"] == pytest.approx(days["prior"], rel=0.05)
    assert only_b.attrs["prior_selection"] == ["b"]


def test_tight_wrong_prior_conflicts_with_the_data_without_random_slopes(tight_intercept_fit):
    table = prior_sensitivity(tight_intercept_fit).set_index("variable")
    days = table.loc["Days"]
    assert days["prior"] > 0.3 and days["likelihood"] > 0.3
    assert days["diagnosis"] == CONFLICT


def test_table_prints_priorsenses_header(tight_fit):
    table = prior_sensitivity(tight_fit, variables=["Days", "sigma"], prior_selection=["b", "sd"])
    text = repr(table)
    assert text.splitlines()[:3] == ["Sensitivity based on cjs_dist", "Prior selection: b, sd",
                                     "Likelihood selection: all data"]
    assert "variable" in text and STRONG_PRIOR in text
    assert table.columns.tolist() == ["variable", "prior", "likelihood", "diagnosis"]
    assert prior_sensitivity(tight_fit, variables="Days").header.splitlines()[1] == \
        "Prior selection: all priors"
    assert type(table[["prior"]]) is pd.DataFrame  # slices are plain frames
    assert sensitivity_column(tight_fit, variables=["Days", "sigma"]) == \
        dict(zip(table["variable"], table["diagnosis"], strict=True))


def test_threshold_moves_the_diagnosis(tight_fit):
    days = prior_sensitivity(tight_fit, variables=["Days"], threshold=0.01).iloc[0]
    assert days["diagnosis"] == (CONFLICT if days["likelihood"] >= 0.01 else STRONG_PRIOR)
    assert prior_sensitivity(tight_fit, variables=["Days"], threshold=0.9).iloc[0]["diagnosis"] == "-"


def test_high_pareto_k_is_reported(tight_fit):
    with pytest.warns(hb.ConvergenceWarning) as caught:
        table = prior_sensitivity(tight_fit, variables=["sigma"], lower_alpha=0.2, upper_alpha=5.0)
    assert any("Pareto k of the likelihood" in str(w.message) for w in caught)
    assert max(table.attrs["pareto_k"]["likelihood"]) > table.attrs["k_threshold"]
    assert "may be unreliable" in repr(table)


def test_plot_shows_three_densities_per_panel(sleep_fit):
    fig = plot_prior_sensitivity(sleep_fit, variables=["Days", "sigma"])
    assert len(fig.axes) == 4
    for ax in fig.axes:
        assert len(ax.get_lines()) == 3
        for line in ax.get_lines():
            y = line.get_ydata()
            assert np.all(y >= 0) and np.trapezoid(y, line.get_xdata()) == pytest.approx(1, abs=0.05)


# ---- errors ----------------------------------------------------------------------------------

def test_needs_a_bayesian_fit(sleepstudy):
    reml = hb.lmer(FORMULA, sleepstudy)
    with pytest.raises(SettingsError, match="needs a Bayesian fit"):
        prior_sensitivity(reml)
    with pytest.raises(SettingsError, match="needs a Bayesian fit"):
        sensitivity_column(reml)


@pytest.mark.parametrize("selection, message", [
    (["bogus"], "unknown prior class 'bogus'"),
    (["shape"], "no prior of; its classes are Intercept, b, sd, cor, sigma"),
    ([], "list of prior classes"),
    ([1], "list of prior classes"),
])
def test_bad_prior_selection(sleep_fit, selection, message):
    with pytest.raises(SettingsError, match=re.escape(message)):
        prior_sensitivity(sleep_fit, prior_selection=selection)


@pytest.mark.parametrize("threshold", [0, -0.1, float("nan"), float("inf"), "0.05", True, None])
def test_bad_threshold(sleep_fit, threshold):
    with pytest.raises(SettingsError, match="threshold must be a number above 0"):
        prior_sensitivity(sleep_fit, threshold=threshold)


def test_bad_alphas_and_variables(sleep_fit):
    with pytest.raises(SettingsError, match="lower_alpha must be a number between 0 and 1"):
        prior_sensitivity(sleep_fit, lower_alpha=1.2)
    with pytest.raises(SettingsError, match="upper_alpha"):
        prior_sensitivity(sleep_fit, upper_alpha=1.0)
    with pytest.raises(SettingsError, match=re.escape("Unknown variables ['sd_Days']")):
        prior_sensitivity(sleep_fit, variables=["sd_Days"])
    with pytest.raises(SettingsError, match="alphas"):
        plot_prior_sensitivity(sleep_fit, alphas=(0.8, -1))
