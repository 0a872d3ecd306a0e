"""What Bayesian GLMM fits report: summaries with the family, link and shape; LOO's constants;
predictions with offsets, trials and prior weights (fits from tests/conftest.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit

import hierbayes as hb
from hierbayes.bayes.posterior import linear_predictor


def test_the_summary_names_the_family_and_link_and_shows_the_shape(glmm_fits):
    text = str(glmm_fits["negbinomial"].summary())
    assert "Family: negbinomial (log link)" in text
    section = text.split("Further distributional parameters:")[1]
    assert section.split()[:9] == ["Estimate", "Est.Error", "l-95%", "CI", "u-95%", "CI", "R-hat", "ESS-bulk",
                                  "shape"]
    assert "Family: gamma (log link)" in str(glmm_fits["gamma"].summary())
    probit = str(glmm_fits["probit proportion"].summary())
    assert "Family: binomial (probit link)" in probit and "Further distributional" not in probit
    # a residual SD stays in the random effects' table (lmer's Residual row)
    gaussian = str(glmm_fits["gaussian weights offset"].summary())
    assert "Residual" in gaussian and "Further distributional" not in gaussian
    # the shape is a headline parameter: diagnosed, traced
    assert "shape" in glmm_fits["gamma"].diagnostics().table.index


def test_loo_reads_the_full_binomial_and_poisson_likelihoods(glmm_fits, glmm_frame):
    # the pointwise log-likelihood is SciPy's pmf, binomial coefficient included, at each draw's
    # linear predictor (the offset in it)
    fit = glmm_fits["binomial"]
    ll = fit.idata.log_likelihood[fit.model.observed_name].to_numpy()
    eta = linear_predictor(fit.design, fit.posterior)
    expected = stats.binom.logpmf(glmm_frame["succ"].to_numpy(), glmm_frame["trials"].to_numpy(), expit(eta))
    np.testing.assert_allclose(ll, expected, rtol=1e-10)
    fit = glmm_fits["poisson offset"]
    ll = fit.idata.log_likelihood["count"].to_numpy()
    without = linear_predictor(fit.design, fit.posterior, X=fit.design.X)  # new rows: no offset
    expected = stats.poisson.logpmf(glmm_frame["count"].to_numpy(), glmm_frame["expo"].to_numpy() * np.exp(without))
    np.testing.assert_allclose(ll, expected, rtol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.HierbayesWarning)
        for f in glmm_fits.values():
            assert np.isfinite(f.loo().elpd_loo)


def test_new_rows_take_the_formulas_offset_terms(glmm_fits, glmm_frame):
    fit = glmm_fits["poisson offset"]
    head = glmm_frame.head(8)
    fitted = fit.predict(kind="link").iloc[:8]
    np.testing.assert_allclose(fit.predict(head, kind="link").to_numpy(), fitted.to_numpy(), rtol=1e-12)
    # twice the exposure, twice the expected count
    doubled = fit.predict(head.assign(expo=2 * head["expo"]), kind="mean")["Estimate"]
    np.testing.assert_allclose(doubled, 2 * fit.predict(head, kind="mean")["Estimate"], rtol=1e-12)


def test_a_model_fitted_with_offset_needs_the_new_rows_offset(glmm_fits, glmm_frame):
    fit = glmm_fits["gaussian weights offset"]
    head = glmm_frame.head(5)
    with pytest.raises(hb.DataError, match="fitted with offset=.*pass offset="):
        fit.predict(head)
    fitted = fit.predict(kind="link").iloc[:5].to_numpy()
    np.testing.assert_allclose(fit.predict(head, kind="link", offset="log_expo").to_numpy(), fitted,
                               rtol=1e-12)
    np.testing.assert_allclose(fit.predict(head, kind="link", offset=head["log_expo"].to_numpy()).to_numpy(),
                               fitted, rtol=1e-12)
    with pytest.raises(hb.DataError, match="one value per row"):
        fit.predict(head, offset=np.zeros(3))
    with pytest.raises(hb.DataError, match="for newdata"):
        fit.predict(offset="log_expo")
    # a model without offset= needs none: the formula's terms are evaluated on newdata
    assert len(glmm_fits["poisson offset"].predict(head)) == 5


def test_new_binomial_responses_are_successes_out_of_each_rows_trials(glmm_fits, glmm_frame):
    fit = glmm_fits["binomial"]
    draws = fit.predict_draws(kind="response", seed=1)
    trials = glmm_frame["trials"].to_numpy()
    assert np.all(draws == np.round(draws)) and np.all((draws >= 0) & (draws <= trials))
    assert draws.max(axis=0).max() > 1  # counts out of several trials, not 0/1
    # the posterior predictive mean is trials x the probability
    p = fit.predict_draws(kind="mean")
    np.testing.assert_allclose(draws.mean(axis=0), (trials * p).mean(axis=0),
                               atol=4 * np.sqrt(trials / 4 / draws.shape[0]).max())
    # new rows: their trials from cbind()'s columns in newdata
    head = glmm_frame.head(4).assign(trials=[100, 100, 1, 1])
    new = fit.predict_draws(head, kind="response", seed=2)
    assert new[:, :2].max() > 20 and new[:, 2:].max() <= 1
    with pytest.raises(hb.DataError, match="need each new row's trials"):
        fit.predict_draws(head.drop(columns=["succ", "trials"]), kind="response")
    assert fit.predict_draws(head.drop(columns=["succ", "trials"]), kind="mean").shape == (800, 4)
    # a proportion fitted with its trials as weights=: new rows' trials are unknown
    prop = glmm_fits["probit proportion"]
    with pytest.raises(hb.DataError, match="refit with cbind"):
        prop.predict_draws(head, kind="response")
    assert np.all(prop.simulate(3, seed=1).to_numpy() <= trials[:, None])


def test_gaussian_draws_spread_as_sigma_over_the_root_of_the_weight(glmm_fits, glmm_frame):
    fit = glmm_fits["gaussian weights offset"]
    noise = fit.predict_draws(kind="response", seed=4) - fit.predict_draws(kind="link")
    w = glmm_frame["w"].to_numpy()
    sd = {v: noise[:, w == v].std() for v in (0.5, 4.0)}
    # sqrt(4 / 0.5) = 2.83, from some 6,000 draws of each kind of row
    assert sd[0.5] / sd[4.0] == pytest.approx(np.sqrt(8.0), rel=0.05)


@pytest.mark.parametrize("name", ["probit proportion", "gamma", "gaussian weights offset", "poisson offset"])
def test_a_saved_glmm_fit_loads_with_its_link_weights_and_offset(glmm_fits, name, tmp_path):
    fit = glmm_fits[name]
    path = fit.save(tmp_path / "fit.nc")
    back = hb.load_fit(path)
    assert back.design.family == fit.design.family
    for what in ("trials", "weights", "offset"):
        a, b = getattr(fit.design, what), getattr(back.design, what)
        assert (a is None) == (b is None) and (a is None or np.array_equal(a, b)), what
    assert str(back.summary()) == str(fit.summary())
