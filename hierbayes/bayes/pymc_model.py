"""The PyMC graph of a design under its priors, and a fingerprint that tells whether it was changed.

Structure (brms's, in PyMC):

* fixed effects on centred columns: ``eta = Intercept + (X - mean(X)) b``; the
  reported ``fixef`` puts ``(Intercept)`` back on the original scale;
* every random-effect block non-centred: ``z ~ Normal(0, 1)`` per level and
  term, ``r = z * sd`` for one term, or for two or more ``r = z (diag(sd) L)'``
  with ``L`` the Cholesky factor of the correlation matrix under an LKJ prior
  (:mod:`hierbayes.bayes.lkj`; SDs and correlations are separate parameters, as in
  Stan, which avoids the funnel of PyMC's ``LKJCholeskyCov``);
* group effects gathered by each row's level index: ``eta += sum_j Z[:, j] r[index, j]``;
* the offset added to ``eta`` (the formula's ``offset()`` terms and ``offset=``), and the
  family's likelihood (:meth:`hierbayes.families.base.Family.observe`) given the trials,
  the prior weights and the dispersion (``sigma``, or ``shape``).

Posterior variables: ``fixef``, ``Intercept``, ``b``, ``sd_<group>``,
``cor_<group>``, ``r_<group>`` (group effects), ``z_<group>``, ``cpc_<group>``
(unconstrained partial correlations) and the dispersion (``sigma`` or ``shape``). ``cor_<group>`` holds only
the strictly lower triangle of the correlation matrix, one entry per pair of
terms along the dimension ``<group>__cor`` (labels ``"Days:(Intercept)"``, in
brms's order: ``cor_Subject__Intercept__Days``; :mod:`hierbayes.spec.naming`),
so that no variable of the posterior is constant and ArviZ's R-hat and trace
plots work on every one; :func:`hierbayes.spec.naming.correlation_matrix`
rebuilds the full matrix.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.bayes.priors import resolve_priors
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> design = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"),
...                       hb.datasets.load("sleepstudy"))
>>> model, initial = build_pymc_model(design, resolve_priors(design))
>>> sorted(v.name for v in model.free_RVs)
['Intercept', 'b', 'cpc_Subject', 'sd_Subject', 'sigma', 'z_Subject']
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hierbayes.bayes.blas import quiet_blas_search
from hierbayes.bayes.lkj import lkj_corr_cholesky
from hierbayes.bayes.priors import Prior, PriorTable
from hierbayes.bayes.pymc_structures import observe_structured, structure_coords, structured_effects
from hierbayes.spec.design import Design
from hierbayes.spec.naming import correlation_dim, correlation_labels, correlation_pairs


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
    """The observed variable's name: the response column if it is a safe, free name.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> observed_name(SimpleNamespace(response_label="Reaction"), {"sigma"})
    'Reaction'
    >>> observed_name(SimpleNamespace(response_label="log(Reaction)"), {"sigma"})
    'y'
    """
    label = design.response_label
    if label.isidentifier() and label not in taken:
        return label
    return "y"


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
    coords: dict[str, list[str]] = {"fixef_term": names, "obs": [str(r) for r in design.rows],
                                    **structure_coords(design)}
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
            z = pm.Normal(f"z_{g}", 0.0, 1.0, dims=(blk.level_dim, blk.term_dim))
            if blk.term.structure != "us":
                r = structured_effects(blk, z, priors, _scalar_rv, _vector_rv)
                eta = eta + (blk.Z * r[blk.index]).sum(axis=1)
                continue
            sd_priors = [priors.get("sd", g, t) for t in blk.terms]
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
        if design.offset is not None:
            eta = eta + design.offset
        taken = {v.name for v in model.free_RVs + model.deterministics}
        obs = observed_name(design, taken)
        family = design.family
        if not design.residual.is_iid:
            observe_structured(obs, eta, design, priors, _scalar_rv, _vector_rv)
            return model, initial
        dispersion = (_scalar_rv(family.dispersion, priors.get(family.dispersion))
                      if family.dispersion else None)
        family.observe(obs, eta, design.y, dims="obs", dispersion=dispersion, trials=design.trials,
                       weights=design.weights)
    return model, initial
