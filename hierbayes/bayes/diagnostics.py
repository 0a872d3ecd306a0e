"""R-hat and effective sample sizes, as ArviZ computes them, in NumPy alone.

Rank-normalised split R-hat (the larger of the bulk and folded versions), bulk
ESS and tail ESS (Vehtari, Gelman, Simpson, Carpenter & Buerkner 2021). They
agree with ``arviz.rhat`` and ``arviz.ess`` (``tests/test_diagnostics.py``);
computing them here keeps ArviZ's import (seconds) off the path to a summary.

Examples
--------
>>> import numpy as np
>>> from hierbayes.bayes.diagnostics import ess_bulk, rhat
>>> x = np.random.default_rng(1).normal(size=(4, 1000))
>>> bool(abs(rhat(x) - 1) < 0.01) and bool(ess_bulk(x) > 3000)
True
"""

from __future__ import annotations

import numpy as np


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a flat array, ties given their average rank (scipy's 'average')."""
    order = np.argsort(x, kind="mergesort")
    s = x[order]
    new_group = np.concatenate(([True], s[1:] != s[:-1]))
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.concatenate((starts[1:], [len(s)]))
    avg = (starts + ends + 1) / 2.0  # mean of 1-based ranks start+1 .. end
    ranks = np.empty(len(x))
    ranks[order] = avg[group]
    return ranks


def _z_scale(x: np.ndarray) -> np.ndarray:
    from scipy.special import ndtri

    r = _ranks(x.ravel())
    return ndtri((r - 0.375) / (x.size + 0.25)).reshape(x.shape)


def _split(x: np.ndarray) -> np.ndarray:
    half = x.shape[1] // 2
    return np.concatenate((x[:, :half], x[:, -half:]), axis=0)


def _rhat_basic(x: np.ndarray) -> float:
    n = x.shape[1]
    between = n * np.var(x.mean(axis=1), ddof=1)
    within = np.mean(np.var(x, axis=1, ddof=1))
    if within == 0:  # chains that never move: R-hat is undefined (ArviZ gives nan as well)
        return np.nan
    return float(np.sqrt((between / within + n - 1) / n))


def rhat(x: np.ndarray) -> float:
    """Rank-normalised split R-hat of draws shaped (chains, draws)."""
    x = np.asarray(x, dtype=float)
    if x.shape[0] < 2 or x.shape[1] < 4 or not np.all(np.isfinite(x)):
        return np.nan
    split = _split(x)
    bulk = _rhat_basic(_z_scale(split))
    tail = _rhat_basic(_z_scale(np.abs(split - np.median(split))))
    return max(bulk, tail)


def _autocov(x: np.ndarray) -> np.ndarray:
    """Autocovariance of each row (biased, divided by n), by FFT."""
    n = x.shape[1]
    centred = x - x.mean(axis=1, keepdims=True)
    m = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(centred, n=m, axis=1)
    return np.fft.irfft(f * np.conj(f), n=m, axis=1)[:, :n] / n


def _ess(x: np.ndarray) -> float:
    """ESS of (chains, draws) with Geyer's initial monotone sequence, as ArviZ's ``_ess``."""
    n_chain, n_draw = x.shape
    if np.ptp(x) < np.finfo(float).resolution:
        return float(x.size)
    acov = _autocov(x)
    mean_var = np.mean(acov[:, 0]) * n_draw / (n_draw - 1.0)
    var_plus = mean_var * (n_draw - 1.0) / n_draw
    if n_chain > 1:
        var_plus += np.var(x.mean(axis=1), ddof=1)
    rho = np.zeros(n_draw)
    rho_even = 1.0
    rho[0] = rho_even
    rho_odd = 1.0 - (mean_var - np.mean(acov[:, 1])) / var_plus
    rho[1] = rho_odd
    t = 1
    while t < n_draw - 3 and rho_even + rho_odd > 0.0:
        rho_even = 1.0 - (mean_var - np.mean(acov[:, t + 1])) / var_plus
        rho_odd = 1.0 - (mean_var - np.mean(acov[:, t + 2])) / var_plus
        if rho_even + rho_odd >= 0:
            rho[t + 1] = rho_even
            rho[t + 2] = rho_odd
        t += 2
    max_t = t - 2
    if rho_even > 0:
        rho[max_t + 1] = rho_even
    t = 1
    while t <= max_t - 2:
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]:
            rho[t + 1] = (rho[t - 1] + rho[t]) / 2.0
            rho[t + 2] = rho[t + 1]
        t += 2
    ess = n_chain * n_draw
    tau = -1.0 + 2.0 * np.sum(rho[: max_t + 1]) + np.sum(rho[max_t + 1: max_t + 2])
    tau = max(tau, 1 / np.log10(ess))
    return float(ess / tau)


def ess_bulk(x: np.ndarray) -> float:
    """Bulk ESS (rank-normalised, split chains) of draws shaped (chains, draws)."""
    x = np.asarray(x, dtype=float)
    if x.shape[1] < 4 or not np.all(np.isfinite(x)):
        return np.nan
    return _ess(_z_scale(_split(x)))


def ess_tail(x: np.ndarray) -> float:
    """Tail ESS: the smaller ESS of the 5% and 95% quantile indicators."""
    x = np.asarray(x, dtype=float)
    if x.shape[1] < 4 or not np.all(np.isfinite(x)):
        return np.nan
    out = []
    for prob in (0.05, 0.95):
        q = np.quantile(x, prob)
        out.append(_ess(_split((x <= q).astype(float))))
    return min(out)


def ess_mean(x: np.ndarray) -> float:
    """ESS for the mean of draws shaped (chains, draws): split chains, no rank normalisation.

    ArviZ's ``ess(method="mean")``: the one to divide a posterior mean's
    Monte Carlo error by, ``sd / sqrt(ess_mean)``.
    """
    x = np.asarray(x, dtype=float)
    if x.shape[1] < 4 or not np.all(np.isfinite(x)):
        return np.nan
    return _ess(_split(x))


def ebfmi(energy: np.ndarray) -> np.ndarray:
    """Energy Bayesian fraction of missing information per chain (Betancourt 2016), as ``arviz.bfmi``.

    The mean squared change of the energy between draws over its variance,
    for ``energy`` shaped (chains, draws). Below 0.3, the momentum
    resampling moves the energy too little to explore the posterior's tails.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> bool(ebfmi(rng.normal(size=(1, 4000)))[0] > 1.9)  # independent draws: 2
    True
    """
    e = np.atleast_2d(np.asarray(energy, dtype=float))
    return np.square(np.diff(e, axis=1)).mean(axis=1) / np.var(e, axis=1)
