"""The Bayesian model: a design and its priors become a PyMC model.

Structure (brms's, in PyMC):

* fixed effects on centred columns: ``eta = Intercept + (X - mean(X)) b``; the
  reported ``fixef`` puts ``(Intercept)`` back on the original scale;
* every random-effect block non-centred: ``z ~ Normal(0, 1)`` per level and
  term, ``r = z * sd`` for one term, or for two or more ``r = z (diag(sd) L)'``
  with ``L`` the Cholesky factor of the correlation matrix under an LKJ prior
  (:mod:`hierbayes.bayes.lkj`; SDs and correlations are separate parameters, as in
  Stan, which avoids the funnel of PyMC's ``LKJCholeskyCov``);
* group effects gathered by each row's level index: ``eta += sum_j Z[:, j] r[index, j]``.

Posterior variables: ``fixef``, ``Intercept``, ``b``, ``sd_<group>``,
``cor_<group>``, ``r_<group>`` (group effects), ``z_<group>``, ``cpc_<group>``
(unconstrained partial correlations) and ``sigma``. ``cor_<group>`` holds only
the strictly lower triangle of the correlation matrix, one entry per pair of
terms along the dimension ``<group>__cor`` (labels ``"Days:(Intercept)"``, in
brms's order: ``cor_Subject__Intercept__Days``), so that no variable of the
posterior is constant and ArviZ's R-hat and trace plots work on every one;
:func:`correlation_matrix` rebuilds the full matrix.

Examples
--------
>>> import hierbayes as hb
>>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> sorted(v.name for v in m.pymc_model.free_RVs)
['Intercept', 'b', 'cpc_Subject', 'sd_Subject', 'sigma', 'z_Subject']
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.bayes.lkj import lkj_corr_cholesky
from hierbayes.bayes.priors import Prior, PriorTable, resolve_priors
from hierbayes.errors import SamplerError, check_count
from hierbayes.families import Family
from hierbayes.spec.design import Design, build_design
from hierbayes.spec.formula import parse_formula


def correlation_pairs(n_terms: int) -> list[tuple[int, int]]:
    """Row and column of each stored correlation: the strict lower triangle, column by column.

    That is brms's order (``cor_g__a__b``, ``cor_g__a__c``, ``cor_g__b__c``) and
    the order of the correlation rows of lme4's ``as.data.frame(VarCorr(m))``.

    Examples
    --------
    >>> correlation_pairs(3)
    [(1, 0), (2, 0), (2, 1)]
    """
    return [(i, j) for j in range(n_terms) for i in range(j + 1, n_terms)]


def correlation_labels(terms: list[str]) -> list[str]:
    """Coordinate labels of a block's stored correlations: ``"<row term>:<column term>"``.

    Terms that themselves hold ``:`` could make two labels alike; then the
    labels are the row and column positions (``"1:0"``), which never clash.

    Examples
    --------
    >>> correlation_labels(["(Intercept)", "Days"])
    ['Days:(Intercept)']
    """
    pairs = correlation_pairs(len(terms))
    labels = [f"{terms[i]}:{terms[j]}" for i, j in pairs]
    if len(set(labels)) < len(labels):
        labels = [f"{i}:{j}" for i, j in pairs]
    return labels


def correlation_position(n_terms: int, a: int, b: int) -> int:
    """Where the correlation of terms ``a`` and ``b`` (either order) lies among the stored pairs."""
    return correlation_pairs(n_terms).index((max(a, b), min(a, b)))


def correlation_matrix(pairs: np.ndarray, n_terms: int) -> np.ndarray:
    """Full correlation matrices, ``(..., n, n)``, from stored pairs ``(..., n (n - 1) / 2)``."""
    pairs = np.asarray(pairs)
    out = np.broadcast_to(np.eye(n_terms), (*pairs.shape[:-1], n_terms, n_terms)).copy()
    for k, (i, j) in enumerate(correlation_pairs(n_terms)):
        out[..., i, j] = out[..., j, i] = pairs[..., k]
    return out


def correlation_dim(block: Any) -> str:
    """The dimension of a block's stored correlations, e.g. ``"Subject__cor"``."""
    return f"{block.group}__cor"


def _param_arrays(priors: list[Prior]) -> dict[str, np.ndarray]:
    return {k: np.array([p.params[k] for p in priors], dtype=float) for k in priors[0].params}


def _vector_rv(name: str, priors: list[Prior], dims: str):
    """One vector RV when all entries share a family, else scalars stacked."""
    import pymc as pm
    import pytensor.tensor as pt

    if len({p.dist for p in priors}) == 1:
        return getattr(pm, priors[0].pymc_name)(name, **_param_arrays(priors), dims=dims)
    parts = [getattr(pm, p.pymc_name)(f"{name}_{i}", **p.params) for i, p in enumerate(priors)]
    return pm.Deterministic(name, pt.stack(parts), dims=dims)


def _scalar_rv(name: str, prior: Prior):
    import pymc as pm

    return getattr(pm, prior.pymc_name)(name, **prior.params)


def observed_name(design: Design, taken: set[str]) -> str:
    """The observed variable's name: the response column if it is a safe, free name."""
    label = design.response_label
    if label.isidentifier() and label not in taken:
        return label
    return "y"


def quiet_blas_search() -> None:
    """Let PyTensor look for a BLAS once, without its warning.

    A pip-installed PyTensor finds no BLAS to link and warns ("could not link
    to a BLAS installation ... severely degraded") the first time a graph
    rewrite asks. Our sampler does not use PyTensor, and nutpie's numba backend does not use that BLAS,
    so the warning only alarms. PyTensor caches the answer of the first
    lookup, so doing it here under a filter for that one message silences it
    without changing what PyTensor uses; a BLAS that is found is used as before.
    """
    import warnings

    import pytensor

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
        _ = pytensor.config.blas__ldflags


@dataclass(frozen=True)
class PymcFingerprint:
    """What a sampler of a ``pm.Model`` sees, to tell whether the model was changed.

    ``key`` holds every variable's name and identity (free, observed,
    deterministic, potential, named), the transforms, initial values and the
    values of data containers; ``refs`` keeps those variables alive, so that no
    new variable can take the identity of one that was removed.
    """

    key: tuple
    refs: tuple = field(compare=False, repr=False)

    @classmethod
    def of(cls, model: Any) -> PymcFingerprint:
        import hashlib

        def ids(variables) -> tuple:
            return tuple((v.name, id(v)) for v in variables)

        data = []
        for v in getattr(model, "data_vars", []):
            value = np.ascontiguousarray(v.get_value()) if hasattr(v, "get_value") else np.asarray(v.data)
            data.append((v.name, id(v), value.dtype.str, value.shape,
                         hashlib.sha256(value.tobytes()).hexdigest()))
        key = (
            ids(model.free_RVs), ids(model.observed_RVs), ids(model.deterministics), ids(model.potentials),
            tuple(sorted((k, id(v)) for k, v in model.named_vars.items())),
            tuple(sorted((v.name, id(t)) for v, t in model.rvs_to_transforms.items())),
            tuple(sorted((v.name, repr(i)) for v, i in model.rvs_to_initial_values.items())),
            tuple(data),
        )
        refs = (*model.named_vars.values(), *model.potentials, *model.rvs_to_transforms.values())
        return cls(key, refs)


def build_pymc_model(design: Design, priors: PriorTable) -> tuple[Any, dict[str, np.ndarray]]:
    """Build the PyMC model of a design under its priors.

    Returns
    -------
    model, initial_points
        The ``pm.Model`` and starting values for the LKJ blocks' partial
        correlations (zero: the identity correlation matrix).
    """
    import pymc as pm
    import pytensor.tensor as pt

    quiet_blas_search()
    X = design.X
    names = design.fixef_names
    slopes = [j for j, n in enumerate(names) if n != "(Intercept)"]
    coords: dict[str, list[str]] = {"fixef_term": names, "obs": [str(r) for r in design.rows]}
    if slopes:
        coords["b_term"] = [names[j] for j in slopes]
    for blk in design.blocks:
        coords[blk.level_dim] = blk.levels
        coords[blk.term_dim] = blk.terms
        if blk.correlated:
            coords[correlation_dim(blk)] = correlation_labels(blk.terms)
    initial: dict[str, np.ndarray] = {}
    with pm.Model(coords=coords) as model:
        b = None
        if slopes:
            b = _vector_rv("b", [priors.get("b", coef=names[j]) for j in slopes], dims="b_term")
        if design.intercept:
            means = X[:, slopes].mean(axis=0)
            intercept = _scalar_rv("Intercept", priors.get("Intercept"))
            eta = intercept + (pt.dot(X[:, slopes] - means, b) if slopes else 0.0)
            parts = []
            for j, n in enumerate(names):
                if n == "(Intercept)":
                    parts.append(intercept - (pt.dot(means, b) if slopes else 0.0))
                else:
                    parts.append(b[slopes.index(j)])
            pm.Deterministic("fixef", pt.stack(parts), dims="fixef_term")
        else:
            eta = pt.dot(X, b) if slopes else pt.zeros(design.n_obs)
            if slopes:
                pm.Deterministic("fixef", b, dims="fixef_term")
        for blk in design.blocks:
            g = blk.group
            sd_priors = [priors.get("sd", g, t) for t in blk.terms]
            z = pm.Normal(f"z_{g}", 0.0, 1.0, dims=(blk.level_dim, blk.term_dim))
            sd = _vector_rv(f"sd_{g}", sd_priors, dims=blk.term_dim)
            if blk.correlated:
                eta_lkj = priors.get("cor", g).params["eta"]
                _, corr_chol = lkj_corr_cholesky(f"cpc_{g}", n=blk.n_terms, eta=eta_lkj)
                rows, cols = (list(ix) for ix in zip(*correlation_pairs(blk.n_terms), strict=True))
                pm.Deterministic(f"cor_{g}", pt.dot(corr_chol, corr_chol.T)[rows, cols],
                                 dims=correlation_dim(blk))
                chol = sd[:, None] * corr_chol
                r = pm.Deterministic(f"r_{g}", pt.dot(z, chol.T), dims=(blk.level_dim, blk.term_dim))
                initial[f"cpc_{g}"] = np.zeros(blk.n_terms * (blk.n_terms - 1) // 2)
            else:
                r = pm.Deterministic(f"r_{g}", z * sd, dims=(blk.level_dim, blk.term_dim))
            if blk.n_terms == 1:
                eta = eta + blk.Z[:, 0] * r[blk.index, 0]
            else:
                eta = eta + (blk.Z * r[blk.index]).sum(axis=1)
        taken = {v.name for v in model.free_RVs + model.deterministics}
        obs = observed_name(design, taken)
        family = design.family
        if family.name == "gaussian":
            sigma = _scalar_rv("sigma", priors.get("sigma"))
            pm.Normal(obs, mu=eta, sigma=sigma, observed=design.y, dims="obs")
        elif family.name == "bernoulli":
            pm.Bernoulli(obs, logit_p=eta, observed=design.y, dims="obs")
        else:
            pm.Poisson(obs, mu=pt.exp(eta), observed=design.y, dims="obs")
    return model, initial


def linear_predictor(
    design: Design,
    posterior: Any,
    X: np.ndarray | None = None,
    blocks: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """The linear predictor for every posterior draw, in NumPy.

    Parameters
    ----------
    design
        The fitted design.
    posterior
        Draws by name (``fit.posterior`` or ``idata.posterior``) with ``fixef``
        and ``r_<group>``.
    X, blocks
        Fixed-effect matrix and, per block, ``(Z, index)`` for other rows;
        the fitted data's when omitted. An index of -1 adds no group effect.

    Returns
    -------
    numpy.ndarray
        Shape ``(chains, draws, rows)``.
    """
    X = design.X if X is None else X
    if blocks is None:
        blocks = [(b.Z, b.index) for b in design.blocks]
    first = np.asarray(posterior["sigma" if "sigma" in posterior else f"r_{design.blocks[0].group}"]
                       if "fixef" not in posterior else posterior["fixef"])
    chains, draws = first.shape[:2]
    eta = np.zeros((chains, draws, X.shape[0]))
    if "fixef" in posterior:
        eta += np.einsum("cdp,np->cdn", np.asarray(posterior["fixef"]), X)
    for blk, (Z, index) in zip(design.blocks, blocks, strict=True):
        r = np.asarray(posterior[f"r_{blk.group}"])
        seen = index >= 0
        gathered = r[:, :, np.where(seen, index, 0), :]
        eta += np.einsum("cdnq,nq->cdn", gathered, Z * seen[:, None])
    return eta


class Model:
    """A Bayesian mixed model from an lme4 formula and a DataFrame.

    Parameters
    ----------
    formula
        An lme4 formula: ``"Reaction ~ Days + (Days | Subject)"``. See
        ``docs/formula.md`` for the grammar.
    data
        The data. It is never modified.
    family
        ``"gaussian"`` (default), ``"bernoulli"`` (alias ``"binomial"``) or
        ``"poisson"``.
    priors
        Priors replacing the defaults, brms-style:
        ``{"b": "normal(0, 50)", "sd[Subject, Days]": "student_t(3, 0, 10)",
        "cor": "lkj(2)"}``. See :mod:`hierbayes.bayes.priors`.
    na_action
        ``"omit"`` drops rows with missing values and warns with the count;
        ``"raise"`` raises.

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

    def __init__(
        self,
        formula: str,
        data: pd.DataFrame,
        family: str | Family = "gaussian",
        priors: dict[str, Any] | None = None,
        na_action: str = "omit",
    ) -> None:
        self.formula = parse_formula(formula)
        self.design = build_design(self.formula, data, family=family, na_action=na_action)
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
        return observed_name(self.design, taken | {"fixef", "Intercept", "b", "sigma"})

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
        from hierbayes.bayes.policy import supported

        if self.pymc_model_changed():
            return ("its pm.Model (model.pymc_model) was extended or changed, and hierbayes's "
                    "compiled kernel reads only the model hierbayes built, not the PyMC graph")
        return supported(self.priors)

    def use_marginal(self, marginal: bool | None = None) -> bool:
        """Whether hierbayes's sampler integrates the group effects out.

        ``None`` chooses: yes for Gaussian models whose blocked factorisation
        is cheap (:func:`hierbayes.bayes.policy.marginal_cost` at most 1e5
        flops, e.g. one grouping factor), or at most 2e5 when the design is
        nested (:func:`hierbayes.bayes.policy.first_block_nested`). There it
        removes the funnel between SDs and group effects; on crossed designs
        the full model with centring from the data was faster (pupils: 5.7 s
        against 16.1 s, benchmarks/results.md).
        """
        from hierbayes.bayes.policy import first_block_nested, marginal_cost

        gaussian = self.family.name == "gaussian"
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
        from hierbayes.bayes.policy import choose_centring

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

    def plot_prior_predictive(self, draws: int = 500, seed: int | None = None, idata=None,
                              num_pp_samples: int = 100, kind: str = "kde", **kwargs):
        """ArviZ's ``plot_ppc`` of the prior predictive against the data; returns the Figure.

        ``idata`` from :meth:`prior_predictive` is drawn when not given.

        Examples
        --------
        >>> import hierbayes as hb
        >>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
        >>> m.plot_prior_predictive(draws=200, seed=1).savefig("prior.png")  # doctest: +SKIP
        """
        import arviz as az

        idata = self.prior_predictive(draws, seed) if idata is None else idata
        kwargs.setdefault("observed", True)  # ArviZ leaves the data out of prior checks
        ax = az.plot_ppc(idata, group="prior", num_pp_samples=min(num_pp_samples, draws),
                         random_seed=seed, kind=kind, **kwargs)
        ax = np.ravel(ax)[0]
        ax.set_title(f"Prior predictive check: {self.formula.formula}")
        ax.set_ylabel("density" if kind == "kde" else "")
        ax.set_xlabel(self.design.response_label)
        return ax.figure

    def fit_reml(self):
        """Fit the same formula by REML with the lme4-style engine (:mod:`hierbayes.freq`)."""
        from hierbayes.report.lmer import fit_lmer as fit_design

        return fit_design(self.design, reml=True)

    def fit_ml(self):
        """Fit the same formula by maximum likelihood with the lme4-style engine."""
        from hierbayes.report.lmer import fit_lmer as fit_design

        return fit_design(self.design, reml=False)

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
    ):
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
            compiled once per installation and cached on disk), ``"nutpie"`` (compiles this
            model's PyMC graph; chosen, with a warning saying why, when the
            ``pm.Model`` was extended or a prior is one the kernel lacks),
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
            hierbayes's sampler only: sample group effects centred (True),
            non-centred (False), per block (``{"dept": True}``), or as the
            data suggest (None; :func:`hierbayes.bayes.policy.choose_centring`).
            The posterior is the same; only the sampler's efficiency differs.
        marginal
            hierbayes's sampler, Gaussian models only: integrate the group
            effects out and sample fixed effects, SDs, correlations and sigma,
            then draw the group effects exactly for each draw. None (default)
            does so where the factorisation is cheap (:meth:`use_marginal`).

        Returns
        -------
        BayesFit
        """
        from hierbayes.bayes.sampling import run_nuts
        from hierbayes.report import BayesFit

        if not isinstance(check, bool | np.bool_):
            raise SamplerError(f"check must be True or False, not {check!r}.")
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
        )
        fit = BayesFit(self, posterior, info, idata)
        if check:
            fit.check_convergence()
        return fit
