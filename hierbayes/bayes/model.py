"""The Bayesian engine's model: a design, the priors in force, and the PyMC model built from them.

:class:`BayesModel` holds what the samplers read: the design, the prior table,
the lazily built ``pm.Model`` (:mod:`hierbayes.bayes.pymc_model`) with its
fingerprint and the cache of samplers' compilations, and the choices of
parameterisation (:mod:`hierbayes.bayes.policy`). It neither samples nor
reports: :class:`hierbayes.Model` (the front door, :mod:`hierbayes.api`) adds
``fit``, which runs :func:`hierbayes.bayes.sampler.run_nuts` and wraps the
draws in a :class:`hierbayes.BayesFit`.

Examples
--------
>>> import hierbayes as hb
>>> m = BayesModel("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> sorted(v.name for v in m.pymc_model.free_RVs)
['Intercept', 'b', 'cpc_Subject', 'sd_Subject', 'sigma', 'z_Subject']
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.bayes.policy import choose_centring, first_block_nested, marginal_cost, supported
from hierbayes.bayes.priors import resolve_priors
from hierbayes.bayes.pymc_model import PymcFingerprint, build_pymc_model, observed_name
from hierbayes.errors import DataError, SamplerError, SettingsError, check_count
from hierbayes.families import Family
from hierbayes.spec.design import Design, build_design
from hierbayes.spec.formula import parse_formula


def whole_successes(design: Design) -> np.ndarray:
    """A binomial design's successes as whole numbers, or a :class:`DataError` where they are not.

    A proportion times its trials (``weights=``) is a count only up to rounding
    (``0.3 * 10`` is 3.0000000000000004). The Bayesian engine's likelihood
    is the binomial's, defined at whole successes; brms refuses others, and glmer
    warns and goes on with a quasi-likelihood. Other designs' responses are returned as they are.

    Examples
    --------
    >>> import hierbayes as hb, pandas as pd
    >>> from hierbayes.spec.design import build_design
    >>> from hierbayes.spec.formula import parse_formula
    >>> df = pd.DataFrame({"p": [0.3, 0.5, 0.1, 0.7], "n": [10, 4, 10, 10], "g": list("abab")})
    >>> d = build_design(parse_formula("p ~ 1 + (1 | g)"), df, family="binomial", weights="n")
    >>> whole_successes(d).tolist()
    [3.0, 2.0, 1.0, 7.0]
    """
    y = design.y
    if design.trials is None:
        return y
    whole = np.round(y)
    bad = np.abs(y - whole) > 1e-8 * np.maximum(design.trials, 1.0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"The binomial response '{design.response_label}' times its trials (weights=) gives "
            f"{int(bad.sum())} successes that are not whole numbers (first: {y[i]:g} of "
            f"{design.trials[i]:g} trials); the binomial likelihood needs whole successes. Check "
            "that the weights are the trials behind each proportion.")
    return whole


class BayesModel:
    """A design and its priors, the PyMC model built from them, and the samplers' choices.

    The engine's side of :class:`hierbayes.Model`, which documents the
    parameters; :func:`hierbayes.load_fit` rebuilds one from a file.

    Attributes
    ----------
    formula : ParsedFormula
        The parsed formula.
    design : Design
        The evaluated formula: X, random-effect blocks, names.
    family : Family
        The response family.
    priors : PriorTable
        Every prior in force; prints as a table.
    pymc_model : pymc.Model
        The PyMC model, open to extension (built on first access).
    """

    def __init__(
        self,
        formula: str,
        data: pd.DataFrame,
        family: str | Family = "gaussian",
        priors: dict[str, Any] | None = None,
        na_action: str = "omit",
        weights: Any = None,
        offset: Any = None,
        sigma: Any = None,
        correlation: Any = None,
        data_name: str | None = None,
    ) -> None:
        self.formula = parse_formula(formula)
        self.design = build_design(self.formula, data, family=family, na_action=na_action,
                                   weights=weights, offset=offset, sigma=sigma,
                                   correlation=correlation, data_name=data_name)
        self.prior_spec = priors  # as given, for update()
        if not self.design.residual.is_iid and self.design.weights is not None:
            raise DataError("weights= together with sigma= or correlation= is not supported yet: "
                            "the variance function already sets each row's SD. Drop weights=.")
        self.design.y = whole_successes(self.design)
        self.family = self.design.family
        self.priors = resolve_priors(self.design, priors)
        self._pymc_model = None
        self._initial_points: dict[str, np.ndarray] = {}
        self._pymc_fingerprint: PymcFingerprint | None = None
        # sampler name -> (fingerprint of the pm.Model it was compiled from, compiled model)
        self._compiled: dict[str, tuple[PymcFingerprint, Any]] = {}

    @property
    def pymc_model(self):
        """The ``pm.Model``; add to it inside ``with model.pymc_model:`` before fitting.

        Built on first access (importing PyMC takes seconds). A model extended
        or changed here is sampled by nutpie (or ``sampler="pymc"``), which see
        the changes, with a warning that says so: hierbayes's own sampler only
        knows the model as built. Every change is seen by the next fit
        (:class:`PymcFingerprint`): compiled models are not reused after one.
        """
        if self._pymc_model is None:
            self._pymc_model, self._initial_points = build_pymc_model(self.design, self.priors)
            self._pymc_fingerprint = PymcFingerprint.of(self._pymc_model)
        return self._pymc_model

    @property
    def initial_points(self) -> dict[str, np.ndarray]:
        """Starting values for the PyMC samplers (the LKJ blocks' partial correlations)."""
        _ = self.pymc_model
        return self._initial_points

    @property
    def observed_name(self) -> str:
        """The observed variable's name in the InferenceData (the response, if a safe name)."""
        taken = {f"{p}_{b.group}" for b in self.design.blocks for p in ("z", "sd", "r", "cor", "cpc")}
        return observed_name(self.design, taken | {"fixef", "Intercept", "b", "sigma", "shape"})

    def pymc_model_changed(self) -> bool:
        """Whether ``pymc_model`` was changed since it was built (variables added or replaced,
        transforms, initial values or data changed)."""
        return self._pymc_model is not None and \
            PymcFingerprint.of(self._pymc_model) != self._pymc_fingerprint

    def compiled(self, sampler: str, build: Any) -> tuple[Any, bool]:
        """The pm.Model compiled for ``sampler`` by ``build(pm_model)``, cached until the model changes.

        Returns the compiled model and whether it was built now. A compiled
        model is reused only while the pm.Model is as it was compiled: any
        change to it (:class:`PymcFingerprint`) drops every cached compilation.
        """
        now = PymcFingerprint.of(self.pymc_model)
        cached = self._compiled.get(sampler)
        if cached is not None and cached[0] == now:
            return cached[1], False
        if cached is not None:
            self._compiled.clear()  # the model changed: no compilation of it is valid any more
        result = build(self.pymc_model)
        self._compiled[sampler] = (now, result)
        return result, True

    def own_sampler_obstacle(self) -> str | None:
        """Why hierbayes's own sampler cannot sample this model, or None when it can."""
        if self.pymc_model_changed():
            return ("its pm.Model (model.pymc_model) was extended or changed, and hierbayes's "
                    "compiled kernel reads only the model hierbayes built, not the PyMC graph")
        return supported(self.priors)

    def use_marginal(self, marginal: bool | None = None) -> bool:
        """Whether hierbayes's sampler integrates the group effects out.

        Prior weights and offsets are allowed (the marginal kernel reads the
        rows scaled by the weights' square roots, less the offset).
        ``None`` chooses: yes for Gaussian models whose blocked factorisation
        is cheap (:func:`hierbayes.bayes.policy.marginal_cost` at most 1e5
        flops, e.g. one grouping factor), or at most 2e5 when the design is
        nested (:func:`hierbayes.bayes.policy.first_block_nested`). There it
        removes the funnel between SDs and group effects; on crossed designs
        the full model with centring from the data was faster (pupils: 5.7 s
        against 16.1 s, benchmarks/results.md).
        """
        gaussian = self.family.supports_marginal
        if not self.design.residual.is_iid:
            if marginal:
                raise SamplerError("marginal=True is not available with sigma= or correlation=: the "
                                   "structured errors are not exchangeable within a group.")
            return False
        if marginal is None:
            if not (gaussian and self.design.blocks):
                return False
            cost = marginal_cost(self.design)
            return cost <= 1e5 or (cost <= 2e5 and first_block_nested(self.design))
        if not isinstance(marginal, bool | np.bool_):
            raise SamplerError(f"marginal must be True, False or None, not {marginal!r}.")
        if marginal and not gaussian:
            raise SamplerError("marginal=True needs a Gaussian model: only there do the group "
                               "effects integrate out in closed form.")
        return bool(marginal)

    def check_centred(self, centred: Any) -> None:
        """Refuse (:class:`SamplerError`) a ``centred`` that is not None, a bool, or a dict of known blocks."""
        if centred is None or isinstance(centred, bool | np.bool_):
            return
        names = [b.group for b in self.design.blocks]
        if not isinstance(centred, dict):
            raise SamplerError(f"centred must be None, True, False, or a dict from block name to "
                               f"bool (blocks: {names}), not {centred!r}.")
        unknown = [k for k in centred if k not in names]
        if unknown:
            raise SamplerError(f"centred names unknown blocks {unknown}; blocks: {names}.")
        bad = {k: v for k, v in centred.items() if not isinstance(v, bool | np.bool_)}
        if bad:
            raise SamplerError(f"centred's values must be True or False, not {bad}.")

    def centring(self, centred: Any = None) -> list[bool]:
        """Per random-effect block, whether its effects are sampled centred.

        ``centred`` is None (choose from the data,
        :func:`hierbayes.bayes.policy.choose_centring`), a bool for all blocks,
        or a dict from block name (``"Subject"``, ``"Subject.1"``) to bool.
        """
        self.check_centred(centred)
        blocks = self.design.blocks
        if centred is None:
            return choose_centring(self.design)
        if isinstance(centred, dict):
            return [bool(centred.get(b.group, False)) for b in blocks]
        return [bool(centred)] * len(blocks)

    def __repr__(self) -> str:
        d = self.design
        groups = ", ".join(f"{k} ({v})" for k, v in d.ngrps().items())
        return (
            f"hierbayes.Model: {self.formula.formula}\n  family: {self.family}; "
            f"{d.n_obs} observations; groups: {groups or 'none'}"
        )

    def update(self, formula: str | None = None, **changes: Any):
        """The same model with ``formula`` (R's update notation: ``"~ . + sex"``) and ``changes``.

        ``changes`` are the constructor's arguments (``data``, ``family``,
        ``priors``, ``na_action``, ``weights``, ``offset``, ``sigma``,
        ``correlation``, ``data_name``); the rest are kept, the data
        included. Priors given for coefficients the new formula lacks are
        refused, as in the constructor.

        Examples
        --------
        >>> import hierbayes as hb
        >>> m = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
        >>> m.update("~ . + (0 + Days | Subject)").design.formula.formula
        'Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)'
        """
        from hierbayes.spec.update import update_formula

        allowed = {"data", "family", "priors", "na_action", "weights", "offset", "sigma",
                   "correlation", "data_name"}
        bad = sorted(set(changes) - allowed)
        if bad:
            raise SettingsError(f"Model.update cannot change {', '.join(map(repr, bad))}; it takes "
                                f"the formula and {', '.join(sorted(allowed))}.")
        d = self.design
        new = d.formula.formula if formula is None else update_formula(d.formula.formula, formula)
        kwargs = {**d.settings, "priors": self.prior_spec, "data": d.source}
        kwargs.update(changes)
        data = kwargs.pop("data")
        if data is None:
            raise DataError("This model does not hold its data (read from a file, it keeps only "
                            "the columns its formula uses); pass data= to update.")
        return type(self)(new, data, **kwargs)

    def prior_predictive(self, draws: int = 500, seed: int | None = None):
        """Draws from the priors and of data sets from them (PyMC's ``sample_prior_predictive``).

        Shows what the priors say before the data speak: a prior that puts
        much mass on impossible responses (negative reaction times, means in
        the millions) is worth tightening.

        Returns
        -------
        arviz.InferenceData
            Groups ``prior``, ``prior_predictive`` (under the observed
            variable's name) and ``observed_data``.

        Examples
        --------
        >>> import hierbayes as hb
        >>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
        >>> m.prior_predictive(draws=50, seed=1).prior_predictive["Reaction"].shape  # doctest: +SKIP
        (1, 50, 180)
        """
        import pymc as pm

        check_count("draws", draws)
        log = logging.getLogger("pymc")
        level = log.level
        log.setLevel(logging.WARNING)  # PyMC logs the variables it samples; noise here
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return pm.sample_prior_predictive(draws=int(draws), model=self.pymc_model,
                                                  random_seed=seed)
        finally:
            log.setLevel(level)
