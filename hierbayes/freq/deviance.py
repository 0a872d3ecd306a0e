"""The profiled deviance of a linear mixed model as a function of theta (lme4's ``mkLmerDevfun``).

The profiled deviance of Bates, Maechler, Bolker & Walker (2015, JSS 67(1)) is
a function of the relative covariance factor's parameters ``theta`` alone:
for each ``theta`` a penalised least-squares problem gives the conditional
modes, the fixed effects and the penalised residual sum of squares ``r^2``,
through the blocked Cholesky factor ``L`` of
:mod:`hierbayes.linalg.blocked`, and then

    ML:   d(theta) = log|L_Z|^2 + n (1 + log(2 pi r^2 / n))
    REML: d(theta) = log|L_Z|^2 + log|L_X|^2 + (n - p)(1 + log(2 pi r^2 / (n - p))).

With prior weights ``w`` (lmer's ``weights``: precisions, row ``i`` has SD
``sigma / sqrt(w_i)``) the system is that of ``sqrt(w) [Z X y]`` and both
criteria subtract ``sum(log w)`` (lme4's ``ldW``); an offset is subtracted
from ``y`` first. Designs without either take the unweighted path unchanged.

``theta`` holds, term by term, the column-wise lower triangle of each
relative covariance factor ``T_g`` (lme4's order); each term's covariance is
``sigma^2 T_g T_g'``. This module holds the objective only: the
cross-products are :class:`hierbayes.linalg.crossprod.CrossProducts`, the
factor is :class:`hierbayes.linalg.blocked.BlockedCholesky`'s, the optimiser
is :mod:`hierbayes.freq.optimize`'s.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"), hb.datasets.load("sleepstudy"))
>>> dev = Deviance(d, reml=True)
>>> dev.n_theta, round(float(dev([0.967, 0.015, 0.231])), 3)   # lme4's optimum: 1743.628
(3, 1743.628)
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from hierbayes.errors import DataError
from hierbayes.freq.amalgamate import Layout
from hierbayes.linalg.blocked import BlockedCholesky, BlockedFactor
from hierbayes.linalg.crossprod import CrossProducts
from hierbayes.spec.covstruct import Structure, get_structure
from hierbayes.spec.design import Design


def tril_index(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each theta entry of a ``p``-term factor: lme4's column-wise lower triangle.

    Examples
    --------
    >>> rows, cols = tril_index(2)
    >>> rows.tolist(), cols.tolist()
    ([0, 1, 1], [0, 0, 1])
    """
    rows, cols = [], []
    for j in range(p):
        for i in range(j, p):
            rows.append(i)
            cols.append(j)
    return np.array(rows), np.array(cols)


def _pseudo_tril(structure: Structure, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns standing for a structure's parameters: (j, j) for SDs, (1, 0) otherwise."""
    sd = structure.sd_entries(p)
    rows = np.where(sd, np.arange(len(sd)), 1)
    cols = np.where(sd, np.arange(len(sd)), 0)
    return rows, cols


class Deviance:
    """The profiled deviance (REML criterion or -2 log-likelihood) as a function of theta.

    Parameters
    ----------
    design
        A gaussian design with at least one random-effect term.
    reml
        REML criterion (True) or ML deviance (False).

    Attributes
    ----------
    n, p
        Observations and fixed effects.
    term_sizes
        Columns of each random-effect term (the design's order).
    layout
        The terms grouped by grouping factor (:class:`hierbayes.freq.amalgamate.Layout`):
        the blocks the factor is computed in.
    sizes, levels
        Columns and levels of each of those blocks (the terms', where no two
        terms share a grouping factor).
    structures
        Each term's covariance structure (``"us"``, ``"diag"``, ``"cs"``, ``"ar1"``).
    tril
        Per term, :func:`tril_index` of its factor (for a structure, the
        positions its SDs and correlation stand for).
    n_theta, theta0, lower
        Length of theta, lme4's start (identity factors) and lower bounds
        (0 on diagonals, -inf elsewhere).
    cross
        The cross-products of ``[Z X y]``.
    cholesky
        Their blocked Cholesky factorisation.
    evaluations
        How many times the deviance was evaluated.

    Examples
    --------
    >>> import hierbayes as hb
    >>> from hierbayes.spec.design import build_design
    >>> from hierbayes.spec.formula import parse_formula
    >>> d = build_design(parse_formula("Reaction ~ Days + (1 | Subject)"), hb.datasets.load("sleepstudy"))
    >>> dev = Deviance(d, reml=True)
    >>> dev.theta0, round(float(dev(dev.theta0)), 4)
    (array([1.]), 1787.3989)
    """

    def __init__(self, design: Design, reml: bool = True) -> None:
        if not design.family.supports_reml:
            raise DataError(
                f"REML and ML fits here are for gaussian models; this one is {design.family.name}."
            )
        if not design.blocks:
            raise DataError("The formula has no random-effect term; use ordinary least squares.")
        self.design = design
        self.reml = reml
        self.n = design.n_obs
        self.p = design.X.shape[1]
        blocks = design.blocks
        # theta is per design term; the factor is computed per grouping factor, the terms on
        # one factor amalgamated (sizes and levels are the factor's blocks')
        self.term_sizes = [b.n_terms for b in blocks]
        self.layout = Layout(blocks)
        self.sizes, self.levels = self.layout.sizes, self.layout.levels
        # glmmTMB's structures (diag, cs, ar1) map fewer parameters to each T; their SDs
        # stand where lme4's diagonals do in tril (rows equal columns), their correlations not
        self.structures = [b.term.structure for b in blocks]
        self.tril = [tril_index(p) if s == "us" else _pseudo_tril(get_structure(s), p)
                     for s, p in zip(self.structures, self.term_sizes, strict=True)]
        self.n_re = sum(len(r) for r, _ in self.tril)
        # a residual structure's parameters (unconstrained) follow the terms' in the argument
        self.residual = None if design.residual.is_iid else design.residual
        rho0 = self.residual.start() if self.residual is not None else np.zeros(0)
        if self.residual is not None and design.weights is not None:
            raise DataError("weights= together with sigma= or correlation= is not supported yet: "
                            "the variance function already sets each row's SD. Drop weights=.")
        self.n_theta = self.n_re + len(rho0)
        self.theta0 = np.concatenate([*[get_structure(s).start(p) for s, p in
                                        zip(self.structures, self.term_sizes, strict=True)], rho0])
        self.lower = np.concatenate([*[np.where(r == c, 0.0, -np.inf) for r, c in self.tril],
                                     np.full(len(rho0), -np.inf)])
        # prior weights and offsets (lmer's): the system of sqrt(w) [Z X (y - offset)]
        self.sqrt_w = None if design.weights is None else np.sqrt(np.asarray(design.weights, dtype=float))
        self.offset = None if design.offset is None else np.asarray(design.offset, dtype=float)
        self.ldW = 0.0 if design.weights is None else float(np.log(design.weights).sum())
        self.cross = self._products(design.y, rho0)
        self.q_rest = self.cross.q_rest
        # a diagonal first factor of several columns (scalar terms amalgamated, a diag() term):
        # its many small blocks are factored by the compiled kernel
        first = self.layout.groups[0]
        self.compiled = self.sizes[0] > 1 and all(
            self.term_sizes[k] == 1 or self.structures[k] == "diag" for k in first)
        self.cholesky = BlockedCholesky(self.cross, self.compiled)
        self.evaluations = 0
        self._best: tuple[bytes, float, BlockedFactor] | None = None

    def _products(self, y: np.ndarray, rho: np.ndarray | None = None) -> CrossProducts:
        """The cross-products of ``[Z X y]``, weighted, offset or whitened where the design says so.

        With a residual structure ``Cov(e) = sigma^2 Lambda(rho)`` the rows are
        whitened by ``Lambda(rho)^-1/2`` first (the structure's Cholesky
        order: within groups, in time), so the system is the iid one of the
        whitened rows. Whitening mixes a row with the rows before it in its
        series only, and every series lies within one group of each term
        (:mod:`hierbayes.spec.residual_design` checks), so each whitened row
        still has one level per term.
        """
        d = self.design
        if self.residual is not None:
            z = y if self.offset is None else y - self.offset
            res = self.residual
            blocks = [dataclasses.replace(b, Z=res.whiten(rho, b.Z)) for b in self.layout.blocks]
            return CrossProducts.from_blocks(blocks, res.whiten(rho, d.X), res.whiten(rho, z))
        if self.sqrt_w is None and self.offset is None:
            return CrossProducts.from_blocks(self.layout.blocks, d.X, y)
        y = y if self.offset is None else y - self.offset
        if self.sqrt_w is None:
            return CrossProducts.from_blocks(self.layout.blocks, d.X, y)
        s = self.sqrt_w
        blocks = [dataclasses.replace(b, Z=b.Z * s[:, None]) for b in self.layout.blocks]
        return CrossProducts.from_blocks(blocks, d.X * s[:, None], y * s)

    def with_response(self, y: np.ndarray) -> Deviance:
        """The same objective for another response (lme4's ``refit``), reusing Z'Z and X'X.

        Only the products with y change (:meth:`CrossProducts.with_response`).

        Examples
        --------
        >>> import hierbayes as hb
        >>> from hierbayes.spec.design import build_design
        >>> from hierbayes.spec.formula import parse_formula
        >>> d = build_design(parse_formula("Reaction ~ Days + (1 | Subject)"), hb.datasets.load("sleepstudy"))
        >>> dev = Deviance(d).with_response(d.y + 1.0)   # a shift: only the intercept moves
        >>> round(float(dev(dev.theta0)), 4)
        1787.3989
        """
        y = np.asarray(y, dtype=float)
        new = copy.copy(self)
        # the stored data frame holds the old response; a refit has none to plot from
        new.design = dataclasses.replace(self.design, y=y, frame=None)
        if self.residual is not None:
            new.cross = new._products(y, self.theta0[self.n_re :])
        elif self.sqrt_w is None and self.offset is None:
            new.cross = self.cross.with_response(y)
        else:
            z = y if self.offset is None else y - self.offset
            new.cross = self.cross.with_response(z if self.sqrt_w is None else z * self.sqrt_w)
        new.cholesky = BlockedCholesky(new.cross, self.compiled)
        new.evaluations = 0
        new._best = None  # the old response's factor must never be handed out for the new one
        return new

    @property
    def dense(self) -> bool:
        """Whether the factor is computed with dense arrays (a small problem)."""
        return self.cholesky.dense

    def T(self, theta: np.ndarray) -> list[np.ndarray]:
        """The relative covariance factors (lower triangular, one per design term) of theta."""
        out, k = [], 0
        for p, (r, c), s in zip(self.term_sizes, self.tril, self.structures, strict=True):
            if s == "us":
                T = np.zeros((p, p))
                T[r, c] = theta[k : k + len(r)]
            else:
                T = get_structure(s).relative_factor(np.asarray(theta[k : k + len(r)]), p)
            out.append(T)
            k += len(r)
        return out

    @property
    def structured(self) -> bool:
        """Whether the model has a residual structure or a glmmTMB structured term (no lme4 model)."""
        return self.residual is not None or any(s != "us" for s in self.structures)

    def rho(self, theta: np.ndarray) -> np.ndarray:
        """The residual structure's parameters (unconstrained) in the argument: its tail."""
        return np.asarray(theta, dtype=float)[self.n_re :]

    def factor(self, theta: np.ndarray) -> BlockedFactor:
        """The blocked Cholesky factor at theta (the best point's is kept, not recomputed).

        With a residual structure the factor is of the rows whitened at the
        argument's ``rho``, and carries ``log |Lambda(rho)|`` (``ld_resid``).
        """
        theta = np.asarray(theta, dtype=float)
        if self._best is not None and self._best[0] == theta.tobytes():
            return self._best[2]
        T = self.layout.T(self.T(theta))
        if self.residual is None:
            return self.cholesky.factor(T)
        rho = self.rho(theta)
        f = BlockedCholesky(self._products(self.design.y, rho), self.compiled).factor(T)
        f.ld_resid = self.residual.log_det(rho, self.n)
        return f

    @property
    def dof(self) -> int:
        """Residual degrees of freedom behind sigma: n - p (REML) or n (ML)."""
        return self.n - self.p if self.reml else self.n

    def objective(self, f: BlockedFactor, sigma2: float | None = None) -> float:
        """The criterion at a factor; profiled over sigma unless ``sigma2`` is given.

        ``log|L_Z|^2 (+ log|L_X|^2 for REML) + dof log(2 pi sigma^2) + r^2 / sigma^2``,
        which at ``sigma^2 = r^2 / dof`` is the profiled form in the module docstring.
        """
        s2 = f.r2 / self.dof if sigma2 is None else sigma2
        ld = f.ld_z + (f.ld_x if self.reml else 0.0)
        value = ld + self.dof * np.log(2 * np.pi * s2) + f.r2 / s2 + f.ld_resid
        # lme4's lmerResp::Laplace: the prior weights' log-determinant (no term without weights)
        return value - self.ldW if self.sqrt_w is not None else value

    def __call__(self, theta: np.ndarray) -> float:
        theta = np.asarray(theta, dtype=float)
        key = theta.tobytes()
        # The lowest point seen is kept with its factor: the fit asks for the optimum's value
        # and factor again after the optimiser returns it (two evaluations saved per fit).
        if self._best is not None and self._best[0] == key:
            return self._best[1]
        self.evaluations += 1
        try:
            f = self.factor(theta)
        except np.linalg.LinAlgError:
            return np.inf
        value = self.objective(f)
        if self._best is None or value < self._best[1]:
            self._best = (key, value, f)
        return value
