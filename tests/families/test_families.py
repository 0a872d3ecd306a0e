"""hierbayes.families: each family's support, links, log-likelihood, draws and defaults."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from hierbayes.errors import DataError
from hierbayes.families import FAMILIES, get_family
from hierbayes.families.base import Family, sample_sd

GAUSSIAN, BERNOULLI, POISSON = (FAMILIES[k] for k in ("gaussian", "bernoulli", "poisson"))
RNG = np.random.default_rng(20240517)
ETA = RNG.normal(0.0, 1.5, size=(2, 3, 40))  # chains, draws, rows
SIGMA = RNG.uniform(0.5, 2.0, size=(2, 3))


# ---------------------------------------------------------------- log-likelihood


def test_gaussian_loglik_is_scipys_normal():
    y = RNG.normal(size=40)
    ll = GAUSSIAN.loglik(y, ETA, SIGMA)
    assert ll.shape == ETA.shape
    np.testing.assert_allclose(ll, stats.norm.logpdf(y, ETA, SIGMA[..., None]), rtol=1e-12)


def test_bernoulli_loglik_is_scipys_bernoulli():
    y = (RNG.random(40) < 0.4).astype(float)
    ll = BERNOULLI.loglik(y, ETA)
    np.testing.assert_allclose(ll, stats.bernoulli.logpmf(y, special.expit(ETA)), rtol=1e-10)


def test_bernoulli_loglik_is_stable_far_out():
    ll = BERNOULLI.loglik(np.array([1.0, 0.0, 1.0]), np.array([800.0, -800.0, -800.0]))
    np.testing.assert_allclose(ll, [0.0, 0.0, -800.0])


def test_poisson_loglik_is_scipys_poisson():
    y = RNG.poisson(2.0, size=40).astype(float)
    ll = POISSON.loglik(y, ETA)
    np.testing.assert_allclose(ll, stats.poisson.logpmf(y, np.exp(ETA)), rtol=1e-10)


def test_loglik_is_the_formula_sampling_used_bit_for_bit():
    # the same operations as before the families moved, so LOO stays bit-identical
    y = RNG.poisson(2.0, size=40).astype(float)
    s = SIGMA[:, :, None]
    old = -0.5 * np.log(2 * np.pi) - np.log(s) - 0.5 * ((y - ETA) / s) ** 2
    assert np.array_equal(GAUSSIAN.loglik(y, ETA, SIGMA), old)
    b = (y > 1).astype(float)
    assert np.array_equal(BERNOULLI.loglik(b, ETA), -np.logaddexp(0.0, np.where(b == 1, -ETA, ETA)))
    assert np.array_equal(POISSON.loglik(y, ETA), y * ETA - np.exp(ETA) - special.gammaln(y + 1))


# ---------------------------------------------------------------- links


def test_inverse_links_in_numpy():
    eta = np.linspace(-5, 5, 11)
    assert GAUSSIAN.inverse_link(eta) is eta
    np.testing.assert_allclose(BERNOULLI.inverse_link(eta), 1 / (1 + np.exp(-eta)), rtol=1e-14)
    np.testing.assert_allclose(POISSON.inverse_link(eta), np.exp(eta), rtol=1e-14)
    assert [f.link.name for f in (GAUSSIAN, BERNOULLI, POISSON)] == ["identity", "logit", "log"]


@pytest.mark.parametrize("name", ["gaussian", "bernoulli", "poisson"])
def test_inverse_link_in_pytensor_matches_numpy(name):
    import pytensor.tensor as pt

    fam = FAMILIES[name]
    eta = np.linspace(-5, 5, 11)
    x = pt.dvector("eta")
    out = fam.inverse_link_tensor(x).eval({x: eta})
    np.testing.assert_allclose(out, fam.inverse_link(eta), rtol=1e-12)


# ---------------------------------------------------------------- support


def test_gaussian_takes_numbers_and_booleans():
    assert GAUSSIAN.encode_response(pd.Series([1, 2]), "y").dtype == float
    np.testing.assert_array_equal(GAUSSIAN.encode_response(pd.Series([True, False]), "y"), [1, 0])


@pytest.mark.parametrize("name", ["gaussian", "poisson"])
def test_text_response_is_refused_with_the_familys_name(name):
    with pytest.raises(DataError, match=rf"The response 'y' is not numeric \(dtype \w+\); the "
                                        rf"{name} family needs numbers"):
        FAMILIES[name].encode_response(pd.Series(["a", "b"]), "y")


def test_poisson_refuses_negative_and_fractional_counts():
    with pytest.raises(DataError, match=r"has 2 values that are not non-negative integers.*"
                                        r"\(first: .*-1\.0\)?\)\. Use family='gaussian'"):
        POISSON.encode_response(pd.Series([0, -1, 2.5, 3]), "y")
    np.testing.assert_array_equal(POISSON.encode_response(pd.Series([0, 4]), "y"), [0, 4])


def test_bernoulli_encodings():
    enc = BERNOULLI.encode_response
    np.testing.assert_array_equal(enc(pd.Series([True, False]), "y"), [1, 0])
    np.testing.assert_array_equal(enc(pd.Series([0, 1, 1]), "y"), [0, 1, 1])
    # strings: sorted levels, the second is success; categoricals: their own order
    np.testing.assert_array_equal(enc(pd.Series(["yes", "no"]), "y"), [1, 0])
    cat = pd.Series(pd.Categorical(["yes", "no"], categories=["yes", "no"]))
    np.testing.assert_array_equal(enc(cat, "y"), [0, 1])


def test_bernoulli_refusals():
    with pytest.raises(DataError, match=r"has 3 levels \(\['a', 'b', 'c'\]\); the bernoulli family "
                                        r"needs two \(or 0/1 numbers\)"):
        BERNOULLI.encode_response(pd.Series(["a", "b", "c"]), "y")
    with pytest.raises(DataError, match=r"has 1 values other than 0 and 1 \(first: .*2\.0\)?\); the "
                                        r"bernoulli family needs 0/1, True/False or a two-level "
                                        r"factor\."):
        BERNOULLI.encode_response(pd.Series([0, 1, 2]), "y")


# ---------------------------------------------------------------- draws


def test_gaussian_draws_moments():
    rng = np.random.default_rng(1)
    mean = np.full((2, 100_000), 3.0)
    y = GAUSSIAN.draw(rng, mean, np.array([1.0, 2.0]))
    np.testing.assert_allclose(y.mean(axis=1), [3.0, 3.0], atol=0.03)
    np.testing.assert_allclose(y.std(axis=1), [1.0, 2.0], rtol=0.01)


def test_bernoulli_draws_moments():
    y = BERNOULLI.draw(np.random.default_rng(2), np.full((1, 100_000), 0.3))
    assert set(np.unique(y)) == {0.0, 1.0}
    assert abs(y.mean() - 0.3) < 0.005


def test_poisson_draws_moments():
    y = POISSON.draw(np.random.default_rng(3), np.full((1, 100_000), 4.0))
    assert y.dtype == float and np.all(y == np.round(y))
    assert abs(y.mean() - 4.0) < 0.03 and abs(y.var() - 4.0) < 0.1


def test_draws_make_the_same_rng_calls_as_before():
    mean = np.random.default_rng(0).uniform(0.1, 0.9, size=(3, 5))
    sigma = np.array([1.0, 2.0, 3.0])
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    assert np.array_equal(GAUSSIAN.draw(a, mean, sigma),
                          mean + b.standard_normal(mean.shape) * sigma[:, None])
    assert np.array_equal(BERNOULLI.draw(a, mean), (b.random(mean.shape) < mean).astype(float))
    assert np.array_equal(POISSON.draw(a, mean), b.poisson(mean).astype(float))
    assert a.random() == b.random()


# ---------------------------------------------------------------- defaults and capabilities


def test_default_prior_pieces():
    y = np.array([1.0, 2.0, 6.0])
    assert GAUSSIAN.prior_scale(y) == sample_sd(y) == float(np.std(y, ddof=1))
    assert GAUSSIAN.prior_scale(np.ones(3)) == 1.0
    assert BERNOULLI.prior_scale(y) == POISSON.prior_scale(y) == 1.0
    assert GAUSSIAN.intercept_location(y) == 3.0
    assert BERNOULLI.intercept_location(y) == 0.0
    assert POISSON.intercept_location(y) == float(np.log(3.0))
    assert POISSON.intercept_location(np.zeros(3)) == float(np.log(1e-3))
    assert GAUSSIAN.dispersion_prior(2.5) == ("half_student_t", (3, 2.5))
    assert BERNOULLI.dispersion_prior(2.5) is None and POISSON.dispersion_prior(2.5) is None


def test_dispersion_and_capabilities():
    assert {k: (f.dispersion, f.dispersion_label, f.has_sigma) for k, f in FAMILIES.items()} == {
        "gaussian": ("sigma", "Residual", True), "bernoulli": (None, None, False),
        "binomial": (None, None, False), "gamma": ("shape", None, False),
        "negbinomial": ("shape", None, False), "poisson": (None, None, False)}
    assert [f.name for f in FAMILIES.values() if f.supports_reml] == ["gaussian"]
    assert [f.name for f in FAMILIES.values() if f.supports_marginal] == ["gaussian"]
    assert [f.model_kind for f in FAMILIES.values()] == ["linear"] + ["generalized linear"] * 5


def test_every_kernel_name_has_a_c_code():
    from hierbayes.bayes.codes import FAMILY_CODES

    assert {f.kernel for f in FAMILIES.values()} <= set(FAMILY_CODES)


def test_latent_variance():
    np.testing.assert_array_equal(GAUSSIAN.latent_variance(np.array([2.0])), [4.0])
    assert BERNOULLI.latent_variance(None) == np.pi**2 / 3
    assert POISSON.latent_variance(None) is None


# ---------------------------------------------------------------- PyMC


OBSERVED = {
    "gaussian": (("gaussian", None), np.array([0.1, -0.3, 2.0]), None, None),
    "gaussian_weights": (("gaussian", None), np.array([0.1, -0.3, 2.0]), None,
                         np.array([0.5, 2.0, 1.0])),
    "bernoulli": (("bernoulli", None), np.array([0.0, 1.0, 1.0]), None, None),
    "bernoulli_probit": (("bernoulli", "probit"), np.array([0.0, 1.0, 1.0]), None, None),
    "binomial": (("binomial", None), np.array([0.0, 2.0, 5.0]), np.array([3.0, 2.0, 9.0]), None),
    "binomial_probit": (("binomial", "probit"), np.array([0.0, 2.0, 5.0]),
                        np.array([3.0, 2.0, 9.0]), None),
    "binomial_cloglog": (("binomial", "cloglog"), np.array([0.0, 2.0, 5.0]),
                         np.array([3.0, 2.0, 9.0]), None),
    "poisson": (("poisson", None), np.array([0.0, 2.0, 5.0]), None, None),
    "negbinomial": (("negbinomial", None), np.array([0.0, 2.0, 5.0]), None, None),
    "gamma": (("gamma", "log"), np.array([0.3, 2.0, 5.0]), None, None),
}


@pytest.mark.parametrize("case", list(OBSERVED))
def test_observed_variable_has_the_familys_log_likelihood(case):
    import pymc as pm

    (name, link), y, trials, weights = OBSERVED[case]
    fam = get_family(name, link=link)
    eta = np.array([-0.5, 0.2, 1.0])
    with pm.Model(coords={"obs": range(3)}) as model:
        disp = pm.HalfNormal("d", 1.0) if fam.dispersion else None
        fam.observe("y", pm.math.constant(eta), y, dims="obs", dispersion=disp, trials=trials,
                    weights=weights)
    point = {"d_log__": np.log(1.3)} if fam.dispersion else {}
    logp = model.compile_logp(vars=[model["y"]], sum=False)(point)[0]
    expected = fam.loglik(y, eta[None, :], np.array([1.3]) if fam.dispersion else None,
                          trials=trials, weights=weights)[0]
    np.testing.assert_allclose(logp, expected, rtol=1e-10)


@pytest.mark.parametrize("case", ["binomial", "binomial_probit", "binomial_cloglog", "negbinomial",
                                  "gamma", "gaussian_weights"])
def test_new_families_loglik_is_scipys(case):
    (name, link), y, trials, weights = OBSERVED[case]
    fam = get_family(name, link=link)
    eta = np.array([[-0.5, 0.2, 1.0]])
    disp = np.array([1.3])
    mu = fam.link.linkinv(eta)
    expected = {
        "binomial": lambda: stats.binom.logpmf(y, trials, mu),
        "negbinomial": lambda: stats.nbinom.logpmf(y, 1.3, 1.3 / (1.3 + mu)),
        "gamma": lambda: stats.gamma.logpdf(y, 1.3, scale=mu / 1.3),
        "gaussian": lambda: stats.norm.logpdf(y, eta, 1.3 / np.sqrt(weights)),
    }[name]()
    got = fam.loglik(y, eta, disp if fam.dispersion else None, trials=trials, weights=weights)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_binomial_loglik_is_stable_far_out():
    for link in ("logit", "probit", "cloglog"):
        fam = get_family("binomial", link=link)
        ll = fam.loglik(np.array([3.0, 0.0]), np.array([[40.0, -40.0]]), trials=np.array([3.0, 3.0]))
        assert np.isfinite(ll).all() and np.all(ll <= 0) and np.all(ll > -1e-6), link


def test_glm_functions_are_rs():
    # R: binomial()$dev.resids(c(.2, 1), c(.3, .6), c(5, 2)); poisson()$aic(c(0, 3), 1, c(.5, 2), c(1, 1), 0)
    b = get_family("binomial")
    np.testing.assert_allclose(b.deviance_residuals(np.array([0.2, 1.0]), np.array([0.3, 0.6]),
                                                    np.array([5.0, 2.0])),
                               [2 * 5 * (0.2 * np.log(0.2 / 0.3) + 0.8 * np.log(0.8 / 0.7)),
                                2 * 2 * np.log(1 / 0.6)], rtol=1e-14)
    p = get_family("poisson")
    assert p.aic(np.array([0.0, 3.0]), np.array([0.5, 2.0]), np.ones(2), 0.0) == pytest.approx(
        -2 * (stats.poisson.logpmf(0, 0.5) + stats.poisson.logpmf(3, 2.0)), rel=1e-13)
    np.testing.assert_allclose(b.mu_start(np.array([0.5]), np.array([4.0])), [2.5 / 5])


# ---------------------------------------------------------------- objects


def test_str_equality_and_pickling():
    assert str(GAUSSIAN) == "gaussian (identity link)"
    assert repr(POISSON) == "<family poisson (log link)>"
    assert GAUSSIAN != BERNOULLI and len({GAUSSIAN, get_family("normal")}) == 1
    for fam in [*FAMILIES.values(), get_family("binomial", link="cloglog")]:
        assert pickle.loads(pickle.dumps(fam)) is fam


def test_a_family_must_implement_everything():
    class Half(Family):
        name = "half"
        links = ("identity",)
        default_link = "identity"
        kernel = "half"

    with pytest.raises(TypeError, match="abstract"):
        Half()


@pytest.mark.parametrize("case", ["gaussian", "binomial", "poisson", "negbinomial", "gamma"])
def test_randomized_quantile_residuals_of_the_true_model_are_normal(case):
    # Dunn and Smyth (1996): u ~ U(F(y-), F(y)) is uniform when the model is right
    (name, link), _, _, _ = OBSERVED[case]
    fam = get_family(name, link=link)
    rng = np.random.default_rng(11)
    n = 20_000
    mean = {"binomial": rng.uniform(0.1, 0.9, n)}.get(name, rng.uniform(0.5, 6.0, n))
    trials = rng.integers(1, 8, n).astype(float) if name == "binomial" else None
    disp = 2.5 if fam.dispersion else None
    y = fam.draw(rng, mean[None, :], None if disp is None else np.array([disp]), trials=trials)[0]
    hi = fam.cdf(y, mean, disp, trials)
    lo = fam.cdf(y - 1, mean, disp, trials) if fam.discrete else hi
    u = lo + rng.random(n) * (hi - lo)
    assert stats.kstest(u, "uniform").pvalue > 1e-3
