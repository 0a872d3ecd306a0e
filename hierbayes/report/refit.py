"""Fitting a design by the frequentist engines, and refitting a fit with changes (update).

:func:`lmer_engine_fit` and :func:`glmm_engine_fit` are the one call into
each engine that :func:`hierbayes.lmer`, :func:`hierbayes.glmer`,
:class:`hierbayes.Model`'s ``fit_reml`` / ``fit_laplace`` and ``update`` make.
:func:`update_fit` is ``fit.update(...)`` for every fit, as R's ``update``:
the formula rewritten with R's ``.`` (:func:`hierbayes.spec.update.update_formula`)
and refitted to the same data with the same family, weights, offset,
residual structures, priors and settings, except what the call changes.

Examples
--------
>>> import hierbayes as hb
>>> fit = hb.lmer("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
>>> update_fit(fit, "~ . - (1 | Subject) + (Days | Subject)").design.formula.formula
'Reaction ~ Days + (Days | Subject)'
"""

from __future__ import annotations

from typing import Any

from hierbayes.errors import DataError, SettingsError
from hierbayes.spec.design import Design, build_design
from hierbayes.spec.formula import parse_formula
from hierbayes.spec.update import update_formula

#: What update() may change besides the formula, per kind of fit.
DATA_SETTINGS = ("data", "family", "na_action", "weights", "offset", "sigma", "correlation",
                 "data_name")
LMER_SETTINGS = ("reml", "optimizer")
GLMER_SETTINGS = ("nAGQ", "information")
BAYES_MODEL_SETTINGS = ("priors",)
BAYES_FIT_SETTINGS = ("draws", "tune", "chains", "seed", "sampler", "target_accept", "cores",
                      "progressbar", "check", "centred", "marginal", "max_treedepth")


def lmer_engine_fit(design: Design, reml: bool = True, optimizer: str = "bobyqa",
                    stacklevel: int = 5) -> Any:
    """The REML engine's fit of a design (:func:`hierbayes.freq.fit.fit_design`).

    ``stacklevel`` is ``fit_design``'s, counted from there: warnings point at
    the caller ``stacklevel - 1`` frames above this function.
    """
    # imported here: the REML engine pulls in SciPy's optimisers and sparse matrices
    from hierbayes.freq.fit import fit_design

    return fit_design(design, reml=reml, optimizer=optimizer, stacklevel=stacklevel)


def glmm_engine_fit(design: Design, nAGQ: int = 1, information: str = "expected",
                    stacklevel: int = 5) -> Any:
    """The GLMM engine's fit of a design: glmer's method, or glmer.nb's for the negative
    binomial (its shape estimated; with ``information="observed"`` TMB's Laplace
    approximation, as glmmTMB's nbinom2). ``stacklevel`` as :func:`lmer_engine_fit`'s."""
    if design.family.name == "negbinomial":
        from hierbayes.freq.glmernb import fit_glmer_nb

        return fit_glmer_nb(design, nAGQ=nAGQ, stacklevel=stacklevel - 1, information=information)
    from hierbayes.freq.glmer import fit_glmer_design

    return fit_glmer_design(design, nAGQ=nAGQ, stacklevel=stacklevel, information=information)


def _new_design(fit: Any, formula: str | None, changes: dict[str, Any]) -> tuple[str, Any, dict]:
    design = fit.design
    new = design.formula.formula if formula is None else update_formula(design.formula.formula,
                                                                        formula)
    data = changes.pop("data", design.source)
    if data is None:
        raise DataError("This fit does not hold the data it was fitted to (a fit read from a "
                        "file keeps only the columns its formula uses); pass data= to update.")
    settings = dict(design.settings)
    settings.update({k: changes.pop(k) for k in list(changes) if k in DATA_SETTINGS})
    return new, data, settings


def _check_keys(changes: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    bad = [k for k in changes if k not in allowed]
    if bad:
        raise SettingsError(f"update() of {what} cannot change {', '.join(map(repr, bad))}; it "
                            f"takes the formula and {', '.join(allowed)}.")


def update_fit(fit: Any, formula: str | None = None, **changes: Any) -> Any:
    """Refit ``fit`` with ``formula`` (in R's update notation) and ``changes``.

    Parameters
    ----------
    fit
        An :class:`~hierbayes.LmerFit`, :class:`~hierbayes.GlmerFit` or
        :class:`~hierbayes.BayesFit`.
    formula
        ``"~ . + sex"``, ``". ~ . - (Days | Subject)"``, ``"log(.) ~ ."``, a
        whole formula, or None to keep the formula.
    **changes
        Any argument the fit was made with: ``data``, ``family``,
        ``na_action``, ``weights``, ``offset``, ``sigma``, ``correlation``,
        ``data_name``; ``reml``, ``optimizer`` (lmer); ``nAGQ``,
        ``information`` (glmer); ``priors`` and ``fit()``'s settings
        (``draws``, ``tune``, ``chains``, ``seed``, ``sampler``, ...) for a
        Bayesian fit. The rest are kept as they were.

    Returns
    -------
    The new fit, of the same kind.
    """
    changes = dict(changes)
    # the fit's own class rebuilds the report (this module imports neither report class, which
    # reach it through their update method)
    if hasattr(fit, "reml") and hasattr(fit, "from_mermod"):
        _check_keys(changes, DATA_SETTINGS + LMER_SETTINGS, "an lmer fit")
        new, data, settings = _new_design(fit, formula, changes)
        design = build_design(parse_formula(new), data, **settings)
        # stacklevel 5: fit_design, here, update_fit, fit.update, the user's line
        return type(fit).from_mermod(lmer_engine_fit(
            design, reml=changes.get("reml", fit.reml),
            optimizer=changes.get("optimizer", fit.opt.optimizer), stacklevel=5))
    if hasattr(fit, "nAGQ") and hasattr(fit, "from_glmermod"):
        _check_keys(changes, DATA_SETTINGS + GLMER_SETTINGS, "a glmer fit")
        new, data, settings = _new_design(fit, formula, changes)
        design = build_design(parse_formula(new), data, **settings)
        info = changes.get("information", fit.deviance_function.response.information)
        return type(fit).from_glmermod(glmm_engine_fit(
            design, nAGQ=changes.get("nAGQ", fit.nAGQ), information=info, stacklevel=5))
    if hasattr(fit, "posterior") and hasattr(fit, "model"):
        _check_keys(changes, DATA_SETTINGS + BAYES_MODEL_SETTINGS + BAYES_FIT_SETTINGS,
                    "a Bayesian fit")
        fit_changes = {k: changes.pop(k) for k in list(changes) if k in BAYES_FIT_SETTINGS}
        model = fit.model.update(formula, **changes)
        info = fit.info
        settings = {"draws": info.draws, "tune": info.tune, "chains": info.chains,
                    "seed": info.seed, "sampler": info.sampler,
                    "target_accept": info.target_accept, "max_treedepth": info.max_treedepth}
        settings.update(fit_changes)
        return model.fit(**settings)
    raise DataError(f"update() refits an lmer, glmer or Bayesian fit, not {type(fit).__name__}.")
