"""Running NUTS: hierbayes's own (the default), nutpie, PyMC's sampler, or numpyro.

``"hierbayes"`` samples the model's log density from one compiled C kernel that
serves every model and is built when hierbayes is installed (:mod:`hierbayes.bayes.pack`,
:mod:`hierbayes.bayes.nuts`): nothing is compiled per model, and neither PyMC nor
ArviZ is imported to get a summary. It is used whenever it can express the
model; a ``pm.Model`` that the user extended or changed, or a prior it lacks
(uniform), goes to nutpie, which
compiles the PyMC model with numba, and a :class:`~hierbayes.errors.HierbayesWarning`
says so and why (:func:`choose_sampler`). nutpie's compilation is cached per
model and dropped when the ``pm.Model`` changes (:meth:`hierbayes.bayes.model.BayesModel.compiled`).
``sampler="nutpie"`` on a model the kernel can express runs nutpie's NUTS on that
same compiled density instead, with every form of it (:mod:`hierbayes.bayes.nutpie_native`;
:func:`runs_on_density`), where the installed nutpie is one whose interface was tested.
PyMC's sampler is there for step methods and settings nutpie lacks; numpyro when JAX is installed.

Draws are kept as NumPy arrays (:class:`~hierbayes.bayes.posterior.Posterior`);
``fit.idata`` builds the ArviZ InferenceData (:mod:`hierbayes.bayes.idata`) when
first asked for.

Examples
--------
>>> from hierbayes.bayes.sampler import available_samplers
>>> available_samplers()[:2]
['hierbayes', 'nutpie']
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from hierbayes.bayes import nutpie_native
from hierbayes.bayes.posterior import Posterior, SamplingInfo, variable_dims
from hierbayes.errors import HierbayesWarning, SamplerError
from hierbayes.spec.naming import correlation_pairs

if TYPE_CHECKING:
    from hierbayes.bayes.model import BayesModel

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


def check_flag(name: str, value: Any, none: bool = False) -> None:
    """Refuse (:class:`SamplerError`) a flag that is not True or False (or None, with ``none``)."""
    if not (isinstance(value, bool | np.bool_) or (none and value is None)):
        allowed = "True, False or None" if none else "True or False"
        raise SamplerError(f"{name} must be {allowed}, not {value!r}.")


#: The deepest tree a fit may ask for: 2**20 leapfrog steps per draw is already hours on a large model.
MAX_TREEDEPTH = 20


def check_settings(model: BayesModel, draws: Any, tune: Any, chains: Any, seed: Any, sampler: Any,
                   target_accept: Any, cores: Any, progressbar: Any, centred: Any,
                   marginal: Any, max_treedepth: Any = 10) -> None:
    """Refuse (:class:`SamplerError`) any setting of the wrong type or value, before anything runs."""
    counts = [("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1), ("max_treedepth", max_treedepth, 1)]
    if cores is not None:
        counts.append(("cores", cores, 1))
    for name, value, low in counts:
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) or value < low:
            raise SamplerError(f"{name} must be an integer of at least {low}, not {value!r}.")
    if max_treedepth > MAX_TREEDEPTH:
        raise SamplerError(f"max_treedepth must be at most {MAX_TREEDEPTH} (2**{MAX_TREEDEPTH} leapfrog steps "
                           f"per draw), not {max_treedepth}. Stan's default, 10, suits most models; raise it "
                           "a few steps at a time if the tree-depth warning asks for it.")
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
    check_flag("progressbar", progressbar)
    check_flag("marginal", marginal, none=True)
    if marginal and not model.family.supports_marginal:
        raise SamplerError(f"marginal=True needs a Gaussian model: only there do the group effects "
                           f"integrate out in closed form (this one is {model.family.name}). Leave "
                           "marginal out.")
    model.check_centred(centred)


def _asks_own_forms(centred: Any, marginal: Any) -> list[str]:
    """The settings among ``centred`` and ``marginal`` that only samplers of the compiled density honour."""
    out = []
    if marginal is True:
        out.append("marginal=True")
    if centred is True or (isinstance(centred, dict) and any(centred.values())):
        out.append(f"centred={centred!r}")
    return out


def runs_on_density(model: BayesModel, sampler: str) -> bool:
    """Whether ``sampler`` samples hierbayes's compiled density (else the PyMC graph).

    hierbayes's own sampler always does; nutpie does when the kernel can
    express the model and the installed nutpie is one whose private interface
    was tested (:func:`hierbayes.bayes.nutpie_native.unsupported`).
    """
    if sampler == "hierbayes":
        return True
    return sampler == "nutpie" and model.own_sampler_obstacle() is None and \
        nutpie_native.unsupported() is None


def choose_sampler(model: BayesModel, sampler: str | None, centred: Any = None, marginal: Any = None) -> str:
    """The sampler a fit uses, saying so (:class:`HierbayesWarning`) whenever it is not the one asked for.

    ``None`` asks for hierbayes's own sampler. It moves to a sampler of the
    PyMC graph (nutpie, else PyMC's) when the kernel cannot express the model
    (an extended or changed ``pm.Model``, a prior it lacks), and warns with
    the reason. ``"nutpie"`` samples the compiled density, unless the model
    needs the graph or the installed nutpie's interface was not tested, which
    warns (:func:`runs_on_density`). ``centred=`` or ``marginal=True`` given
    to a sampler of the graph, which cannot honour them, warn too. Kernels
    that are not available are an error, never a reason to move.
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
    if sampler == "nutpie" and own_reason is None and (why := nutpie_native.unsupported()):
        warnings.warn(
            f"nutpie samples the PyMC graph (model.pymc_model), compiling it first, not hierbayes's "
            f"compiled density: {why}. The posterior is the same.", HierbayesWarning, stacklevel=4)
    ignored = _asks_own_forms(centred, marginal)
    if ignored and not runs_on_density(model, sampler):
        warnings.warn(
            f"{' and '.join(ignored)} ignored: only the samplers of hierbayes's compiled density have "
            f"those forms, and {sampler} samples the PyMC model as built (group effects non-centred, "
            "not integrated out). The posterior is the same; only the sampler's efficiency differs.",
            HierbayesWarning, stacklevel=4)
    return sampler



def _hierbayes(model: BayesModel, draws, tune, chains, seed, target_accept, cores, progressbar, centred,
               max_treedepth, marginal=False, runner=None):
    from hierbayes.bayes.nuts import sample
    from hierbayes.bayes.pack import pack

    packed = pack(model.design, model.priors, centred=centred, marginal=marginal)
    # runner: a sampler of the packed density (ours, or nutpie's through nutpie_native)
    run = (runner or sample)(packed, draws=draws, tune=tune, chains=chains, seed=seed,
                             target_accept=target_accept, cores=cores, progressbar=progressbar,
                             max_treedepth=max_treedepth)
    t0 = time.perf_counter()
    variables = packed.constrain(run.draws, seed=seed)
    for blk in model.design.blocks:
        if blk.correlated:  # the kernel gives whole matrices; the posterior keeps the pairs
            rows, cols = (list(ix) for ix in zip(*correlation_pairs(blk.n_terms), strict=True))
            variables[f"cor_{blk.group}"] = variables[f"cor_{blk.group}"][..., rows, cols]
    run.sampling_seconds += time.perf_counter() - t0
    dims, coords = variable_dims(model.design)
    stats = dict(run.stats)
    stats["diverging"] = stats["diverging"].astype(bool)
    post = Posterior({k: variables[k] for k in dims}, dims, coords, stats)
    return post, None, run.compile_seconds, run.sampling_seconds


def _nutpie(model: BayesModel, draws, tune, chains, seed, target_accept, cores, progressbar, centred,
            max_treedepth, marginal=False):
    if runs_on_density(model, "nutpie"):
        return _hierbayes(model, draws, tune, chains, seed, target_accept, cores, progressbar, centred,
                          marginal=marginal, max_treedepth=max_treedepth, runner=nutpie_native.sample)
    import nutpie

    # nutpie's default depth is 10 too; before 0.16.3 its maxdepth setting set the minimum depth
    depth = {} if max_treedepth == 10 else {"maxdepth": int(max_treedepth)}
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
        **depth,
    )
    return Posterior.from_idata(idata), idata, t1 - t0, time.perf_counter() - t1


def _pymc(model: BayesModel, draws, tune, chains, seed, target_accept, cores, progressbar, centred,
          max_treedepth, numpyro=False):
    import pymc as pm

    t0 = time.perf_counter()
    kwargs: dict[str, Any] = {}
    if numpyro:
        kwargs["nuts_sampler"] = "numpyro"
        kwargs["nuts_sampler_kwargs"] = {"nuts_kwargs": {"max_tree_depth": max_treedepth}}
    else:
        kwargs["nuts"] = {"max_treedepth": max_treedepth}
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


def run_nuts(
    model: BayesModel,
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
    max_treedepth: int = 10,
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
                   centred, marginal, max_treedepth)
    sampler = choose_sampler(model, sampler, centred, marginal)
    blocks = model.design.blocks
    density = runs_on_density(model, sampler)
    flags = model.centring(centred) if density else [False] * len(blocks)
    marginal = model.use_marginal(marginal) if density else False
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    seed = int(seed)
    args = (model, draws, tune, chains, seed, target_accept, cores, progressbar, flags, int(max_treedepth))
    if sampler == "hierbayes":
        posterior, idata, compile_s, sample_s = _hierbayes(*args, marginal=marginal)
    elif sampler == "nutpie":
        posterior, idata, compile_s, sample_s = _nutpie(*args, marginal=marginal)
    else:
        posterior, idata, compile_s, sample_s = _pymc(*args, numpyro=sampler == "numpyro")
    from hierbayes.bayes.pack import collapsed_block  # pack loads SciPy: only once a fit has run

    collapsed = collapsed_block(model.design) if density and not marginal else -1
    info = SamplingInfo(
        sampler=sampler,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        target_accept=target_accept,
        compile_seconds=round(compile_s, 3),
        sampling_seconds=round(sample_s, 3),
        centred={} if marginal else {b.group: bool(f) for g, (b, f) in enumerate(zip(blocks, flags, strict=True))
                                     if g != collapsed},
        collapsed=None if collapsed < 0 else blocks[collapsed].group,
        marginal=marginal,
        max_treedepth=int(max_treedepth),
        graph=not density,
        pymc_changed=sampler != "hierbayes" and model.pymc_model_changed(),
    )
    return posterior, info, idata
