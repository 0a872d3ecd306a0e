"""A Bayesian fit's checks against its data: posterior predictive replicates, p-values, plots, PSIS-LOO.

:class:`PosteriorChecks` is a part of :class:`hierbayes.BayesFit`; its methods
read the fit's ``posterior``, ``idata``, ``design`` and ``model``.

Examples
--------
>>> fit.ppc_pvalues(seed=1)["statistic"].unique().tolist()
['mean', 'sd', 'min', 'max']
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import HierbayesWarning


def warn_pareto_k(elpd: Any, label: str, rows: Any, stacklevel: int = 3) -> int:
    """Warn when PSIS-LOO's Pareto k is too high for some observations; return how many.

    ``stacklevel`` counts as :func:`warnings.warn` does from here: 3 is the caller's caller.
    """
    k = np.asarray(elpd.pareto_k)
    threshold = float(getattr(elpd, "good_k", 0.7))
    bad = int(np.sum(k > threshold))
    if bad:
        worst = [rows[i] for i in np.argsort(-k)[:5] if k[i] > threshold]
        warnings.warn(
            f"{label}: Pareto k above {threshold:.2f} for {bad} of {k.size} observations "
            f"(worst rows {worst}, k up to {k.max():.2f}), so PSIS-LOO is unreliable "
            "there. Those observations sway their groups' effects strongly; compare with "
            "k-fold cross-validation (fit.kfold(K=10, group=...) refits without each fold of "
            "groups; hb.kfold_compare ranks models) or a model with a heavier-tailed response "
            "before trusting the ranking.",
            HierbayesWarning, stacklevel=stacklevel)
    return bad


class PosteriorChecks:
    """``posterior_predictive``, ``ppc_pvalues``, ``ppc_plot`` and ``loo`` of a Bayesian fit."""

    def posterior_predictive(self, seed: int | None = None):
        """Draw a replicate of the data for every posterior draw; add them to ``idata``.

        The draws use the fitted group effects (brms's ``posterior_predict``)
        and land in ``idata.posterior_predictive`` under the observed
        variable's name, ready for ArviZ's ``plot_ppc``.

        Returns
        -------
        arviz.InferenceData
            ``self.idata``, now with a ``posterior_predictive`` group.

        Examples
        --------
        >>> fit.posterior_predictive(seed=1).posterior_predictive["Reaction"].shape
        (2, 500, 180)
        """
        import xarray as xr

        from hierbayes.report.predict import posterior_draws

        idata = self.idata
        y_rep, _ = posterior_draws(self, kind="response", seed=seed)
        obs = idata.observed_data[self.model.observed_name].coords["obs"].to_numpy()
        shape = (self.posterior.n_chains, self.posterior.n_draws, -1)
        group = xr.Dataset(
            {self.model.observed_name: (("chain", "draw", "obs"), y_rep.reshape(shape))},
            coords={"chain": idata.posterior["chain"].to_numpy(),
                    "draw": idata.posterior["draw"].to_numpy(), "obs": obs})
        if "posterior_predictive" in idata.groups():
            delattr(idata, "posterior_predictive")
        idata.add_groups({"posterior_predictive": group})
        return idata

    def _y_rep(self, seed: int | None) -> np.ndarray:
        idata = self.idata
        if "posterior_predictive" not in idata.groups() or seed is not None:
            self.posterior_predictive(seed)
        values = idata.posterior_predictive[self.model.observed_name].to_numpy()
        return values.reshape(-1, values.shape[-1])

    def ppc_pvalues(self, group: str | bool | None = None,
                    statistics: tuple[str, ...] = ("mean", "sd", "min", "max"),
                    seed: int | None = None) -> pd.DataFrame:
        """Posterior predictive p-values: ``P(T(y_rep) >= T(y))`` for each statistic.

        Computed over the whole data and within each level of each grouping
        factor (``group`` names one; False for the whole data only). Values
        near 0 or 1 say the model does not reproduce that feature of the
        data. Replicates come from ``idata.posterior_predictive`` (drawn with
        ``seed`` when absent or when a seed is given).

        Returns
        -------
        pandas.DataFrame
            Columns statistic, group (``"(all)"`` for the whole data), level,
            observed, p.

        Examples
        --------
        >>> p = fit.ppc_pvalues(seed=1)
        >>> p[p["group"] == "(all)"]["statistic"].tolist()
        ['mean', 'sd', 'min', 'max']
        >>> bool(p["p"].between(0, 1).all())
        True
        """
        from hierbayes.report.predict import ppc_pvalues

        d = self.design
        groups: dict[str, tuple[np.ndarray, list[str]]] = {}
        if group is not False:
            for b in d.blocks:
                if group in (None, True, b.factor, b.group):
                    groups.setdefault(b.factor, (b.index, b.levels))
            if isinstance(group, str) and not groups:
                raise KeyError(f"No grouping factor '{group}'. Factors: {list(d.ngrps())}")
        return ppc_pvalues(d.y, self._y_rep(seed), groups, tuple(statistics))

    def ppc_plot(self, num_pp_samples: int = 100, seed: int | None = None, kind: str = "kde",
                 **kwargs: Any):
        """ArviZ's posterior predictive plot (``plot_ppc``) of the response; returns the Figure.

        ``kind`` is ``"kde"``, ``"cumulative"`` or ``"scatter"``; other
        arguments go to :func:`arviz.plot_ppc`.

        Examples
        --------
        >>> fig = fit.ppc_plot(num_pp_samples=50, seed=1)
        >>> fig.axes[0].get_xlabel()
        'Reaction'
        """
        import arviz as az

        self._y_rep(seed)
        ax = az.plot_ppc(self.idata, num_pp_samples=num_pp_samples, random_seed=seed, kind=kind,
                         **kwargs)
        ax = np.ravel(ax)[0]
        ax.set_title(f"Posterior predictive check: {self.design.formula.formula}")
        ax.set_xlabel(self.design.response_label)
        ax.set_ylabel("density" if kind == "kde" else ("cumulative probability" if kind == "cumulative"
                                                       else ""))
        from hierbayes.report.plots import detached

        return detached(ax.figure, own="ax" not in kwargs)

    def loo(self, warn: bool = True, label: str | None = None, stacklevel: int = 2):
        """PSIS-LOO (ArviZ's ``loo``, pointwise) on the conditional log-likelihood.

        Warns (:class:`HierbayesWarning`) when Pareto k is above ArviZ's
        threshold for some observations, naming how many, which rows, and
        what to do; ``label`` names the fit in that message (its formula by
        default), and ``stacklevel`` says whose line it points at (2: this call's).

        Examples
        --------
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")  # a few observations have high Pareto k
        ...     elpd = fit.loo()
        >>> len(elpd.pareto_k)
        180
        """
        import arviz as az

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            elpd = az.loo(self.idata, pointwise=True)
        if warn:
            warn_pareto_k(elpd, label or self.design.formula.formula, self.design.rows,
                          stacklevel=stacklevel + 1)
        return elpd
