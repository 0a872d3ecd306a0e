"""What a REML or ML fit reports, as lme4's merMod does.

Examples
--------
>>> import hierbayes as hb
>>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> fit.varcorr()[["grp", "var1", "var2"]].values.tolist()[:2]
[['Subject', '(Intercept)', None], ['Subject', 'Days', None]]
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError, check_count
from hierbayes.freq.mermod import MerMod
from hierbayes.linalg.linpred import linear_predictor
from hierbayes.report.format import Summary, check_intercept_only
from hierbayes.report.groupplots import GroupPlots
from hierbayes.report.merfit import (
    MerReport,
    aictab_lines,
    criterion_line,
    fixef_block,
    resid_lines,
    title_lines,
)
from hierbayes.report.structures import (
    normalized,
    residual_params,
    sd_ratios,
    structure_sections,
    structured,
    structures_in,
)
from hierbayes.report.tools import FitTools

if TYPE_CHECKING:
    from hierbayes.report.sims import Sims


@dataclass
class LmerFit(MerMod, MerReport, GroupPlots, FitTools):
    """A linear mixed model fitted by REML or ML: the report over the engine's record.

    The fields and the model-level quantities (``theta``, ``sigma``,
    ``deviance``, ``loglik``, ``aic``, ``bic``, ``is_singular()``,
    ``covariance()``) are :class:`hierbayes.freq.mermod.MerMod`'s; the
    accessors it shares with glmer fits (``ranef``, ``coef``, ``varcorr``,
    ``vcov``, ``ngrps``) are :class:`hierbayes.report.merfit.MerReport`'s; this
    class adds the summaries, tests, predictions and plots.

    Attributes
    ----------
    design
        The evaluated formula.
    deviance_function
        The objective (:class:`hierbayes.freq.deviance.Deviance`), callable on theta.
    opt
        The optimisation record (:class:`hierbayes.freq.optimize.OptSummary`), with
        lme4's convergence check: ``opt.max_grad``, ``opt.gradient``,
        ``opt.hessian``, ``opt.messages`` and ``opt.converged``.
    """

    @classmethod
    def from_mermod(cls, fit: MerMod) -> LmerFit:
        """The report over an engine fit (it shares the fit's arrays, copying none)."""
        return cls(**{f.name: getattr(fit, f.name) for f in fields(MerMod)})

    def fixef(self, ddf: str | None = None) -> pd.DataFrame:
        """Fixed effects with standard errors and t values; with ``ddf``, df and p-values too.

        Parameters
        ----------
        ddf
            None (lme4: no p-values), ``"satterthwaite"`` or ``"kenward-roger"``
            (lmerTest's df and ``Pr(>|t|)``; Kenward-Roger also adjusts the
            SEs), or ``"z"`` (t read as a standard normal). See :mod:`hierbayes.freq.ddf`.

        Examples
        --------
        >>> import hierbayes as hb
        >>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
        >>> fit.fixef(ddf="satterthwaite")["df"].round(2).tolist()
        [17.0, 17.0]
        """
        if ddf is not None:
            from hierbayes.freq.ddf import fixef_tests

            return fixef_tests(self, ddf)
        est = self.estimates
        se = np.sqrt(np.diag(est.vcov_beta))
        return pd.DataFrame({"Estimate": est.beta, "Std. Error": se, "t value": est.beta / se},
                            index=self.design.fixef_names)

    def confint(self, method: str = "profile", level: float = 0.95, n_sims: int = 500,
                seed: int | None = None, progressbar: bool = True,
                n_jobs: int | None = 1, executor: Any = None, client: Any = None) -> pd.DataFrame:
        """Confidence intervals for every parameter, as lme4's ``confint.merMod``.

        Parameters
        ----------
        method
            ``"profile"`` (likelihood profile, lme4's default), ``"wald"``
            (fixed effects only; variance components NA) or ``"boot"``
            (parametric bootstrap, percentile intervals).
        level
            Confidence level.
        progressbar
            For ``"profile"`` and ``"boot"``: the one progress bar of sampling and of every
            many-fit workload.
        n_sims, seed, n_jobs
            For ``"boot"``: replicates, seed (the same seed gives the same
            intervals, whatever ``n_jobs``), worker processes.
        executor, client
            For ``"boot"``: where the refits run (any ``concurrent.futures.Executor``, or a
            Dask ``distributed.Client``; :func:`hierbayes.execution.run_tasks`).

        Returns
        -------
        pandas.DataFrame
            Rows named as lme4's ``oldNames = FALSE`` (``sd_(Intercept)|Subject``,
            ``cor_Days.(Intercept)|Subject``, ``sigma``, fixed effects); columns
            ``conf_low`` and ``conf_high`` (R's ``2.5 %`` and ``97.5 %``), the level
            in ``.attrs["conf_level"]``. A bootstrap's replicates are in
            ``.attrs["replicates"]``.

        Examples
        --------
        >>> import hierbayes as hb
        >>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
        >>> fit.confint(method="wald").loc["Days"].round(3).tolist()
        [7.438, 13.497]
        """
        from hierbayes.freq.confint import confint

        what = structures_in(self.design)
        if what and str(method).lower() in ("profile", "wald"):
            raise DataError(f"confint(method={method!r}) is not supported yet for a model with {what}: "
                            "its intervals are for lme4's parameters. Use method='boot'.")
        return confint(self, method, level, n_sims, seed, progressbar, n_jobs, executor, client)

    def icc(self) -> pd.Series:
        """Intraclass correlations of a random-intercept model.

        For each random-intercept term, its variance over the total variance
        (every term's plus the residual's): the correlation of two
        observations that share that group and no other. Models with random
        slopes have no single ICC (it depends on the covariates); use
        :meth:`marginal_cov` there.

        Examples
        --------
        >>> import hierbayes as hb
        >>> fit = hb.lmer("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
        >>> fit.icc().round(4).to_dict()
        {'Subject': 0.5893}
        """
        d = self.design
        check_intercept_only(d, "Use marginal_cov(group=..., level=...) for the implied "
                                "covariance of a group's rows.")
        if structures_in(d):
            raise DataError(f"A model with {structures_in(d)} has no single ICC (the residual "
                            "variance or correlation varies by row); use marginal_cov(group=..., "
                            "level=...).")
        variances = [float(S[0, 0]) for S in self.covariance()]
        total = sum(variances) + self.sigma**2
        return pd.Series({b.group: v / total for b, v in zip(d.blocks, variances, strict=True)},
                         name="ICC")

    def marginal_cov(self, group: str | None = None, level: Any = None) -> pd.DataFrame:
        """The marginal covariance of one group's observations: sigma^2 (Z Lambda Lambda' Z' + I).

        Every random-effect term contributes where two of the rows share its
        level (so crossed terms add in too); the residual adds sigma^2 on the
        diagonal, or its structure's ``sigma^2 D C D`` under ``sigma=`` and
        ``correlation=`` (nlme's ``getVarCov(type = "marginal")``).

        Parameters
        ----------
        group
            A grouping factor (the first one when None).
        level
            Its level, by label (``308`` or ``"308"``).

        Returns
        -------
        pandas.DataFrame
            Rows and columns labelled by the data's row labels.

        Examples
        --------
        >>> import hierbayes as hb
        >>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
        >>> fit.marginal_cov("Subject", 308).shape
        (10, 10)
        """
        from hierbayes.spec.modelframe import level_label

        d = self.design
        factors = [b for b in d.blocks if group in (None, b.factor, b.group)]
        if not factors:
            raise DataError(f"No grouping factor '{group}'. Factors: {list(d.ngrps())}")
        blk = factors[0]
        if level is None:
            raise DataError(f"Name a level of '{blk.factor}', e.g. level={blk.levels[0]!r}.")
        label = level_label(level)
        if label not in blk.levels:
            raise DataError(f"'{blk.factor}' has no level {level!r}; its levels include "
                            f"{blk.levels[:10]}.")
        rows = np.flatnonzero(blk.index == blk.levels.index(label))
        res = structured(d)
        # the residual part: sigma^2 I, or sigma^2 Lambda under sigma= and correlation=
        V = self.sigma**2 * (np.eye(len(rows)) if res is None else res.matrix(self.rho, rows))
        for b, S in zip(d.blocks, self.covariance(), strict=True):
            Z, idx = b.Z[rows], b.index[rows]
            V += (idx[:, None] == idx[None, :]) * (Z @ S @ Z.T)
        labels = d.rows[rows]
        return pd.DataFrame(V, index=labels, columns=labels)

    def sim(self, n_sims: int = 1000, seed: int | None = None) -> Sims:
        """arm::sim: draws of sigma, fixed effects and group effects with theta held fixed.

        sigma^2 is drawn from its scaled inverse chi-square (``pwrss / chi2(n - p)``),
        then fixed and group effects jointly from their Gaussian given sigma and
        theta. Because the variance components stay at their estimates, these
        intervals are narrower than a full posterior's (compare
        :meth:`hierbayes.Model.fit`), most where there are few groups.

        Examples
        --------
        >>> import hierbayes as hb
        >>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
        >>> fit.sim(n_sims=100, seed=1).fixef.shape
        (100, 2)
        """
        from hierbayes.freq.sim import simulate_arm
        from hierbayes.report.sims import Sims

        check_count("n_sims", n_sims)
        rng = np.random.default_rng(seed)
        sigma, beta, bs = simulate_arm(self.deviance_function, self.factor, self.estimates,
                                       int(n_sims), rng)
        return Sims(self.design, sigma, beta, bs)

    def fitted(self) -> np.ndarray:
        """Fitted values with group effects: X beta + Z b (+ the offset)."""
        d = self.design
        eta = linear_predictor(d.X, self.estimates.beta,
                               [(blk.Z, blk.index, b) for blk, b in zip(d.blocks, self.estimates.b,
                                                                         strict=True)])
        return eta if d.offset is None else eta + d.offset

    def residuals(self) -> np.ndarray:
        """Response minus fitted values."""
        return self.design.y - self.fitted()

    def pearson_residuals(self) -> np.ndarray:
        """Residuals times the square roots of the prior weights (lme4's ``pearson``; the
        residuals themselves without weights), or over each row's SD ratio under ``sigma=``."""
        w = self.design.weights
        if structured(self.design) is not None:
            return self.residuals() / sd_ratios(self.design, self.rho)
        return self.residuals() if w is None else np.sqrt(w) * self.residuals()

    @property
    def rho(self) -> np.ndarray:
        """The residual structure's parameters, unconstrained (empty without ``sigma=`` or ``correlation=``)."""
        return self.deviance_function.rho(self.theta)

    def residual_params(self) -> pd.Series:
        """The residual structure's parameters as nlme reports them.

        varIdent's SD ratios keyed by level (the reference level's 1 first),
        or the log-linear coefficients of another ``sigma=`` formula, then
        ``phi`` of ``correlation=``. Empty without either.

        Examples
        --------
        >>> import hierbayes as hb
        >>> gpa = hb.datasets.load("gpa")
        >>> fit = hb.lmer("gpa ~ occasion + (1 | student)", gpa, sigma="~ factor(occasion)")
        >>> fit.residual_params().round(3).tolist()
        [1.0, 0.826, 0.627, 0.431, 0.348, 0.432]
        """
        res = structured(self.design)
        return (pd.Series(dtype=float, name="estimate") if res is None
                else residual_params(res, self.rho))

    def normalized_residuals(self) -> np.ndarray:
        """nlme's ``resid(type = "normalized")``: the residuals whitened by the structure, over sigma.

        Without a residual structure, the Pearson residuals over sigma.
        """
        res = structured(self.design)
        if res is None:
            return self.pearson_residuals() / self.sigma
        return normalized(res, self.rho, self.residuals(), self.sigma)

    def predict(self, newdata: pd.DataFrame | None = None, re_form: Any = None,
                allow_new_levels: bool = True, offset: Any = None) -> pd.Series:
        """Predictions as lme4's ``predict.merMod``: X beta plus the group effects kept.

        Parameters
        ----------
        newdata
            Rows to predict (the fitted rows when None). Contrasts and
            transforms are those of the fit.
        re_form
            None (all group effects), ``"~0"`` (lme4's ``re.form = NA``:
            population level), or a formula naming some of the model's bars.
        allow_new_levels
            A level the fit never saw gets the population prediction (its
            group effect is 0, as lme4 with ``allow.new.levels = TRUE``);
            False raises instead.
        offset
            The new rows' offset beyond the formula's ``offset()`` terms (a
            column of ``newdata`` or one value per row), required when the
            model was fitted with ``offset=`` (lme4 silently leaves it out).

        Returns
        -------
        pandas.Series
            Indexed as ``newdata`` (or the fitted rows).

        Examples
        --------
        >>> import hierbayes as hb
        >>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
        >>> new = pd.DataFrame({"Days": [0, 0], "Subject": ["308", "new"]})
        >>> fit.predict(new).round(2).tolist()
        [253.66, 251.41]
        """
        from hierbayes.report.predict import eta_point, prediction_rows

        rows = prediction_rows(self.design, newdata, re_form, allow_new_levels, offset)
        eta = eta_point(rows, self.estimates.beta, self.estimates.b)
        return pd.Series(eta, index=rows.labels, name="fit")

    def predict_interval(self, newdata: pd.DataFrame | None = None, n_sims: int = 1000,
                         seed: int | None = None, prob: float = 0.95, re_form: Any = None,
                         include_resid: bool = True, stat: str = "median",
                         offset: Any = None) -> pd.DataFrame:
        """Simulated prediction intervals, as merTools' ``predictInterval``.

        Draws sigma, fixed effects and the fitted levels' group effects from
        :meth:`sim` (arm::sim, theta held at its estimate), gives each new
        level group effects from N(0, the fitted covariance), and adds a
        residual N(0, sigma^2) draw unless ``include_resid`` is False.
        merTools' default level is 0.8; ``prob`` here is 0.95 as elsewhere.
        ``offset`` is as in :meth:`predict`.

        Returns
        -------
        pandas.DataFrame
            Columns Estimate (the draws' median, or mean with ``stat="mean"``;
            merTools' ``fit``), conf_low and conf_high (merTools' ``lwr`` and
            ``upr``), indexed as ``newdata``.

        Examples
        --------
        >>> import hierbayes as hb
        >>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
        >>> pi = fit.predict_interval(pd.DataFrame({"Days": [5], "Subject": ["308"]}), seed=1)
        >>> list(pi.columns)
        ['Estimate', 'conf_low', 'conf_high']
        """
        from hierbayes.report.predict import eta_draws, new_level_effects, prediction_rows

        if stat not in ("median", "mean"):
            raise ValueError(f"stat must be 'median' or 'mean', not {stat!r}.")
        if not 0 < prob < 1:
            raise ValueError(f"prob must lie between 0 and 1, not {prob!r}.")
        rows = prediction_rows(self.design, newdata, re_form, allow_new_levels=True, offset=offset)
        rng = np.random.default_rng(seed)
        sims = self.sim(n_sims, seed=rng)
        b_new = []
        for levels, chol in zip(rows.new_levels, self.covariance_chol(), strict=True):
            b_new.append(new_level_effects(rng, len(levels), np.broadcast_to(chol, (n_sims, *chol.shape)))
                         if levels else None)
        draws = eta_draws(rows, sims.fixef.to_numpy(), list(sims.ranef.values()), b_new)
        if include_resid:
            # each row's own SD under sigma= (its marginal SD: correlation does not change it)
            ratio = sd_ratios(self.design, self.rho, None if newdata is None else newdata)
            draws = draws + rng.standard_normal(draws.shape) * sims.sigma[:, None] * ratio
        centre = np.median(draws, axis=0) if stat == "median" else draws.mean(axis=0)
        lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        out = pd.DataFrame({"Estimate": centre, "conf_low": lo, "conf_high": hi}, index=rows.labels)
        out.attrs["conf_level"] = float(prob)
        return out

    def simulate(self, n: int = 1, seed: int | None = None, use_u: bool = False) -> pd.DataFrame:
        """New responses from the fitted model, as lme4's ``simulate.merMod``.

        Fixed effects and variance components stay at their estimates. With
        ``use_u=False`` (lme4's default, ``re.form = NA``) every level gets new
        group effects from N(0, the fitted covariance); with ``use_u=True`` the
        fitted conditional modes are kept. Then a residual N(0, sigma^2) draw
        is added.

        Returns
        -------
        pandas.DataFrame
            Columns ``sim_1`` ... ``sim_n``, one row per fitted observation.

        Examples
        --------
        >>> import hierbayes as hb
        >>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
        >>> fit.simulate(3, seed=1).shape
        (180, 3)
        """
        from hierbayes.freq.sim import simulate_responses

        check_count("n", n)
        y = simulate_responses(self, n, np.random.default_rng(seed), use_u)
        return pd.DataFrame(y.T, index=self.design.rows, columns=[f"sim_{i + 1}" for i in range(n)])

    def refit(self, y: Any) -> LmerFit:
        """The same model fitted to a new response vector, as lme4's ``refit``.

        The optimiser starts at this fit's theta. ``y`` has one value per
        fitted row (e.g. a column of :meth:`simulate`).

        Examples
        --------
        >>> import hierbayes as hb
        >>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
        >>> again = fit.refit(fit.simulate(1, seed=2)["sim_1"])
        >>> again.nobs
        180
        """
        from hierbayes.freq.fit import refit

        # stacklevel 3: convergence warnings point at the caller of this method
        return LmerFit.from_mermod(refit(self, y, stacklevel=3))

    def summary(self, ddf: str | None = None) -> Summary:
        """lmer's summary: criterion, scaled residuals, random and fixed effects, their correlation.

        ``ddf`` adds df and p-values to the fixed effects as lmerTest's summary
        does (``"satterthwaite"``, ``"kenward-roger"``, or ``"z"``); see :meth:`fixef`.
        """
        from hierbayes.freq.ddf import method_key

        d = self.design
        method = "REML" if self.reml else "maximum likelihood"
        tests = {"satterthwaite": "Satterthwaite's method", "kenward-roger": "Kenward-Roger's method",
                 "z": "the standard normal (t as z)"}
        # lme4's ML title ends in a space ("maximum likelihood  ['lmerMod']"); kept, so the
        # printout reads as R's
        title = f"Linear mixed model fit by {method}" + ("" if self.reml else " ")
        if ddf is not None:
            title += f". t-tests use {tests[method_key(ddf)]}"
        header = [
            *title_lines(title, "lmerModLmerTest" if ddf is not None else "lmerMod"),
            f"Formula: {d.formula.formula}",
            f"   Data: {d.data_name}",
            "",
        ]
        if self.reml:
            header.append(criterion_line(self.deviance))
        else:
            header += aictab_lines(self.aic, self.bic, self.loglik, self.deviance,
                                   self.nobs - self.n_params)
        resid = resid_lines(self.pearson_residuals() / self.sigma)
        random_block, table = self.random_effects_section()
        fx = self.fixef(ddf)
        sections = [("\nScaled residuals:", resid), ("\nRandom effects:", random_block),
                    ("\nFixed effects:", fixef_block(fx))]
        corr = self.fixef_correlation_section()
        if corr is not None:
            sections.append(corr)
        res = structured(d)
        if res is not None:
            sections[2:2] = structure_sections(res, self.residual_params())
        footer = []
        if self.is_singular():
            footer.append("boundary (singular) fit: see help('isSingular')")
        # lme4's summary ends with the convergence checks' messages too (fit.opt has the numbers)
        footer += list(self.opt.messages)
        return Summary(header, sections, table, fx, footer)

    # ----- plots beyond GroupPlots (hierbayes.report.plots); each returns a matplotlib Figure -----

    def plot_effect(self, x: str, prob: float = 0.95, n_sims: int = 1000, seed: int | None = 1,
                    data: bool = True, interval: str = "sim"):
        """The population regression curve of ``x`` with an ``arm::sim`` band (``interval="boot"``:
        a parametric bootstrap band, :func:`hierbayes.report.plots.plot_effect`)."""
        from hierbayes.report.plots import plot_effect

        return plot_effect(self, x, prob, n_sims, seed, data, interval)

    def __repr__(self) -> str:
        return str(self.summary())

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()
