"""Simulation-based calibration (Talts et al. 2018) of hierbayes's posteriors.

Draw parameters from the prior, simulate data from them, fit, and record the
rank of each true value among (thinned) posterior draws. If the sampler and
the model agree, every rank is uniform. ``benchmarks/sbc.py`` runs the full
check over every sampler form and family (:data:`VARIANTS`);
``tests/test_calibration.py`` a small one with interval coverage.

The priors are fixed (:data:`FAMILY_PRIORS`), not hierbayes's data-scaled
defaults: a prior that depends on the simulated response would not be the
distribution the parameters were drawn from. :func:`simulate` draws from the
same prior strings the fit is given, so the two cannot drift apart.

Examples
--------
>>> import numpy as np
>>> from calibration import simulate
>>> data, truth = simulate(np.random.default_rng(1), n_groups=20, per_group=10, slope=True)
>>> data.shape, sorted(truth)
((200, 3), ['(Intercept)', 'cor', 'sd_(Intercept)', 'sd_x', 'sigma', 'x'])
>>> data, truth = simulate(np.random.default_rng(1), family="poisson")
>>> bool((data["y"] >= 0).all()), "sigma" in truth
(True, False)
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import hierbayes as hb

SBC_PRIORS = {
    "Intercept": "normal(0, 1)",
    "b": "normal(0, 1)",
    "sd": "gamma(2, 2)",
    "sigma": "gamma(2, 2)",
    "cor": "lkj(2)",
}

# Per family, the priors data are simulated from and fitted with. Poisson's log link puts the
# intercept near 1 (a typical count near e) and keeps the linear predictor's spread near 1, so
# that simulated counts stay in the hundreds at most; bernoulli keeps the gaussian's scales,
# which on the logit scale already span probabilities from 0.1 to 0.9.
FAMILY_PRIORS: dict[str, dict[str, str]] = {
    "gaussian": SBC_PRIORS,
    "bernoulli": {k: v for k, v in SBC_PRIORS.items() if k != "sigma"},
    "poisson": {"Intercept": "normal(1, 0.5)", "b": "normal(0, 0.5)", "sd": "gamma(2, 4)",
                "cor": "lkj(2)"},
}


def priors(slope: bool, family: str = "gaussian") -> dict[str, str]:
    """:data:`FAMILY_PRIORS` for the model :func:`formula` gives (no ``cor`` without slopes)."""
    table = FAMILY_PRIORS[family]
    return dict(table) if slope else {k: v for k, v in table.items() if k != "cor"}


def formula(slope: bool) -> str:
    """The model SBC fits: ``y ~ x + (x | g)``, or ``y ~ x + (1 | g)``."""
    return "y ~ x + (x | g)" if slope else "y ~ x + (1 | g)"


def _draw(rng: np.random.Generator, spec: str, size: int | None = None) -> Any:
    """A draw from a prior string, parsed as the fit parses it (:meth:`hierbayes.Prior.parse`)."""
    prior = hb.Prior.parse(spec)
    p = prior.params
    if prior.dist == "normal":
        return rng.normal(p["mu"], p["sigma"], size=size)
    if prior.dist == "gamma":
        return rng.gamma(p["alpha"], 1.0 / p["beta"], size=size)  # beta is a rate
    if prior.dist == "lkj":
        # LKJ(eta) on a 2 x 2 correlation matrix: (r + 1) / 2 ~ Beta(eta, eta)
        return 2.0 * rng.beta(p["eta"], p["eta"], size=size) - 1.0
    raise ValueError(f"simulate draws from normal, gamma and lkj priors only, not {spec}")


def simulate(rng: np.random.Generator, n_groups: int = 20, per_group: int = 10,
             slope: bool = True, family: str = "gaussian",
             unbalanced: bool = False) -> tuple[pd.DataFrame, dict[str, float]]:
    """One draw of the parameters from :data:`FAMILY_PRIORS` and a data set from them.

    The intercept prior is on the intercept of the centred design, as in brms
    and hierbayes; the reported ``(Intercept)`` is that minus ``b * mean(x)``.

    Parameters
    ----------
    rng
        The random stream.
    n_groups, per_group
        Levels of ``g`` and rows per level (the mean, when ``unbalanced``).
    slope
        Simulate ``y ~ x + (x | g)``; else ``y ~ x + (1 | g)``.
    family
        ``"gaussian"``, ``"bernoulli"`` (logit link) or ``"poisson"`` (log link).
    unbalanced
        Levels of 1 to ``2 * per_group - 1`` rows, in shuffled row order: the
        collapsed block sorts rows by level and weighs each level by its size,
        which data in level order with equal sizes would not exercise.

    Returns
    -------
    data, truth
        A DataFrame with ``y``, ``x`` and ``g``; the true values keyed as in
        :func:`headline`.
    """
    pri = priors(slope, family)
    if unbalanced:
        sizes = rng.integers(1, 2 * per_group, size=n_groups)
        g = rng.permutation(np.repeat(np.arange(n_groups), sizes))
    else:
        g = np.repeat(np.arange(n_groups), per_group)
    n = len(g)
    x = rng.normal(size=n)
    intercept_c = _draw(rng, pri["Intercept"])
    b = _draw(rng, pri["b"])
    sigma = _draw(rng, pri["sigma"]) if family == "gaussian" else None
    truth = {"(Intercept)": intercept_c - b * x.mean(), "x": b}
    if slope:
        sd = _draw(rng, pri["sd"], size=2)
        r = _draw(rng, pri["cor"])
        cov = np.array([[sd[0] ** 2, r * sd[0] * sd[1]], [r * sd[0] * sd[1], sd[1] ** 2]])
        u = rng.multivariate_normal(np.zeros(2), cov, size=n_groups)
        eta = u[g, 0] + u[g, 1] * x
        truth.update({"sd_(Intercept)": sd[0], "sd_x": sd[1], "cor": r})
    else:
        sd0 = _draw(rng, pri["sd"])
        eta = rng.normal(0.0, sd0, size=n_groups)[g]
        truth["sd_(Intercept)"] = sd0
    mu = intercept_c + b * (x - x.mean()) + eta
    if family == "gaussian":
        y = mu + rng.normal(0.0, sigma, size=n)
        truth["sigma"] = sigma
    elif family == "bernoulli":
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-mu))).astype(float)
    elif family == "poisson":
        y = rng.poisson(np.exp(mu)).astype(float)
    else:
        raise ValueError(f"unknown family {family!r}")
    data = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical([f"g{j:02d}" for j in g])})
    return data, truth


def headline(fit) -> dict[str, np.ndarray]:
    """The fitted model's draws of the parameters :func:`simulate` returns, each ``(chains, draws)``."""
    post = fit.posterior
    out = {"(Intercept)": post["fixef"][:, :, 0], "x": post["fixef"][:, :, 1],
           "sd_(Intercept)": post["sd_g"][:, :, 0]}
    if "sigma" in post:
        out["sigma"] = post["sigma"]
    if "cor_g" in post:
        out["sd_x"] = post["sd_g"][:, :, 1]
        out["cor"] = post["cor_g"][:, :, 0]  # the one pair of a two-term block
    return out


def ranks(truth: dict[str, float], draws: dict[str, np.ndarray], keep: int = 99) -> dict[str, int]:
    """Rank of each true value among ``keep`` draws thinned evenly from all chains.

    Thinning brings the draws near independence, which the rank's uniformity
    assumes (Talts et al., section 5). Ranks run from 0 to ``keep``.
    """
    out = {}
    for name, value in truth.items():
        flat = np.asarray(draws[name]).reshape(-1)
        step = len(flat) // keep
        if step < 1:
            raise ValueError(f"need at least {keep} draws to rank, got {len(flat)}")
        out[name] = int(np.sum(flat[::step][:keep] < value))
    return out


def uniformity_pvalue(rank_values: np.ndarray, keep: int = 99, bins: int = 20) -> float:
    """Chi-square test that ranks in ``0 .. keep`` are uniform, over ``bins`` equal bins."""
    from scipy import stats

    if (keep + 1) % bins:
        raise ValueError(f"{keep + 1} rank values do not split into {bins} equal bins")
    counts = np.bincount(np.asarray(rank_values) * bins // (keep + 1), minlength=bins)
    return float(stats.chisquare(counts).pvalue)


@dataclass(frozen=True)
class Simulation:
    """A model SBC simulates from: family, random-effect terms and the shape of the data.

    ``stream`` numbers the simulation's random stream: variants of one
    simulation fit the same data sets for the same seed, so their ranks can be
    compared pair by pair; different simulations draw from different streams.
    """

    family: str
    slope: bool
    n_groups: int
    per_group: int
    unbalanced: bool
    stream: int

    @property
    def formula(self) -> str:
        return formula(self.slope)

    @property
    def priors(self) -> dict[str, str]:
        return priors(self.slope, self.family)

    def rng(self, seed: int) -> np.random.Generator:
        return np.random.default_rng([seed, self.stream])

    def simulate(self, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, float]]:
        return simulate(rng, self.n_groups, self.per_group, self.slope, self.family, self.unbalanced)

    def describe(self) -> str:
        rows = f"~{self.per_group} rows (1 to {2 * self.per_group - 1}, shuffled)" if self.unbalanced \
            else f"{self.per_group} rows"
        return f"{self.family} `{self.formula}`, {self.n_groups} groups x {rows}"


GAUSSIAN_SLOPE = Simulation("gaussian", True, 20, 10, False, 0)
GAUSSIAN_INTERCEPT = Simulation("gaussian", False, 20, 10, True, 1)
# 50 rows per group: with 10, a logit slope's SD is barely informed and the posterior is the prior
BERNOULLI_SLOPE = Simulation("bernoulli", True, 20, 50, False, 2)
POISSON_SLOPE = Simulation("poisson", True, 20, 10, False, 3)


@dataclass(frozen=True)
class Variant:
    """One sampler form on one simulation: what ``fit`` is given, and the form it must reach."""

    name: str
    simulation: Simulation
    form: str  # "marginal", "centred", "non-centred" or "collapsed" (:func:`sampler_form`)
    fit_kwargs: dict = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return self.name.replace(" ", "-")


VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("gaussian marginal", GAUSSIAN_SLOPE, "marginal", {"marginal": True}),
    Variant("gaussian full centred", GAUSSIAN_SLOPE, "centred", {"marginal": False, "centred": True}),
    Variant("gaussian full non-centred", GAUSSIAN_SLOPE, "non-centred",
            {"marginal": False, "centred": False}),
    # the full model of a gaussian random intercept collapses it (pack's collapse=None)
    Variant("gaussian collapsed", GAUSSIAN_INTERCEPT, "collapsed", {"marginal": False}),
    Variant("bernoulli full centred", BERNOULLI_SLOPE, "centred", {"centred": True}),
    Variant("bernoulli full non-centred", BERNOULLI_SLOPE, "non-centred", {"centred": False}),
    Variant("poisson full centred", POISSON_SLOPE, "centred", {"centred": True}),
    Variant("poisson full non-centred", POISSON_SLOPE, "non-centred", {"centred": False}),
]}


def sampler_form(packed) -> str:
    """The form a :class:`hierbayes.bayes.pack.Packed` samples: ``"marginal"``, ``"collapsed"``,
    ``"centred"``, ``"non-centred"`` or ``"mixed"`` (some blocks centred, some not).

    Examples
    --------
    >>> from hierbayes.bayes.pack import pack
    >>> data, _ = simulate(np.random.default_rng(1), slope=False)
    >>> m = hb.Model(formula(False), data, priors=priors(False))
    >>> sampler_form(pack(m.design, m.priors)), sampler_form(pack(m.design, m.priors, collapse=False))
    ('collapsed', 'non-centred')
    """
    if packed.marginal:
        return "marginal"
    if packed.collapsed >= 0:
        return "collapsed"
    if packed.centred and all(packed.centred):
        return "centred"
    return "non-centred" if not any(packed.centred) else "mixed"


@contextmanager
def packings() -> Iterator[list]:
    """Every :class:`~hierbayes.bayes.pack.Packed` the sampler builds inside the block.

    ``fit.info`` says whether a fit was marginal and which blocks were asked to
    be centred, but not whether a block was collapsed (nor that a collapsed
    block is sampled non-centred whatever was asked): the packed model is what
    the sampler ran on. The sampler imports ``pack`` from its module when it
    runs, so recording there sees it.

    Examples
    --------
    >>> data, _ = simulate(np.random.default_rng(1), slope=False)
    >>> with packings() as seen:
    ...     _ = hb.Model(formula(False), data, priors=priors(False)).fit(
    ...         draws=20, tune=20, chains=1, seed=1, progressbar=False, check=False, marginal=False)
    >>> [sampler_form(p) for p in seen]
    ['collapsed']
    """
    import hierbayes.bayes.pack as pack_module

    seen: list = []
    original = pack_module.pack

    def recording(*args: Any, **kwargs: Any):
        packed = original(*args, **kwargs)
        seen.append(packed)
        return packed

    pack_module.pack = recording
    try:
        yield seen
    finally:
        pack_module.pack = original


def fit_variant(variant: Variant, data: pd.DataFrame, seed: int, draws: int = 500,
                tune: int = 500, chains: int = 2):
    """Fit one simulated data set in a variant's form; raise if the sampler ran another form.

    Examples
    --------
    >>> v = VARIANTS["gaussian collapsed"]
    >>> data, _ = v.simulation.simulate(v.simulation.rng(1))
    >>> fit_variant(v, data, seed=1, draws=50, tune=50).info.marginal
    False
    """
    sim = variant.simulation
    model = hb.Model(sim.formula, data, family=sim.family, priors=sim.priors)
    with packings() as seen, warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        fit = model.fit(draws=draws, tune=tune, chains=chains, seed=seed, progressbar=False,
                        check=False, **variant.fit_kwargs)
    if len(seen) != 1:
        raise RuntimeError(f"{variant.name}: expected one packed model, saw {len(seen)}")
    form = sampler_form(seen[0])
    info_form = "marginal" if fit.info.marginal else (
        "centred" if all(fit.info.centred.values()) else "non-centred")
    # fit.info cannot tell collapsed from the centring asked for; everything else it must agree on
    if form != variant.form or (form != "collapsed" and info_form != form):
        raise RuntimeError(f"{variant.name}: the sampler ran the {form} form (fit.info: {info_form}), "
                           f"not the {variant.form} form")
    return fit


def sbc_replicate(shared: tuple[str, int, int], item: int, rng: np.random.Generator) -> dict:
    """One SBC replicate, a task of :func:`hierbayes.execution.run_tasks`: a data set simulated
    from the priors with the task's stream, a fit in the variant's form (its sampler seed from
    the same stream), and the true values' ranks with the fit's diagnostics."""
    name, draws, keep = shared
    variant = VARIANTS[name]
    data, truth = variant.simulation.simulate(rng)
    fit = fit_variant(variant, data, seed=int(rng.integers(2**31 - 1)), draws=draws, tune=draws)
    d = fit.diagnostics()
    return {"ranks": ranks(truth, headline(fit), keep=keep), "divergences": d.divergences,
            "min_ess_bulk": round(d.min_ess_bulk, 1),
            "gradients": int(fit.posterior.stats["n_steps"].sum())}

