"""Plots of the sampler's output: traces, prior against posterior, the prior predictive check.

Bayesian fits and models only; figures are built without pyplot, as in
:mod:`hierbayes.report.plots`, whose panel helper they share.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hierbayes.bayes.posterior import Posterior
from hierbayes.report.plots import GREY, PARTIAL, panel_figure


def plot_trace(fit: Any, max_params: int = 12):
    """Per headline parameter, each chain's density and its trace (as ArviZ's ``plot_trace``)."""
    draws = fit.headline_draws()
    names = list(draws)[:max_params]
    fig, axes = panel_figure(2 * len(names), ncols=2, panel=(4.2, 1.7))
    for k, name in enumerate(names):
        dens, trace = axes[2 * k], axes[2 * k + 1]
        values = np.asarray(draws[name])
        edges = np.histogram_bin_edges(values, bins=40)
        for c in range(values.shape[0]):
            color = f"C{c % 10}"
            dens.hist(values[c], bins=edges, density=True, histtype="step", color=color)
            trace.plot(values[c], color=color, lw=0.5, alpha=0.8)
        dens.set_title(name, fontsize=9)
        dens.set_xlabel("value")
        dens.set_ylabel("density")
        trace.set_title(f"{name}: trace", fontsize=9)
        trace.set_xlabel("draw")
        trace.set_ylabel("value")
    fig.suptitle(f"Traces, {values.shape[0]} chains")
    return fig


def plot_prior_posterior(fit: Any, draws: int = 2000, seed: int | None = 1, max_params: int = 12):
    """Prior and posterior density of each headline parameter: what the data taught.

    The prior draws come from the model's PyMC graph
    (:meth:`hierbayes.Model.prior_predictive`). The axis spans the posterior
    and the central 98% of the prior.
    """
    prior_idata = fit.model.prior_predictive(draws=draws, seed=seed)
    prior = Posterior.from_idata(_as_posterior(prior_idata))
    prior_draws = fit.headline_draws(prior)
    post_draws = fit.headline_draws()
    names = list(post_draws)[:max_params]
    fig, axes = panel_figure(len(names), ncols=3, panel=(3.4, 2.6))
    for ax, name in zip(axes, names, strict=True):
        post = np.ravel(post_draws[name])
        pri = np.ravel(prior_draws[name])
        lo = min(np.quantile(pri, 0.01), post.min())
        hi = max(np.quantile(pri, 0.99), post.max())
        edges = np.linspace(lo, hi, 60)
        ax.hist(pri[(pri >= lo) & (pri <= hi)], bins=edges, density=True, histtype="step",
                color=GREY, lw=1.5, label="prior")
        ax.hist(post, bins=edges, density=True, color=PARTIAL, alpha=0.6, label="posterior")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("value")
        ax.set_ylabel("density")
    axes[0].legend(fontsize=8)
    fig.suptitle("Prior and posterior")
    return fig


def _as_posterior(idata):
    """An InferenceData whose posterior group is ``idata``'s prior (for :class:`Posterior`)."""
    import arviz as az

    return az.InferenceData(posterior=idata.prior)


def plot_prior_predictive(model: Any, draws: int = 500, seed: int | None = None, idata: Any = None,
                          num_pp_samples: int = 100, kind: str = "kde", **kwargs: Any):
    """ArviZ's ``plot_ppc`` of a model's prior predictive against the data; returns the Figure.

    ``idata`` from ``model.prior_predictive`` is drawn when not given
    (:meth:`hierbayes.Model.plot_prior_predictive`).
    """
    import arviz as az

    idata = model.prior_predictive(draws, seed) if idata is None else idata
    kwargs.setdefault("observed", True)  # ArviZ leaves the data out of prior checks
    ax = az.plot_ppc(idata, group="prior", num_pp_samples=min(num_pp_samples, draws),
                     random_seed=seed, kind=kind, **kwargs)
    ax = np.ravel(ax)[0]
    ax.set_title(f"Prior predictive check: {model.formula.formula}")
    ax.set_ylabel("density" if kind == "kde" else "")
    ax.set_xlabel(model.design.response_label)
    from hierbayes.report.plots import detached

    return detached(ax.figure, own="ax" not in kwargs)
