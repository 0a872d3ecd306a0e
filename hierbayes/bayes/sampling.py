"""Running NUTS: hierbayes's own (the default), nutpie, PyMC's sampler, or numpyro.

``"hierbayes"`` samples the model's log density from one compiled C kernel that
serves every model and is built when hierbayes is installed (:mod:`hierbayes.bayes.pack`,
:mod:`hierbayes.bayes.nuts`): nothing is compiled per model, and neither PyMC nor
ArviZ is imported to get a summary. It is used whenever it can express the
model; a ``pm.Model`` that the user extended or changed, or a prior it lacks
(uniform), goes to nutpie, which
compiles the PyMC model with numba, and a :class:`~hierbayes.errors.HierbayesWarning`
says so and why (:func:`choose_sampler`). nutpie's compilation is cached per
model and dropped when the ``pm.Model`` changes (:meth:`hierbayes.Model.compiled`). PyMC's sampler is
there for step methods and settings nutpie lacks; numpyro when JAX is installed.

Draws are kept as NumPy arrays (:class:`Posterior`); ``fit.idata`` builds the
ArviZ InferenceData, with the observed data and the pointwise log-likelihood
(computed in NumPy from the draws), when first asked for.

Examples
--------
>>> from hierbayes.bayes.sampling import available_samplers
>>> available_samplers()[:2]
['hierbayes', 'nutpie']
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hierbayes.bayes.model import (
    correlation_dim,
    correlation_labels,
    correlation_pairs,
    linear_predictor,
)
from hierbayes.errors import HierbayesWarning, SamplerError

if TYPE_CHECKING:
    from hierbayes.bayes.model import Model

SAMPLERS = ("hierbayes", "nutpie", "pymc", "numpyro")


def available_samplers() -> list[str]:
    """The samplers that can run here, fastest first."""
    # hierbayes's own kernels are built at install: when they are missing the fit
    # says so (hierbayes.bayes.native.load) rather than moving to another sampler
    found = ["hierbayes"]
    for name in SAMPLERS[1:]:
        if importlib.util.find_spec(name) is not None:
            found.append(name)
    return found


@dataclass
class SamplingInfo:
    """What was run: sampler, settings, seed and where the time went."""

    sampler: str
    draws: int
    tune: int
    chains: int
    seed: int
    target_accept: float
    compile_seconds: float
    sampling_seconds: float
    centred: dict[str, bool] = field(default_factory=dict)
    marginal: bool = False
    # the pm.Model sampled had been extended or changed by the user (not rebuilt by load_fit)
    pymc_changed: bool = False


@dataclass
class Posterior:
    """Posterior draws as NumPy arrays shaped ``(chain, draw, *shape)``.

    Attributes
    ----------
    variables
        Name -> draws.
    dims
        Name -> dimension names of the trailing axes (as in the InferenceData).
    coords
        Dimension name -> labels.
    stats
        Sampler statistics (``diverging``, ``tree_depth``, ...), each ``(chain, draw)``.
    """

    variables: dict[str, np.ndarray]
    dims: dict[str, tuple[str, ...]]
    coords: dict[str, list]
    stats: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.variables[name]

    def __contains__(self, name: str) -> bool:
        return name in self.variables

    @property
    def n_chains(self) -> int:
        return next(iter(self.variables.values())).shape[0]

    @property
    def n_draws(self) -> int:
        return next(iter(self.variables.values())).shape[1]

    @classmethod
    def from_idata(cls, idata: Any) -> Posterior:
        post = idata.posterior
        variables = {k: v.to_numpy() for k, v in post.data_vars.items()}
        dims = {k: tuple(v.dims[2:]) for k, v in post.data_vars.items()}
        coords = {k: list(v.to_numpy()) for k, v in post.coords.items() if k not in ("chain", "draw")}
        stats = {k: v.to_numpy() for k, v in idata.sample_stats.data_vars.items()} if "sample_stats" in idata.groups() else {}
        return cls(variables, dims, coords, stats)


def _check_flag(name: str, value: Any, none: bool = False) -> None:
    if not (isinstance(value, bool | np.bool_) or (none and value is None)):
        allowed = "True, False or None" if none else "True or False"
        raise SamplerError(f"{name} must be {allowed}, not {value!r}.")


def check_settings(model: Model, draws: Any, tune: Any, chains: Any, seed: Any, sampler: Any,
                   target_accept: Any, cores: Any, progressbar: Any, centred: Any,
                   marginal: Any) -> None:
    """Refuse (:class:`SamplerError`) any setting of the wrong type or value, before anything runs."""
    counts = [("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1)]
    if cores is not None:
        counts.append(("cores", cores, 1))
    for name, value, low in counts:
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) or value < low:
            raise SamplerError(f"{name} must be an integer of at least {low}, not {value!r}.")
    if seed is not None:
        if isinstance(seed, bool | np.bool_) or not isinstance(seed, int | np.integer) or \
                not 0 <= seed < 2**32:
            raise SamplerError(f"seed must be None or an integer from 0 to 2**32 - 1, not {seed!r}.")
    if sampler is not None and not isinstance(sampler, str):
        raise SamplerError(f"sampler must be None or a name ({', '.join(SAMPLERS)}), not {sampler!r}.")
    if isinstance(target_accept, bool | np.bool_) or \
            not isinstance(target_accept, int | float | np.integer | np.floating):
        raise SamplerError(f"target_accept must be a number between 0 and 1 (e.g. 0.9), not "
                           f"{target_accept!r}.")
    if not 0 < target_accept < 1:  # also refuses nan
        raise SamplerError(f"target_accept must lie between 0 and 1, not {target_accept!r}.")
    _check_flag("progressbar", progressbar)
    _check_flag("marginal", marginal, none=True)
    if marginal and model.family.name != "gaussian":
        raise SamplerError(f"marginal=True needs a Gaussian model: only there do the group effects "
                           f"integrate out in closed form (this one is {model.family.name}). Leave "
                           "marginal out.")
    model.check_centred(centred)


def _asks_own_forms(centred: Any, marginal: Any) -> list[str]:
    """The settings among ``centred`` and ``marginal`` that only hierbayes's sampler honours."""
    out = []
    if marginal is True:
        out.append("marginal=True")
    if centred is True or (isinstance(centred, dict) and any(centred.values())):
        out.append(f"centred={centred!r}")
    return out


def choose_sampler(model: Model, sampler: str | None, centred: Any = None, marginal: Any = None) -> str:
    """The sampler a fit uses, saying so (:class:`HierbayesWarning`) whenever it is not the one asked for.

    ``None`` asks for hierbayes's own sampler. It moves to a sampler of the
    PyMC graph (nutpie, else PyMC's) when the kernel cannot express the model
    (an extended or changed ``pm.Model``, a prior it lacks), and warns with
    the reason; ``centred=`` or ``marginal=True`` given to another sampler,
    which cannot honour them, warn too. Kernels that are not available are
    an error, never a reason to move.
    """
    available = available_samplers()
    if sampler is not None and sampler not in SAMPLERS:
        raise SamplerError(f"Unknown sampler {sampler!r}. Choose one of: {', '.join(SAMPLERS)}.")
    own_reason = model.own_sampler_obstacle()
    if sampler in (None, "hierbayes") and own_reason is None and "hierbayes" not in available:
        raise SamplerError("hierbayes's own sampler cannot run here: its compiled kernels are not "
                           "available (see docs/sampling.md). Fit with sampler='nutpie' or 'pymc'.")
    if sampler is not None and sampler not in available:
        raise SamplerError(
            f"The sampler '{sampler}' is not installed (pip install {sampler}). "
            f"Installed: {', '.join(available)}."
        )
    if sampler == "hierbayes" and own_reason is not None:
        raise SamplerError(f"sampler='hierbayes' cannot sample this model: {own_reason}. "
                           "Use sampler='nutpie' or 'pymc'.")
    if sampler is None:
        if own_reason is None:
            return "hierbayes"
        graph = [s for s in available if s != "hierbayes"]
        if not graph:
            raise SamplerError(f"hierbayes's sampler cannot sample this model ({own_reason}), and no "
                               "sampler of PyMC graphs is installed: pip install nutpie.")
        sampler = graph[0]
        warnings.warn(
            f"Sampling with {sampler}, not hierbayes's own sampler: {own_reason}. {sampler} samples the "
            "PyMC graph (model.pymc_model), compiling it first (seconds to a minute per model and "
            f"process). Pass sampler='{sampler}' to choose it yourself.",
            HierbayesWarning, stacklevel=4)
    ignored = _asks_own_forms(centred, marginal)
    if sampler != "hierbayes" and ignored:
        warnings.warn(
            f"{' and '.join(ignored)} ignored: only hierbayes's sampler has those forms, and {sampler} "
            "samples the PyMC model as built (group effects non-centred, not integrated out). The "
            "posterior is the same; only the sampler's efficiency differs.",
            HierbayesWarning, stacklevel=4)
    return sampler


def variable_dims(model: Model) -> tuple[dict[str, tuple[str, ...]], dict[str, list]]:
    """Dimension names and coordinates of the posterior variables, as the PyMC model names them."""
    d = model.design
    names = d.fixef_names
    slopes = [n for n in names if n != "(Intercept)"]
    dims: dict[str, tuple[str, ...]] = {}
    coords: dict[str, list] = {}
    if names:
        dims["fixef"] = ("fixef_term",)
        coords["fixef_term"] = list(names)
    if d.intercept:
        dims["Intercept"] = ()
    if slopes:
        dims["b"] = ("b_term",)
        coords["b_term"] = slopes
    for blk in d.blocks:
        g = blk.group
        coords[blk.level_dim] = list(blk.levels)
        coords[blk.term_dim] = list(blk.terms)
        dims[f"sd_{g}"] = (blk.term_dim,)
        dims[f"z_{g}"] = dims[f"r_{g}"] = (blk.level_dim, blk.term_dim)
        if blk.correlated:
            k = blk.n_terms * (blk.n_terms - 1) // 2
            dims[f"cpc_{g}"] = (f"cpc_{g}_dim_0",)
            coords[f"cpc_{g}_dim_0"] = list(range(k))
            dims[f"cor_{g}"] = (correlation_dim(blk),)
            coords[correlation_dim(blk)] = correlation_labels(blk.terms)
    if d.family.has_sigma:
        dims["sigma"] = ()
    return dims, coords


def _hierbayes(model: Model, draws, tune, chains, seed, target_accept, cores, progressbar, centred,
               marginal=False):
    from hierbayes.bayes.nuts import sample
    from hierbayes.bayes.pack import pack

    packed = pack(model.design, model.priors, centred=centred, marginal=marginal)
    run = sample(packed, draws=draws, tune=tune, chains=chains, seed=seed,
                 target_accept=target_accept, cores=cores, progressbar=progressbar)
    t0 = time.perf_counter()
    variables = packed.constrain(run.draws, seed=seed)
    for blk in model.design.blocks:
        if blk.correlated:  # the kernel gives whole matrices; the posterior keeps the pairs
            rows, cols = (list(ix) for ix in zip(*correlation_pairs(blk.n_terms), strict=True))
            variables[f"cor_{blk.group}"] = variables[f"cor_{blk.group}"][..., rows, cols]
    run.sampling_seconds += time.perf_counter() - t0
    dims, coords = variable_dims(model)
    stats = dict(run.stats)
    stats["diverging"] = stats["diverging"].astype(bool)
    post = Posterior({k: variables[k] for k in dims}, dims, coords, stats)
    return post, None, run.compile_seconds, run.sampling_seconds


def _nutpie(model: Model, draws, tune, chains, seed, target_accept, cores, progressbar, centred):
    import nutpie

    t0 = time.perf_counter()
    compiled, _ = model.compiled("nutpie", lambda m: nutpie.compile_pymc_model(
        m, initial_points=model.initial_points or None))
    t1 = time.perf_counter()
    idata = nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores or chains,
        seed=seed,
        target_accept=target_accept,
        progress_bar=progressbar,
        save_warmup=False,
    )
    return Posterior.from_idata(idata), idata, t1 - t0, time.perf_counter() - t1


def _pymc(model: Model, draws, tune, chains, seed, target_accept, cores, progressbar, centred,
          numpyro=False):
    import pymc as pm

    t0 = time.perf_counter()
    kwargs: dict[str, Any] = {}
    if numpyro:
        kwargs["nuts_sampler"] = "numpyro"
    with model.pymc_model:
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            random_seed=seed,
            target_accept=target_accept,
            progressbar=progressbar,
            initvals=model.initial_points or None,
            compute_convergence_checks=False,
            **kwargs,
        )
    # PyMC compiles inside pm.sample; its time is counted as sampling here.
    return Posterior.from_idata(idata), idata, 0.0, time.perf_counter() - t0


def pointwise_loglik(model: Model, posterior: Any) -> np.ndarray:
    """Log-likelihood of each observation under each draw, shape (chains, draws, n)."""
    design = model.design
    eta = linear_predictor(design, posterior)
    y = design.y
    if design.family.name == "gaussian":
        sigma = np.asarray(posterior["sigma"])[:, :, None]
        return -0.5 * np.log(2 * np.pi) - np.log(sigma) - 0.5 * ((y - eta) / sigma) ** 2
    if design.family.name == "bernoulli":
        # log p = -log(1 + exp(-eta)) for y = 1, -log(1 + exp(eta)) for y = 0
        return -np.logaddexp(0.0, np.where(y == 1, -eta, eta))
    from scipy.special import gammaln

    return y * eta - np.exp(eta) - gammaln(y + 1)


def build_idata(model: Model, posterior: Posterior, info: SamplingInfo, idata: Any = None):
    """The ArviZ InferenceData of a fit: posterior, sample stats, observed data, log-likelihood."""
    import arviz as az
    import xarray as xr

    design = model.design
    obs_name = model.observed_name
    chain = np.arange(posterior.n_chains)
    draw = np.arange(posterior.n_draws)
    if idata is None:
        base = {"chain": chain, "draw": draw}
        data_vars = {}
        for name, values in posterior.variables.items():
            d = posterior.dims[name]
            data_vars[name] = (("chain", "draw", *d), values)
        coords = {**base, **{k: v for k, v in posterior.coords.items()}}
        post = xr.Dataset(data_vars, coords=coords)
        stats = xr.Dataset({k: (("chain", "draw"), v) for k, v in posterior.stats.items()},
                           coords=base)
        idata = az.InferenceData(posterior=post, sample_stats=stats)
    loglik = pointwise_loglik(model, posterior)
    obs = [str(r) for r in design.rows]
    coords = {"chain": idata.posterior["chain"].to_numpy(), "draw": idata.posterior["draw"].to_numpy(),
              "obs": obs}
    ll = xr.Dataset({obs_name: (("chain", "draw", "obs"), loglik)}, coords=coords)
    observed = xr.Dataset({obs_name: (("obs",), design.y)}, coords={"obs": obs})
    for group, data in (("log_likelihood", ll), ("observed_data", observed)):
        if group in idata.groups():
            delattr(idata, group)
        idata.add_groups({group: data})
    idata.posterior.attrs.update({f"hierbayes_{k}": v for k, v in asdict(info).items()})
    idata.posterior.attrs["formula"] = design.formula.formula
    for group in idata.groups():
        ds = idata[group]
        ds.attrs = netcdf_attrs(ds.attrs)
        for var in ds.variables.values():
            var.attrs = netcdf_attrs(var.attrs)
    return idata


def netcdf_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes as netCDF can hold them: booleans as 0/1, None as "", dicts and lists as JSON.

    Examples
    --------
    >>> netcdf_attrs({"marginal": True, "centred": {"Subject": False}, "seed": 1, "x": None})
    {'marginal': 1, 'centred': '{"Subject": false}', 'seed': 1, 'x': ''}
    """
    import json

    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, bool | np.bool_):
            value = int(value)
        elif value is None:
            value = ""
        elif isinstance(value, dict | list | tuple):
            value = json.dumps(value, default=str)
        elif isinstance(value, np.ndarray) and value.dtype.kind not in "iuf":
            value = json.dumps(value.tolist(), default=str)
        out[str(key)] = value
    return out


def run_nuts(
    model: Model,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int | None = None,
    sampler: str | None = None,
    target_accept: float = 0.9,
    cores: int | None = None,
    progressbar: bool = True,
    centred: Any = None,
    marginal: bool | None = None,
):
    """Sample a model's posterior.

    Returns
    -------
    posterior, info, idata
        The draws (:class:`Posterior`), a :class:`SamplingInfo`, and the
        sampler's own InferenceData (None for ``"hierbayes"``, which builds
        one on request).
    """
    check_settings(model, draws, tune, chains, seed, sampler, target_accept, cores, progressbar,
                   centred, marginal)
    sampler = choose_sampler(model, sampler, centred, marginal)
    blocks = model.design.blocks
    flags = model.centring(centred) if sampler == "hierbayes" else [False] * len(blocks)
    marginal = model.use_marginal(marginal) if sampler == "hierbayes" else False
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    seed = int(seed)
    args = (model, draws, tune, chains, seed, target_accept, cores, progressbar, flags)
    if sampler == "hierbayes":
        posterior, idata, compile_s, sample_s = _hierbayes(*args, marginal=marginal)
    elif sampler == "nutpie":
        posterior, idata, compile_s, sample_s = _nutpie(*args)
    else:
        posterior, idata, compile_s, sample_s = _pymc(*args, numpyro=sampler == "numpyro")
    info = SamplingInfo(
        sampler=sampler,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        target_accept=target_accept,
        compile_seconds=round(compile_s, 3),
        sampling_seconds=round(sample_s, 3),
        centred={} if marginal else {b.group: bool(f) for b, f in zip(blocks, flags, strict=True)},
        marginal=marginal,
        pymc_changed=sampler != "hierbayes" and model.pymc_model_changed(),
    )
    return posterior, info, idata
