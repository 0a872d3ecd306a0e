"""A design and its priors packed into the arrays that the compiled log density reads.

PyMC builds a new graph for every model, and nutpie compiles it with numba in
13 to 30 seconds, with nothing cached across processes. Our models all share
one structure, so this module writes that structure down once: a single C
function (:mod:`hierbayes.bayes.native`) reads the model from arrays (the
fixed-effect matrix, each block's level index and columns, prior codes) and
returns the log density and its gradient. It is compiled once per
installation, in about two seconds, so a new process, a new formula or new
data compiles nothing.

Parameter vector (unconstrained, the sampler's space), in order:

* fixed effects: ``Intercept`` (of the centred design, as in brms) then ``b``;
* per random-effect block: ``log sd`` (one per term; one for an ``ar1`` term), the
  unconstrained partial correlations ``cpc`` of an LKJ block (:mod:`hierbayes.bayes.lkj`)
  or a cs/ar1 term's ``rho`` (:mod:`hierbayes.bayes.pack_blocks`), then
  the group effects, levels x terms: ``z`` (non-centred, ``r = z (diag(sd) L)'``)
  or ``r`` itself (centred, ``r ~ N(0, diag(sd) L L' diag(sd))``);
* the family's log dispersion: ``log sigma`` (Gaussian), ``log shape``
  (negative binomial, gamma);
* a Gaussian residual structure's ``b_sigma`` and ``phi``
  (:mod:`hierbayes.bayes.pack_residual`).

The linear predictor starts from the design's offset; binomial rows read their
trials, Gaussian rows their prior weights. The density equals the PyMC model's (:func:`hierbayes.bayes.pymc_model.build_pymc_model`)
up to a constant when every block is non-centred; ``tests/bayes/test_logdensity.py``
checks values and gradients against PyTensor's.

Examples
--------
>>> import numpy as np, hierbayes as hb
>>> from hierbayes.bayes.pack import pack
>>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> packed = pack(m.design, m.priors)
>>> packed.dim
42
>>> lp, grad = packed.logp_grad(packed.initial_point(seed=1))
>>> bool(np.isfinite(lp)) and grad.shape == (42,)
True
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from hierbayes.bayes.arrays import FullArrays, MarginalArrays
from hierbayes.bayes.centring import (
    Carried,
    absorbing_block,
    carried_fixed_effects,
    nested_parents,
    simple_intercept_block,
)
from hierbayes.bayes.codes import (
    B_ABSORB,
    B_CENTRED,
    B_COL,
    B_CORR,
    B_CPC,
    B_EFF,
    B_K,
    B_L,
    B_N,
    B_ONES,
    B_PARENT,
    B_PMAP,
    B_SD,
    B_SKIP,
    B_XAT,
    B_XN,
    B_XTERM,
    B_XVAL,
    CORR_NONE,
    FAMILY_CODES,
    LINK_CODES,
    PAR_HI,
    PAR_LO,
    PAR_N,
    PRI_N,
    PRIOR_CODES,
)
from hierbayes.bayes.native import NativeModel
from hierbayes.bayes.pack_blocks import (
    block_factor,
    corr_code,
    correlation_params,
    interval_start,
    sd_layout,
)
from hierbayes.bayes.pack_marginal import amalgamated, cross_products, whitened
from hierbayes.bayes.pack_residual import constrain_residual, pack_residual
from hierbayes.bayes.policy import supported
from hierbayes.bayes.priors import PriorTable
from hierbayes.spec.design import Design


@dataclass
class Packed:
    """A model as the arrays the compiled log density reads, plus its layout.

    Attributes
    ----------
    data
        The arrays the kernels read: :class:`~hierbayes.bayes.arrays.FullArrays`,
        or :class:`~hierbayes.bayes.arrays.MarginalArrays` when ``marginal``.
    dim
        Number of unconstrained parameters.
    layout
        Name -> ``(offset, shape)`` of each parameter block in the vector.
    centred
        Per block, whether its group effects are centred.
    fixef_intercept_pos
        Position of ``(Intercept)`` among the fixed effects (-1: none).
    marginal
        Whether the group effects are integrated out.
    order
        Blocks in the marginal kernel's order (the largest first).
    groups
        The marginal kernel's blocks, each the design's blocks it holds (terms on one
        grouping factor without free correlations amalgamated, as the REML engine does).
    absorb
        ``(block, term)`` whose level means carry the intercept, or ``(-1, -1)``.
    carried
        Per block, the fixed effects its level means carry
        (:class:`~hierbayes.bayes.centring.Carried`; none for a block that is not centred).
    parents
        Per block, ``(parent block, level map)`` when nested-centred, else ``(-1, ...)``.
    collapsed
        The random-intercept block integrated out row by row, or -1.
    dispersion
        The family's dispersion parameter (``"sigma"``, ``"shape"``), sampled on the log scale, or None.
    block_par
        Per block, the kernel's ``codes.PAR_*`` doubles: LKJ's eta, a cs/ar1 correlation's range.
    """

    data: FullArrays | MarginalArrays
    dim: int
    layout: dict[str, tuple[int, tuple[int, ...]]]
    centred: list[bool]
    start: np.ndarray
    start_scale: np.ndarray
    x_means: np.ndarray
    slopes: list[int]
    intercept: bool
    blocks: list = field(default_factory=list)
    fixef_intercept_pos: int = -1
    marginal: bool = False
    order: list = field(default_factory=list)
    groups: list = field(default_factory=list)
    absorb: tuple = (-1, -1)
    carried: list = field(default_factory=list)
    parents: list = field(default_factory=list)
    collapsed: int = -1
    dispersion: str | None = None
    block_par: list = field(default_factory=list)

    def logp_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log density and gradient at one unconstrained point."""
        return self.native.logp_grad(theta)

    @cached_property
    def native(self) -> NativeModel:
        """The compiled kernels' view of this model (:class:`hierbayes.bayes.native.NativeModel`)."""
        return NativeModel(self.data, self.dim)

    def initial_point(self, seed: int, jitter: float = 1.0) -> np.ndarray:
        """A start: central values plus uniform jitter scaled per coordinate."""
        rng = np.random.default_rng(seed)
        return self.start + jitter * self.start_scale * rng.uniform(-1, 1, self.dim)

    def finite_start(self, seed: int, jitter: float = 1.0, attempts: int = 20) -> np.ndarray | None:
        """The first of :meth:`initial_point` at seeds ``seed``, ``seed + 1``, ... whose log density
        and gradient are finite; None when ``attempts`` seeds give none."""
        for attempt in range(attempts):
            q = self.initial_point(seed + attempt, jitter=jitter)
            lp, g = self.logp_grad(q)
            if np.isfinite(lp) and np.all(np.isfinite(g)):
                return q
        return None

    def constrain(self, draws: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
        """Posterior variables from unconstrained draws of shape ``(chains, draws, dim)``.

        Returns the variables of the PyMC model: ``Intercept``, ``b``,
        ``fixef``, and per block ``sd_``, ``cpc_``, ``cor_``, ``z_``, ``r_``,
        and ``sigma``. A marginal model's group effects are drawn here, one
        exact draw from their conditional posterior per draw (``seed``).
        """
        out: dict[str, np.ndarray] = {}
        lead = draws.shape[:-1]
        effects = {}
        if self.marginal and self.blocks:
            flat = np.ascontiguousarray(draws.reshape(-1, draws.shape[-1]))
            b = self.native.draw_effects(flat, seed)
            off = 0
            for members in self.groups or [[g] for g in self.order]:
                L = self.blocks[members[0]].n_levels
                K = sum(self.blocks[g].n_terms for g in members)
                part = b[:, off:off + L * K].reshape(*lead, L, K)
                off += L * K
                col = 0
                for g in members:  # an amalgamated block's columns are its terms' side by side
                    k = self.blocks[g].n_terms
                    effects[self.blocks[g].group] = part[..., col:col + k]
                    col += k

        def take(name: str) -> np.ndarray:
            off, shape = self.layout[name]
            size = int(np.prod(shape)) if shape else 1
            return draws[..., off:off + size].reshape(*lead, *shape)

        if self.intercept:
            out["Intercept"] = take("Intercept")
        if self.slopes:
            out["b"] = take("b")
        n_fix = len(self.slopes) + int(self.intercept)
        if n_fix:
            fixef = np.empty((*lead, n_fix))
            col = 0
            for j in range(n_fix):
                if j == self.fixef_intercept_pos:
                    # back to the uncentred design's intercept
                    fixef[..., j] = out["Intercept"] - (out["b"] @ self.x_means if self.slopes else 0.0)
                else:
                    fixef[..., j] = out["b"][..., col]
                    col += 1
            out["fixef"] = fixef
        for gi, (blk, centred) in enumerate(zip(self.blocks, self.centred, strict=True)):
            g = blk.group
            named, sd, L = block_factor(blk, self.block_par[gi], take, lead)
            out.update(named)
            T = sd[..., :, None] * L
            if self.marginal:
                r = effects[g]
                z = np.linalg.solve(T[..., None, :, :], r[..., None]).squeeze(-1)
            elif gi == self.collapsed:
                flat = np.ascontiguousarray(draws.reshape(-1, draws.shape[-1]))
                r = self.native.draw_collapsed(flat, blk.n_levels, seed)
                r = r.reshape(*lead, blk.n_levels, 1)
                z = r / sd[..., None, :]
            elif centred:
                r = take(f"eff_{g}").copy()
                if self.absorb[0] == gi:
                    r[..., self.absorb[1]] -= out["Intercept"][..., None]
                carried = self.carried[gi]
                if carried.columns:
                    r[..., carried.term] -= draws[..., carried.columns] @ carried.values.T
                h, mapping = self.parents[gi]
                if h >= 0:
                    parent_vals = take(f"eff_{self.blocks[h].group}")[..., 0]
                    r[..., 0] -= parent_vals[..., mapping]
                z = np.linalg.solve(T[..., None, :, :], r[..., None]).squeeze(-1)
            else:
                z = take(f"eff_{g}")
                r = z @ np.swapaxes(T, -1, -2)
            out[f"z_{g}"] = z
            out[f"r_{g}"] = r
        if self.dispersion in self.layout:
            out[self.dispersion] = np.exp(take(self.dispersion))
        if isinstance(self.data, FullArrays):
            out.update(constrain_residual(self.data.residual, take, self.layout))
        return out


def _prior_row(prior) -> tuple[int, list[float]]:
    code, names = PRIOR_CODES[prior.dist]
    vals = [float(prior.params[n]) for n in names]
    return code, vals + [0.0] * (3 - len(vals))


def _central(prior) -> float:
    """Start value of a real parameter: its prior's location."""
    p = prior.params
    return float(p.get("mu", p.get("alpha", 0.0))) if prior.dist != "gamma" else 0.0


def _spread(prior) -> float:
    p = prior.params
    for k in ("sigma", "beta"):
        if k in p:
            return float(p[k])
    return 1.0


def collapsed_block(design: Design) -> int:
    """The block the full model integrates out level by level (-1 for none): a Gaussian model's
    plain random-intercept block with the most levels, when its rows have no prior weights
    (the kernel's per-level closed form assumes equal ones).

    Examples
    --------
    >>> import hierbayes as hb
    >>> m = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
    >>> collapsed_block(m.design)
    0
    """
    if not design.family.supports_marginal or design.weights is not None or not design.residual.is_iid:
        return -1
    simple = [g for g, b in enumerate(design.blocks) if simple_intercept_block(b)]
    return max(simple, key=lambda g: design.blocks[g].n_levels) if simple else -1


def pack(design: Design, priors: PriorTable, centred: list[bool] | None = None,
         marginal: bool = False, collapse: bool | None = None) -> Packed:
    """Lay a design and its priors out as the compiled log density's arrays.

    Parameters
    ----------
    design, priors
        The model's design and priors in force.
    centred
        Per random-effect block, whether to sample its group effects centred;
        all non-centred when omitted (see :func:`choose_centring`).
    marginal
        Gaussian models only: integrate the group effects out
        (``kernels/marginal.c``); the sampler then moves over the
        fixed effects, SDs, correlations and sigma, and the group effects are
        drawn exactly afterwards (:meth:`Packed.constrain`).
    collapse
        Gaussian models sampled without ``marginal``: integrate one random
        intercept block out row by row (per level, ``sigma^2 I + tau^2 11'``
        has a closed-form inverse and determinant), the one with the most
        levels. None (default) does so whenever such a block exists and the
        rows have no prior weights (:func:`collapsed_block`); True with
        weights raises.
    """
    reason = supported(priors)
    if reason is not None:
        raise ValueError(f"The compiled log density cannot express {reason}.")
    if marginal and not design.family.supports_marginal:
        raise ValueError("Only Gaussian models have their group effects integrated out.")
    if marginal and not design.residual.is_iid:
        raise ValueError("A model with a residual structure has no marginal form here: its kernel "
                         "reads the rows.")
    if collapse and design.weights is not None:
        raise ValueError("A model with prior weights has no collapsed random-intercept block: the "
                         "kernel's per-level closed form assumes equal weights. Leave collapse out.")
    names = design.fixef_names
    X = design.X
    slopes = [j for j, n in enumerate(names) if n != "(Intercept)"]
    intercept = design.intercept
    x_means = X[:, slopes].mean(axis=0) if slopes else np.zeros(0)
    cols = []
    if intercept:
        cols.append(np.ones(design.n_obs))
    for j in slopes:
        cols.append(X[:, j] - x_means[slopes.index(j)] if intercept else X[:, j])
    Xc = np.column_stack(cols) if cols else np.zeros((design.n_obs, 0))

    layout: dict[str, tuple[int, tuple[int, ...]]] = {}
    pri_i: list[list[int]] = []
    pri_f: list[list[float]] = []
    start: list[float] = []
    scale: list[float] = []
    off = 0

    def add_prior(index: int, prior, positive: bool) -> None:
        code, vals = _prior_row(prior)
        pri_i.append([index, code, int(positive)])
        pri_f.append(vals)

    if intercept:
        layout["Intercept"] = (off, ())
        p = priors.get("Intercept")
        add_prior(off, p, False)
        start.append(_central(p))
        scale.append(0.1 * _spread(p))
        off += 1
    if slopes:
        layout["b"] = (off, (len(slopes),))
        for j in slopes:
            p = priors.get("b", coef=names[j])
            add_prior(off, p, False)
            start.append(_central(p))
            scale.append(0.1 * _spread(p))
            off += 1

    blocks = list(design.blocks)
    centred = [False] * len(blocks) if centred is None else list(centred)
    if len(centred) != len(blocks):
        raise ValueError("centred needs one flag per random-effect block")
    blk_rows, blk_par = [], []
    for g, blk in enumerate(blocks):
        K, L = blk.n_terms, blk.n_levels
        row = [0] * B_N
        row[B_ABSORB] = -1
        row[B_PARENT] = -1
        row[B_XTERM] = -1
        row[B_ONES] = int(K == 1 and bool(np.all(blk.Z[:, 0] == 1.0)))
        row[B_K], row[B_L] = K, L
        row[B_CENTRED], row[B_CORR] = int(centred[g]), corr_code(blk)
        row[B_SD] = off
        sd_name, sd_shape, sd_terms = sd_layout(blk)
        layout[sd_name] = (off, sd_shape)
        for t in sd_terms:
            p = priors.get("sd", blk.group, t)
            add_prior(off, p, True)
            start.append(math.log(p.typical()))
            scale.append(1.0)
            off += 1
        row[B_CPC] = off
        par, m = correlation_params(blk, priors)
        if blk.lkj:
            layout[f"cpc_{blk.group}"] = (off, (m,))
            start.extend([0.0] * m)
        elif m:
            layout[f"rho_{blk.group}"] = (off, ())
            start.append(interval_start(par[PAR_LO], par[PAR_HI]))
        scale.extend([0.5] * m)
        off += m
        blk_rows.append(row)
        blk_par.append(par)
    absorb = (-1, -1)
    cg = -1
    parents: list[tuple[int, np.ndarray]] = []
    carried = [Carried() for _ in blocks]
    x_cols: list[int] = []
    x_vals: list[np.ndarray] = []
    if not marginal:
        cg = collapsed_block(design) if collapse is not False else -1
        # the collapsed block takes no part in centring, absorbing or nesting
        centred = [c and g != cg for g, c in enumerate(centred)]
        absorb = absorbing_block(blocks, centred, intercept)
        carried = carried_fixed_effects(blocks, centred, Xc, intercept)
        for g, cr in enumerate(carried):
            if cr.columns:
                row = blk_rows[g]
                row[B_XTERM], row[B_XN], row[B_XAT] = cr.term, len(cr.columns), len(x_cols)
                row[B_XVAL] = sum(v.size for v in x_vals)
                x_cols.extend(cr.columns)
                x_vals.append(cr.values.ravel())
        col = 0
        for g, blk in enumerate(blocks):
            K, L = blk.n_terms, blk.n_levels
            blk_rows[g][B_COL] = col
            if g == cg:
                blk_rows[g][B_EFF] = -1
                blk_rows[g][B_SKIP] = 1
                col += K
                continue
            blk_rows[g][B_EFF] = off
            layout[f"eff_{blk.group}"] = (off, (L, K))
            cr = carried[g]
            carried_start = cr.values @ np.array([start[c] for c in cr.columns]) if cr.columns else None
            for j in range(L):
                for k in range(K):
                    if (g == absorb[0] and k == absorb[1]) or k == cr.term:
                        # this block's level means carry the intercept or fixed effects: start them there
                        mean = start[0] if (g, k) == absorb else 0.0
                        if carried_start is not None and k == cr.term:
                            mean += float(carried_start[j])
                        start.append(mean)
                        scale.append(scale[0] if (g, k) == absorb else 0.1)
                    else:
                        start.append(0.0)
                        # centred effects start near zero: their scale is unknown before sampling
                        scale.append(0.1 if centred[g] else 1.0)
            if g == absorb[0]:
                blk_rows[g][B_ABSORB] = absorb[1]
            off += L * K
            col += K
        parents = nested_parents(blocks, centred)
        pmaps = []
        pos = 0
        for g, (h, mapping) in enumerate(parents):
            if h < 0:
                continue
            blk_rows[g][B_PARENT] = h
            blk_rows[h][B_SKIP] = 1
            blk_rows[g][B_PMAP] = pos
            pmaps.append(mapping)
            pos += len(mapping)
            # a child's level values carry its parent's: start them from the parent's start
            # (a child never carries the intercept, which goes to the fewest levels)
            og = blk_rows[g][B_EFF]
            oh = blk_rows[h][B_EFF]
            for j, m in enumerate(mapping):
                start[og + j] += start[oh + m]
    disp_at = -1
    if design.family.dispersion:
        layout[design.family.dispersion] = (off, ())
        p = priors.get(design.family.dispersion)
        add_prior(off, p, True)
        disp_at = off
        start.append(math.log(p.typical()))
        scale.append(1.0)
        off += 1
    residual, off = pack_residual(design, priors, off, layout, add_prior, start, scale)
    pri = (np.array(pri_i, dtype=np.int64).reshape(-1, PRI_N), np.array(pri_f, dtype=float).reshape(-1, 3))
    # fresh C-ordered copies: the kernels read them through raw pointers
    y = np.array(design.y, dtype=float, order="C")
    Xc = np.array(Xc, dtype=float, order="C")
    order = list(range(len(blocks)))
    groups: list[list[int]] = []
    if marginal:
        groups = amalgamated(blocks, blk_rows)
        # the block with the most effects goes first: it is factored level by level
        if groups:
            size = [sum(blocks[g].n_levels * blocks[g].n_terms for g in gr) for gr in groups]
            first = int(np.argmax(size))
            groups = [groups[first]] + [gr for i, gr in enumerate(groups) if i != first]
        order = [g for gr in groups for g in gr]
        merged = [blocks[gr[0]] if len(gr) == 1 else dataclasses.replace(
            blocks[gr[0]], Z=np.hstack([blocks[g].Z for g in gr]),
            terms=[t for g in gr for t in blocks[g].terms]) for gr in groups]
        data = cross_products(*whitened(design, Xc, y, merged),
                               [blk_rows[gr[0]] for gr in groups], [blk_par[gr[0]] for gr in groups],
                               pri, np.array([design.n_obs, disp_at], dtype=np.int64),
                               [blk_rows[gr[0]][B_CORR] if len(gr) == 1 else CORR_NONE for gr in groups])
    else:
        idx = np.zeros((design.n_obs, len(blocks)), dtype=np.int32)
        for g, blk in enumerate(blocks):
            idx[:, g] = blk.index
        Zv = np.column_stack([b.Z for b in blocks]) if blocks else np.zeros((design.n_obs, 0))
        data = FullArrays(
            X=Xc, y=y, index=idx, Z=np.array(Zv, dtype=float, order="C"),
            blocks=np.array(blk_rows, dtype=np.int64).reshape(-1, B_N),
            block_par=np.array(blk_par, dtype=float).reshape(-1, PAR_N), prior_index=pri[0], prior_params=pri[1],
            disp_at=disp_at, collapsed=cg,
            parent_map=np.concatenate(pmaps).astype(np.int32) if pmaps else np.zeros(0, dtype=np.int32),
            carried_columns=np.array(x_cols, dtype=np.int64),
            carried_values=np.concatenate(x_vals) if x_vals else np.zeros(0), residual=residual,
            **_family_arrays(design))
    return Packed(
        dispersion=design.family.dispersion,
        data=data,
        dim=off,
        layout=layout,
        centred=centred,
        start=np.array(start),
        start_scale=np.array(scale),
        x_means=x_means,
        slopes=slopes,
        intercept=intercept,
        blocks=blocks,
        fixef_intercept_pos=names.index("(Intercept)") if intercept else -1,
        marginal=marginal,
        order=order,
        groups=groups,
        absorb=absorb,
        carried=carried,
        parents=parents,
        collapsed=cg,
        block_par=blk_par,
    )


def kernel_of(design: Design) -> str:
    """The name of the kernel that evaluates a design's rows (:data:`hierbayes.bayes.codes.FAMILY_CODES`).

    The family's own, except that a binomial response with one trial per row
    and the logit link runs on the Bernoulli's kernel, whatever the family is
    called (the same numbers, a little faster).

    Examples
    --------
    >>> import hierbayes as hb
    >>> df = hb.datasets.load("speed_dating")
    >>> kernel_of(hb.Model("decision ~ 1 + (1 | iid)", df, family="binomial").design)
    'bernoulli'
    """
    fam = design.family
    if fam.kernel == "binomial" and design.trials is None and fam.link.name == "logit":
        return "bernoulli"
    return fam.kernel


def _family_arrays(design: Design) -> dict:
    """The kernels' per-family inputs: the link, offset, trials, weights and response summaries."""
    kernel = kernel_of(design)
    if design.weights is not None and kernel != "gaussian":
        raise ValueError(f"The {kernel} kernel reads no prior weights; the design has some.")
    out: dict = {"family": FAMILY_CODES[kernel], "link": LINK_CODES[design.family.link.name]}
    for key, values in (("offset", design.offset), ("trials", design.trials), ("weights", design.weights)):
        out[key] = None if values is None else np.array(values, dtype=float)
    if kernel == "negbinomial":
        out["distinct"], counts = np.unique(np.asarray(design.y, dtype=float), return_counts=True)
        out["distinct_counts"] = counts.astype(float)
    if kernel == "gamma":
        out["log_y_sum"] = float(np.sum(np.log(design.y)))
    return out
