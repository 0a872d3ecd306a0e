"""Simulation-based calibration (Talts et al. 2018) of hierbayes's posteriors.

Draw parameters from the prior, simulate data from them, fit, and record the
rank of each true value among (thinned) posterior draws. If the sampler and
the model agree, every rank is uniform. ``benchmarks/sbc.py`` runs the full
check; ``tests/test_calibration.py`` a small one with interval coverage.

The priors are fixed (:data:`SBC_PRIORS`), not hierbayes's data-scaled
defaults: a prior that depends on the simulated response would not be the
distribution the parameters were drawn from.

Examples
--------
>>> import numpy as np
>>> from calibration import simulate
>>> data, truth = simulate(np.random.default_rng(1), n_groups=20, per_group=10, slope=True)
>>> data.shape, sorted(truth)
((200, 3), ['(Intercept)', 'cor', 'sd_(Intercept)', 'sd_x', 'sigma', 'x'])
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SBC_PRIORS = {
    "Intercept": "normal(0, 1)",
    "b": "normal(0, 1)",
    "sd": "gamma(2, 2)",
    "sigma": "gamma(2, 2)",
    "cor": "lkj(2)",
}


def priors(slope: bool) -> dict[str, str]:
    """:data:`SBC_PRIORS` for the model :func:`formula` gives (no ``cor`` without slopes)."""
    return dict(SBC_PRIORS) if slope else {k: v for k, v in SBC_PRIORS.items() if k != "cor"}


def formula(slope: bool) -> str:
    """The model SBC fits: ``y ~ x + (x | g)``, or ``y ~ x + (1 | g)``."""
    return "y ~ x + (x | g)" if slope else "y ~ x + (1 | g)"


def simulate(rng: np.random.Generator, n_groups: int = 20, per_group: int = 10,
             slope: bool = True) -> tuple[pd.DataFrame, dict[str, float]]:
    """One draw of the parameters from :data:`SBC_PRIORS` and a data set from them.

    The intercept prior is on the intercept of the centred design, as in brms
    and hierbayes; the reported ``(Intercept)`` is that minus ``b * mean(x)``.

    Returns
    -------
    data, truth
        A DataFrame with ``y``, ``x`` and ``g``; the true values keyed as in
        :func:`headline`.
    """
    n = n_groups * per_group
    x = rng.normal(size=n)
    g = np.repeat(np.arange(n_groups), per_group)
    intercept_c = rng.normal(0.0, 1.0)
    b = rng.normal(0.0, 1.0)
    sigma = rng.gamma(2.0, 1.0 / 2.0)
    truth = {"(Intercept)": intercept_c - b * x.mean(), "x": b}
    if slope:
        sd = rng.gamma(2.0, 1.0 / 2.0, size=2)
        # LKJ(eta) on a 2 x 2 correlation matrix: (r + 1) / 2 ~ Beta(eta, eta)
        r = 2.0 * rng.beta(2.0, 2.0) - 1.0
        cov = np.array([[sd[0] ** 2, r * sd[0] * sd[1]], [r * sd[0] * sd[1], sd[1] ** 2]])
        u = rng.multivariate_normal(np.zeros(2), cov, size=n_groups)
        eta = u[g, 0] + u[g, 1] * x
        truth.update({"sd_(Intercept)": sd[0], "sd_x": sd[1], "cor": r})
    else:
        sd0 = rng.gamma(2.0, 1.0 / 2.0)
        eta = rng.normal(0.0, sd0, size=n_groups)[g]
        truth["sd_(Intercept)"] = sd0
    y = intercept_c + b * (x - x.mean()) + eta + rng.normal(0.0, sigma, size=n)
    truth["sigma"] = sigma
    data = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical([f"g{j:02d}" for j in g])})
    return data, truth


def headline(fit) -> dict[str, np.ndarray]:
    """The fitted model's draws of the parameters :func:`simulate` returns, each ``(chains, draws)``."""
    post = fit.posterior
    out = {"(Intercept)": post["fixef"][:, :, 0], "x": post["fixef"][:, :, 1],
           "sd_(Intercept)": post["sd_g"][:, :, 0], "sigma": post["sigma"]}
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
