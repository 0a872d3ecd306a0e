"""Calibration at CI size: simulated data sets from the prior, fitted; the 90%
intervals must cover the true values about 90% of the time, and ranks must not
pile up at the ends. The full check (200 replicates, slopes and correlations)
is ``benchmarks/sbc.py``, with its results in ``docs/sbc/``; the tests below also
check its helpers: ranks on cases with a known answer, simulation from each family's
priors with that family's support, and that each variant's fit runs the sampler form
it names.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

import hierbayes as hb
from benchmarks import calibration as cal

REPLICATES = 30


@pytest.fixture(scope="module")
def replicates():
    rng = np.random.default_rng(2024)
    out = []
    for i in range(REPLICATES):
        data, truth = cal.simulate(rng, n_groups=20, per_group=8, slope=False)
        model = hb.Model(cal.formula(False), data, priors=cal.priors(False))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hb.ConvergenceWarning)
            fit = model.fit(draws=250, tune=300, chains=2, seed=i, progressbar=False, check=False)
        out.append((truth, cal.headline(fit)))
    return out


def test_90_percent_intervals_cover_the_truth(replicates):
    inside = []
    for truth, draws in replicates:
        for name, value in truth.items():
            lo, hi = np.quantile(np.asarray(draws[name]).reshape(-1), [0.05, 0.95])
            inside.append(lo <= value <= hi)
    n = len(inside)
    assert n == REPLICATES * 4
    # the count lies in binomial(n, 0.9)'s central 99.8% when the intervals are calibrated
    lo, hi = stats.binom.ppf([0.001, 0.999], n, 0.9)
    assert lo <= sum(inside) <= hi, f"{sum(inside)} of {n} inside the 90% intervals"


def test_ranks_do_not_pile_up(replicates):
    # 30 ranks per parameter are too few for a chi-square on 20 bins; a
    # Kolmogorov-Smirnov test of rank / 99 against the uniform still catches
    # intervals that are much too narrow (ranks at 0 and 99) or shifted.
    ranks: dict[str, list[int]] = {}
    for truth, draws in replicates:
        for name, r in cal.ranks(truth, draws).items():
            ranks.setdefault(name, []).append(r)
    for name, values in ranks.items():
        u = (np.asarray(values) + 0.5) / 100
        assert stats.kstest(u, "uniform").pvalue > 0.001, (name, sorted(values))


def test_rank_helpers():
    draws = {"a": np.arange(200.0).reshape(2, 100)}
    assert cal.ranks({"a": -1.0}, draws) == {"a": 0}
    assert cal.ranks({"a": 1e9}, draws) == {"a": 99}
    assert cal.uniformity_pvalue(np.repeat(np.arange(100), 3)) == pytest.approx(1.0)
    assert cal.uniformity_pvalue(np.zeros(300, dtype=int)) < 1e-10
    with pytest.raises(ValueError, match="equal bins"):
        cal.uniformity_pvalue(np.arange(10), keep=98)


def test_ranks_thin_evenly_over_the_chains():
    # 1000 draws thin to every 10th: 0, 10, ..., 980, chain by chain
    draws = {"a": np.arange(1000.0).reshape(2, 500)}
    assert cal.ranks({"a": 55.0}, draws) == {"a": 6}
    assert cal.ranks({"a": 500.0}, draws) == {"a": 50}
    assert cal.ranks({"a": 980.5}, draws) == {"a": 99}
    with pytest.raises(ValueError, match="at least 99 draws"):
        cal.ranks({"a": 0.0}, {"a": np.zeros((2, 40))})


def test_ranks_are_uniform_under_the_exact_posterior_and_not_under_a_narrow_one():
    # theta ~ N(0, 1), y ~ N(theta, 1): the posterior is N(y / 2, 1 / 2), drawn exactly
    rng = np.random.default_rng(7)
    exact, narrow = [], []
    for _ in range(400):
        theta = rng.normal()
        y = rng.normal(theta, 1.0)
        post = rng.normal(y / 2, np.sqrt(0.5), size=(1, 99))
        exact.append(cal.ranks({"t": theta}, {"t": post})["t"])
        narrow.append(cal.ranks({"t": theta}, {"t": y / 2 + (post - y / 2) / 3})["t"])
    assert cal.uniformity_pvalue(np.array(exact)) > 0.001
    assert cal.uniformity_pvalue(np.array(narrow)) < 1e-10


@pytest.mark.parametrize("family", ["gaussian", "bernoulli", "poisson"])
def test_simulation_has_the_family_support(family):
    rng = np.random.default_rng(3)
    for slope in (True, False):
        data, truth = cal.simulate(rng, n_groups=20, per_group=30, slope=slope, family=family)
        y = data["y"].to_numpy()
        expected = ["(Intercept)", "x", "sd_(Intercept)"] + ["sd_x", "cor"] * slope
        assert sorted(truth) == sorted(expected + ["sigma"] * (family == "gaussian"))
        if family == "bernoulli":
            assert set(np.unique(y)) == {0.0, 1.0}
        elif family == "poisson":
            assert (y >= 0).all() and (y == np.round(y)).all() and y.max() > 0
        else:
            assert (y != np.round(y)).all() and truth["sigma"] > 0
        assert truth["sd_(Intercept)"] > 0
        assert not slope or (truth["sd_x"] > 0 and -1 < truth["cor"] < 1)
        # the model the family's variants fit takes this response and every prior given
        model = hb.Model(cal.formula(slope), data, family=family, priors=cal.priors(slope, family))
        assert model.family.name == family


def test_simulation_draws_the_priors_it_fits_with():
    rng = np.random.default_rng(11)
    pri = cal.priors(True, "poisson")  # normal(0, 0.5) slopes, gamma(2, 4) SDs, lkj(2)
    truths = [cal.simulate(rng, n_groups=5, per_group=2, family="poisson")[1] for _ in range(1500)]
    assert pri["b"] == "normal(0, 0.5)" and pri["sd"] == "gamma(2, 4)"
    x = [t["x"] for t in truths]
    sd = [t["sd_(Intercept)"] for t in truths] + [t["sd_x"] for t in truths]
    cor = [t["cor"] for t in truths]
    assert stats.kstest(x, stats.norm(0, 0.5).cdf).pvalue > 0.001
    assert stats.kstest(sd, stats.gamma(2, scale=1 / 4).cdf).pvalue > 0.001
    assert stats.kstest((np.array(cor) + 1) / 2, stats.beta(2, 2).cdf).pvalue > 0.001
    # and a wrong scale is seen: the test can tell
    assert stats.kstest(x, stats.norm(0, 1).cdf).pvalue < 1e-6


def test_unbalanced_simulation_has_unequal_levels_out_of_order():
    data, _ = cal.GAUSSIAN_INTERCEPT.simulate(cal.GAUSSIAN_INTERCEPT.rng(1))
    counts = data["g"].value_counts()
    assert counts.nunique() > 3 and counts.min() >= 1
    codes = data["g"].cat.codes.to_numpy()
    assert (np.diff(codes) < 0).any()  # not sorted by level: the collapsed kernel must sort them


@pytest.mark.parametrize("name", list(cal.VARIANTS))
def test_each_variant_reaches_the_form_it_names(name):
    variant = cal.VARIANTS[name]
    data, truth = variant.simulation.simulate(variant.simulation.rng(0))
    model = hb.Model(variant.simulation.formula, data, family=variant.simulation.family,
                     priors=variant.simulation.priors)
    with cal.packings() as seen, warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        fit = model.fit(draws=50, tune=50, chains=2, seed=1, progressbar=False, check=False,
                        **variant.fit_kwargs)
    (packed,) = seen
    assert fit.info.marginal == packed.marginal == (variant.form == "marginal")
    assert (packed.collapsed == 0) == (variant.form == "collapsed")
    if variant.form in ("centred", "non-centred"):
        assert packed.centred == [variant.form == "centred"]
        assert fit.info.centred == {"g": variant.form == "centred"}
    assert cal.sampler_form(packed) == variant.form
    ranks = cal.ranks(truth, cal.headline(fit))
    assert sorted(ranks) == sorted(truth) and all(0 <= r <= 99 for r in ranks.values())
    # fit_variant checks the same and returns the fit
    assert cal.fit_variant(variant, data, seed=1, draws=50, tune=50).info.seed == 1


def test_fit_variant_refuses_a_form_the_sampler_did_not_run():
    # a gaussian random intercept sampled in full is collapsed, whatever centring is asked
    wrong = cal.Variant("asks centred", cal.GAUSSIAN_INTERCEPT, "centred",
                        {"marginal": False, "centred": True})
    data, _ = cal.GAUSSIAN_INTERCEPT.simulate(cal.GAUSSIAN_INTERCEPT.rng(0))
    with pytest.raises(RuntimeError, match="ran the collapsed form"):
        cal.fit_variant(wrong, data, seed=1, draws=20, tune=20)
    forced = cal.Variant("marginal by default", cal.GAUSSIAN_SLOPE, "non-centred", {"centred": False})
    data, _ = cal.GAUSSIAN_SLOPE.simulate(cal.GAUSSIAN_SLOPE.rng(0))
    with pytest.raises(RuntimeError, match="ran the marginal form"):
        cal.fit_variant(forced, data, seed=1, draws=20, tune=20)


def test_sbc_replicates_are_the_same_on_a_pool():
    # benchmarks/sbc.py runs its replicates through the execution layer: each replicate's data
    # and fit seed come from its own stream, so a pool gives the serial ranks
    from hierbayes.execution import run_tasks

    shared = ("gaussian collapsed", 100, 99)
    seed = np.random.SeedSequence([3, cal.VARIANTS["gaussian collapsed"].simulation.stream])
    serial = run_tasks(cal.sbc_replicate, range(3), shared=shared, seed=seed, progressbar=False)
    pooled = run_tasks(cal.sbc_replicate, range(3), shared=shared, seed=seed, n_jobs=2,
                       progressbar=False)
    assert [r["ranks"] for r in serial] == [r["ranks"] for r in pooled]
    assert len({tuple(r["ranks"].values()) for r in serial}) == 3  # three different data sets
