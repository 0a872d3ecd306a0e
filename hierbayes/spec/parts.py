"""Formula parts as formulaic reads them, and the model matrices built from them.

A part is the fixed part of a formula, the left side of a bar, or a
``sigma=`` formula: its terms expanded by :mod:`hierbayes.spec.rexpr`, and
the text formulaic reads, every variable by name, so that formulaic looks it
up among the evaluated variables and evaluates nothing itself.

Examples
--------
>>> read_part("x * f").text
'1 + `x` + `f` + `x`:`f`'
"""

from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import FormulaError, HierbayesError
from hierbayes.spec.modelframe import NAME_CONSTANTS
from hierbayes.spec.rexpr import Terms, parse, terms

__all__ = ["Part", "check_columns", "drop_aliased", "formulaic_key", "model_matrix_from", "r_name",
           "read_part"]

_TREATMENT = re.compile(r"\[T\.(.*?)\]")
_FULL = re.compile(r"\[(.*?)\]")


@dataclass
class Part:
    """One formula part (fixed part, or a bar's left side) read by :func:`hierbayes.spec.rexpr.terms`.

    Attributes
    ----------
    terms
        Its expanded terms.
    text
        The terms as formulaic reads them: every variable by name, in backticks, so that
        formulaic looks it up in the evaluated model frame and evaluates nothing itself.
    """

    terms: Terms
    text: str

    @property
    def variables(self) -> list[str]:
        return list(self.terms.variables)


def formulaic_key(lab: str) -> str:
    """The name formulaic knows a variable by: its R label, without backticks."""
    return lab.replace("`", "")


def read_part(text: str) -> Part:
    """Expand a formula part and write it for formulaic."""
    t = terms(parse(text), text)
    body = [":".join(f"`{formulaic_key(v)}`" for v in term) for term in t.labels]
    return Part(t, " + ".join(["1" if t.intercept else "0", *body]))


def check_columns(names: list[str], data: pd.DataFrame, where: str) -> None:
    columns = [str(c) for c in data.columns]
    for name in names:
        if name == "." and "." not in data.columns:
            # R's "all other columns" would silently change with the data frame's columns
            raise FormulaError(
                f"'.' (R's \"every other column\") in the {where} is not supported in hierbayes "
                "formulas: name the predictors, e.g. 'y ~ x1 + x2 + (1 | g)'. In update(), "
                "'.' means the old formula's part and works.")
        if name not in data.columns and name not in NAME_CONSTANTS:
            close = difflib.get_close_matches(name, columns, n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise FormulaError(
                f"Column '{name}' in the {where} is not in the data.{hint} "
                f"The data has: {', '.join(columns[:20])}{' ...' if len(columns) > 20 else ''}."
            )


def model_matrix_from(source: Part | Any, context: dict[str, Any], n: int, where: str):
    """formulaic's model matrix over evaluated variables, of a :class:`Part` at fit time or of
    the frozen formulaic spec it gave, replayed on new rows."""
    from formulaic import model_matrix

    base = pd.DataFrame(index=pd.RangeIndex(n))
    ctx = {formulaic_key(k): v for k, v in context.items()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            if isinstance(source, Part):
                return model_matrix(source.text, base, context=ctx, na_action="raise")
            return source.get_model_matrix(base, context=ctx, na_action="raise")
    except HierbayesError:
        raise
    except Exception as err:
        raise FormulaError(f"Cannot build the {where}: {err}") from None


def r_name(column: str) -> str:
    """lme4's name for a formulaic column: ``sex[T.Female]`` is ``sexFemale``.

    Examples
    --------
    >>> r_name("Intercept"), r_name("sex[T.Female]:age"), r_name("ses[2]")
    ('(Intercept)', 'sexFemale:age', 'ses2')
    """
    if column == "Intercept":
        return "(Intercept)"
    return _FULL.sub(r"\1", _TREATMENT.sub(r"\1", column))


def drop_aliased(X: np.ndarray, tol: float = 1e-7) -> list[int]:
    """Keep each column unless it lies in the span of the columns kept before it.

    The same outcome as lme4's pivoted-QR check: later columns are dropped.
    """
    keep: list[int] = []
    basis: list[np.ndarray] = []
    for j in range(X.shape[1]):
        v = X[:, j].astype(float)
        norm = np.linalg.norm(v)
        if norm == 0:
            continue
        v = v / norm
        for _ in range(2):  # Gram-Schmidt twice for numerical stability
            for q in basis:
                v = v - (q @ v) * q
        r = np.linalg.norm(v)
        if r > tol:
            basis.append(v / r)
            keep.append(j)
    return keep
