"""The analyst's toolkit on every fit: tidy tables, glance, equation, update, marginal means.

:class:`FitTools` is mixed into :class:`hierbayes.LmerFit`,
:class:`hierbayes.GlmerFit` and :class:`hierbayes.BayesFit`;
:class:`BayesTools` into the Bayesian fit alone (brms's ``hypothesis``,
``bayes_R2`` and ``conditional_effects``, and priorsense's power-scaling).
Each method hands over to the module that does the work, imported when
first used.

Examples
--------
>>> import hierbayes as hb
>>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> fit.tidy()["term"].tolist()
['(Intercept)', 'Days', 'sd_(Intercept)', 'cor_Days.(Intercept)', 'sd_Days', 'sigma']
>>> fit.update("~ . - (Days | Subject) + (Days || Subject)").design.formula.formula
'Reaction ~ Days + (Days || Subject)'
"""

from __future__ import annotations

from typing import Any

import pandas as pd


class FitTools:
    """tidy, glance, equation, update and emmeans, for every kind of fit."""

    def tidy(self, effects: Any = ("fixed", "ran_pars"), conf_int: bool = False,
             conf_level: float = 0.95, conf_method: str = "wald", ddf: str | None = None
             ) -> pd.DataFrame:
        """The estimates as one long table, as broom.mixed's ``tidy``
        (:func:`hierbayes.report.tidy.tidy`: arguments, columns, ``var_prop``)."""
        from hierbayes.report.tidy import tidy

        return tidy(self, effects, conf_int, conf_level, conf_method, ddf)

    def glance(self) -> pd.DataFrame:
        """One row describing the fit, as broom.mixed's ``glance``
        (:func:`hierbayes.report.tidy.glance`)."""
        from hierbayes.report.tidy import glance

        return glance(self)

    def update(self, formula: str | None = None, **changes: Any):
        """Refit with ``formula`` in R's update notation (``"~ . + sex"``, ``". ~ . - x"``) and
        any argument the fit was made with changed (:func:`hierbayes.report.refit.update_fit`):
        the data, family, weights, priors and settings are kept unless given."""
        from hierbayes.report.refit import update_fit

        return update_fit(self, formula, **changes)

    def equation(self, use_coefs: bool = False, digits: int = 2, priors: bool = False,
                 mean_separate: bool | None = None, point: str = "mean"):
        """The model as LaTeX in equatiomatic's notation (``extract_eq``); renders in notebooks
        (:func:`hierbayes.report.equation.equation`). ``use_coefs`` writes the estimates in."""
        from hierbayes.report.equation import equation

        return equation(self, use_coefs=use_coefs, digits=digits, priors=priors,
                        mean_separate=mean_separate, point=point)

    def kfold(self, K: int = 10, group: str | None = None, folds: Any = None,
              seed: int | None = None, executor: Any = None, client: Any = None,
              n_jobs: int | None = 1, progressbar: bool = True, **fit_settings: Any):
        """k-fold cross-validation as brms's ``kfold``: K refits, each scored on the rows it left
        out (``group="Subject"`` leaves out whole levels); on any executor
        (:func:`hierbayes.report.kfold.kfold`)."""
        from hierbayes.report.kfold import kfold

        return kfold(self, K, group, folds, seed, executor, client, n_jobs, progressbar,
                     **fit_settings)

    def emmeans(self, specs: Any, by: Any = None, **kwargs: Any):
        """Estimated marginal means and their contrasts, as R's ``emmeans(fit, specs, by = by)``
        (:func:`hierbayes.report.emmeans.emmeans`: ``.pairs()``, ``.contrast(...)``)."""
        from hierbayes.report.emmeans import emmeans

        return emmeans(self, specs, by, **kwargs)


class BayesTools:
    """brms's hypothesis, bayes_R2 and conditional_effects, and priorsense's power-scaling."""

    def hypothesis(self, hypotheses: Any, prob: float = 0.95, alpha: float | None = None,
                   scope: str = "standard", group: str | None = None, point: str = "mean",
                   seed: int | None = None):
        """brms's ``hypothesis``: ``fit.hypothesis("Days > 5")`` gives the estimate, interval,
        evidence ratio and posterior probability (:func:`hierbayes.report.hypothesis.hypothesis`)."""
        from hierbayes.report.hypothesis import hypothesis

        return hypothesis(self, hypotheses, prob, alpha, scope, group, point, seed)

    def bayes_r2(self, re_form: Any = "both", summary: bool = True, prob: float = 0.95,
                 point: str = "mean") -> pd.DataFrame:
        """Bayesian R² (Gelman et al. 2019, brms's ``bayes_R2``): rows ``conditional`` and
        ``marginal`` by default (:func:`hierbayes.report.r2.bayes_r2`)."""
        from hierbayes.report.r2 import bayes_r2

        return bayes_r2(self, re_form, summary, prob, point)

    def conditional_effects(self, effect: str, by: str | None = None, re_form: Any = "~0",
                            prob: float = 0.95, resolution: int = 100, plot: bool = True,
                            conditions: dict[str, Any] | None = None, kind: str = "mean",
                            point: str = "mean", seed: int | None = None):
        """brms's ``conditional_effects("Days", by = "Sex")``: the predicted curve as a
        DataFrame (``.frame``) and a plot (:func:`hierbayes.report.effects.conditional_effects`)."""
        from hierbayes.report.effects import conditional_effects

        return conditional_effects(self, effect, by, re_form, prob, resolution, plot, conditions,
                                   kind, point, seed)

    def prior_sensitivity(self, variables: list[str] | None = None,
                          prior_selection: list[str] | None = None, threshold: float = 0.05,
                          lower_alpha: float = 0.99, upper_alpha: float = 1.01):
        """Prior and likelihood sensitivity by power-scaling, as priorsense's
        ``powerscale_sensitivity`` (:func:`hierbayes.report.sensitivity.prior_sensitivity`)."""
        from hierbayes.report.sensitivity import prior_sensitivity

        return prior_sensitivity(self, variables, prior_selection, threshold, lower_alpha,
                                 upper_alpha)

    def plot_prior_sensitivity(self, variables: list[str] | None = None,
                               alphas: tuple[float, float] = (0.8, 1.25),
                               prior_selection: list[str] | None = None, max_params: int = 8):
        """Each parameter's posterior as the prior and the likelihood are power-scaled
        (:func:`hierbayes.report.sensitivity.plot_prior_sensitivity`); returns the Figure."""
        from hierbayes.report.sensitivity import plot_prior_sensitivity

        return plot_prior_sensitivity(self, variables, alphas, prior_selection, max_params)
