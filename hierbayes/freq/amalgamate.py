"""Terms on one grouping factor amalgamated into one block, as MixedModels.jl does.

``(1 | student) + (0 + x | student)``, the seven terms of a varIdent
workaround, or ``(1 | g) + ar1(0 + f | g)`` are separate terms in the
design (each has its own covariance and its own rows in ``varcorr``), but
every one of them gives each row effects of the same level. Factored as
separate terms, all but the first sit in the dense Schur complement, one
column per level each (the seven-term workaround: a 1,200-column dense
factor per evaluation); amalgamated, they are one block whose relative
covariance factor is block diagonal, factored level by level like a
single term, and the dense part is X and y alone.

:class:`Layout` is the map between the design's terms and the blocks the
factor is computed in: it joins the terms' columns and factors, and splits
what the factor gives (conditional modes, their variances, draws) back into
the design's terms.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> f = parse_formula("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)")
>>> lay = Layout(build_design(f, hb.datasets.load("sleepstudy")).blocks)
>>> lay.groups, lay.sizes, lay.levels
([[0, 1]], [2], [18])
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


class Layout:
    """The design's terms grouped by grouping factor, in the order the factor takes them.

    Parameters
    ----------
    blocks
        The design's random-effect terms (lme4's order: most levels first).

    Attributes
    ----------
    groups
        Per computational block, the indices of the design's terms it holds.
    blocks
        The computational blocks: each group's terms, columns side by side.
    sizes, levels
        Columns and levels of each computational block.
    """

    def __init__(self, blocks: list[Any]) -> None:
        groups: list[list[int]] = []
        for k, b in enumerate(blocks):
            for g in groups:
                first = blocks[g[0]]
                if first.factor == b.factor and np.array_equal(first.index, b.index):
                    g.append(k)
                    break
            else:
                groups.append([k])
        self.groups = groups
        self.n_terms = [b.n_terms for b in blocks]
        self.blocks = [blocks[g[0]] if len(g) == 1 else dataclasses.replace(
            blocks[g[0]], Z=np.hstack([blocks[k].Z for k in g]),
            terms=[t for k in g for t in blocks[k].terms]) for g in groups]
        self.sizes = [b.n_terms for b in self.blocks]
        self.levels = [b.n_levels for b in self.blocks]
        self._columns: list[list[slice]] = []
        for g in groups:
            at, cols = 0, []
            for k in g:
                cols.append(slice(at, at + self.n_terms[k]))
                at += self.n_terms[k]
            self._columns.append(cols)

    @property
    def trivial(self) -> bool:
        """Whether no two terms share a grouping factor (the blocks are the terms)."""
        return all(len(g) == 1 for g in self.groups)

    def T(self, T_terms: list[np.ndarray]) -> list[np.ndarray]:
        """Each computational block's relative covariance factor: its terms' on the diagonal."""
        if self.trivial:
            return T_terms
        out = []
        for g, cols, size in zip(self.groups, self._columns, self.sizes, strict=True):
            if len(g) == 1:
                out.append(T_terms[g[0]])
                continue
            # assembled here, not by scipy.linalg.block_diag: once per deviance evaluation
            T = np.zeros((size, size))
            for k, c in zip(g, cols, strict=True):
                T[c, c] = T_terms[k]
            out.append(T)
        return out

    def split(self, arrays: list[np.ndarray], square: bool = False) -> list[np.ndarray]:
        """Per design term, from per-block arrays whose last axis (both last axes with
        ``square``) runs over the block's columns."""
        out: list[np.ndarray | None] = [None] * len(self.n_terms)
        for g, cols, a in zip(self.groups, self._columns, arrays, strict=True):
            for k, c in zip(g, cols, strict=True):
                out[k] = a[..., c, c] if square else a[..., c]
        return out  # type: ignore[return-value]
