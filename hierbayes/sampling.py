"""Running NUTS: nutpie (the default), PyMC's own sampler, or numpyro.

nutpie compiles the model's log-density with numba and samples chains in
parallel threads; it is the fastest route on a CPU. PyMC's sampler is there for
step methods and settings nutpie lacks; numpyro when JAX is installed.

After sampling, the InferenceData gets the observed data and the pointwise
log-likelihood (computed in NumPy from the draws, so no second compile), and a
record of the run in ``idata.attrs``.

Examples
--------
>>> from hierbayes.sampling import available_samplers
>>> "nutpie" in available_samplers()
True
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from .errors import SamplerError
from .model import linear_predictor

if TYPE_CHECKING:
    from .model import Model

SAMPLERS = ("nutpie", "pymc", "numpyro")


def available_samplers() -> list[str]:
    """The samplers that can run here, fastest first."""
    found = []
    for name in SAMPLERS:
        module = {"nutpie": "nutpie", "pymc": "pymc", "numpyro": "numpyro"}[name]
        if importlib.util.find_spec(module) is not None:
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


def _check_settings(draws: int, tune: int, chains: int, target_accept: float) -> None:
    for name, value, low in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise SamplerError(f"{name} must be an integer of at least {low}, not {value!r}.")
    if not 0 < target_accept < 1:
        raise SamplerError(f"target_accept must lie between 0 and 1, not {target_accept!r}.")


def _nutpie(model: Model, draws, tune, chains, seed, target_accept, cores, progressbar):
    import nutpie

    t0 = time.perf_counter()
    compiled = model._compiled.get("nutpie")
    if compiled is None:
        compiled = nutpie.compile_pymc_model(
            model.pymc_model, initial_points=model.initial_points or None
        )
        model._compiled["nutpie"] = compiled
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
    return idata, t1 - t0, time.perf_counter() - t1


def _pymc(model: Model, draws, tune, chains, seed, target_accept, cores, progressbar, numpyro):
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
    return idata, 0.0, time.perf_counter() - t0


def pointwise_loglik(model: Model, posterior: Any) -> np.ndarray:
    """Log-likelihood of each observation under each draw, shape (chains, draws, n)."""
    design = model.design
    eta = linear_predictor(design, posterior)
    y = design.y
    if design.family.name == "gaussian":
        sigma = posterior["sigma"].to_numpy()[:, :, None]
        return stats.norm.logpdf(y, loc=eta, scale=sigma)
    if design.family.name == "bernoulli":
        # log p = -log(1 + exp(-eta)) for y = 1, -log(1 + exp(eta)) for y = 0
        return -np.logaddexp(0.0, np.where(y == 1, -eta, eta))
    return stats.poisson.logpmf(y, np.exp(eta))


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
):
    """Sample a model's posterior; return the InferenceData and a :class:`SamplingInfo`."""
    import arviz as az
    import xarray as xr

    _check_settings(draws, tune, chains, target_accept)
    available = available_samplers()
    if sampler is None:
        sampler = available[0]
    if sampler not in SAMPLERS:
        raise SamplerError(f"Unknown sampler '{sampler}'. Choose one of: {', '.join(SAMPLERS)}.")
    if sampler not in available:
        raise SamplerError(
            f"The sampler '{sampler}' is not installed (pip install {sampler}). "
            f"Installed: {', '.join(available)}."
        )
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    seed = int(seed)
    args = (model, draws, tune, chains, seed, target_accept, cores, progressbar)
    if sampler == "nutpie":
        idata, compile_s, sample_s = _nutpie(*args)
    else:
        idata, compile_s, sample_s = _pymc(*args, numpyro=sampler == "numpyro")

    design = model.design
    obs_name = next(iter(model.pymc_model.observed_RVs)).name
    loglik = pointwise_loglik(model, idata.posterior)
    coords = {
        "chain": idata.posterior["chain"].to_numpy(),
        "draw": idata.posterior["draw"].to_numpy(),
        "obs": [str(r) for r in design.rows],
    }
    ll = xr.Dataset({obs_name: (("chain", "draw", "obs"), loglik)}, coords=coords)
    observed = xr.Dataset({obs_name: (("obs",), design.y)}, coords={"obs": coords["obs"]})
    for group, data in (("log_likelihood", ll), ("observed_data", observed)):
        if group in idata.groups():
            delattr(idata, group)
        idata.add_groups({group: data})
    info = SamplingInfo(
        sampler=sampler,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        target_accept=target_accept,
        compile_seconds=round(compile_s, 3),
        sampling_seconds=round(sample_s, 3),
    )
    idata.posterior.attrs.update({f"hierbayes_{k}": v for k, v in asdict(info).items()})
    idata.posterior.attrs["formula"] = design.formula.formula
    assert isinstance(idata, az.InferenceData)
    return idata, info
