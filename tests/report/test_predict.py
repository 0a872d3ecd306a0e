"""Predictions, predictive checks, simulation and LOO (issue 7), REML and Bayesian."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.report.predict import blocks_in, ppc_pvalues, prediction_rows
from tests.conftest import BRMS_PRIORS

matplotlib.use("Agg")

SLOPE = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def reml(sleepstudy):
    return hb.lmer(SLOPE, sleepstudy)


@pytest.fixture(scope="module")
def newdata(extra_refs):
    nd = pd.DataFrame(extra_refs["predict_sleep_slope"]["newdata"]).T
    return nd.astype({"Days": int, "Subject": str})


@pytest.fixture(scope="module")
def brms_fit(sleepstudy):
    """brms's priors, 4 x 1000 draws: Monte Carlo error about 0.016 posterior SD."""
    model = hb.Model(SLOPE, sleepstudy, priors=BRMS_PRIORS)
    return model.fit(draws=1000, tune=1000, chains=4, seed=1, progressbar=False)


@pytest.fixture(scope="module")
def loo_fits(sleepstudy):
    formulas = {"slope": SLOPE, "intercept": "Reaction ~ Days + (1 | Subject)",
                "null": "Reaction ~ 1 + (1 | Subject)"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        return {k: hb.Model(f, sleepstudy).fit(draws=500, tune=500, chains=2, seed=3,
                                               progressbar=False) for k, f in formulas.items()}


# --- REML predictions against lme4 -------------------------------------------------------

def test_reml_predict_matches_lme4(reml, newdata, extra_refs):
    ref = extra_refs["predict_sleep_slope"]
    np.testing.assert_allclose(reml.predict().to_numpy()[:10], ref["first10_conditional"], atol=1e-6)
    np.testing.assert_allclose(reml.predict(re_form="~0").to_numpy()[:10],
                               ref["first10_marginal_re.form_NA"], atol=1e-6)
    np.testing.assert_allclose(reml.predict(newdata).to_numpy(),
                               ref["newdata_conditional_allow_new_levels"], atol=1e-6)
    np.testing.assert_allclose(reml.predict(newdata, re_form="NA").to_numpy(),
                               ref["newdata_marginal"], atol=1e-6)
    assert list(reml.predict(newdata).index) == list(newdata.index)


def test_reml_predict_without_newdata_is_fitted(reml):
    np.testing.assert_allclose(reml.predict().to_numpy(), reml.fitted(), rtol=1e-12)


def test_re_form_naming_some_bars(nurses_nested_reml):
    fit = nurses_nested_reml
    d = fit.design
    assert blocks_in(d, "~ (1 | hospital)") == [b.factor == "hospital" for b in d.blocks]
    only_hospital = fit.predict(re_form="~ (1 | hospital)").to_numpy()
    hosp = [k for k, b in enumerate(d.blocks) if b.factor == "hospital"][0]
    blk = d.blocks[hosp]
    expected = d.X @ fit.estimates.beta + fit.estimates.b[hosp][blk.index, 0]
    np.testing.assert_allclose(only_hospital, expected, rtol=1e-12)
    # the two bars together are the model's full prediction
    both = fit.predict(re_form="~ (1 | hospital) + (1 | ward:hospital)").to_numpy()
    np.testing.assert_allclose(both, fit.fitted(), rtol=1e-12)


@pytest.fixture(scope="module")
def nurses_nested_reml():
    return hb.lmer("stress ~ age + (1 | hospital/ward)", hb.datasets.load("nurses"))


def test_new_data_replays_the_fitted_transforms():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(5, 2, 60), "g": np.repeat(list("abcdef"), 10),
                       "f": np.tile(["lo", "mid", "hi"], 20)})
    df["y"] = 1 + 0.5 * df["x"] + rng.normal(0, 1, 60) + df["g"].map(dict(zip("abcdef", range(6), strict=True)))
    fit = hb.lmer("y ~ center(x) + f + (1 | g)", df)
    new = pd.DataFrame({"x": [df["x"].mean() + 1.0], "f": ["mid"], "g": ["zz"]})
    beta = fit.fixef()["Estimate"]
    # center() keeps the fitted mean, and 'hi' stays the reference level (sorted levels)
    expected = beta["(Intercept)"] + beta["center(x)"] * 1.0 + beta["fmid"]
    assert fit.predict(new).iloc[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("change, exc, words", [
    (lambda nd: nd.drop(columns="Days"), hb.DataError, ["lacks column", "Days"]),
    (lambda nd: nd.assign(Days=[0, np.nan, 9, 0, 5, 9]), hb.DataError, ["missing values", "Days (1)"]),
    (lambda nd: nd.iloc[:0], hb.DataError, ["no rows"]),
])
def test_bad_newdata(reml, newdata, change, exc, words):
    before = newdata.copy()
    with pytest.raises(exc) as err:
        reml.predict(change(newdata))
    for w in words:
        assert w in str(err.value)
    pd.testing.assert_frame_equal(newdata, before)


def test_unseen_levels_raise_clearly(reml, newdata):
    with pytest.raises(hb.DataError, match="never saw.*new_subject.*allow_new_levels=True"):
        reml.predict(newdata, allow_new_levels=False)
    # without group effects the grouping column is not needed at all
    np.testing.assert_allclose(reml.predict(newdata.drop(columns="Subject"), re_form="~0"),
                               reml.predict(newdata, re_form="~0"))
    df = pd.DataFrame({"y": np.arange(12.0) % 5, "f": list("ab") * 6, "g": np.repeat(list("abc"), 4)})
    fit = hb.lmer("y ~ f + (1 | g)", df)
    with pytest.raises(hb.DataError, match="column 'f' has level.*'c'.*Known levels"):
        fit.predict(pd.DataFrame({"f": ["c"], "g": ["a"]}))


def test_re_form_errors(reml, newdata):
    with pytest.raises(hb.FormulaError, match=r"\(1 \| Subject\) is not a random-effect term.*Days \| Subject"):
        reml.predict(newdata, re_form="~ (1 | Subject)")
    with pytest.raises(hb.FormulaError, match="start with '~'"):
        reml.predict(newdata, re_form="(Days | Subject)")
    with pytest.raises(hb.FormulaError, match="names no random-effect bar"):
        reml.predict(newdata, re_form="~ Days")


def test_predict_interval(reml, newdata, sleepstudy):
    pi = reml.predict_interval(newdata, n_sims=2000, seed=1)
    assert list(pi.columns) == ["Estimate", "conf_low", "conf_high"]
    assert pi.equals(reml.predict_interval(newdata, n_sims=2000, seed=1))
    width = (pi["conf_high"] - pi["conf_low"]).to_numpy()
    assert (width[3:] > width[:3]).all()  # a new subject's interval is wider
    # the fit column is centred on lme4's prediction (within simulation noise)
    assert np.abs(pi["Estimate"].to_numpy() - reml.predict(newdata).to_numpy()).max() < 0.05 * width.min()
    # intervals for observations: about 95% of the fitted rows inside
    inside = reml.predict_interval(n_sims=1000, seed=2)
    y = sleepstudy["Reaction"].to_numpy()
    share = np.mean((inside["conf_low"] <= y) & (y <= inside["conf_high"]))
    assert 0.90 <= share <= 0.99
    no_resid = reml.predict_interval(newdata, n_sims=2000, seed=1, include_resid=False)
    assert ((no_resid["conf_high"] - no_resid["conf_low"]) < pi["conf_high"] - pi["conf_low"]).all()


def test_reml_simulate(reml):
    sims = reml.simulate(2000, seed=1)
    assert sims.shape == (180, 2000) and list(sims.columns[:2]) == ["sim_1", "sim_2"]
    assert sims.equals(reml.simulate(2000, seed=1))
    # unconditional (lme4's default): mean X beta, covariance sigma^2 (Z Lambda Lambda' Z' + I)
    d = reml.design
    pop = d.X @ reml.estimates.beta
    se = sims.to_numpy().std(axis=1) / np.sqrt(2000)
    assert np.abs(sims.to_numpy().mean(axis=1) - pop).max() < 4.5 * se.max()
    S = reml.covariance()[0]
    z = d.blocks[0].Z[:10]
    var = np.einsum("ni,ij,nj->n", z, S, z) + reml.sigma**2
    np.testing.assert_allclose(sims.to_numpy()[:10].var(axis=1), var, rtol=0.1)
    cond = reml.simulate(2000, seed=1, use_u=True).to_numpy()
    assert np.abs(cond.mean(axis=1) - reml.fitted()).max() < 4.5 * reml.sigma / np.sqrt(2000)
    with pytest.raises(ValueError, match="positive integer"):
        reml.simulate(0)


@pytest.mark.slow
def test_simulate_and_refit_recovers_biomass_effects(lme4_refs):
    ref = lme4_refs["biomass"]
    fit = hb.lmer(ref["formula"], hb.datasets.load("biomass"))
    truth = fit.fixef()["Estimate"]
    sims = fit.simulate(50, seed=1)
    hits = pd.Series(0, index=truth.index)
    for column in sims:
        fx = fit.refit(sims[column]).fixef()
        half = 1.959964 * fx["Std. Error"]
        hits += ((fx["Estimate"] - half <= truth) & (truth <= fx["Estimate"] + half)).astype(int)
    assert (hits >= 42).all(), hits.to_dict()
    assert (hits <= 50).all()


def test_refit_rejects_a_wrong_length(reml):
    with pytest.raises(hb.DataError, match="180 response values"):
        reml.refit(np.zeros(10))


# --- Bayesian predictions -----------------------------------------------------------------

def test_bayes_predict_agrees_with_reml(brms_fit, reml, newdata):
    for re_form in (None, "~0"):
        for rows in (None, newdata):
            bayes = brms_fit.predict(rows, re_form=re_form, seed=1)
            ref = reml.predict(rows, re_form=re_form)
            if rows is None:
                bayes, ref = bayes.iloc[:10], ref.iloc[:10]
            z = (bayes["Estimate"] - ref) / bayes["Est.Error"]
            assert z.abs().max() < 0.15, (re_form, z.round(3).tolist())
    pred = brms_fit.predict(newdata, seed=1)
    width = (pred["conf_high"] - pred["conf_low"]).to_numpy()
    assert (width[3:] > width[:3]).all(), width  # new subject: wider than subject 308


def test_new_level_draws_are_shared_by_its_rows(brms_fit):
    new = pd.DataFrame({"Days": [4, 4, 4], "Subject": ["n1", "n1", "n2"]})
    draws = brms_fit.predict_draws(new, seed=5)
    np.testing.assert_array_equal(draws[:, 0], draws[:, 1])
    assert abs(np.corrcoef(draws[:, 0], draws[:, 2])[0, 1]) < 0.5
    np.testing.assert_array_equal(draws, brms_fit.predict_draws(new, seed=5))


def test_kinds_of_prediction(brms_fit, newdata):
    mean = brms_fit.predict(newdata, kind="mean", seed=1)
    resp = brms_fit.predict(newdata, kind="response", seed=1)
    link = brms_fit.predict(newdata, kind="link", seed=1)
    pd.testing.assert_frame_equal(mean, link)  # identity link
    assert (resp["Est.Error"] > mean["Est.Error"]).all()
    assert np.abs(resp["Estimate"] - mean["Estimate"]).max() < 0.1 * resp["Est.Error"].min() + 2
    with pytest.raises(ValueError, match="kind must be one of"):
        brms_fit.predict(newdata, kind="pps")


def test_bernoulli_predictions_are_probabilities():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(12), 15)
    x = rng.normal(size=g.size)
    y = (rng.random(g.size) < 1 / (1 + np.exp(-(0.5 * x + rng.normal(0, 1, 12)[g])))).astype(int)
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        fit = hb.Model("y ~ x + (1 | g)", df, family="bernoulli").fit(
            draws=300, tune=300, chains=2, seed=1, progressbar=False)
    mean = fit.predict_draws(kind="mean", seed=1)
    assert ((mean > 0) & (mean < 1)).all()
    resp = fit.predict_draws(kind="response", seed=1)
    assert set(np.unique(resp)) == {0.0, 1.0}
    assert np.abs(resp.mean(axis=0) - mean.mean(axis=0)).max() < 0.1
    p = fit.ppc_pvalues(group=False, statistics=("mean",))
    assert 0.05 < p["p"].iloc[0] < 0.95


# --- Predictive checks, simulation, LOO ---------------------------------------------------

def _drawn_lines(ax) -> list:
    """Lines with data (ArviZ adds an empty one as a legend handle)."""
    return [line for line in ax.get_lines() if len(line.get_xdata())]


def test_ppc_pvalues_for_sleepstudy(brms_fit):
    table = brms_fit.ppc_pvalues(seed=1)
    overall = table[table["group"] == "(all)"].set_index("statistic")["p"]
    assert 0.05 < overall["mean"] < 0.95 and 0.05 < overall["sd"] < 0.95
    per_subject = table[table["group"] == "Subject"]
    assert len(per_subject) == 18 * 4 and per_subject["level"].nunique() == 18
    assert overall["mean"] == pytest.approx(brms_fit.ppc_pvalues(seed=1).loc[0, "p"])
    with pytest.raises(KeyError, match="No grouping factor"):
        brms_fit.ppc_pvalues(group="Days")


def test_ppc_pvalues_detect_a_misfit():
    # replicates with half the data's spread: the sd's p-value is 0
    rng = np.random.default_rng(1)
    y = rng.normal(0, 2, 50)
    y_rep = rng.normal(0, 1, (400, 50))
    table = ppc_pvalues(y, y_rep, {}, ("mean", "sd"))
    assert table.set_index("statistic").loc["sd", "p"] == 0.0
    assert 0.05 < table.set_index("statistic").loc["mean", "p"] < 0.95


def test_ppc_plot_is_a_figure(brms_fit):
    from matplotlib.figure import Figure

    fig = brms_fit.ppc_plot(num_pp_samples=30, seed=1)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title().startswith("Posterior predictive check") and ax.get_xlabel() == "Reaction"
    # 30 replicate densities, the observed density and the replicates' mean
    assert len(_drawn_lines(ax)) == 32
    assert ax.get_legend_handles_labels()[1] == ["Posterior predictive", "Observed",
                                                 "Posterior predictive mean"]
    assert "posterior_predictive" in brms_fit.idata.groups()
    assert brms_fit.idata.posterior_predictive["Reaction"].shape == (4, 1000, 180)


def test_bayes_simulate(brms_fit):
    sims = brms_fit.simulate(5, seed=2)
    assert sims.shape == (180, 5) and sims.equals(brms_fit.simulate(5, seed=2))
    assert not np.allclose(sims["sim_1"], sims["sim_2"])
    resid = sims.to_numpy() - brms_fit.predict()["Estimate"].to_numpy()[:, None]
    assert 15 < resid.std() < 40  # sigma is about 26 (lme4: 25.6)
    with pytest.raises(ValueError, match="more than the 4000"):
        brms_fit.simulate(5000)


def test_prior_predictive(sleep_model):
    from matplotlib.figure import Figure

    idata = sleep_model.prior_predictive(draws=40, seed=1)
    assert {"prior", "prior_predictive", "observed_data"} <= set(idata.groups())
    assert idata.prior_predictive["Reaction"].shape == (1, 40, 180)
    # the data-scaled default priors put the prior predictive around the data's scale
    assert 0 < float(np.median(idata.prior_predictive["Reaction"])) < 600
    fig = sleep_model.plot_prior_predictive(idata=idata, draws=40, num_pp_samples=20, seed=1)
    assert isinstance(fig, Figure) and fig.axes[0].get_title().startswith("Prior predictive")
    assert len(_drawn_lines(fig.axes[0])) == 22  # 20 prior replicates, their mean, the data
    assert "Observed" in fig.axes[0].get_legend_handles_labels()[1]


def test_loo_ranks_sleepstudy_models(loo_fits):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = hb.loo_compare(loo_fits)
    messages = [str(w.message) for w in caught if issubclass(w.category, hb.HierbayesWarning)]
    # subject 332's outlying days may give some rows a high Pareto k (how many depends on the
    # draws): those warnings, and only those, are allowed here; test_pareto_k_warning makes one
    # certain
    assert all("Pareto k" in m for m in messages)
    assert list(table.index) == ["slope", "intercept", "null"]
    assert (table["elpd_diff"].iloc[1:] > 2 * table["dse"].iloc[1:]).all()
    assert table["weight"].sum() == pytest.approx(1.0)


def test_pareto_k_warning(loo_fits):
    # Importance ratios drawn from a Pareto distribution with shape 1 (k = 1) for two rows:
    # their k-hat lies far above 0.7 (its sampling sd at 1000 draws is about 0.1), whatever
    # the sampler drew; the other rows keep the fit's own log-likelihood.
    from copy import copy

    fit = copy(loo_fits["slope"])
    fit._idata = copy(loo_fits["slope"].idata)
    ll = fit.idata.log_likelihood.copy(deep=True)
    name = fit.model.observed_name
    values = ll[name].to_numpy()
    rng = np.random.default_rng(0)
    for row in (10, 120):
        values[:, :, row] = -np.log(rng.pareto(1.0, size=values.shape[:2]) + 1.0)
    ll[name] = (ll[name].dims, values)
    fit._idata.log_likelihood = ll
    with pytest.warns(hb.HierbayesWarning, match="Pareto k above") as caught:
        elpd = fit.loo(label="heavy")
    (msg,) = [str(w.message) for w in caught if str(w.message).startswith("heavy")]
    assert np.asarray(elpd.pareto_k)[[10, 120]].min() > 0.7
    rows = fit.design.rows
    assert str(rows[10]) in msg and str(rows[120]) in msg and "fit.kfold(K=10, group=...)" in msg
    # both warnings point at the user's line, not at hierbayes's
    assert {w.filename for w in caught if "Pareto k" in str(w.message)} == {__file__}
    with pytest.warns(hb.HierbayesWarning, match="Pareto k above") as caught:
        hb.loo_compare({"heavy": fit, "slope": loo_fits["slope"]})
    assert {w.filename for w in caught if "'heavy'" in str(w.message)} == {__file__}
    # the shared fit is untouched
    original = loo_fits["slope"].idata.log_likelihood[name].to_numpy()
    assert not np.array_equal(original[:, :, 10], values[:, :, 10])


def test_loo_compare_refuses_what_it_cannot_compare(loo_fits, reml, sleepstudy):
    with pytest.raises(TypeError, match="hb.anova"):
        hb.loo_compare({"a": loo_fits["slope"], "b": reml})
    with pytest.raises(ValueError, match="at least two"):
        hb.loo_compare({"a": loo_fits["slope"]})
    shorter = hb.Model(SLOPE, sleepstudy.iloc[:170]).fit(draws=100, tune=100, chains=1, seed=1,
                                                         progressbar=False, check=False)
    with pytest.raises(ValueError, match="do not share their observations"):
        hb.loo_compare({"a": loo_fits["slope"], "b": shorter})


def test_prediction_rows_for_fitted_data(reml):
    rows = prediction_rows(reml.design)
    np.testing.assert_array_equal(rows.index[0], reml.design.blocks[0].index)
    assert rows.new_levels == [[]]


def test_blocks_of_rows_give_the_same_draws(brms_fit, newdata):
    from hierbayes.report.predict import iter_posterior_draws

    rows = prediction_rows(brms_fit.design, newdata)
    whole = np.concatenate([d for _, d in iter_posterior_draws(brms_fit, rows, "response", seed=4)],
                           axis=1)
    # 4000 values per block: one row at a time; the new subject's effects stay shared
    parts = list(iter_posterior_draws(brms_fit, rows, "response", seed=4, max_values=4000))
    assert len(parts) == 6
    blocks = np.concatenate([d for _, d in parts], axis=1)
    assert whole.shape == blocks.shape == (4000, 6)
    # response draws add noise drawn per block, so only their distribution matches
    assert np.abs(whole.mean(axis=0) - blocks.mean(axis=0)).max() < 0.1 * whole.std(axis=0).min()
    link = np.concatenate([d for _, d in iter_posterior_draws(brms_fit, rows, "link", seed=4,
                                                              max_values=4000)], axis=1)
    # the same draws (BLAS may round a row block's product differently in the last bit)
    np.testing.assert_allclose(link, brms_fit.predict_draws(newdata, kind="link", seed=4), rtol=1e-13)
    # rows 4-6 (new subject, Days 0/5/9) share one draw of its intercept and slope: the
    # Days 0 and Days 9 predictions are correlated through the intercept
    assert np.corrcoef(link[:, 3], link[:, 5])[0, 1] > 0.2


# --- the one linear predictor (hierbayes.linalg.linpred) -----------------------------------

def _eta_by_rows(X, beta, effects):
    """The linear predictor written row by row, as the formula reads."""
    lead = beta.shape[:-1]
    out = np.zeros((*lead, X.shape[0]))
    for n in range(X.shape[0]):
        out[..., n] = (beta * X[n]).sum(axis=-1)
        for Z, index, r in effects:
            if r is not None and index[n] >= 0:
                out[..., n] += (r[..., index[n], :] * Z[n]).sum(axis=-1)
    return out


def test_linear_predictor_is_the_formula_for_points_and_draws():
    from hierbayes.linalg.linpred import linear_predictor

    rng = np.random.default_rng(5)
    X = rng.normal(size=(7, 3))
    Z1, Z2 = rng.normal(size=(7, 2)), rng.normal(size=(7, 1))
    i1, i2 = np.array([0, 1, 2, 0, -1, 2, 1]), np.array([-1, -1, -1, -1, -1, -1, -1])
    for lead in [(), (5,), (2, 4)]:
        beta = rng.normal(size=(*lead, 3))
        effects = [(Z1, i1, rng.normal(size=(*lead, 3, 2))), (Z2, i2, rng.normal(size=(*lead, 4, 1))),
                   (Z2, np.zeros(7, dtype=int), None)]
        eta = linear_predictor(X, beta, effects)
        assert eta.shape == (*lead, 7)
        np.testing.assert_allclose(eta, _eta_by_rows(X, beta, effects), rtol=1e-13, atol=1e-13)


def test_every_linear_predictor_is_the_same_one(brms_fit, reml, newdata):
    from hierbayes.bayes.posterior import linear_predictor as posterior_eta
    from hierbayes.linalg.linpred import linear_predictor
    from hierbayes.report.predict import eta_draws, eta_point

    d = brms_fit.design
    post = brms_fit.posterior
    blk = d.blocks[0]
    # the log-likelihood's (all chains at once) and the predictions' (draws flattened)
    eta = posterior_eta(d, post)
    flat = linear_predictor(d.X, post["fixef"].reshape(-1, 2), [(blk.Z, blk.index, post["r_Subject"].reshape(-1, 18, 2))])
    np.testing.assert_array_equal(eta.reshape(-1, d.n_obs), flat)
    np.testing.assert_array_equal(brms_fit.predict_draws(kind="link"), flat)
    # REML: the fitted values and the prediction at a new level (no group effect there)
    rows = prediction_rows(reml.design, newdata)
    point = eta_point(rows, reml.estimates.beta, reml.estimates.b)
    np.testing.assert_array_equal(point, reml.predict(newdata).to_numpy())
    new = rows.index[0] < 0
    np.testing.assert_array_equal(point[new], rows.X[new] @ reml.estimates.beta)
    np.testing.assert_allclose(eta_point(prediction_rows(reml.design), reml.estimates.beta, reml.estimates.b),
                               reml.fitted(), rtol=1e-13)
    S = 3
    draws = eta_draws(rows, np.repeat(reml.estimates.beta[None], S, 0),
                      [np.repeat(b[None], S, 0) for b in reml.estimates.b], [None])
    np.testing.assert_array_equal(draws, np.repeat(point[None], S, 0))
