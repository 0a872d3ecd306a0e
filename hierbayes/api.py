"""The front door: the functions and classes a user calls to fit a model.

It joins the front end (:mod:`hierbayes.spec`), the two engines
(:mod:`hierbayes.bayes`, :mod:`hierbayes.freq`) and the report layer
(:mod:`hierbayes.report`); nothing inside the package imports it. The REML
engine is imported on first use (:func:`fit_lmer_design`), so that a Bayesian
fit never loads SciPy's optimisers.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.api import lmer
>>> round(lmer("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy")).sigma, 2)
30.99
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from hierbayes.bayes.model import BayesModel
from hierbayes.bayes.sampler import check_flag, run_nuts
from hierbayes.report.bayes import BayesFit
from hierbayes.report.glmer import GlmerFit
from hierbayes.report.lmer import LmerFit
from hierbayes.report.refit import glmm_engine_fit, lmer_engine_fit
from hierbayes.report.save import read_fit
from hierbayes.spec.design import Design, build_design
from hierbayes.spec.formula import parse_formula


def fit_lmer_design(design: Design, reml: bool = True, optimizer: str = "bobyqa",
                    stacklevel: int = 4) -> LmerFit:
    """Fit a design by REML or ML: the one call into the REML engine (:mod:`hierbayes.freq.fit`).

    ``stacklevel`` is :func:`hierbayes.freq.fit.fit_design`'s, counted from
    there: 4 points convergence warnings at the user's line that called
    :func:`lmer` or :meth:`Model.fit_reml`.

    :func:`lmer`, :meth:`Model.fit_reml` and :meth:`Model.fit_ml` all come here.

    Examples
    --------
    >>> import hierbayes as hb
    >>> design = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy")).design
    >>> fit_lmer_design(design, reml=False).reml
    False
    """
    return LmerFit.from_mermod(lmer_engine_fit(design, reml, optimizer, stacklevel + 1))


def lmer(formula: str, data: pd.DataFrame, reml: bool = True, na_action: str = "omit",
         optimizer: str = "bobyqa", weights: Any = None, offset: Any = None, sigma: Any = None,
         correlation: Any = None, data_name: str | None = None) -> LmerFit:
    """Fit a linear mixed model by REML (default) or ML, as lme4's ``lmer``.

    Parameters
    ----------
    formula
        An lme4 formula.
    data
        The data (never modified).
    reml
        REML (True) or maximum likelihood (False).
    na_action
        ``"omit"`` (drop rows with missing values, with a warning) or ``"raise"``.
    optimizer
        ``"bobyqa"`` (lme4's default method and settings) or ``"lbfgsb"``.
    weights
        Prior weights, as lmer's (precisions: row ``i`` has residual SD
        ``sigma / sqrt(w_i)``): a column name or one value per row.
    offset
        A known part of the linear predictor, added to the formula's
        ``offset()`` terms: a column name or values.
    sigma
        A one-sided formula for the log residual SD, as brms's ``sigma ~``:
        ``"~ occas"`` (one factor) is nlme's ``weights = varIdent(form = ~ 1 | occas)``,
        ``"~ age"`` nlme's ``varExp(form = ~ age)``. See ``docs/structures.md``.
    correlation
        ``hb.ar1(group=..., time=...)`` (nlme's corAR1) or ``hb.car1(...)``
        (corCAR1): serially correlated errors within groups.
    data_name
        What the summary prints after ``Data:`` (``data.attrs["name"]`` by default).

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
    >>> fit.fixef().round(3)["Estimate"].tolist()
    [251.405, 10.467]
    """
    design = build_design(parse_formula(formula), data, family="gaussian", na_action=na_action,
                          weights=weights, offset=offset, sigma=sigma, correlation=correlation,
                          data_name=data_name)
    return fit_lmer_design(design, reml=reml, optimizer=optimizer)


def fit_glmm_design(design: Design, nAGQ: int = 1, stacklevel: int = 4,
                    information: str = "expected") -> GlmerFit:
    """Fit a design by glmer's method: the one call into the GLMM engine (:mod:`hierbayes.freq.glmer`).

    A negative binomial design is fitted by glmer.nb's method, its shape
    estimated (:func:`hierbayes.freq.glmernb.fit_glmer_nb`; with
    ``information="observed"`` by TMB's Laplace approximation, as glmmTMB's
    nbinom2). ``stacklevel`` is
    :func:`hierbayes.freq.glmer.fit_glmer_design`'s, counted from there: 4
    points convergence warnings at the user's line that called :func:`glmer`
    or :meth:`Model.fit_laplace`.

    Examples
    --------
    >>> import hierbayes as hb
    >>> design = hb.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                   hb.datasets.load("cbpp"), family="binomial").design
    >>> fit_glmm_design(design, nAGQ=10).nAGQ
    10
    """
    return GlmerFit.from_glmermod(glmm_engine_fit(design, nAGQ, information, stacklevel + 1))


def glmer(formula: str, data: pd.DataFrame, family: Any, nAGQ: int = 1, weights: Any = None,
          offset: Any = None, na_action: str = "omit", information: str = "expected",
          sigma: Any = None, correlation: Any = None, data_name: str | None = None) -> GlmerFit:
    """Fit a generalised linear mixed model by maximum likelihood, as lme4's ``glmer``.

    Parameters
    ----------
    formula
        An lme4 formula; ``cbind(successes, failures)`` for binomial counts,
        ``offset(log(exposure))`` terms for offsets.
    data
        The data (never modified).
    family
        ``"binomial"`` (or ``"bernoulli"``), ``"poisson"``, ``"negbinomial"``
        (glmer.nb: the shape estimated) or a family with a link,
        ``hb.get_family("binomial", link="probit")``,
        ``hb.get_family("gamma", link="log")``.
    nAGQ
        1 (Laplace, default), 0 (PIRLS's first stage only) or up to 100
        (adaptive Gauss-Hermite quadrature; one scalar random-effect term only).
    weights
        Prior weights (a column name or one value per row); for a binomial
        proportion response, the trials.
    offset
        A known part of the linear predictor (a column name or values), added
        to the formula's ``offset()`` terms.
    na_action
        ``"omit"`` (drop rows with missing values, with a warning) or ``"raise"``.
    information
        ``"expected"`` (glmer's PIRLS and Laplace approximation) or
        ``"observed"`` (TMB's, as glmmTMB fits the negative binomial; for the
        negative binomial only, where the log link is not canonical).
    sigma, correlation
        Residual structures (:func:`lmer`'s) are for gaussian models: a GLMM
        given one is refused, before any fitting, as not supported yet.
    data_name
        What the summary prints after ``Data:`` (``data.attrs["name"]`` by default).

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                hb.datasets.load("cbpp"), family="binomial")
    >>> fit.fixef()["Estimate"].round(3).tolist()
    [-1.398, -0.992, -1.128, -1.58]
    """
    design = build_design(parse_formula(formula), data, family=family, na_action=na_action,
                          weights=weights, offset=offset, sigma=sigma, correlation=correlation,
                          data_name=data_name)
    return fit_glmm_design(design, nAGQ=nAGQ, information=information)


class Model(BayesModel):
    """A Bayesian mixed model from an lme4 formula and a DataFrame.

    Parameters
    ----------
    formula
        An lme4 formula: ``"Reaction ~ Days + (Days | Subject)"``. See
        ``docs/formula.md`` for the grammar.
    data
        The data. It is never modified.
    family
        ``"gaussian"`` (default), ``"binomial"`` (0/1, ``cbind(successes,
        failures)``, or a proportion with the trials as ``weights=``),
        ``"bernoulli"``, ``"poisson"``, ``"negbinomial"``, or a family with a
        link: ``hb.get_family("binomial", link="probit")``, ``hb.get_family("gamma",
        link="log")`` (:mod:`hierbayes.families`).
    priors
        Priors replacing the defaults, brms-style:
        ``{"b": "normal(0, 50)", "sd[Subject, Days]": "student_t(3, 0, 10)",
        "cor": "lkj(2)"}``. See :mod:`hierbayes.bayes.priors`.
    na_action
        ``"omit"`` drops rows with missing values and warns with the count;
        ``"raise"`` raises.
    weights
        Prior weights, as lmer's and glmer's ``weights``: a column name or one
        value per row. Gaussian: precisions (row SD ``sigma / sqrt(w)``);
        binomial with a proportion response: the trials.
    offset
        A known part of the linear predictor (glmer's ``offset``), added to the
        formula's ``offset()`` terms: a column name or one value per row.
    sigma
        A one-sided formula for the log residual SD (brms's ``sigma ~``):
        ``"~ occas"`` gives each level its own SD (nlme's varIdent), a number
        a log-linear trend (varExp). Gaussian only; see ``docs/structures.md``.
    correlation
        ``hb.ar1(group=..., time=...)`` or ``hb.car1(...)``: AR(1) errors
        within groups (brms's ``ar(time, gr)`` with ``cov = TRUE``; nlme's
        corAR1 and corCAR1). Gaussian only.
    data_name
        What the summary prints after ``Data:`` (``data.attrs["name"]`` by default).

    Attributes
    ----------
    design : Design
        The evaluated formula: X, random-effect blocks, names.
    priors : PriorTable
        Every prior in force; prints as a table.
    pymc_model : pymc.Model
        The PyMC model, open to extension.

    Examples
    --------
    >>> import hierbayes as hb
    >>> model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
    >>> model.design.fixef_names
    ['(Intercept)', 'Days']
    >>> fit = model.fit(draws=200, tune=200, chains=2, seed=1, progressbar=False)  # doctest: +SKIP
    """

    def equation(self, priors: bool = False, mean_separate: bool | None = None):
        """The model as LaTeX in equatiomatic's notation, symbols only (no fit yet; ``priors``
        adds the prior lines) (:func:`hierbayes.report.equation.equation`)."""
        from hierbayes.report.equation import equation

        return equation(self, priors=priors, mean_separate=mean_separate)

    def fit_reml(self) -> LmerFit:
        """Fit the same formula by REML with the lme4-style engine (:mod:`hierbayes.freq`)."""
        return fit_lmer_design(self.design, reml=True)

    def fit_ml(self) -> LmerFit:
        """Fit the same formula by maximum likelihood with the lme4-style engine."""
        return fit_lmer_design(self.design, reml=False)

    def fit_laplace(self, nAGQ: int = 1) -> GlmerFit:
        """Fit the same GLMM by maximum likelihood as lme4's glmer (Laplace, or AGQ with ``nAGQ > 1``)."""
        return fit_glmm_design(self.design, nAGQ=nAGQ)

    def plot_prior_predictive(self, draws: int = 500, seed: int | None = None, idata: Any = None,
                              num_pp_samples: int = 100, kind: str = "kde", **kwargs: Any):
        """ArviZ's ``plot_ppc`` of the prior predictive against the data; returns the Figure.

        ``idata`` from :meth:`prior_predictive` is drawn when not given
        (:func:`hierbayes.report.plots.plot_prior_predictive`).

        Examples
        --------
        >>> import hierbayes as hb
        >>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
        >>> m.plot_prior_predictive(draws=200, seed=1).savefig("prior.png")  # doctest: +SKIP
        """
        from hierbayes.report.mcmcplots import plot_prior_predictive

        return plot_prior_predictive(self, draws, seed, idata, num_pp_samples, kind, **kwargs)

    def fit(
        self,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        seed: int | None = None,
        sampler: str | None = None,
        target_accept: float = 0.9,
        cores: int | None = None,
        progressbar: bool = True,
        check: bool = True,
        centred: bool | dict[str, bool] | None = None,
        marginal: bool | None = None,
        max_treedepth: int = 10,
    ) -> BayesFit:
        """Sample the posterior by NUTS.

        Parameters
        ----------
        draws, tune, chains
            Draws kept per chain, tuning steps per chain, number of chains.
        seed
            Seed; the same seed gives the same draws. A random one is chosen
            and recorded in ``fit.info.seed`` when omitted.
        sampler
            ``"hierbayes"`` (the default: one C kernel for every model,
            compiled once per installation and cached on disk), ``"nutpie"``
            (nutpie's NUTS on that same compiled density, a second opinion on
            the sampler; it compiles this model's PyMC graph instead when the
            ``pm.Model`` was extended or a prior is one the kernel lacks, and
            is then chosen, with a warning saying why, when this is None),
            ``"pymc"`` or ``"numpyro"``.
        target_accept
            NUTS's target acceptance rate. 0.9 by default (brms uses 0.8,
            rstanarm's stan_lmer 0.95): on sleepstudy with brms's priors, 0.8
            left divergences in the SD's upper tail in 3 of 6 seeds, 0.9 in
            none, at the same speed. Raise it to 0.95 or 0.99 if there are
            divergences.
        cores
            Chains run in parallel on this many cores (all by default).
        progressbar
            Show a progress bar.
        check
            Warn after sampling about divergences, R-hat above 1.01 or
            ESS-bulk below 400.
        centred
            The samplers of the compiled density only (hierbayes's, and nutpie
            on it): sample group effects centred (True), non-centred (False),
            per block (``{"dept": True}``), or as the data suggest (None;
            :func:`hierbayes.bayes.policy.choose_centring`).
            The posterior is the same; only the sampler's efficiency differs.
        marginal
            As ``centred``, Gaussian models only: integrate the group
            effects out and sample fixed effects, SDs, correlations and sigma,
            then draw the group effects exactly for each draw. None (default)
            does so where the factorisation is cheap (:meth:`use_marginal`).
        max_treedepth
            The most doublings of a NUTS trajectory (Stan's ``max_treedepth``,
            10 by default: at most 1023 leapfrog steps per draw), for every
            sampler. A warning says when draws reach it.

        Returns
        -------
        BayesFit
            The draws with lmer-style summaries (:class:`hierbayes.BayesFit`).
        """
        check_flag("check", check)
        posterior, info, idata = run_nuts(
            self,
            draws=draws,
            tune=tune,
            chains=chains,
            seed=seed,
            sampler=sampler,
            target_accept=target_accept,
            cores=cores,
            progressbar=progressbar,
            centred=centred,
            marginal=marginal,
            max_treedepth=max_treedepth,
        )
        fit = BayesFit(self, posterior, info, idata)
        if check:
            fit.check_convergence()
        return fit


def load_fit(path: str | os.PathLike) -> BayesFit:
    """Load a fit written by :meth:`BayesFit.save` (:mod:`hierbayes.report.save`).

    Returns
    -------
    BayesFit
        Its summary, ``fixef``, ``ranef``, ``varcorr``, ``coef``, predictions
        and ``idata`` are those of the saved fit; its ``model`` is a
        :class:`Model` of the saved formula, data and priors.

    Raises
    ------
    FitFileError
        The file is missing, is not a saved hierbayes fit, comes from a newer
        format, or its formula now evaluates to another design.

    Examples
    --------
    >>> import hierbayes as hb
    >>> hb.load_fit("sleep_fit.nc").summary()  # doctest: +SKIP
    """
    return BayesFit.from_saved(read_fit(path, Model))
