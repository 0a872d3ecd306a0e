"""Calibration at CI size: simulated data sets from the prior, fitted; the 90%
intervals must cover the true values about 90% of the time, and ranks must not
pile up at the ends. The full check (200 replicates, slopes and correlations)
is ``benchmarks/sbc.py``, with its results in ``docs/sbc/``.
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
