"""The ArviZ InferenceData of a fit: posterior, sample stats, observed data and the pointwise log-likelihood.

The log-likelihood is computed in NumPy from the draws
(:func:`hierbayes.bayes.posterior.linear_predictor`), so that no sampler has to
record it; attributes are written so that netCDF can hold them
(:func:`netcdf_attrs`).

Examples
--------
>>> netcdf_attrs({"marginal": True})
{'marginal': 1}
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from hierbayes.bayes.posterior import Posterior, SamplingInfo, linear_predictor

if TYPE_CHECKING:
    from hierbayes.bayes.model import BayesModel


def pointwise_loglik(model: BayesModel, posterior: Any) -> np.ndarray:
    """Log-likelihood of each observation under each draw, shape (chains, draws, n).

    With every normalising constant (the binomial coefficient, ``log y!``,
    the prior weights' ``0.5 log w``), so that PSIS-LOO's elpd is comparable
    across families and with other software; the offset is in the linear predictor.
    """
    design = model.design
    eta = linear_predictor(design, posterior)
    if not design.residual.is_iid:
        # correlated or heteroscedastic errors: each row's density given all the others
        # (Structured.loo_loglik), what PSIS-LOO needs of a non-factorised model
        lead = eta.shape[:2]
        S = lead[0] * lead[1]

        def flat(name: str) -> np.ndarray | None:
            return np.asarray(posterior[name]).reshape(S, -1) if name in posterior else None

        sigma = flat("sigma").reshape(S)
        phi = flat("phi")
        e = (design.y - eta).reshape(S, -1)
        ll = design.residual.loo_loglik(e, sigma, flat("b_sigma"), None if phi is None else phi.reshape(S))
        return ll.reshape(*lead, -1)
    fam = design.family
    dispersion = posterior[fam.dispersion] if fam.dispersion else None
    return fam.loglik(design.y, eta, dispersion, trials=design.trials, weights=design.weights)


def build_idata(model: BayesModel, posterior: Posterior, info: SamplingInfo, idata: Any = None):
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
