"""The binomial family: successes out of trials, with a logit, probit or cloglog link.

As R's ``binomial``: the response is 0/1 (``TRUE``/``FALSE``, or a two-level
factor whose second level is the success), ``cbind(successes, failures)``,
or a proportion with the trials given as ``weights=``. The design keeps the
successes as ``y`` and the trials beside them (``Design.trials``); R's glm
sees the proportion with the trials as prior weights (:meth:`glm_response`).

The log-likelihood is computed from the linear predictor (``log p`` and
``log(1 - p)`` without forming ``p``), so it stays finite where ``p`` rounds
to 0 or 1.

Examples
--------
>>> import numpy as np
>>> FAMILY.loglik(np.array([1.0]), np.array([[0.0]]), trials=np.array([2.0])).round(6)
array([[-0.693147]])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError
from hierbayes.families.base import Family
from hierbayes.families.links import special


def log_p_and_q(link: str, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log p`` and ``log(1 - p)`` at ``eta`` for a binomial link, computed stably.

    Examples
    --------
    >>> lp, lq = log_p_and_q("probit", np.array([-40.0]))
    >>> round(float(lp[0]), 3), abs(float(lq[0]))
    (-804.608, 0.0)
    """
    if link == "logit":
        return -np.logaddexp(0.0, -eta), -np.logaddexp(0.0, eta)
    if link == "probit":
        return special.log_ndtr(eta), special.log_ndtr(-eta)
    if link == "cloglog":
        e = np.exp(np.minimum(eta, 700.0))
        return np.log(-np.expm1(-e)), -e
    raise ValueError(f"no binomial link {link!r}")


class Binomial(Family):
    """``y ~ binomial(trials, p)``, ``p = g^-1(eta)``; no dispersion."""

    name = "binomial"
    links = ("logit", "probit", "cloglog")
    default_link = "logit"
    kernel = "binomial"
    takes_trials = True
    takes_weights = True

    @property
    def canonical(self) -> bool:
        """True for the logit link."""
        return self.link.name == "logit"

    def encode_response(self, values: pd.Series, label: str) -> np.ndarray:
        """0/1 numbers, booleans, or a factor with two levels, whose second level counts as success.

        As in R's glm; a non-numeric column's levels are its sorted values.

        Examples
        --------
        >>> FAMILY.encode_response(pd.Series(["no", "yes", "no"]), "y")
        array([0., 1., 0.])
        """
        if pd.api.types.is_bool_dtype(values):
            return values.to_numpy(dtype=float)
        if isinstance(values.dtype, pd.CategoricalDtype) or \
                not pd.api.types.is_numeric_dtype(values):
            levels = (
                list(values.cat.categories)
                if isinstance(values.dtype, pd.CategoricalDtype)
                else sorted(values.unique())
            )
            if len(levels) != 2:
                raise DataError(
                    f"The response '{label}' has {len(levels)} levels ({levels[:5]}); the "
                    f"{self.name} family needs two (or 0/1 numbers).")
            return (values == levels[1]).to_numpy(dtype=float)
        y = values.to_numpy(dtype=float)
        bad = ~np.isin(y, [0.0, 1.0])
        if bad.any():
            extra = ("" if not self.takes_trials else
                     "; for proportions give the trials as weights=, and for counts write "
                     "cbind(successes, failures)")
            raise DataError(
                f"The response '{label}' has {int(bad.sum())} values other than 0 and 1 (first: "
                f"{float(y[bad][0])!r}); the {self.name} family needs 0/1, True/False or a two-level "
                f"factor{extra}.")
        return y

    def encode_proportion(self, values: pd.Series, label: str,
                          trials: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A proportion with its trials (glm's ``weights=``) as ``(successes, trials)``.

        Examples
        --------
        >>> FAMILY.encode_proportion(pd.Series([0.5, 0.25]), "p", np.array([2.0, 4.0]))
        (array([1., 1.]), array([2., 4.]))
        """
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            return self.encode_response(values, label) * trials, trials
        y = values.to_numpy(dtype=float)
        bad = (y < 0) | (y > 1)
        if bad.any():
            raise DataError(
                f"The response '{label}' has {int(bad.sum())} values outside [0, 1] (first: "
                f"{float(y[bad][0])!r}); with weights= (the trials) the binomial response is the "
                "proportion of successes. For counts write cbind(successes, failures).")
        return y * trials, trials

    def encode_counts(self, successes: np.ndarray, failures: np.ndarray,
                      label: str) -> tuple[np.ndarray, np.ndarray]:
        """``cbind(successes, failures)`` as ``(successes, trials)``.

        Examples
        --------
        >>> FAMILY.encode_counts(np.array([1.0, 0.0]), np.array([2.0, 3.0]), "cbind(s, f)")
        (array([1., 0.]), array([3., 3.]))
        """
        for what, v in (("successes", successes), ("failures", failures)):
            bad = (v < 0) | ~np.isfinite(v)
            if bad.any():
                raise DataError(
                    f"The response {label} has {int(bad.sum())} negative {what} (first: "
                    f"{float(v[bad][0])!r}); counts of successes and failures must be >= 0.")
        return successes.astype(float), (successes + failures).astype(float)

    def intercept_location(self, y: np.ndarray, trials: np.ndarray | None = None) -> float:
        """0 on the link scale (a probability of one half for logit and probit)."""
        return 0.0

    def loglik(self, y: np.ndarray, eta: np.ndarray, dispersion: np.ndarray | None = None,
               trials: np.ndarray | None = None,
               weights: np.ndarray | None = None) -> np.ndarray:
        """``log C(n, y) + y log p + (n - y) log(1 - p)``, from ``eta`` stably."""
        lp, lq = log_p_and_q(self.link.name, eta)
        if trials is None:
            return np.where(y == 1, lp, lq)
        n = trials
        const = special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)
        # 0 * log(0) is 0: a row with no failures (or no successes) at p = 1 (or 0)
        return const + np.where(y > 0, y * lp, 0.0) + np.where(n - y > 0, (n - y) * lq, 0.0)

    def draw(self, rng: np.random.Generator, mean: np.ndarray,
             dispersion: np.ndarray | None = None, trials: np.ndarray | None = None,
             weights: np.ndarray | None = None) -> np.ndarray:
        """Successes out of ``trials`` (one each by default) with probability ``mean``.

        Examples
        --------
        >>> FAMILY.draw(np.random.default_rng(0), np.array([[0.0, 1.0]]))
        array([[0., 1.]])
        """
        if trials is None:
            return (rng.random(mean.shape) < mean).astype(float)
        return rng.binomial(trials.astype(np.int64), np.clip(mean, 0.0, 1.0)).astype(float)

    def observe(self, name: str, eta: Any, observed: np.ndarray, dims: str,
                dispersion: Any = None, trials: np.ndarray | None = None,
                weights: np.ndarray | None = None) -> Any:
        """``pm.Bernoulli`` (no trials) or ``pm.Binomial``, on the logit scale for the logit link."""
        import pymc as pm

        p = {"logit_p": eta} if self.link.name == "logit" else {"p": self.inverse_link_tensor(eta)}
        if trials is None:
            return pm.Bernoulli(name, **p, observed=observed, dims=dims)
        return pm.Binomial(name, n=trials, **p, observed=observed, dims=dims)

    def latent_variance(self, dispersion: np.ndarray | None) -> np.ndarray | float | None:
        """``pi^2 / 3`` (logit: the standard logistic's variance), 1 (probit); None for cloglog."""
        return {"logit": np.pi**2 / 3, "probit": 1.0}.get(self.link.name)

    def glm_response(self, y: np.ndarray, trials: np.ndarray | None,
                     weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The proportion of successes and the trials (R's binomial glm's ``y`` and ``weights``)."""
        if trials is None:
            return np.asarray(y, dtype=float), np.ones_like(y, dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            prop = np.where(trials > 0, y / trials, 0.0)
        return prop, np.asarray(trials, dtype=float)

    def variance(self, mu: np.ndarray, dispersion: float | None = None) -> np.ndarray:
        """``mu (1 - mu)``."""
        return mu * (1 - mu)

    def deviance_residuals(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray,
                           dispersion: float | None = None) -> np.ndarray:
        """``2 wt (y log(y / mu) + (1 - y) log((1 - y) / (1 - mu)))``, with 0 log 0 = 0."""
        return 2 * wt * (special.xlogy(y, y) - special.xlogy(y, mu)
                         + special.xlogy(1 - y, 1 - y) - special.xlogy(1 - y, 1 - mu))

    def aic(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray, deviance: float,
            dispersion: float | None = None) -> float:
        """``-2 sum log dbinom(round(m y), round(m), mu)``, ``m`` the trials, as R's (and lme4's)."""
        from scipy.stats import binom

        m = np.round(wt)
        k = np.round(wt * y)
        ll = np.where(m > 0, binom.logpmf(k, m, mu), 0.0)
        return float(-2 * ll.sum())

    def mu_start(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """``(wt y + 1/2) / (wt + 1)``, as R's ``binomial()$initialize``."""
        return (wt * y + 0.5) / (wt + 1)

    def cdf(self, y: np.ndarray, mean: np.ndarray, dispersion: np.ndarray | float | None = None,
            trials: np.ndarray | None = None) -> np.ndarray:
        """The binomial CDF of the successes, out of ``trials`` (one each by default)."""
        from scipy import stats

        n = np.ones_like(mean) if trials is None else trials
        return stats.binom.cdf(y, n, mean)


FAMILY = Binomial()
