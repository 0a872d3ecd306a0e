"""A log-linear model for the residual SD: ``sd_i = sigma exp(v_i' gamma)``.

What brms's ``sigma ~ ...`` and glmmTMB's ``dispformula`` model, in nlme's
terms: ``sigma`` is the reference stratum's SD and ``exp(v_i' gamma)`` the
row's ratio to it. The columns ``v`` are the sigma formula's model matrix
without its intercept (treatment contrasts), so

* one factor gives nlme's ``varIdent(form = ~ 1 | f)`` exactly: level ``k``'s
  ratio is ``exp(gamma_k)``, the reference level's 1;
* a numeric covariate gives nlme's ``varExp(form = ~ x)``: ``sd = sigma exp(t x)``
  with ``t = gamma``.

Examples
--------
>>> import numpy as np
>>> v = LogLinearSD(np.array([[0.0], [1.0]]), ["f1"], "~ f", factor="f", levels=["0", "1"])
>>> v.ratios(np.array([np.log(2.0)])).tolist(), v.level_ratios(np.array([np.log(2.0)]))
([1.0, 2.0], {'0': 1.0, '1': 2.0})
"""

from __future__ import annotations

from typing import Any

import numpy as np


class LogLinearSD:
    """The rows' SD ratios ``exp(V gamma)`` to the residual SD.

    Parameters
    ----------
    V
        ``(n, k)`` the sigma formula's columns, intercept dropped.
    names
        The columns' names, R-style (``"occas1"``).
    formula
        The sigma formula as given (``"~ occas"``).
    factor
        When the formula is one factor: its label (nlme's varIdent).
    levels
        That factor's levels, reference first.
    spec
        formulaic's frozen spec of the columns (with intercept), replayed on new data.
    variables
        The labels of the model-frame variables the columns are built from.
    """

    def __init__(self, V: np.ndarray, names: list[str], formula: str, factor: str | None = None,
                 levels: list[str] | None = None, spec: Any = None,
                 variables: list[str] | None = None) -> None:
        self.V = np.asarray(V, dtype=float)
        self.names = list(names)
        self.formula = formula
        self.factor = factor
        self.levels = levels
        self.spec = spec
        self.variables = list(variables or [])

    @property
    def n_params(self) -> int:
        return self.V.shape[1]

    @property
    def is_varident(self) -> bool:
        """Whether the model is nlme's varIdent (one factor)."""
        return self.factor is not None

    @property
    def label(self) -> str:
        """nlme's name of the variance function."""
        if self.is_varident:
            return f"Different standard deviations per stratum (varIdent, form = ~ 1 | {self.factor})"
        return f"Log-linear SD (sd = sigma exp(v'gamma), v from {self.formula})"

    def ratios(self, gamma: np.ndarray, V: np.ndarray | None = None) -> np.ndarray:
        """``(n,)`` each row's SD over ``sigma`` (of the fitted rows, or of ``V``'s rows)."""
        V = self.V if V is None else V
        return np.exp(V @ np.asarray(gamma, dtype=float))

    def level_ratios(self, gamma: np.ndarray) -> dict[str, float]:
        """varIdent's ratios keyed by level, the reference level's 1 first (one factor only)."""
        if not self.is_varident or self.levels is None:
            raise ValueError("level_ratios is for a sigma formula of one factor.")
        return {self.levels[0]: 1.0, **{lv: float(np.exp(g))
                                         for lv, g in zip(self.levels[1:], gamma, strict=True)}}
