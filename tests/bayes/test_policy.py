"""The reparameterisation policy on the GLMM families: centring by the information in a block's rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.bayes.policy import choose_centring, response_scale


def _glmm(kind: str, levels: int, per: int, sd: float, seed: int = 0) -> hb.Model:
    """``w + x + (1 | g)`` simulated for one family, as docs/sampling.md's table was."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(levels), per)
    w = rng.integers(0, 2, levels)[g]
    x = rng.normal(size=g.size)
    eta = 0.5 * w + 0.4 * x + rng.normal(0, sd, levels)[g]
    df = pd.DataFrame({"w": w.astype(float), "x": x, "g": g.astype(str)})
    if kind.startswith("binomial"):
        n = np.full(g.size, int(kind.split(":")[1]))
        df["k"], df["n"] = rng.binomial(n, 1 / (1 + np.exp(0.3 - eta))), n
        return hb.Model("cbind(k, n - k) ~ w + x + (1 | g)", df, family="binomial")
    if kind.startswith("negbinomial"):
        shape, shift = (float(v) for v in kind.split(":")[1:])
        df["y"] = rng.poisson(rng.gamma(shape, np.exp(eta + 0.5 + shift) / shape))
        return hb.Model("y ~ w + x + (1 | g)", df, family="negbinomial")
    if kind.startswith("gamma"):
        shape = float(kind.split(":")[1])
        df["y"] = rng.gamma(shape, np.exp(eta + 1.0) / shape)
        return hb.Model("y ~ w + x + (1 | g)", df, family=hb.get_family("gamma", link="log"))
    assert kind == "poisson offset"
    t = rng.uniform(0.2, 5.0, g.size)
    df["y"], df["lt"] = rng.poisson(t * np.exp(eta)), np.log(t)
    return hb.Model("y ~ w + x + offset(lt) + (1 | g)", df, family="poisson")


@pytest.mark.parametrize(("kind", "levels", "per", "sd", "centred"), [
    # rows per level x information per row x the effects' variance, about:
    ("binomial:5", 100, 3, 0.3, False),            # 3 x 5 x 0.25 x 0.09 = 0.3
    ("binomial:20", 50, 4, 0.8, True),             # 4 x 20 x 0.25 x 0.64 = 13
    ("negbinomial:2:0", 100, 3, 0.3, False),       # 3 x mu / (1 + mu / shape) x 0.09 = 0.25
    ("negbinomial:5:1", 50, 10, 0.7, True),        # 10 x 2.4 x 0.49 = 12
    ("gamma:2", 100, 3, 0.2, False),               # 3 x shape x 0.04 = 0.24
    ("gamma:3", 50, 10, 0.5, True),                # 10 x 3 x 0.25 = 7.5
    ("poisson offset", 100, 3, 0.15, False),       # 3 x exposure 2.6 x 0.0225 = 0.18
    ("poisson offset", 50, 10, 0.6, True),         # 10 x 2.6 x 0.36 = 9.4
])
def test_glmm_blocks_are_centred_by_the_information_in_their_rows(kind, levels, per, sd, centred):
    # on these data (seed 0), the form chosen had 5 to 16 times the other's ESS-bulk per 1,000
    # gradients (median of 3 seeds, 2 x 1,000 draws; docs/sampling.md)
    design = _glmm(kind, levels, per, sd).design
    assert choose_centring(design) == [centred]
    # and not by a hair: the moment guess of the ratio is a factor of 2 or more from 1
    assert choose_centring(design, threshold=0.5 if centred else 2.0) == [centred]


def test_the_centring_test_reads_rates_and_proportions_with_their_weights():
    d = _glmm("binomial:20", 50, 4, 0.8).design
    y, w = response_scale(d)
    np.testing.assert_array_equal(w, d.trials)
    np.testing.assert_allclose(y * w, d.y)
    d = _glmm("poisson offset", 50, 10, 0.6).design
    y, w = response_scale(d)
    # an exposure t: the rate y / t, weighted by t (its Poisson information)
    np.testing.assert_allclose(w, np.exp(d.offset))
    np.testing.assert_allclose(y * np.exp(d.offset), d.y)
    # a gamma's constant coefficient of variation: a rate whose rows weigh alike
    g = _glmm("gamma:3", 50, 10, 0.5).design
    g.offset = np.log(np.linspace(1.0, 3.0, g.n_obs))
    np.testing.assert_allclose(response_scale(g)[1], 1.0)
    # without trials, weights or offsets the test is the unweighted one, as before
    b = _glmm("gamma:2", 100, 3, 0.2).design
    y, w = response_scale(b)
    assert w is None and np.array_equal(y, b.y)


def test_a_factor_with_few_levels_is_not_centred_however_informative_its_rows():
    # 40 trials x 5 rows per level x 0.25 x 0.64 = 32, well above 1; but five levels leave the SD's
    # posterior reaching down to 0, where the centred form had divergences (policy.py's docstring)
    few = _glmm("binomial:40", 5, 5, 0.8).design
    assert choose_centring(few) == [False]
    assert choose_centring(_glmm("binomial:40", 12, 5, 0.8).design) == [True]
