"""The compiled NUTS transition against a reference written from Stan's code (tests/bayes/stan_reference.py).

Both consume one random stream from one seed, so every state, tree depth,
leapfrog count, acceptance statistic and energy must agree exactly, on targets
and settings chosen to reach every branch: long and short trees, U-turns found
by the checks across joins, divergences, the depth limit, and the step-size
search in both directions and at its errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hierbayes.bayes.target import PythonTarget, init_stepsize, sample_target, transitions
from hierbayes.errors import SamplerError
from tests.bayes import stan_reference as ref

# a correlated Gaussian with scales 0.1 .. 10 (precision matrix P)
_A = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, -0.5], [0.0, -0.5, 1.0]])
_S = np.diag([0.1, 1.0, 10.0])
_P = np.linalg.inv(_S @ _A @ _S)


def gaussian(x):
    Px = _P @ x
    return -0.5 * float(x @ Px), -Px


def funnel(x):
    # Neal's funnel in 3 dimensions: v ~ N(0, 1.5), x_i | v ~ N(0, exp(v / 2))
    v, rest = x[0], x[1:]
    lp = -0.5 * v * v / 2.25 - 0.5 * float(rest @ rest) * math.exp(-v) - 0.5 * len(rest) * v
    g = np.empty_like(x)
    g[0] = -v / 2.25 + 0.5 * float(rest @ rest) * math.exp(-v) - 0.5 * len(rest)
    g[1:] = -rest * math.exp(-v)
    return lp, g


def rosenbrock(x):
    a, b = x[0], x[1]
    lp = -((1 - a) ** 2 + 10 * (b - a * a) ** 2) / 2
    return lp, np.array([(1 - a) + 20 * (b - a * a) * a, -10 * (b - a * a)])


def only_at_start(x):
    # finite at the start alone: every first leapfrog step leaves it, so every transition
    # diverges there, whatever the seed (a momentum of exactly zero has probability 2**-53)
    return (0.0, np.zeros_like(x)) if not np.any(x - np.array([0.3, -0.2])) else (float("nan"), np.zeros_like(x))


CASES = [
    # target, dim, start, step size, inverse metric, max depth
    ("gaussian, unit metric, short steps", gaussian, 3, [0.1, -1.0, 5.0], 0.05, [1.0, 1.0, 1.0], 10),
    ("gaussian, adapted metric", gaussian, 3, [0.0, 0.5, -3.0], 0.7, [0.01, 1.0, 100.0], 10),
    ("gaussian, depth limit 3", gaussian, 3, [0.0, 0.5, -3.0], 0.02, [0.01, 1.0, 100.0], 3),
    ("funnel", funnel, 3, [-1.0, 0.1, 0.2], 1.2, [1.0, 1.0, 1.0], 10),
    ("divergences", only_at_start, 2, [0.3, -0.2], 0.5, [1.0, 1.0], 10),
    ("rosenbrock", rosenbrock, 2, [0.5, 0.2], 0.1, [1.0, 1.0], 8),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_transitions_match_stans_algorithm_bit_for_bit(case):
    _, f, dim, q0, eps, m_inv, depth = case
    n = 60
    expected = ref.transitions(f, q0, seed=11, n=n, eps=eps, m_inv=m_inv, max_depth=depth)
    q, stats = transitions(PythonTarget(f, dim), np.array(q0), seed=11, n=n, step_size=eps,
                           inv_metric=np.array(m_inv), max_treedepth=depth)
    for k, e in enumerate(expected):
        assert q[k].tolist() == e["q"], f"transition {k}"
        for name in ("lp", "acceptance_rate", "n_steps", "tree_depth", "energy"):
            assert stats[name][k] == e[name], f"transition {k}: {name}"
        assert bool(stats["diverging"][k]) == e["diverging"], f"transition {k}"


def test_the_cases_reach_every_branch():
    # The comparison above means something only if the cases produce what they are named for.
    seen = {}
    for name, f, _, q0, eps, m_inv, depth in CASES:
        out = ref.transitions(f, q0, seed=11, n=60, eps=eps, m_inv=m_inv, max_depth=depth)
        seen[name] = out
    assert all(t["diverging"] and t["n_steps"] == 1 for t in seen["divergences"])
    assert all(t["tree_depth"] == 3 for t in seen["gaussian, depth limit 3"])
    depths = {t["tree_depth"] for t in seen["gaussian, unit metric, short steps"]}
    assert max(depths) >= 6 and len(depths) >= 2


def test_checks_across_joins_end_trees_that_the_merged_check_would_not():
    # Stan's two extra checks at each merge matter on these cases: some trees end although the
    # criterion over the whole merged tree holds. Criteria come in threes (the merged tree, then
    # the two joins), at every merge inside a subtree and at the top level.
    class Spy(ref.StanNuts):
        calls: list[bool]

        def criterion(self, ps_minus, ps_plus, rho):
            ok = ref.StanNuts.criterion(ps_minus, ps_plus, rho)
            self.calls.append(ok)
            return ok

    _, f, _, q0, eps, m_inv, depth = CASES[0]
    nuts = Spy(f, m_inv, eps, depth, ref.Rng(11))
    lp, g = f(np.array(q0))
    q, g = list(q0), [float(v) for v in g]
    join_only = 0
    for _ in range(60):
        nuts.calls = []
        t = nuts.transition(q, float(lp), g)
        q, lp, g = t["q"], t["lp"], t["g"]
        c = nuts.calls
        assert len(c) % 3 == 0
        join_only += any(c[i] and not (c[i + 1] and c[i + 2]) for i in range(0, len(c), 3))
    assert join_only > 0


@pytest.mark.parametrize("start", [1.0, 1e-3, 50.0])
def test_step_size_search_matches_stans(start):
    m_inv = np.array([0.01, 1.0, 100.0])
    q0 = np.array([0.0, 0.5, -3.0])
    expected = ref.init_stepsize(gaussian, q0, seed=7, m_inv=m_inv, eps=start)
    got = init_stepsize(PythonTarget(gaussian, 3), q0, seed=7, inv_metric=m_inv, step_size=start)
    assert got == expected
    assert got != start  # the search moved


def test_step_size_search_raises_as_stan_does():
    # a flat density: every step is accepted, so the search doubles past 1e7 ("improper")
    flat = PythonTarget(lambda x: (0.0, np.zeros_like(x)), 2)
    with pytest.raises(SamplerError, match="improper"):
        init_stepsize(flat, np.zeros(2), seed=1, inv_metric=np.ones(2))
    # a density that is finite at its first evaluation and NaN at every later one, even back at
    # the start (a tiny step rounds back to it): halving reaches 0
    calls = {"n": 0}

    def nan_after_first(x):
        calls["n"] += 1
        return (0.0, np.zeros(2)) if calls["n"] == 1 else (float("nan"), np.zeros(2))

    with pytest.raises(SamplerError, match="step size to 0"):
        init_stepsize(PythonTarget(nan_after_first, 2), np.zeros(2), seed=1, inv_metric=np.ones(2))
    with pytest.raises(ValueError, match="improper"):
        ref.init_stepsize(lambda x: (0.0, np.zeros_like(x)), [0.0, 0.0], seed=1, m_inv=[1.0, 1.0])


def test_energy_is_the_hamiltonian_at_the_selected_state():
    # On a standard Gaussian, energy + lp is the kinetic energy at the selected state, which is
    # never negative and is half a chi-square with dim degrees of freedom. The energy at the
    # start of the transition (what hierbayes stored before) gives lp - lp_previous + kinetic,
    # which is negative whenever the selected state has a higher density by more than that.
    dim = 6
    target = PythonTarget(lambda x: (-0.5 * float(x @ x), -x), dim)
    run = sample_target(target, np.zeros((4, dim)), draws=1000, tune=300, seed=2)
    kinetic = run.stats["energy"] + run.stats["lp"]
    assert kinetic.min() >= 0
    # half a chi-square(dim): mean dim / 2, sd sqrt(dim / 2); 4000 nearly independent draws
    assert kinetic.mean() == pytest.approx(dim / 2, abs=4 * math.sqrt(dim / 2 / 4000) * 2)


def test_an_error_in_the_target_is_raised_not_counted_as_a_divergence():
    calls = {"n": 0}

    def failing(x):
        calls["n"] += 1
        if calls["n"] > 50:
            raise RuntimeError("boom in the density")
        return -0.5 * float(x @ x), -x

    with pytest.raises(RuntimeError, match="boom"):
        sample_target(PythonTarget(failing, 2), np.zeros((1, 2)), draws=100, tune=100, seed=1)
