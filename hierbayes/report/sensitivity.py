"""Prior and likelihood sensitivity by power-scaling, as R's priorsense (Kallioinen et al. 2023).

Power-scaling raises the prior (or the likelihood) to a power ``alpha`` near 1,
``p(theta | y) ∝ p(theta)^alpha p(y | theta)``, and asks how much each
parameter's posterior moves. No refit is needed: the draws are importance-
weighted by ``p(theta)^(alpha - 1)`` (``(alpha - 1) * lprior`` on the log
scale; the likelihood's likewise), the weights Pareto-smoothed (PSIS). The
sensitivity of a parameter is the cumulative Jensen-Shannon distance between
its base and its weighted posterior, at ``alpha = 0.99`` and ``1.01``, summed
and divided by ``2 log2(1.01)`` (priorsense's ``powerscale_sensitivity`` with
``div_measure = "cjs_dist"``).

* ``lprior`` (:func:`log_prior_draws`) is brms's: the log densities of the
  declared priors (fixed effects, the centred intercept, group SDs, LKJ
  correlations, sigma or shape, the residual structure's parameters), not the
  ``N(0, sd)`` density of the group effects themselves. Each prior's density
  is that of the parameter as declared, without the sampler's Jacobians; LKJ's
  is that of the correlation matrix (brms's of its Cholesky factor: equal for two terms).
* The log-likelihood (:func:`log_lik_draws`) is the joint one, given the group
  effects: ``fit.idata.log_likelihood`` summed over rows; with serially
  correlated errors, where that group holds each row given all others for
  PSIS-LOO, the joint density of the whitened rows.

Examples
--------
>>> table = prior_sensitivity(fit)
>>> table["variable"].tolist()[:3]
['(Intercept)', 'Days', 'sd_(Intercept)|Subject']
>>> print(table.header)
Sensitivity based on cjs_dist
Prior selection: all priors
Likelihood selection: all data

The examples use ``fit``, the sleepstudy fit of :mod:`hierbayes.report.bayes`'s
examples (``Reaction ~ Days + (Days | Subject)``, 2 chains x 500 draws, seed 1; the
doctests get it from ``conftest.py``, fitted once).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.bayes.posterior import Posterior, linear_predictor
from hierbayes.bayes.priors import CLASSES, Prior, PriorEntry, PriorTable
from hierbayes.errors import ConvergenceWarning, SettingsError
from hierbayes.freq.params import varcomp_names
from hierbayes.spec.naming import correlation_matrix, correlation_pairs

DIV_MEASURE = "cjs_dist"
CONFLICT = "potential prior-data conflict"
STRONG_PRIOR = "potential strong prior / weak likelihood"


def _check_fit(fit: Any) -> None:
    """Refuse anything but a Bayesian fit whose priors the prior table describes in full."""
    model = getattr(fit, "model", None)
    if not isinstance(getattr(fit, "posterior", None), Posterior) or \
            not isinstance(getattr(model, "priors", None), PriorTable):
        raise SettingsError(
            f"Prior sensitivity needs a Bayesian fit (hb.Model(...).fit()), not a "
            f"{type(fit).__name__}: a REML, ML or glmer fit has no prior to power-scale.")
    info = getattr(fit, "info", None)
    if getattr(info, "pymc_changed", False):
        raise SettingsError(
            "This fit sampled a pm.Model that was extended or changed (model.pymc_model): its "
            "priors are no longer those of model.priors, which prior sensitivity evaluates. "
            "Compute it on a fit of the model as hierbayes built it.")


# ---- the log prior of each draw -------------------------------------------------------------

def _lkj_log_norm(eta: float, n: int) -> float:
    """Log normalising constant of LKJ(eta) on n x n correlation matrices (Lewandowski et al.
    2009, eq. 16)."""
    from scipy.special import betaln

    total = 0.0
    for k in range(1, n):
        b = eta + (n - k - 1) / 2.0
        total += (2 * eta - 2 + n - k) * (n - k) * math.log(2.0) + (n - k) * betaln(b, b)
    return -total


def prior_logpdf(prior: Prior, x: np.ndarray) -> np.ndarray:
    """The log density of ``prior`` at ``x``, elementwise (``flat`` gives 0).

    ``x`` holds values of the parameter as declared; for ``lkj`` it holds
    correlation matrices ``(..., n, n)`` and the result their LKJ log density.

    Examples
    --------
    >>> round(float(prior_logpdf(Prior.parse("half_normal(2)"), np.array(1.0))), 4)
    -1.0439
    >>> round(float(prior_logpdf(Prior.parse("lkj(1)"), np.eye(2))), 4)  # uniform on (-1, 1)
    -0.6931
    """
    from scipy import stats

    x = np.asarray(x, dtype=float)
    p = prior.params
    d = prior.dist
    if d == "flat":
        return np.zeros_like(x)
    if d == "lkj":
        n = x.shape[-1]
        _, logdet = np.linalg.slogdet(x)
        return _lkj_log_norm(p["eta"], n) + (p["eta"] - 1.0) * logdet
    log2 = math.log(2.0)
    table = {
        "normal": lambda: stats.norm.logpdf(x, p["mu"], p["sigma"]),
        "student_t": lambda: stats.t.logpdf(x, p["nu"], p["mu"], p["sigma"]),
        "cauchy": lambda: stats.cauchy.logpdf(x, p["alpha"], p["beta"]),
        "half_normal": lambda: stats.halfnorm.logpdf(x, scale=p["sigma"]),
        "half_student_t": lambda: np.where(x >= 0, log2 + stats.t.logpdf(x, p["nu"], 0, p["sigma"]),
                                           -np.inf),
        "half_cauchy": lambda: stats.halfcauchy.logpdf(x, scale=p["beta"]),
        "exponential": lambda: stats.expon.logpdf(x, scale=1.0 / p["lam"]),
        "gamma": lambda: stats.gamma.logpdf(x, p["alpha"], scale=1.0 / p["beta"]),
        "inv_gamma": lambda: stats.invgamma.logpdf(x, p["alpha"], scale=p["beta"]),
        "lognormal": lambda: stats.lognorm.logpdf(x, p["sigma"], scale=math.exp(p["mu"])),
        "uniform": lambda: stats.uniform.logpdf(x, p["lower"], p["upper"] - p["lower"]),
    }
    return np.asarray(table[d](), dtype=float)


def _entry_values(entry: PriorEntry, fit: Any) -> np.ndarray | None:
    """The (chain, draw, ...) draws of the parameter an entry's prior is on, None if none is."""
    post, design = fit.posterior, fit.design
    cls = entry.cls

    def need(name: str) -> np.ndarray:
        if name not in post:
            raise SettingsError(f"The fit's draws hold no '{name}', which the prior on class "
                                f"'{cls}' is on; refit the model to compute prior sensitivity.")
        return np.asarray(post[name], dtype=float)

    if cls == "Intercept":
        if "Intercept" in post:
            return need("Intercept")
        # the prior is on the intercept at the centred columns: fixef's plus the slopes at the means
        names = design.fixef_names
        fixef = need("fixef")
        slopes = [j for j, n in enumerate(names) if n != "(Intercept)"]
        means = design.X[:, slopes].mean(axis=0)
        return fixef[..., names.index("(Intercept)")] + fixef[..., slopes] @ means
    if cls == "b":
        return need("fixef")[..., design.fixef_names.index(entry.coef)]
    if cls in ("sigma", "shape"):
        return need(cls)
    if cls == "b_sigma":
        return need("b_sigma")[..., list(design.residual.variance.names).index(entry.coef)]
    if cls == "ar":
        return need("phi")
    blk = design.block(entry.group)
    g = blk.group
    if cls == "sd":
        if blk.term.structure == "ar1":  # one SD for every term, under the first term's prior
            if entry.coef != blk.terms[0]:
                return None
            return need(f"sdar_{g}") if f"sdar_{g}" in post else need(f"sd_{g}")[..., 0]
        return need(f"sd_{g}")[..., blk.terms.index(entry.coef)]
    # cls == "cor"
    if blk.lkj:
        return correlation_matrix(need(f"cor_{g}"), blk.n_terms)
    return need(f"rho_{g}") if f"rho_{g}" in post else need(f"cor_{g}")[..., 0]


def _selected_entries(fit: Any, prior_selection: Any) -> list[PriorEntry]:
    entries = list(fit.model.priors.entries)
    if prior_selection is None:
        return entries
    chosen = [prior_selection] if isinstance(prior_selection, str) else prior_selection
    if not isinstance(chosen, list | tuple) or not chosen or \
            not all(isinstance(c, str) for c in chosen):
        raise SettingsError(f"prior_selection must be None (all priors) or a list of prior "
                            f"classes such as ['b'] or ['b', 'sd'], not {prior_selection!r}.")
    present = list(dict.fromkeys(e.cls for e in entries))
    for c in chosen:
        if c not in CLASSES:
            raise SettingsError(f"prior_selection names an unknown prior class '{c}'. Classes "
                                f"are {', '.join(CLASSES)}; this model has {', '.join(present)}.")
        if c not in present:
            raise SettingsError(f"prior_selection names the class '{c}', which this model has "
                                f"no prior of; its classes are {', '.join(present)}.")
    return [e for e in entries if e.cls in chosen]


def log_prior_draws(fit: Any, prior_selection: list[str] | None = None) -> np.ndarray:
    """brms's ``lprior`` of each draw, ``(chains, draws)``: the sum of the declared priors' log
    densities at the draw (the group effects' own ``N(0, sd)`` density is not in it).

    ``prior_selection`` keeps the priors of some classes (``["b"]``, ``["sd", "cor"]``).

    Examples
    --------
    >>> log_prior_draws(fit).shape
    (2, 500)
    """
    _check_fit(fit)
    post = fit.posterior
    total = np.zeros((post.n_chains, post.n_draws))
    for entry in _selected_entries(fit, prior_selection):
        values = _entry_values(entry, fit)
        if values is not None:
            total += prior_logpdf(entry.prior, values)
    return total


# ---- the log-likelihood of each draw --------------------------------------------------------

def log_lik_draws(fit: Any) -> np.ndarray:
    """The joint log-likelihood of the data under each draw, ``(chains, draws)``, given the
    group effects (brms's ``log_lik`` summed over rows).

    Examples
    --------
    >>> log_lik_draws(fit).shape
    (2, 500)
    """
    _check_fit(fit)
    design = fit.design
    correlation = getattr(design.residual, "correlation", None)
    if correlation is None:
        ll = fit.idata.log_likelihood[fit.model.observed_name]
        return ll.sum(dim=[d for d in ll.dims if d not in ("chain", "draw")]).to_numpy()
    # the idata holds each row given all the others (what PSIS-LOO needs); power-scaling needs
    # the joint density: each row given the one before it in its series
    post = fit.posterior
    lead = (post.n_chains, post.n_draws)
    S = lead[0] * lead[1]
    eta = linear_predictor(design, post).reshape(S, -1)
    res = design.residual
    gamma = np.asarray(post["b_sigma"]).reshape(S, -1) if "b_sigma" in post else None
    sd = res.draw_sd(np.asarray(post["sigma"]).reshape(S), gamma)
    a = (design.y - eta) / sd
    r = correlation.r(np.asarray(post["phi"]).reshape(S))
    s = np.sqrt(1.0 - r**2)
    u = (a - r * a[:, correlation.prev]) / s  # a first row has r = 0: the row it reads is ignored
    ll = -0.5 * np.log(2 * np.pi) - np.log(sd) - np.log(s) - 0.5 * u**2
    return ll.sum(axis=1).reshape(lead)


# ---- weights and distances ------------------------------------------------------------------

def powerscale_log_weights(log_component: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Pareto-smoothed, normalised log weights of power-scaling a component by ``alpha``.

    The raw log weights are ``(alpha - 1) * log_component`` (priorsense's
    ``scaled_log_ratio``), smoothed by PSIS (ArviZ's ``psislw``, relative
    efficiency 1). Returns the log weights (one per draw, flattened) and the
    Pareto k of their tail (``-inf`` where the component is constant, so the
    weights are equal).

    Examples
    --------
    >>> lw, k = powerscale_log_weights(np.zeros(100), 1.01)
    >>> bool(np.allclose(np.exp(lw), 0.01)), k
    (True, -inf)
    """
    import arviz as az

    comp = np.ravel(np.asarray(log_component, dtype=float))
    if not np.all(np.isfinite(comp)):
        raise SettingsError("The log prior or log-likelihood is not finite at some draws: a "
                            "draw lies outside a prior's support. Check the priors in force.")
    log_ratio = (alpha - 1.0) * comp
    if np.ptp(log_ratio) == 0:
        return np.full(comp.size, -math.log(comp.size)), -math.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a high k is reported by the caller, with advice
        lw, k = az.psislw(log_ratio - log_ratio.max(), reff=1.0)
    return np.asarray(lw, dtype=float), float(np.asarray(k))


def _cjs(x: np.ndarray, wp: np.ndarray, wq: np.ndarray) -> float:
    order = np.argsort(x, kind="stable")
    width = np.diff(x[order])
    P = np.cumsum(wp[order])[:-1]
    Q = np.cumsum(wq[order])[:-1]
    p_int, q_int = float(width @ P), float(width @ Q)
    bound = p_int + q_int
    if bound <= 0:
        return 0.0  # every draw equal: nothing to move
    with np.errstate(divide="ignore", invalid="ignore"):
        mid = np.log2(0.5 * P + 0.5 * Q)
        pq = np.nansum(width * P * (np.log2(P) - mid)) + 0.5 / math.log(2) * (q_int - p_int)
        qp = np.nansum(width * Q * (np.log2(Q) - mid)) + 0.5 / math.log(2) * (p_int - q_int)
    return math.sqrt(max((pq + qp) / bound, 0.0))


def cjs_dist(x: np.ndarray, weights: np.ndarray, base_weights: np.ndarray | None = None) -> float:
    """The cumulative Jensen-Shannon distance between the weighted and the base ECDF of ``x``.

    As priorsense's ``cjs_dist`` for one set of draws under two weightings:
    the divergence of the two step ECDFs, both ways, normalised by the sum of
    their integrals, square-rooted; the larger of that for ``x`` and ``-x``
    (unsigned). ``base_weights`` default to equal ones; weights need not be
    normalised.

    Examples
    --------
    >>> x = np.linspace(0, 1, 5)
    >>> cjs_dist(x, np.ones(5))
    0.0
    >>> round(cjs_dist(x, np.array([1.0, 1, 1, 1, 2])), 4)
    0.0903
    """
    x = np.ravel(np.asarray(x, dtype=float))
    wq = np.ravel(np.asarray(weights, dtype=float))
    wp = np.ones_like(x) if base_weights is None else np.ravel(np.asarray(base_weights, dtype=float))
    if not (x.size == wq.size == wp.size) or x.size < 2:
        raise SettingsError("cjs_dist needs at least two draws and one weight per draw.")
    wp, wq = wp / wp.sum(), wq / wq.sum()
    return max(_cjs(x, wp, wq), _cjs(-x, wp, wq))


# ---- the parameters and the table ------------------------------------------------------------

def sensitivity_variables(fit: Any) -> dict[str, np.ndarray]:
    """Each parameter's ``(chain, draw)`` draws under the tables' names.

    Fixed effects, then per block in lme4's order ``sd_<term>|<group>`` and
    ``cor_<later term>.<earlier term>|<group>`` (one SD for an ``ar1()`` term,
    one correlation for ``cs()`` and ``ar1()``, none for ``diag()``), then
    ``sigma`` or ``shape``, then the residual structure's ``b_sigma[<coef>]``
    and ``phi``.
    """
    design, post = fit.design, fit.posterior
    out: dict[str, np.ndarray] = {}
    if "fixef" in post:
        for i, n in enumerate(design.fixef_names):
            out[n] = np.asarray(post["fixef"][:, :, i])
    names = iter(varcomp_names(design, sigma=False))
    for blk in design.blocks:
        kind, K = blk.term.structure, blk.n_terms
        free = blk.lkj or (kind in ("cs", "ar1") and K > 1)  # diag() has no correlations
        sd, cor = post[f"sd_{blk.group}"], post[f"cor_{blk.group}"] if free else None
        pairs = correlation_pairs(K)
        for j in range(K):
            for i in range(j, K):
                name = next(names)
                if i == j and (kind != "ar1" or i == 0):
                    out[name] = np.asarray(sd[:, :, i])
                elif i != j and free and (blk.lkj or (i, j) == (1, 0)):
                    out[name] = np.asarray(cor[:, :, pairs.index((i, j))])
    disp = design.family.dispersion
    if disp is not None and disp in post:
        out[disp] = np.asarray(post[disp])
    variance = getattr(design.residual, "variance", None)
    if variance is not None and "b_sigma" in post:
        for i, n in enumerate(variance.names):
            out[f"b_sigma[{n}]"] = np.asarray(post["b_sigma"][:, :, i])
    if "phi" in post:
        out["phi"] = np.asarray(post["phi"])
    return out


def _chosen_variables(fit: Any, variables: Any) -> dict[str, np.ndarray]:
    every = sensitivity_variables(fit)
    if variables is None:
        return every
    chosen = [variables] if isinstance(variables, str) else variables
    if not isinstance(chosen, list | tuple) or not chosen:
        raise SettingsError(f"variables must be None (all) or a list of names, not {variables!r}.")
    unknown = [v for v in chosen if v not in every]
    if unknown:
        raise SettingsError(f"Unknown variables {unknown}; the fit's are {list(every)}.")
    return {v: every[v] for v in chosen}


def _check_number(name: str, value: Any, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating) \
            or not low < value < high:
        where = f"above {low:g}" if high == math.inf else f"between {low:g} and {high:g} (exclusive)"
        raise SettingsError(f"{name} must be a number {where}, not {value!r}.")
    return float(value)


def _k_threshold(S: int) -> float:
    """priorsense's Pareto k above which importance sampling is unreliable for S draws."""
    return min(1.0 - 1.0 / math.log10(S), 0.7)


class SensitivityTable(pd.DataFrame):
    """The sensitivity of each parameter, a DataFrame that prints with priorsense's header.

    Columns ``variable``, ``prior``, ``likelihood``, ``diagnosis``; ``attrs``
    holds the settings, the Pareto k of each component's weights
    (``pareto_k``: ``{"prior": (k at lower alpha, k at upper alpha), ...}``)
    and the k above which importance sampling is unreliable (``k_threshold``).
    """

    @property
    def _constructor(self):
        return pd.DataFrame  # a slice is a plain frame: the header describes the whole table

    @property
    def header(self) -> str:
        sel = self.attrs.get("prior_selection")
        return (f"Sensitivity based on {self.attrs.get('div_measure', DIV_MEASURE)}\n"
                f"Prior selection: {'all priors' if not sel else ', '.join(sel)}\n"
                "Likelihood selection: all data")

    def notes(self) -> list[str]:
        """Warnings about the importance sampling, one line per component with a high k."""
        out = []
        thr = self.attrs.get("k_threshold", 0.7)
        for comp, ks in self.attrs.get("pareto_k", {}).items():
            k = max(ks)
            if k > thr:
                out.append(f"Pareto k of the {comp} power-scaling weights is {k:.2f} (above "
                           f"{thr:.2f}): the {comp} sensitivities may be unreliable; more draws "
                           "help.")
        return out

    def __repr__(self) -> str:
        body = pd.DataFrame(self).to_string(index=False, float_format=lambda v: f"{v:.3f}")
        return "\n".join([self.header, "", body, *self.notes()])

    __str__ = __repr__

    def _repr_html_(self) -> str:
        return f"<pre>{self.header}</pre>" + pd.DataFrame(self).to_html(index=False)


def _diagnose(prior: float, likelihood: float, threshold: float) -> str:
    # priorsense's rule: the prior at or above the threshold with the likelihood as well is a
    # conflict; above it with the likelihood below, a prior that dominates
    if prior >= threshold and likelihood >= threshold:
        return CONFLICT
    if prior > threshold and likelihood < threshold:
        return STRONG_PRIOR
    return "-"


def prior_sensitivity(fit: Any, variables: list[str] | None = None,
                      prior_selection: list[str] | None = None, threshold: float = 0.05,
                      lower_alpha: float = 0.99, upper_alpha: float = 1.01) -> SensitivityTable:
    """Prior and likelihood sensitivity of each parameter, as priorsense's ``powerscale_sensitivity``.

    Parameters
    ----------
    fit
        A Bayesian fit (:class:`hierbayes.BayesFit`).
    variables
        Names to report (``"Days"``, ``"sd_(Intercept)|Subject"``); all
        parameters by default (:func:`sensitivity_variables`).
    prior_selection
        Prior classes to power-scale (``["b"]``, ``["sd", "cor"]``); all by default.
    threshold
        Sensitivity at or above which a parameter is flagged (priorsense's 0.05).
    lower_alpha, upper_alpha
        The powers either side of 1 (priorsense's 0.99 and 1.01).

    Returns
    -------
    SensitivityTable
        ``variable``, ``prior``, ``likelihood`` (the sensitivities) and
        ``diagnosis``: ``"potential prior-data conflict"`` (both at or above
        ``threshold``), ``"potential strong prior / weak likelihood"`` (the
        prior above, the likelihood below) or ``"-"``. A
        :class:`hierbayes.ConvergenceWarning` says when the weights' Pareto k
        is too high for the estimates to be trusted.

    Examples
    --------
    >>> t = prior_sensitivity(fit, variables=["Days", "sigma"])
    >>> t.columns.tolist(), t["diagnosis"].tolist()
    (['variable', 'prior', 'likelihood', 'diagnosis'], ['-', '-'])
    """
    _check_fit(fit)
    _check_number("threshold", threshold, 0.0)
    lower = _check_number("lower_alpha", lower_alpha, 0.0, 1.0)
    upper = _check_number("upper_alpha", upper_alpha, 1.0)
    entries = _selected_entries(fit, prior_selection)  # checked before any computation
    chosen = _chosen_variables(fit, variables)
    components = {"prior": log_prior_draws(fit, prior_selection), "likelihood": log_lik_draws(fit)}
    S = fit.posterior.n_chains * fit.posterior.n_draws
    values = {name: np.ravel(v) for name, v in chosen.items()}
    sens: dict[str, dict[str, float]] = {}
    pareto_k: dict[str, tuple[float, float]] = {}
    for comp, log_comp in components.items():
        (lw_lo, k_lo), (lw_hi, k_hi) = (powerscale_log_weights(log_comp, a) for a in (lower, upper))
        pareto_k[comp] = (k_lo, k_hi)
        # priorsense's powerscale_divergence_gradients: both distances over 2 log2(upper_alpha)
        sens[comp] = {name: (cjs_dist(x, np.exp(lw_lo)) + cjs_dist(x, np.exp(lw_hi)))
                      / (2.0 * math.log2(upper)) for name, x in values.items()}
    rows = [{"variable": name, "prior": sens["prior"][name], "likelihood": sens["likelihood"][name],
             "diagnosis": _diagnose(sens["prior"][name], sens["likelihood"][name], threshold)}
            for name in values]
    table = SensitivityTable(rows, columns=["variable", "prior", "likelihood", "diagnosis"])
    table.attrs.update({
        "div_measure": DIV_MEASURE, "threshold": float(threshold), "lower_alpha": lower,
        "upper_alpha": upper, "prior_selection": sorted({e.cls for e in entries},
                                                       key=CLASSES.index) if prior_selection else None,
        "pareto_k": pareto_k, "k_threshold": _k_threshold(S),
    })
    for note in table.notes():
        warnings.warn(note, ConvergenceWarning, stacklevel=2)
    return table


def sensitivity_column(fit: Any, **kwargs: Any) -> dict[str, str]:
    """Each parameter's diagnosis (``"-"`` when not flagged), for a column of :func:`hierbayes.compare`.

    Keywords go to :func:`prior_sensitivity`.

    Examples
    --------
    >>> sensitivity_column(fit)["Days"]
    '-'
    """
    table = prior_sensitivity(fit, **kwargs)
    return dict(zip(table["variable"], table["diagnosis"], strict=True))


# ---- the plot ------------------------------------------------------------------------------

def _weighted_density(x: np.ndarray, w: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A Gaussian kernel density of weighted draws (Silverman's bandwidth at the weights' ESS)."""
    w = w / w.sum()
    sd = math.sqrt(max(float(w @ (x - w @ x) ** 2), 1e-300))
    h = 1.06 * sd * float(w @ w) ** 0.2  # the ESS is 1 / sum(w^2)
    z = (grid[:, None] - x[None, :]) / h
    return (np.exp(-0.5 * z**2) @ w) / (h * math.sqrt(2 * math.pi))


def plot_prior_sensitivity(fit: Any, variables: list[str] | None = None,
                           alphas: tuple[float, float] = (0.8, 1.25),
                           prior_selection: list[str] | None = None, max_params: int = 8):
    """Each parameter's posterior density as the prior and the likelihood are power-scaled.

    As priorsense's ``powerscale_plot_dens``: one row per parameter, the
    prior scaled on the left and the likelihood on the right, the base
    posterior (alpha 1) with the importance-weighted ones at each of
    ``alphas``. A curve is dashed where its weights' Pareto k is too high to
    trust. Returns the matplotlib Figure.

    Examples
    --------
    >>> fig = plot_prior_sensitivity(fit, variables=["Days"])
    >>> len(fig.axes)
    2
    """
    from hierbayes.report.plots import panel_figure

    _check_fit(fit)
    if not isinstance(alphas, list | tuple) or not alphas:
        raise SettingsError(f"alphas must be a list of powers such as (0.8, 1.25), not {alphas!r}.")
    powers = [_check_number("each of alphas", a, 0.0) for a in alphas]
    _selected_entries(fit, prior_selection)  # checked before any computation
    chosen = list(_chosen_variables(fit, variables).items())[:max_params]
    components = {"prior": log_prior_draws(fit, prior_selection), "likelihood": log_lik_draws(fit)}
    S = fit.posterior.n_chains * fit.posterior.n_draws
    k_thr = _k_threshold(S)
    weights: dict[str, list[tuple[float, np.ndarray, float]]] = {}
    for comp, log_comp in components.items():
        weights[comp] = [(1.0, np.full(S, 1.0 / S), -math.inf)]
        for a in sorted(powers):
            lw, k = powerscale_log_weights(log_comp, a)
            weights[comp].append((a, np.exp(lw), k))
    fig, axes = panel_figure(2 * len(chosen), ncols=2, panel=(4.0, 2.2))
    for row, (name, draws) in enumerate(chosen):
        x = np.ravel(draws)
        pad = 0.1 * (x.max() - x.min() or 1.0)
        grid = np.linspace(x.min() - pad, x.max() + pad, 200)
        for col, comp in enumerate(("prior", "likelihood")):
            ax = axes[2 * row + col]
            for i, (a, w, k) in enumerate(sorted(weights[comp], key=lambda t: t[0])):
                color = "0.2" if a == 1.0 else f"C{i}"
                label = f"alpha = {a:g}" + (f" (k = {k:.2f})" if k > k_thr else "")
                ax.plot(grid, _weighted_density(x, w, grid), color=color,
                        ls="--" if k > k_thr else "-", lw=1.2, label=label)
            ax.set_title(f"{name}: {comp} power-scaling", fontsize=9)
            ax.set_xlabel(name)
            ax.set_ylabel("density")
            ax.legend(fontsize=7)
    fig.suptitle("Power-scaling sensitivity")
    return fig
