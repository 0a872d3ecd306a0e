"""What a GLMM fit reports, as lme4's glmerMod does: glmer's summary, z tests, predictions, simulations.

Examples
--------
>>> import hierbayes as hb
>>> fit = hb.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
...                hb.datasets.load("cbpp"), family="binomial")
>>> fit.fixef().columns.tolist()
['Estimate', 'Std. Error', 'z value', 'Pr(>|z|)']
>>> round(fit.loglik, 2), round(fit.aic, 1)
(-92.03, 194.1)
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError, check_count
from hierbayes.freq.glmermod import GlmerMod
from hierbayes.report.format import Summary
from hierbayes.report.groupplots import GroupPlots
from hierbayes.report.merfit import (
    MerReport,
    aictab_lines,
    fixef_block,
    resid_lines,
    title_lines,
)
from hierbayes.report.tools import FitTools

#: R's family names, as glmer's summary prints them.
R_FAMILY = {"binomial": "binomial", "bernoulli": "binomial", "poisson": "poisson", "gamma": "Gamma"}
RESIDUAL_TYPES = ("deviance", "pearson", "response", "working")


class GlmerFit(GlmerMod, MerReport, GroupPlots, FitTools):
    """A generalised linear mixed model fitted by glmer's method: the report over the engine's record.

    The fields and model-level quantities (``theta``, ``sigma``, ``loglik``,
    ``aic``, ``bic``, ``deviance``, ``df_resid``, ``is_singular()``,
    ``covariance()``, ``opt``, ``opt_stage1``) are
    :class:`hierbayes.freq.glmermod.GlmerMod`'s; ``ranef``, ``coef``,
    ``varcorr``, ``vcov`` and ``ngrps`` are shared with lmer fits
    (:class:`hierbayes.report.merfit.MerReport`).
    """

    @classmethod
    def from_glmermod(cls, fit: GlmerMod) -> GlmerFit:
        """The report over an engine fit (it shares the fit's arrays, copying none)."""
        return cls(**{f.name: getattr(fit, f.name) for f in fields(GlmerMod)})

    def scale_row(self) -> bool:
        """A Gamma fit has glmer's scale, ``sigma``, as the ``Residual`` row of varcorr."""
        return self.design.family.name == "gamma"

    @property
    def statistic(self) -> str:
        """``"z value"``, or ``"t value"`` for a family with a scale (the Gamma), as lme4 names them."""
        return "t value" if self.scale_row() else "z value"

    def fixef(self) -> pd.DataFrame:
        """Fixed effects with standard errors, Wald z values and their two-sided p-values, as glmer's summary.

        Examples
        --------
        >>> import hierbayes as hb
        >>> fit = hb.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                hb.datasets.load("cbpp"), family="binomial")
        >>> fit.fixef()["z value"].round(2).tolist()
        [-6.05, -3.27, -3.49, -3.74]
        """
        from scipy.stats import norm

        est = self.estimates
        se = np.sqrt(np.diag(est.vcov_beta))
        z = est.beta / se
        return pd.DataFrame({"Estimate": est.beta, "Std. Error": se, self.statistic: z,
                             "Pr(>|z|)": 2 * norm.sf(np.abs(z))}, index=self.design.fixef_names)

    def fitted(self) -> np.ndarray:
        """Fitted means (the response scale, as lme4's ``fitted``): binomial proportions."""
        return self.estimates.mu.copy()

    def residuals(self, type: str = "deviance", scaled: bool = False) -> np.ndarray:
        """Residuals, as lme4's ``residuals``: deviance (default), Pearson, response or working.

        ``scaled`` divides by ``sigma`` (as the summary's scaled Pearson residuals).
        """
        if type not in RESIDUAL_TYPES:
            raise DataError(f"type must be one of {RESIDUAL_TYPES}, not {type!r}.")
        resp = self.deviance_function.response
        mu = self.estimates.mu
        if type == "deviance":
            d = np.sqrt(np.maximum(resp.dev_resid(mu), 0.0))
            r = np.where(resp.y > mu, d, -d)
        elif type == "pearson":
            r = self.estimates.pearson
        elif type == "response":
            r = resp.y - mu
        else:
            r = (resp.y - mu) / resp.family.link.mu_eta(self.estimates.eta)
        return r / self.sigma if scaled else r

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "link", re_form: Any = None,
                allow_new_levels: bool = True, offset: Any = None) -> pd.Series:
        """Predictions as lme4's ``predict.merMod``: on the link or response scale.

        Parameters
        ----------
        newdata
            Rows to predict (the fitted rows when None). The formula's
            ``offset()`` terms are evaluated on them.
        type
            ``"link"`` (the linear predictor) or ``"response"`` (the mean).
        re_form
            None (all group effects), ``"~0"`` (lme4's ``re.form = NA``) or a
            formula naming some of the model's bars.
        allow_new_levels
            A level the fit never saw gets no group effect (as lme4 with
            ``allow.new.levels = TRUE``); False raises instead.
        offset
            The new rows' offset beyond the formula's ``offset()`` terms (a
            column of ``newdata`` or one value per row), required when the
            model was fitted with ``offset=``. lme4 silently leaves such an
            offset out of new rows' predictions; here it must be given.

        Examples
        --------
        >>> import hierbayes as hb
        >>> df = hb.datasets.load("cbpp")
        >>> fit = hb.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", df,
        ...                family="binomial")
        >>> fit.predict(df.head(2), type="response", re_form="~0").round(4).tolist()
        [0.1981, 0.0839]
        """
        from hierbayes.report.predict import eta_point, prediction_rows

        if type not in ("link", "response"):
            raise DataError(f"type must be 'link' or 'response', not {type!r}.")
        d = self.design
        rows = prediction_rows(d, newdata, re_form, allow_new_levels, offset)
        eta = eta_point(rows, self.estimates.beta, self.estimates.b)
        values = eta if type == "link" else d.family.inverse_link(eta)
        return pd.Series(values, index=rows.labels, name="fit")

    def simulate(self, n: int = 1, seed: int | None = None, use_u: bool = False) -> pd.DataFrame:
        """New responses from the fitted model, as lme4's ``simulate.merMod``.

        Columns ``sim_1`` ... ``sim_n``, one row per fitted observation, as the
        design holds the response (binomial: successes out of the trials). See
        :func:`hierbayes.freq.glmersim.simulate_glmer_responses`.

        Examples
        --------
        >>> import hierbayes as hb
        >>> fit = hb.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                hb.datasets.load("cbpp"), family="binomial")
        >>> fit.simulate(2, seed=1).shape
        (56, 2)
        """
        from hierbayes.freq.glmersim import simulate_glmer_responses

        check_count("n", n)
        y = simulate_glmer_responses(self, n, np.random.default_rng(seed), use_u)
        return pd.DataFrame(y.T, index=self.design.rows, columns=[f"sim_{i + 1}" for i in range(n)])

    def refit(self, y: Any) -> GlmerFit:
        """The same model fitted to a new response (as the design holds it), as lme4's ``refit``."""
        from hierbayes.freq.glmer import refit

        return GlmerFit.from_glmermod(refit(self, y, stacklevel=3))

    def confint(self, method: str = "wald", level: float = 0.95, n_sims: int = 500,
                seed: int | None = None, progressbar: bool = True,
                n_jobs: int | None = 1, executor: Any = None, client: Any = None) -> pd.DataFrame:
        """Confidence intervals, as lme4's ``confint.merMod`` for a glmer fit.

        Parameters
        ----------
        method
            ``"wald"`` (fixed effects +- z SE; variance components NA, as
            lme4), ``"profile"`` (the Laplace deviance profiled) or ``"boot"``
            (parametric bootstrap, percentile intervals).
        level, n_sims, seed, progressbar, n_jobs, executor, client
            As :meth:`hierbayes.LmerFit.confint`.

        Examples
        --------
        >>> import hierbayes as hb
        >>> fit = hb.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                hb.datasets.load("cbpp"), family="binomial")
        >>> fit.confint().loc["period2"].round(3).tolist()
        [-1.586, -0.398]
        """
        from hierbayes.freq.confint import confint

        return confint(self, method, level, n_sims, seed, progressbar, n_jobs, executor, client)

    def plot_caterpillar(self, group: str | None = None, prob: float = 0.95, **kwargs: Any):
        """Each level's conditional mode with its conditional-SD interval, sorted; one panel per term
        (on the link scale). See :func:`hierbayes.report.plots.plot_caterpillar`."""
        from hierbayes.report.plots import plot_caterpillar

        return plot_caterpillar(self, group, prob, **kwargs)

    def plot_effect(self, x: str, prob: float = 0.95, n_sims: int = 1000, seed: int | None = 1,
                    data: bool = True, interval: str = "sim"):
        """The population curve of ``x`` on the response scale, with a band from Wald draws of the
        fixed effects. See :func:`hierbayes.report.plots.plot_effect`."""
        from hierbayes.report.plots import plot_effect

        return plot_effect(self, x, prob, n_sims, seed, data, interval)

    def family_line(self) -> str:
        """glmer's `` Family: binomial  ( logit )``."""
        fam = self.design.family
        if fam.name == "negbinomial":
            theta = round(float(self.dispersion), 4)
            name = f"Negative Binomial({theta:g})"
        else:
            name = R_FAMILY.get(fam.name, fam.name)
        return f" Family: {name}  ( {fam.link.name} )"

    def summary(self) -> Summary:
        """glmer's summary: method, family, AIC table, scaled residuals, random and fixed effects.

        Examples
        --------
        >>> import hierbayes as hb
        >>> fit = hb.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                hb.datasets.load("cbpp"), family="binomial")
        >>> print(str(fit.summary()).splitlines()[2])
         Family: binomial  ( logit )
        """
        d = self.design
        observed = self.deviance_function.response.information == "observed"
        approx = ("(Laplace Approximation" + (", observed information)" if observed else ")")
                  if self.nAGQ == 1 else
                  f"(Adaptive Gauss-Hermite Quadrature, nAGQ = {self.nAGQ})" if self.nAGQ > 1 else
                  "(PIRLS, nAGQ = 0)")
        header = [
            *title_lines(f"Generalized linear mixed model fit by maximum likelihood {approx}",
                         "glmerMod"),
            self.family_line(),
            f"Formula: {d.formula.formula}",
            f"   Data: {d.data_name}",
            "",
            # the AIC table's "deviance" is -2 logLik, as glmer's summary prints it
            *aictab_lines(self.aic, self.bic, self.loglik, -2 * self.loglik, self.df_resid),
        ]
        resid = resid_lines(self.residuals("pearson", scaled=True))
        random_block, table = self.random_effects_section()
        fx = self.fixef()
        sections = [("\nScaled residuals:", resid), ("\nRandom effects:", random_block),
                    ("\nFixed effects:", fixef_block(fx))]
        corr = self.fixef_correlation_section()
        if corr is not None:
            sections.append(corr)
        footer = []
        if self.is_singular():
            footer.append("boundary (singular) fit: see help('isSingular')")
        footer += list(self.opt.messages)
        return Summary(header, sections, table, fx, footer)

    def __repr__(self) -> str:
        return str(self.summary())

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()
