"""Posterior draws as NumPy arrays, what was run to get them, and the linear predictor of each draw.

Every sampler's draws end as a :class:`Posterior`: one ``(chain, draw, *shape)``
array per variable, named and dimensioned as the PyMC model names them
(:func:`variable_dims`), so that summaries never need ArviZ.

Examples
--------
>>> import numpy as np
>>> post = Posterior({"sigma": np.ones((2, 5))}, {"sigma": ()}, {}, {})
>>> post.n_chains, post.n_draws, "sigma" in post
(2, 5, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hierbayes.linalg.linpred import linear_predictor as linpred
from hierbayes.spec.design import Design
from hierbayes.spec.naming import correlation_dim, correlation_labels


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
    max_treedepth: int = 10
    # the block hierbayes's full model integrated out level by level (its effects drawn exactly)
    collapsed: str | None = None
    # the sampler ran on the PyMC graph (model.pymc_model), not on hierbayes's compiled density
    graph: bool = False
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


def variable_dims(design: Design) -> tuple[dict[str, tuple[str, ...]], dict[str, list]]:
    """Dimension names and coordinates of the posterior variables, as the PyMC model names them.

    Examples
    --------
    >>> import hierbayes as hb
    >>> from hierbayes.spec.design import build_design
    >>> from hierbayes.spec.formula import parse_formula
    >>> d = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"),
    ...                  hb.datasets.load("sleepstudy"))
    >>> dims, coords = variable_dims(d)
    >>> dims["r_Subject"], coords["Subject__cor"]
    (('Subject__level', 'Subject__term'), ['Days:(Intercept)'])
    """
    names = design.fixef_names
    slopes = [n for n in names if n != "(Intercept)"]
    dims: dict[str, tuple[str, ...]] = {}
    coords: dict[str, list] = {}
    if names:
        dims["fixef"] = ("fixef_term",)
        coords["fixef_term"] = list(names)
    if design.intercept:
        dims["Intercept"] = ()
    if slopes:
        dims["b"] = ("b_term",)
        coords["b_term"] = slopes
    for blk in design.blocks:
        g = blk.group
        coords[blk.level_dim] = list(blk.levels)
        coords[blk.term_dim] = list(blk.terms)
        dims[f"sd_{g}"] = (blk.term_dim,)
        dims[f"z_{g}"] = dims[f"r_{g}"] = (blk.level_dim, blk.term_dim)
        if blk.lkj:
            k = blk.n_terms * (blk.n_terms - 1) // 2
            dims[f"cpc_{g}"] = (f"cpc_{g}_dim_0",)
            coords[f"cpc_{g}_dim_0"] = list(range(k))
        if blk.term.structure == "ar1":
            dims[f"sdar_{g}"] = ()
        if blk.term.structure in ("cs", "ar1") and blk.correlated:
            dims[f"rho_{g}"] = ()
        if blk.correlated:
            dims[f"cor_{g}"] = (correlation_dim(blk),)
            coords[correlation_dim(blk)] = correlation_labels(blk.terms)
    if design.family.dispersion:
        dims[design.family.dispersion] = ()
    res = design.residual
    if getattr(res, "variance", None) is not None:
        dims["b_sigma"] = ("sigma_term",)
        coords["sigma_term"] = list(res.variance.names)
    if getattr(res, "correlation", None) is not None:
        dims["phi"] = ()
    return dims, coords


def linear_predictor(
    design: Design,
    posterior: Any,
    X: np.ndarray | None = None,
    blocks: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """The linear predictor for every posterior draw (:func:`hierbayes.linalg.linpred.linear_predictor`).

    Parameters
    ----------
    design
        The fitted design.
    posterior
        Draws by name (``fit.posterior`` or ``idata.posterior``) with ``fixef``
        and ``r_<group>``.
    X, blocks
        Fixed-effect matrix and, per block, ``(Z, index)`` for other rows;
        the fitted data's when omitted, and then the design's offset is
        added. An index of -1 adds no group effect.

    Returns
    -------
    numpy.ndarray
        Shape ``(chains, draws, rows)``.

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy")).fit(
    ...     draws=20, tune=20, chains=2, seed=1, progressbar=False, check=False)  # doctest: +SKIP
    >>> linear_predictor(fit.design, fit.posterior).shape  # doctest: +SKIP
    (2, 20, 180)
    """
    fitted = X is None
    X = design.X if X is None else X
    if blocks is None:
        blocks = [(b.Z, b.index) for b in design.blocks]
    effects = [(Z, index, np.asarray(posterior[f"r_{blk.group}"]))
               for blk, (Z, index) in zip(design.blocks, blocks, strict=True)]
    if "fixef" in posterior:
        beta = np.asarray(posterior["fixef"])
    else:  # no fixed effects: the draws' shape from another variable
        disp = design.family.dispersion
        first = np.asarray(posterior[disp if disp in posterior else f"r_{design.blocks[0].group}"])
        beta = np.zeros((*first.shape[:2], X.shape[1]))
    eta = linpred(X, beta, effects)
    if fitted and design.offset is not None:
        eta = eta + design.offset
    return eta
