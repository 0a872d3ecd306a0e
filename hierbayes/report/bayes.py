"""What a Bayesian fit reports: lmer's summary, fixef, ranef, coef and varcorr; predictions.

Checks against the data (posterior predictive, PSIS-LOO) are in
:mod:`hierbayes.report.checks`, the plots in :mod:`hierbayes.report.plots`.

Point estimates are posterior means (``point="median"`` for medians);
intervals are equal-tailed credible intervals (95% unless ``prob`` says
otherwise). Columns: ``Estimate``, ``Est.Error`` (posterior SD, as brms names
them), and the interval ``conf_low``, ``conf_high``, its level in
``attrs["conf_level"]`` (the vocabulary of every table: docs/report.md).

Examples
--------
>>> import hierbayes as hb
>>> model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> fit = model.fit(draws=500, tune=500, chains=2, seed=1, progressbar=False, check=False)
>>> fit.fixef().index.tolist()
['(Intercept)', 'Days']

The methods' examples use this ``fit`` (the doctests get it from ``conftest.py``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hierbayes.bayes.idata import build_idata
from hierbayes.bayes.posterior import Posterior
from hierbayes.errors import ConvergenceWarning, SettingsError, check_count
from hierbayes.report.bayes_summary import (
    bayes_summary,
    check_point,
    check_prob,
    describe,
    described,
)
from hierbayes.report.checks import PosteriorChecks
from hierbayes.report.diagnostics import Diagnostics, compute_diagnostics, convergence_messages
from hierbayes.report.format import Summary, check_intercept_only, coefficients
from hierbayes.report.groupplots import GroupPlots
from hierbayes.report.structures import (
    bayes_params,
    normalized,
    posterior_rho,
    structure_draws,
    structured,
)
from hierbayes.report.tools import BayesTools, FitTools
from hierbayes.spec.naming import cor_name, correlation_position, sd_name, varcomp_labels

if TYPE_CHECKING:
    from hierbayes.bayes.model import BayesModel
    from hierbayes.bayes.posterior import SamplingInfo
    from hierbayes.report.save import SavedFit


class BayesFit(GroupPlots, PosteriorChecks, FitTools, BayesTools):
    """A posterior from :meth:`hierbayes.Model.fit`.

    Attributes
    ----------
    model : Model
        The model that was fitted (a :class:`hierbayes.Model`).
    posterior : Posterior
        The draws as NumPy arrays, by variable name.
    idata : arviz.InferenceData
        Posterior, sample stats, observed data and pointwise log-likelihood;
        built on first access.
    info : SamplingInfo
        Sampler, settings, seed and timings.
    """

    def __init__(self, model: BayesModel, posterior: Posterior, info: SamplingInfo,
                 idata: Any = None) -> None:
        self.model = model
        self.posterior = posterior
        self.info = info
        self._sampler_idata = idata
        self._idata = None
        self._diagnostics: Diagnostics | None = None

    @classmethod
    def from_saved(cls, saved: SavedFit) -> BayesFit:
        """The fit that :func:`hierbayes.report.save.read_fit` read back: its InferenceData as saved."""
        fit = cls(saved.model, saved.posterior, saved.info, saved.idata)
        fit._idata = saved.idata  # complete as saved (log-likelihood, replicates): not rebuilt
        return fit

    @property
    def idata(self):
        """The ArviZ InferenceData (built on first access; ArviZ's import takes seconds)."""
        if self._idata is None:
            self._idata = build_idata(self.model, self.posterior, self.info, self._sampler_idata)
        return self._idata

    @property
    def design(self):
        return self.model.design

    def _flat(self, name: str) -> np.ndarray:
        """Draws of a posterior variable with chains and draws merged into the first axis."""
        values = self.posterior[name]
        return values.reshape(-1, *values.shape[2:])

    def cor_draws(self, group: str, term1: str, term2: str) -> np.ndarray:
        """Draws (chains merged) of the correlation of two terms of a block.

        ``idata.posterior["cor_<group>"]`` keeps one entry per pair of terms
        (dimension ``<group>__cor``, labels ``"<term2>:<term1>"``); this finds
        the pair by its terms, in either order.

        Examples
        --------
        >>> fit.cor_draws("Subject", "(Intercept)", "Days").shape
        (1000,)
        """
        b = self.design.block(group)
        if not b.correlated:
            raise KeyError(f"The block '{group}' has no correlations (one term or '||').")
        i, j = (b.terms.index(t) if t in b.terms else -1 for t in (term1, term2))
        if min(i, j) < 0 or i == j:
            raise KeyError(f"Name two different terms of '{group}': {b.terms}.")
        return self._flat(f"cor_{group}")[:, correlation_position(b.n_terms, i, j)]

    def headline_draws(self, post: Any = None) -> dict[str, np.ndarray]:
        """Each headline scalar's (chain, draw) draws, keyed by a readable name.

        The headline parameters are those the diagnostics and trace plots
        cover: fixed effects, SDs, correlations and the family's dispersion
        (``sigma``, ``shape``), named as every table names them (fixed effects
        by their names, ``sd_(Intercept)|Subject``,
        ``cor_Days.(Intercept)|Subject``, ``sigma``). ``post`` is another set
        of draws with the same variables (the prior's).

        Examples
        --------
        >>> list(fit.headline_draws())
        ['(Intercept)', 'Days', 'sd_(Intercept)|Subject', 'sd_Days|Subject', 'cor_Days.(Intercept)|Subject', 'sigma']
        """
        post = self.posterior if post is None else post
        out: dict[str, np.ndarray] = {}
        if "fixef" in post:
            for i, n in enumerate(self.design.fixef_names):
                out[n] = post["fixef"][:, :, i]
        label = varcomp_labels(self.design)
        for b in self.design.blocks:
            sd = post[f"sd_{b.group}"]
            kind, g = b.term.structure, label[b.group]
            for i, t in enumerate(b.terms):
                if kind != "ar1" or i == 0:  # ar1's SDs are one parameter
                    out[sd_name(t, g)] = sd[:, :, i]
            if kind in ("cs", "ar1") and b.n_terms > 1:  # one correlation parameter
                out[cor_name(b.terms[1], b.terms[0], g)] = post[f"cor_{b.group}"][:, :, 0]
            elif b.correlated and kind == "us":
                cor = post[f"cor_{b.group}"]
                for i in range(b.n_terms):
                    for j in range(i + 1, b.n_terms):
                        k = correlation_position(b.n_terms, i, j)
                        out[cor_name(b.terms[j], b.terms[i], g)] = cor[:, :, k]
        disp = self.design.family.dispersion
        if disp is not None and disp in post:
            out[disp] = post[disp]
        res = structured(self.design)
        if res is not None:
            out.update({f"residual[{k}]": v for k, v in structure_draws(res, post).items()})
        return out

    def residual_params(self, point: str = "mean") -> pd.Series:
        """The residual structure's parameters as nlme reports them, at their posterior mean.

        varIdent's SD ratios keyed by level (the reference level's 1 first),
        or the log-linear coefficients of another ``sigma=`` formula, then
        ``phi``; empty without ``sigma=`` or ``correlation=``.
        """
        res = structured(self.design)
        return pd.Series(dtype=float, name="estimate") if res is None else bayes_params(res, self.posterior, point)

    def normalized_residuals(self, point: str = "mean") -> np.ndarray:
        """nlme's normalised residuals at the posterior mean: ``y`` less the fitted values, whitened
        by the structure at the posterior mean of its parameters and over sigma's."""
        from hierbayes.report.fitted import fitted_mean

        res = structured(self.design)
        sigma = float(np.mean(self._flat("sigma")))
        e = self.design.y - fitted_mean(self)
        if res is None:
            return e / sigma
        return normalized(res, posterior_rho(res, self.posterior, point), e, sigma)

    def diagnostics(self) -> Diagnostics:
        """Divergences, tree depth, E-BFMI, R-hat and ESS over fixed effects, SDs, correlations and sigma.

        Printing it gives a short report with advice (:class:`hierbayes.report.diagnostics.Diagnostics`).
        """
        if self._diagnostics is None:
            self._diagnostics = compute_diagnostics(self.headline_draws(), self.posterior, self.info)
        return self._diagnostics

    def check_convergence(self, rhat: float = 1.01, ess: float = 400) -> list[str]:
        """Warn (one :class:`ConvergenceWarning` each) about divergences, saturated trees, low E-BFMI,
        high R-hat and low ESS.

        Returns the messages, empty when all is well.
        """
        messages = convergence_messages(self.diagnostics(), self.posterior.n_chains,
                                        self.posterior.n_draws, rhat, ess)
        for m in messages:
            warnings.warn(m, ConvergenceWarning, stacklevel=3)
        return messages

    def fixef(self, prob: float = 0.95, point: str = "mean") -> pd.DataFrame:
        """Fixed effects: Estimate, Est.Error and the credible interval, one row each."""
        draws = self._flat("fixef") if "fixef" in self.posterior else np.zeros((1, 0))
        rows = {n: describe(draws[:, i], prob, point) for i, n in enumerate(self.design.fixef_names)}
        return described(rows, prob)

    def ranef(self, prob: float = 0.95, point: str = "mean", group: str | None = None) -> pd.DataFrame:
        """Group effects of every level, as ``ranef(condVar = TRUE)`` in long form.

        Columns: group (the grouping factor), term, level, Estimate, Est.Error
        and the interval. ``group`` keeps one grouping factor.
        """
        rows = []
        for b in self.design.blocks:
            if group is not None and group not in (b.factor, b.group):
                continue
            r = self._flat(f"r_{b.group}")
            for j, t in enumerate(b.terms):
                for k, level in enumerate(b.levels):
                    rows.append({"group": b.factor, "term": t, "level": level,
                                 **describe(r[:, k, j], prob, point)})
        if group is not None and not rows:
            raise KeyError(f"No grouping factor '{group}'. Factors: {list(self.design.ngrps())}")
        out = pd.DataFrame(rows)
        out.attrs["conf_level"] = float(prob)
        return out

    def coef(self, prob: float = 0.95, point: str = "mean", group: str | None = None) -> pd.DataFrame:
        """Fixed plus group effects for every level, as lme4's ``coef``, in long form."""
        d = self.design
        post = self.posterior
        fixef = self._flat("fixef") if "fixef" in post else np.zeros((post.n_chains * post.n_draws, 0))
        ranef = [self._flat(f"r_{b.group}") for b in d.blocks]
        rows = []
        for factor, (terms, levels, draws) in coefficients(d, fixef, ranef).items():
            if group is not None and group != factor:
                continue
            for j, t in enumerate(terms):
                for k, level in enumerate(levels):
                    rows.append({"group": factor, "term": t, "level": level,
                                 **describe(draws[:, k, j], prob, point)})
        out = pd.DataFrame(rows)
        out.attrs["conf_level"] = float(prob)
        return out

    def varcorr(self, prob: float = 0.95, point: str = "mean") -> pd.DataFrame:
        """Variance components as ``as.data.frame(VarCorr(m))``, with posterior uncertainty.

        Columns grp, var1, var2, vcov (variance or covariance), sdcor (SD or
        correlation), then Est.Error and the interval of sdcor.
        """
        rows = []
        for grp, v1, v2 in self.design.varcorr_index():
            if grp == self.design.residual.group:
                sd = self._flat(self.design.residual.scale)
                vcov, sdcor = sd**2, sd
            else:
                b = self.design.block(grp)
                sds = self._flat(f"sd_{grp}")
                i = b.terms.index(v1)
                if v2 is None:
                    sdcor = sds[:, i]
                    vcov = sdcor**2
                else:
                    j = b.terms.index(v2)
                    sdcor = self.cor_draws(grp, v1, v2)
                    vcov = sdcor * sds[:, i] * sds[:, j]
            desc = describe(sdcor, prob, point)
            rows.append({"grp": grp, "var1": v1, "var2": v2,
                         "vcov": float(np.median(vcov) if point == "median" else np.mean(vcov)),
                         "sdcor": desc.pop("Estimate"), **desc})
        out = pd.DataFrame(rows)
        for col in ("var1", "var2"):  # keep None (R's NA), which pandas would turn into NaN
            out[col] = pd.Series([r[col] for r in rows], dtype=object)
        out.attrs["conf_level"] = float(prob)
        return out

    def summary(self, prob: float = 0.95, point: str = "mean") -> Summary:
        """lmer's summary with posterior estimates, credible intervals and diagnostics
        (:func:`hierbayes.report.bayes_summary.bayes_summary`)."""
        return bayes_summary(self, prob, point)

    def icc(self, prob: float = 0.95, point: str = "mean") -> pd.DataFrame:
        """The posterior of the intraclass correlation of each random-intercept term.

        Per draw, the term's variance over the total: every term's variance
        plus sigma^2 (gaussian) or pi^2 / 3, the logistic latent residual
        (bernoulli). Random-slope terms have no single ICC; see
        :meth:`hierbayes.LmerFit.marginal_cov` for the REML fit.

        Returns
        -------
        pandas.DataFrame
            One row per group: Estimate, Est.Error and the interval.

        Examples
        --------
        >>> import hierbayes as hb
        >>> m = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
        >>> m.fit(draws=500, tune=500, chains=2, seed=1, progressbar=False).icc().index.tolist()
        ['Subject']
        """
        from hierbayes.errors import DataError

        d = self.design
        check_intercept_only(d)
        fam = d.family
        residual = fam.latent_variance(self._flat(fam.dispersion) if fam.dispersion else None)
        if residual is None:
            raise DataError(f"An ICC for the {fam.name} family depends on the mean; it is not "
                            "computed.")
        variances = {b.group: self._flat(f"sd_{b.group}")[:, 0] ** 2 for b in d.blocks}
        total = sum(variances.values()) + residual
        rows = {g: describe(v / total, prob, point) for g, v in variances.items()}
        return described(rows, prob)

    def predict_draws(self, newdata: pd.DataFrame | None = None, re_form: Any = None,
                      kind: str = "mean", allow_new_levels: bool = True,
                      seed: int | None = None, offset: Any = None) -> np.ndarray:
        """Posterior draws of predictions, ``(chains * draws, rows)``, as brms's
        ``posterior_linpred`` / ``posterior_epred`` / ``posterior_predict``.

        Arguments as :meth:`predict`.

        Examples
        --------
        >>> draws = fit.predict_draws(pd.DataFrame({"Days": [9], "Subject": ["new"]}),
        ...                           kind="response", seed=1)
        >>> draws.shape  # chains * draws, rows
        (1000, 1)
        """
        from hierbayes.report.predict import posterior_draws

        return posterior_draws(self, newdata, re_form, kind, allow_new_levels, seed, offset)[0]

    def predict(self, newdata: pd.DataFrame | None = None, re_form: Any = None, kind: str = "mean",
                allow_new_levels: bool = True, prob: float = 0.95, seed: int | None = None,
                point: str = "mean", offset: Any = None) -> pd.DataFrame:
        """Posterior predictions with credible intervals, one row per row of ``newdata``.

        Parameters
        ----------
        newdata
            Rows to predict (the fitted rows when None); contrasts and
            transforms are the fit's.
        re_form
            None (all group effects), ``"~0"`` (population level, lme4's
            ``re.form = NA``), or a formula naming some of the model's bars.
        kind
            ``"mean"``: the posterior of the expected response (the linear
            predictor through the inverse link: a binomial's probability);
            ``"response"``: posterior predictive draws of new observations
            (adds sigma or the family's noise; a binomial's successes out of
            the rows' trials); ``"link"``: the linear predictor. Offsets are in
            all three.
        allow_new_levels
            A level the fit never saw gets group effects drawn from the
            fitted population distribution, per posterior draw (brms's
            ``sample_new_levels = "gaussian"``), so its interval is wider than
            a seen level's. False raises instead.
        prob
            Mass of the equal-tailed interval.
        seed
            Seed for new levels' effects and response draws.
        point
            ``"mean"`` or ``"median"`` for Estimate.
        offset
            The new rows' offset beyond the formula's ``offset()`` terms (which
            are evaluated on ``newdata``): a column of ``newdata`` or one value
            per row. Needed for a model fitted with ``offset=``.

        Returns
        -------
        pandas.DataFrame
            Estimate, Est.Error and the interval (``conf_low``, ``conf_high``),
            indexed as ``newdata``.

        Examples
        --------
        >>> import hierbayes as hb
        >>> fit = hb.Model("Reaction ~ Days + (Days | Subject)",
        ...                hb.datasets.load("sleepstudy")).fit(seed=1, progressbar=False)  # doctest: +SKIP
        >>> fit.predict(pd.DataFrame({"Days": [5, 5], "Subject": ["308", "new"]}))  # doctest: +SKIP
        """
        from hierbayes.report.predict import iter_posterior_draws, prediction_rows

        check_prob(prob)
        check_point(point)
        rows = prediction_rows(self.design, newdata, re_form, allow_new_levels, offset)
        out = np.empty((rows.n_rows, 4))
        for sl, draws in iter_posterior_draws(self, rows, kind, seed):
            q = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
            est = np.median(draws, axis=0) if point == "median" else draws.mean(axis=0)
            out[sl] = np.column_stack([est, draws.std(axis=0, ddof=1), q[0], q[1]])
        out = pd.DataFrame(out, index=rows.labels, columns=["Estimate", "Est.Error", "conf_low",
                                                             "conf_high"])
        out.attrs["conf_level"] = float(prob)
        return out

    def simulate(self, n: int = 1, seed: int | None = None) -> pd.DataFrame:
        """``n`` new response vectors, each from a different posterior draw.

        Each uses its draw's fixed and group effects and noise (brms's
        ``posterior_predict`` with ``ndraws = n``), as lme4's ``simulate``
        gives new responses from the fitted model.

        Returns
        -------
        pandas.DataFrame
            Columns ``sim_1`` ... ``sim_n``, one row per fitted observation.

        Examples
        --------
        >>> fit.simulate(10, seed=1).shape
        (180, 10)
        """
        from types import SimpleNamespace

        from hierbayes.report.predict import posterior_draws

        check_count("n", n)
        post = self.posterior
        S = post.n_chains * post.n_draws
        if n > S:
            raise SettingsError(f"n ({n}) is more than the {S} posterior draws; draw more, or "
                                f"ask for at most {S}.")
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(S, size=n, replace=False))
        # only the picked draws, as one chain, so a large data set is not predicted S times
        chosen = Posterior({k: self._flat(k)[pick][None] for k in post.variables}, post.dims,
                           post.coords, {})
        y, labels = posterior_draws(SimpleNamespace(design=self.design, posterior=chosen),
                                    kind="response", seed=rng)
        return pd.DataFrame(y.T, index=labels, columns=[f"sim_{i + 1}" for i in range(n)])

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fit to one netCDF file that :func:`hierbayes.load_fit` reads back.

        The file holds ``idata`` (every group, readable by ``arviz.from_netcdf``)
        and a ``hierbayes`` group with the data columns the formula uses, the
        formula, family, priors and sampler settings (:mod:`hierbayes.report.save`).
        It is written to a temporary file, read back and compared with this
        fit before it replaces ``path``.

        Examples
        --------
        >>> import hierbayes as hb, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "fit.nc"
        >>> _ = fit.save(path)
        >>> str(hb.load_fit(path).summary()) == str(fit.summary())
        True
        """
        from hierbayes.report.save import save_fit

        return save_fit(self, path)

    # ----- plots beyond GroupPlots (hierbayes.report.plots); each returns a matplotlib Figure -----

    def plot_effect(self, x: str, prob: float = 0.95, data: bool = True):
        """The population regression curve of ``x`` with its credible band."""
        from hierbayes.report.plots import plot_effect

        return plot_effect(self, x, prob, data=data)

    def plot_trace(self, max_params: int = 12):
        """Each chain's density and trace for the fixed effects, SDs, correlations and sigma."""
        from hierbayes.report.mcmcplots import plot_trace

        return plot_trace(self, max_params)

    def plot_prior_posterior(self, draws: int = 2000, seed: int | None = 1, max_params: int = 12):
        """Prior against posterior density for each headline parameter."""
        from hierbayes.report.mcmcplots import plot_prior_posterior

        return plot_prior_posterior(self, draws, seed, max_params)

    def __repr__(self) -> str:
        return str(self.summary())

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()
