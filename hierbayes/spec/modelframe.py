"""The model frame: each variable of a formula evaluated on the data, as R's ``model.frame``.

A variable is a column (``Days``, ``days.sleep``) or a call from a fixed
table of transforms (``log(y)``, ``I(age^2)``, ``factor(cyl)``,
``poly(x, 2)``, ``scale(x)``; the table and its code are in
:mod:`hierbayes.spec.transforms`). hierbayes evaluates them itself, over the
syntax trees of :mod:`hierbayes.spec.rexpr`, with NumPy: no formula text ever
reaches Python's ``eval``, and a name resolves only to a data column or to a
transform of the table, so a formula cannot reach a module, a file or the
shell. formulaic then sees only the evaluated variables, by name, and builds
the model matrices from them (contrasts, interactions).

Stateful transforms (``scale``, ``center``, ``poly``) and the levels of
every factor are recorded when the model is fitted and replayed on new data,
as R's ``makepredictcall`` does, so a prediction uses the fit's centring,
scaling, polynomial basis and levels.

Columns and calls become what R makes of them: numbers stay numbers;
strings and unordered categoricals are factors with treatment contrasts
(levels sorted, or the categorical's own order); ordered categoricals get
R's ``contr.poly`` (``.L``, ``.Q``, ``.C``, ``^4``); logical values are
factors with levels ``FALSE``, ``TRUE``.

Examples
--------
>>> import pandas as pd
>>> from hierbayes.spec.rexpr import parse
>>> frame = pd.DataFrame({"age": [8.0, 10.0, 12.0]})
>>> mf = ModelFrame({"I(age^2)": parse("I(age^2)")})
>>> mf.evaluate(frame, fit=True)["I(age^2)"]
array([ 64., 100., 144.])
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError, FormulaError
from hierbayes.spec.rexpr import Node, label
from hierbayes.spec.transforms import (
    TRANSFORMS,
    Factor,
    Matrix,
    bind,
    columns_of,
    distinct_labels,
    level_label,
    literal,
    numeric_value,
    to_factor,
)

__all__ = ["NAME_CONSTANTS", "ModelFrame", "distinct_labels", "level_label"]

# ------------------------------------------------------------ evaluation

# names that are constants unless the data has a column so named
NAME_CONSTANTS = {"T": True, "F": False, "pi": math.pi}


class _Eval:
    """Evaluates one variable's tree on a frame, recording or replaying transform state."""

    def __init__(self, frame: pd.DataFrame, state: dict[str, dict], fit: bool) -> None:
        self.frame = frame
        self.state = state
        self.fit = fit
        self.n = len(frame)

    def state_for(self, key: str) -> dict:
        if key not in self.state:
            if not self.fit:
                raise DataError(f"'{key}' has no recorded state from the fit.")
            self.state[key] = {}
        return self.state[key]

    def factor(self, key: str, labels: list[str], values: Any, ordered: bool) -> Factor:
        """A factor of ``values`` on the fit's levels (``labels`` at fit time, replayed after)."""
        st = self.state_for("levels:" + key)
        if self.fit:
            st.update(levels=list(labels), ordered=ordered)
        known = st["levels"]
        lookup = {lv: i for i, lv in enumerate(known)}
        # label each distinct value once, not each row (a million rows are common)
        inverse, uniq = pd.factorize(pd.Series(values, dtype=object))
        labs = [level_label(v) for v in uniq]
        to_code = np.array([lookup.get(lab, -1) for lab in labs], dtype=np.int64)
        codes = to_code[inverse]
        if (codes < 0).any():
            unseen = sorted({lab for lab, c in zip(labs, to_code, strict=True) if c < 0})
            when = "the fitted data did not have" if not self.fit else "are not among its levels"
            what = f"column '{key}'" if key in self.frame.columns else f"'{key}'"
            raise DataError(
                f"{'newdata' if not self.fit else 'The data'}'s {what} has level(s) "
                f"{unseen[:5]} that {when}, so the model has no "
                f"coefficient for them. Known levels: {known[:20]}."
                + (" Predict only rows with known levels." if not self.fit else ""))
        return Factor(codes, list(known), st["ordered"])

    def column(self, name: str) -> Any:
        if name not in self.frame.columns:
            if name in NAME_CONSTANTS:
                return NAME_CONSTANTS[name]
            if name in TRANSFORMS:
                raise FormulaError(f"'{name}' is a function: call it, as in {name}(x).")
            columns = [str(c) for c in self.frame.columns]
            close = difflib.get_close_matches(name, columns, n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise FormulaError(f"Column '{name}' is not in the data.{hint}")
        s = self.frame[name]
        if isinstance(s.dtype, pd.CategoricalDtype):
            cats = list(s.cat.categories)
            labels = distinct_labels(cats, f"Column '{name}'")
            values = np.asarray(s.astype(object))
            return self.factor(name, labels, values, bool(s.cat.ordered))
        if pd.api.types.is_bool_dtype(s):
            return s.to_numpy(dtype=bool)
        if pd.api.types.is_numeric_dtype(s):
            return s.to_numpy(dtype=float)
        if pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s):
            values = s.to_numpy(dtype=object)
            if all(isinstance(v, bool | np.bool_) for v in values):
                return values.astype(bool)
            return to_factor(self, name, values)
        raise DataError(f"Column '{name}' has type {s.dtype}, which a formula cannot use; "
                        "convert it to numbers or strings first.")

    def __call__(self, node: Node) -> Any:
        kind = node.kind
        if kind == "name":
            return self.column(str(node.value))
        if kind in ("number", "const"):
            return node.value
        if kind == "string":
            return node.value
        if kind == "paren":
            return self(node.args[0])
        if kind == "call":
            name = str(node.value)
            spec = TRANSFORMS[name]
            args = bind(node, spec)
            values = {f: (self(args[f]) if f in spec.data else
                          literal(args[f], f, allow_contrast=name == "C") if f in args else
                          spec.defaults.get(f)) for f in spec.formals}
            return spec.run(self, label(node), *(values[f] for f in spec.formals))
        if kind == "unary":
            v = self(node.args[0])
            if node.value == "!":
                return ~np.asarray(v, dtype=bool)
            v = numeric_value(v, label(node))
            return -v if node.value == "-" else v
        return self.binary(node)

    def binary(self, node: Node) -> Any:
        op = str(node.value)
        left, right = (self(a) for a in node.args)
        key = label(node)
        if op in ("==", "!=") and (isinstance(left, Factor) or isinstance(right, Factor)):
            f, other = (left, right) if isinstance(left, Factor) else (right, left)
            labels = np.asarray(f.levels, dtype=object)[f.codes]
            eq = labels == level_label(other)
            return eq if op == "==" else ~eq
        if op in ("&", "&&", "|", "||"):
            a, b = np.asarray(left, dtype=bool), np.asarray(right, dtype=bool)
            return (a & b) if op in ("&", "&&") else (a | b)
        if op not in _ARITHMETIC:
            raise FormulaError(f"'{key}': the formula operator '{op}' cannot be used inside a "
                               "function call.")
        a, b = numeric_value(left, key), numeric_value(right, key)
        with np.errstate(all="ignore"):
            return _ARITHMETIC[op](a, b)


_ARITHMETIC = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide, "^": np.power,
    "%%": np.mod, "%/%": np.floor_divide, "==": np.equal, "!=": np.not_equal, "<": np.less,
    ">": np.greater, "<=": np.less_equal, ">=": np.greater_equal,
}


# ------------------------------------------------------------ the frame


@dataclass
class ModelFrame:
    """The variables of a model, evaluated on data; a frozen record of their transforms' state.

    Attributes
    ----------
    variables
        Each variable's label (R's name for it) and syntax tree.
    state
        What the fit recorded: centring, scaling, polynomial coefficients,
        factor levels. Replayed on new data.
    """

    variables: dict[str, Node]
    state: dict[str, dict] = field(default_factory=dict)

    def columns(self, labels: Iterable[str] | None = None) -> list[str]:
        """The data columns the given variables (all by default) read."""
        out: list[str] = []
        for lab in self.variables if labels is None else labels:
            out += [c for c in columns_of(self.variables[lab]) if c not in out]
        return out

    def series(self, frame: pd.DataFrame, lab: str, fit: bool = False) -> pd.Series:
        """One variable as a pandas Series (for the response): numbers, booleans or a categorical."""
        ev = _Eval(frame.reset_index(drop=True), self.state, fit)
        value = ev(self.variables[lab])
        if isinstance(value, Factor):
            cat = pd.Categorical.from_codes(value.codes, categories=value.levels,
                                            ordered=value.ordered)
            return pd.Series(cat, index=frame.index, name=lab)
        if isinstance(value, Matrix):
            raise DataError(f"'{lab}' gives {value.values.shape[1]} columns; the response must "
                            "give one.")
        arr = np.asarray(value)
        if arr.ndim == 0:
            raise FormulaError(f"The response '{lab}' is a constant, not a column.")
        if arr.dtype.kind == "f":
            _finite(arr, lab)
        return pd.Series(arr, index=frame.index, name=lab)

    def evaluate(self, frame: pd.DataFrame, labels: Iterable[str] | None = None,
                 fit: bool = False) -> dict[str, Any]:
        """The variables' values on ``frame``: what formulaic looks the names up in.

        With ``fit=True`` the transforms record their state (levels, centring,
        polynomial coefficients); otherwise they replay the recorded state.
        """
        ev = _Eval(frame.reset_index(drop=True), self.state, fit)
        out: dict[str, Any] = {}
        for lab in self.variables if labels is None else labels:
            out[lab] = _for_formulaic(ev(self.variables[lab]), lab, ev.n)
        return out


def _for_formulaic(value: Any, key: str, n: int) -> Any:
    from formulaic.materializers.types import FactorValues
    from formulaic.transforms import C

    if isinstance(value, np.ndarray) and value.dtype == bool:
        value = Factor(value.astype(np.int64), ["FALSE", "TRUE"])
    if isinstance(value, Factor):
        series = pd.Series(pd.Categorical.from_codes(value.codes, categories=value.levels))
        kind = value.contrasts or ("poly" if value.ordered else "treatment")
        return C(series, _contrasts(kind), levels=value.levels)
    if isinstance(value, Matrix):
        return FactorValues(value.values, kind="numerical", column_names=tuple(value.colnames))
    arr = numeric_value(value, key)
    if arr.ndim == 0 or arr.shape[0] != n:
        raise FormulaError(f"'{key}' is a constant, not a column: it cannot be a term.")
    return _finite(arr, key)


def _finite(arr: np.ndarray, key: str) -> np.ndarray:
    bad = ~np.isfinite(arr)
    if bad.any():
        raise DataError(
            f"'{key}' gives {int(bad.sum())} non-finite value(s) (NaN or infinite), e.g. in "
            f"row {int(np.flatnonzero(bad)[0])} of the rows used; R would drop those rows or "
            "fail. Remove those rows or change the transform.")
    return arr


def _contrasts(kind: str) -> Any:
    from formulaic.transforms.contrasts import PolyContrasts, TreatmentContrasts

    from hierbayes.spec.rcontrasts import RHelmertContrasts, RSumContrasts

    return {"treatment": TreatmentContrasts, "poly": PolyContrasts, "sum": RSumContrasts,
            "helmert": RHelmertContrasts}[kind]()
