"""Everything after a GLMM fit, for every family and both engines: LOO's pointwise likelihood,
posterior predictive p-values, simulation, randomized quantile residuals and the plots.

Bayesian fits are tests/conftest.py's ``glmm_fits`` (data simulated from ``GLMM_TRUTH``, so
each model is the true one); the glmer fits here are of the same data.
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pytest
from scipy import stats
from scipy.special import ndtr

import hierbayes as hb
from hierbayes.bayes.posterior import linear_predictor
from hierbayes.report.fitted import quantile_residuals
from tests.conftest import GLMM_MODELS, glmm_data

GLMMS = [name for name in GLMM_MODELS if name != "gaussian weights offset"]


@cache
def _glmer(name: str):
    formula, family, kw = GLMM_MODELS[name]
    fam = hb.get_family(*family) if isinstance(family, tuple) else family
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        if name == "gaussian weights offset":
            return hb.lmer(formula, glmm_data(), **kw)
        return hb.glmer(formula, glmm_data(), family=fam, **kw)


def _draws(fit, name: str) -> np.ndarray:
    return np.asarray(fit.posterior[name])[..., None]


def test_loo_reads_each_familys_full_likelihood(glmm_fits, glmm_frame):
    # SciPy's densities with every constant, at each draw's linear predictor (offset included)
    f = glmm_frame
    cases = {
        "negbinomial": lambda eta, fit: stats.nbinom.logpmf(
            f["nb"], _draws(fit, "shape"), _draws(fit, "shape") / (_draws(fit, "shape") + np.exp(eta))),
        "gamma": lambda eta, fit: stats.gamma.logpdf(
            f["pos"], _draws(fit, "shape"), scale=np.exp(eta) / _draws(fit, "shape")),
        # a proportion with its trials as weights= is the binomial of the successes
        "probit proportion": lambda eta, fit: stats.binom.logpmf(
            np.round(f["prop"] * f["trials"]), f["trials"], ndtr(eta)),
        "gaussian weights offset": lambda eta, fit: stats.norm.logpdf(
            f["y"], eta, _draws(fit, "sigma") / np.sqrt(f["w"].to_numpy())),
    }
    for name, expected in cases.items():
        fit = glmm_fits[name]
        ll = fit.idata.log_likelihood[fit.model.observed_name].to_numpy()
        eta = linear_predictor(fit.design, fit.posterior)
        np.testing.assert_allclose(ll, expected(eta, fit), rtol=1e-9, err_msg=name)


@pytest.mark.parametrize("name", list(GLMM_MODELS))
def test_posterior_predictive_checks_and_simulations_keep_the_familys_support(glmm_fits, glmm_frame, name):
    fit = glmm_fits[name]
    p = fit.ppc_pvalues(seed=1)
    assert p["p"].between(0, 1).all() and not p["p"].isna().any()
    # the true model reproduces the data's mean (a wrong link or a missing offset does not)
    whole = p[(p["group"] == "(all)") & (p["statistic"] == "mean")]["p"].item()
    assert 0.01 < whole < 0.99, whole
    sims = fit.simulate(3, seed=2).to_numpy()
    assert sims.shape == (len(glmm_frame), 3)
    family = fit.design.family.name
    if family in ("binomial", "poisson", "negbinomial"):
        assert np.all(sims == np.round(sims)) and np.all(sims >= 0)
    if family == "binomial":
        # successes out of each row's trials, as y holds them (a proportion's too)
        assert np.all(sims <= glmm_frame["trials"].to_numpy()[:, None]) and sims.max() > 1
    if family == "gamma":
        assert np.all(sims > 0)
    fig = fit.ppc_plot(num_pp_samples=10, seed=1)
    assert fig.axes[0].get_xlabel() == fit.design.response_label


@pytest.mark.parametrize("name", GLMMS)
def test_quantile_residuals_of_the_true_model_are_standard_normal(glmm_fits, name):
    for fit in (glmm_fits[name], _glmer(name)):
        mean, r = quantile_residuals(fit, seed=1)
        assert mean.shape == r.shape == (fit.design.n_obs,)
        assert np.all(np.isfinite(r))
        assert stats.kstest(r, "norm").pvalue > 1e-3, (name, type(fit).__name__)


def test_quantile_residuals_show_a_poisson_models_overdispersion():
    # the negative binomial data (shape 3) fitted as Poisson: residuals spread wider than N(0, 1)
    # (1.22 against 0.93 for the negative binomial fit; the group effects absorb some of it)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        wrong = hb.glmer("nb ~ x + (1 | g)", glmm_data(), family="poisson")
    _, r = quantile_residuals(wrong, seed=1)
    _, right = quantile_residuals(_glmer("negbinomial"), seed=1)
    assert r.std() > 1.15 and abs(right.std() - 1) < 0.1, (r.std(), right.std())


@pytest.mark.parametrize("engine", ["bayes", "glmer"])
@pytest.mark.parametrize("name", list(GLMM_MODELS))
def test_plots_draw_each_family_on_its_response_scale(glmm_fits, name, engine):
    fit = glmm_fits[name] if engine == "bayes" else _glmer(name)
    family = fit.design.family.name
    fig = fit.plot_effect("x")
    ax = fig.axes[0]
    curve = ax.lines[0].get_ydata()
    if family == "binomial":
        assert np.all((curve > 0) & (curve < 1)) and "probability" in ax.get_ylabel()
        # the data are proportions of their trials, on the curve's scale
        points = ax.collections[0].get_offsets()[:, 1]
        assert points.min() >= 0 and points.max() <= 1
    elif family != "gaussian":
        assert np.all(curve > 0) and f"{family}, log link" in ax.get_ylabel()
    # the curve is the population mean at the grid (the typical exposure for offset=)
    grid_x = ax.lines[0].get_xdata()
    assert np.all(np.diff(curve) > 0)  # x's true effect is positive on every scale here
    assert len(grid_x) == 100
    titles = [a.get_title() for a in fit.plot_diagnostics().axes]
    expected = "Residuals against fitted values" if family == "gaussian" else \
        "Quantile residuals against fitted values"
    assert titles[0] == expected
    assert fit.plot_caterpillar().axes[0].get_title() == "g: (Intercept)"
    assert len(fit.plot_groups("x", max_groups=4).axes[0].lines) == (3 if family == "gaussian" else 1)
    if family != "gaussian":
        with pytest.raises(ValueError, match="least-squares"):
            fit.plot_groups("x", pooling=("partial", "none"))
        with pytest.raises(ValueError, match="gaussian models"):
            fit.plot_shrinkage()


def test_the_effect_curve_is_glmers_response_scale_prediction():
    fit = _glmer("binomial")
    fig = fit.plot_effect("x")
    line = fig.axes[0].lines[0]
    grid = glmm_data().head(1).drop(columns=["succ"]).iloc[[0] * 3].reset_index(drop=True)
    grid["x"] = line.get_xdata()[[0, 50, 99]]
    expected = fit.predict(grid, type="response", re_form="~0").to_numpy()
    np.testing.assert_allclose(line.get_ydata()[[0, 50, 99]], expected, rtol=1e-10)
