"""Our NUTS and nutpie's, on the same compiled density, agree on every reference model (slow, run in CI).

Both samplers read the same packed model in the same form (centring and
marginalisation as the fit chooses, or as set below where the default form
samples poorly with either), so any difference between their posteriors is
the samplers'. Each headline parameter's mean and SD must agree within
Monte Carlo error, with each sampler's error taken from the ESS it reports:
|difference| below 4.5 combined standard errors. Over the 50 parameters
and two checks each, a false alarm has odds of about 1 in 1,500 on an
unlucky seed (the 4.5 SE tail is 6.8e-6 per check). When these were
written the largest |z| was 2.9 (sleepstudy) and SD ratios lay in 0.94-1.08.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import hierbayes as hb
from hierbayes.bayes import nutpie_native
from hierbayes.bayes.diagnostics import ess_mean, rhat

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(nutpie_native.unsupported() is not None,
                       reason=f"needs {nutpie_native.REQUIREMENT}"),
]

Z = 4.5


def _speed_dating_subset():
    sd = hb.datasets.load("speed_dating")
    sd = sd.dropna(subset=["attractive_sc", "sincere_sc", "intelligent_sc"])
    return sd[sd["iid"].isin(sd["iid"].unique()[:60])]  # 60 of 551 people: seconds, not a minute


def _insteval_subset():
    ie = hb.datasets.load("InstEval")
    return ie[ie["s"].isin(ie["s"].unique()[:150])]  # 150 students, their 700 lecturers, 14 departments


# name -> (formula, data, family, forms)
CASES = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", lambda: hb.datasets.load("sleepstudy"),
                   "gaussian", {}),
    "pupils": ("achievement ~ sex + ses + (1 | primary_school_id) + (1 | secondary_school_id)",
               lambda: hb.datasets.load("pupils"), "gaussian", {}),
    # the data's choice centres all three blocks; centred, the 14 departments leave a funnel
    # that one of four nutpie chains stuck in (350 divergences)
    "InstEval": ("y ~ service + (1 | s) + (1 | d) + (1 | dept)", _insteval_subset, "gaussian",
                 {"centred": {"s": True, "d": True, "dept": False}}),
    # marginal (the default) is 20 times slower per draw here; the data's choice centres the 25
    # hospitals, whose SD then has a funnel (our chains diverged on 1 of 6 seeds, 4 x 500 draws,
    # none non-centred), and the SD mixes slowly (R-hat up to 1.019 on 4 x 500), so more draws
    "nurses": ("stress ~ age + sex + experience + treatment + wardtype + hospsize + (1 | hospital/ward)",
               lambda: hb.datasets.load("nurses"), "gaussian",
               {"marginal": False, "centred": {"hospital": False}, "draws": 1000}),
    "gpa": ("gpa ~ occasion + (1 + occasion | student)", lambda: hb.datasets.load("gpa"), "gaussian", {}),
    "bernoulli": ("decision ~ sex + samerace + attractive_sc + sincere_sc + intelligent_sc + (1 | iid)",
                  _speed_dating_subset, "bernoulli", {}),
    # non-centred (the default) mixes four times slower for both samplers
    "poisson": ("TICKS ~ YEAR + (1 | LOCATION)", lambda: hb.datasets.load("grouseticks"), "poisson",
                {"centred": True}),
}


def _mean_se(x: np.ndarray) -> float:
    return float(np.std(x) / np.sqrt(ess_mean(x)))


def _sd_se(x: np.ndarray) -> float:
    # the SD's error by the delta method from the squared deviations' ESS
    sq = (x - x.mean()) ** 2
    return float(np.sqrt(np.var(sq) / ess_mean(sq)) / (2 * np.std(x)))


def compare(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> list[str]:
    """The headline parameters whose means or SDs differ by more than :data:`Z` combined SEs."""
    bad = []
    for name, a in ours.items():
        b = theirs[name]
        for what, stat, se in (("mean", np.mean, _mean_se), ("sd", np.std, _sd_se)):
            z = (stat(a) - stat(b)) / np.hypot(se(a), se(b))
            if not abs(z) < Z:
                bad.append(f"{name} {what}: {stat(a):.4g} against {stat(b):.4g} (z = {z:.1f})")
    return bad


def test_compare_finds_a_shift_of_a_few_standard_errors():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 500)), rng.normal(size=(4, 500))
    assert compare({"x": a}, {"x": b}) == []
    # 2,000 independent draws: the mean's SE is 0.022, the SD's 0.016; combined 0.032 and 0.022
    (shifted,) = compare({"x": a}, {"x": b + 0.2})
    assert shifted.startswith("x mean")
    (wider,) = compare({"x": a}, {"x": 1.15 * b})
    assert wider.startswith("x sd")


@pytest.mark.parametrize("name", list(CASES))
def test_ours_and_nutpie_agree_on_the_same_density(name):
    formula, data, family, forms = CASES[name]
    model = hb.Model(formula, data(), family=family)
    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        for sampler in ("hierbayes", "nutpie"):
            settings = {"draws": 500, "tune": 500, **forms}
            fits[sampler] = model.fit(sampler=sampler, chains=4, seed=1, progressbar=False, **settings)
    ours, theirs = fits["hierbayes"], fits["nutpie"]
    assert theirs.info.sampler == "nutpie" and theirs.info.compile_seconds < 1
    assert (ours.info.centred, ours.info.marginal) == (theirs.info.centred, theirs.info.marginal)
    a, b = ours.headline_draws(), theirs.headline_draws()
    assert list(a) == list(b)
    # Monte Carlo error from ESS means something only for chains that mixed
    for sampler, draws in (("hierbayes", a), ("nutpie", b)):
        worst = max(draws, key=lambda k: rhat(draws[k]))
        assert rhat(draws[worst]) < 1.02, f"{sampler} did not mix: R-hat {rhat(draws[worst]):.3f} on {worst}"
    assert compare(a, b) == []
