"""A REML or ML fit of a linear mixed model, by lme4's method: ``optimizeLmer`` and ``mkMerMod``.

:func:`fit_design` runs the stages in order: the objective
(:class:`hierbayes.freq.deviance.Deviance`, lme4's ``mkLmerDevfun``), its
optimisation with lme4's convergence checks
(:func:`hierbayes.freq.optimize.optimize_theta`, ``optimizeLmer``), and the
estimates at the optimum (:func:`hierbayes.freq.estimates.estimates`,
``mkMerMod``). It returns a :class:`hierbayes.freq.mermod.MerMod`, the engine's record of the fit,
which the engine's inference (:mod:`hierbayes.freq.ddf`,
:mod:`hierbayes.freq.confint`, :mod:`hierbayes.freq.sim`) works on; the
report (:class:`hierbayes.LmerFit`, what ``hb.lmer`` returns) is built over
it. :func:`refit` fits another response to the same model (lme4's ``refit``).

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"), hb.datasets.load("sleepstudy"))
>>> mer = fit_design(d)
>>> round(mer.deviance, 3), round(mer.sigma, 3), mer.n_params   # the REML criterion
(1743.628, 25.592, 6)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hierbayes.errors import DataError
from hierbayes.freq.deviance import Deviance
from hierbayes.freq.estimates import estimates
from hierbayes.freq.mermod import MerMod
from hierbayes.freq.optimize import optimize_theta, warn_convergence
from hierbayes.spec.design import Design


def fit_design(design: Design, reml: bool = True, start: np.ndarray | None = None,
               optimizer: str = "bobyqa", deviance: Deviance | None = None,
               stacklevel: int = 2) -> MerMod:
    """Fit a design by REML or ML (lme4's ``optimizeLmer`` and ``mkMerMod``).

    Parameters
    ----------
    design
        A gaussian design with at least one random-effect term.
    reml
        REML (True) or maximum likelihood (False).
    start
        Starting theta (lme4's, identity factors, when None).
    optimizer
        ``"bobyqa"`` or ``"lbfgsb"`` (:func:`hierbayes.freq.optimize.optimize_theta`).
    deviance
        The objective when already built (e.g. by
        :meth:`Deviance.with_response` for a refit).
    stacklevel
        Where the convergence warnings point, counted as :func:`warnings.warn`
        counts from this function: 2 (default) is its caller, 3 the caller's
        caller (``hb.lmer``'s user), and so on.

    Notes
    -----
    Where lme4's convergence checks fail, each failure is a
    :class:`hierbayes.ConvergenceWarning` (lme4's words, then what to do) and
    is recorded in ``opt.messages``.
    """
    dev = Deviance(design, reml=reml) if deviance is None else deviance
    opt = optimize_theta(dev, start, optimizer)
    warn_convergence(opt, stacklevel=stacklevel + 1)
    factor = dev.factor(opt.final)
    return MerMod(design=design, deviance_function=dev, opt=opt, factor=factor,
                  estimates=estimates(dev, factor))


def refit(fit: MerMod, y: Any, stacklevel: int = 2) -> MerMod:
    """The same model fitted to a new response vector, as lme4's ``refit``.

    The optimiser starts at ``fit``'s theta, with ``fit``'s optimiser; only the
    cross-products with ``y`` are recomputed. ``y`` has one value per fitted
    row. ``stacklevel`` is :func:`fit_design`'s, counted from this function.

    Examples
    --------
    >>> import hierbayes as hb
    >>> from hierbayes.spec.design import build_design
    >>> from hierbayes.spec.formula import parse_formula
    >>> d = build_design(parse_formula("Reaction ~ Days + (1 | Subject)"), hb.datasets.load("sleepstudy"))
    >>> mer = fit_design(d)
    >>> round(refit(mer, 2 * d.y).sigma / mer.sigma, 6)
    2.0
    """
    values = np.asarray(y, dtype=float).ravel()
    if values.shape != (fit.nobs,):
        raise DataError(f"refit needs {fit.nobs} response values (one per fitted row), "
                        f"not {values.size}.")
    if not np.isfinite(values).all():
        raise DataError("refit's response has missing or infinite values.")
    dev = fit.deviance_function.with_response(values)
    return fit_design(dev.design, reml=fit.reml, start=fit.theta, optimizer=fit.opt.optimizer,
                      deviance=dev, stacklevel=stacklevel + 1)
