"""Draws from a REML fit's ``arm::sim`` (:meth:`hierbayes.LmerFit.sim`), with their summaries.

Examples
--------
>>> import hierbayes as hb
>>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> sims = fit.sim(n_sims=100, seed=1)
>>> sims.fixef.shape, sims.ranef["Subject"].shape
((100, 2), (100, 18, 2))
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hierbayes.report.format import coefficients


class Sims:
    """Draws from :meth:`LmerFit.sim` (arm::sim).

    Attributes
    ----------
    sigma : numpy.ndarray
        (n_sims,) residual SDs.
    fixef : pandas.DataFrame
        (n_sims, p) fixed effects, columns named as lme4.
    ranef : dict[str, numpy.ndarray]
        Per term group name, (n_sims, levels, terms) group effects.
    """

    def __init__(self, design: Any, sigma: np.ndarray, beta: np.ndarray, bs: list[np.ndarray]) -> None:
        self.design = design
        self.sigma = sigma
        self.fixef = pd.DataFrame(beta, columns=design.fixef_names)
        self.ranef = {blk.group: b for blk, b in zip(design.blocks, bs, strict=True)}

    def coef(self) -> dict[str, tuple]:
        """Per grouping factor, ``(terms, levels, draws)`` of fixed plus group effects.

        ``draws`` has shape (n_sims, levels, terms).
        """
        return coefficients(self.design, self.fixef.to_numpy(), list(self.ranef.values()))

    def summary(self) -> pd.DataFrame:
        """Mean, sd and the 95% interval (``conf_low``, ``conf_high``: the 2.5% and 97.5%
        quantiles) of every fixed effect, sigma, group effect and coefficient."""
        rows = []

        def add(kind: str, group: str, term: str, level: str, x: np.ndarray) -> None:
            q = np.quantile(x, [0.025, 0.975])
            rows.append({"kind": kind, "group": group, "term": term, "level": level,
                         "mean": x.mean(), "sd": x.std(ddof=1), "conf_low": q[0], "conf_high": q[1]})

        for t in self.fixef.columns:
            add("fixef", "", t, "", self.fixef[t].to_numpy())
        add("sigma", "", "", "", self.sigma)
        for blk in self.design.blocks:
            for j, t in enumerate(blk.terms):
                for k, level in enumerate(blk.levels):
                    add("ranef", blk.factor, t, level, self.ranef[blk.group][:, k, j])
        for factor, (terms, levels, draws) in self.coef().items():
            for j, t in enumerate(terms):
                for k, level in enumerate(levels):
                    add("coef", factor, t, level, draws[:, k, j])
        out = pd.DataFrame(rows)
        out.attrs["conf_level"] = 0.95
        return out
