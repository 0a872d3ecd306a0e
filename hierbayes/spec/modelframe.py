"""The model frame: each variable of a formula evaluated on the data, as R's ``model.frame``.

A variable is a column (``Days``, ``days.sleep``) or a call from a fixed
table of transforms (``log(y)``, ``I(age^2)``, ``factor(cyl)``,
``poly(x, 2)``, ``scale(x)``). hierbayes evaluates them itself, over the
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError, FormulaError
from hierbayes.spec.rexpr import Node, label


@dataclass
class Factor:
    """A factor in R's sense: level codes, level labels, ordered or not, and its contrasts."""

    codes: np.ndarray
    levels: list[str]
    ordered: bool = False
    contrasts: str | None = None  # None: R's default (treatment, or poly when ordered)


@dataclass
class Matrix:
    """A matrix-valued variable (``poly(x, 2)``), with R's column suffixes."""

    values: np.ndarray
    colnames: list[str]


def level_label(value: Any) -> str:
    """The label R gives a level: ``2.0`` prints as ``2``.

    Examples
    --------
    >>> level_label(2.0), level_label("a"), level_label(True)
    ('2', 'a', 'TRUE')
    """
    if isinstance(value, bool | np.bool_):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def distinct_labels(values: Iterable[Any], where: str) -> list[str]:
    """Labels of distinct values, refusing two values that would print as one level."""
    seen: dict[str, Any] = {}
    for v in values:
        lab = level_label(v)
        if lab in seen and not _same(seen[lab], v):
            raise DataError(
                f"{where} has two different values that both read as the level '{lab}' "
                f"({seen[lab]!r} and {v!r}), so they would be merged into one group. "
                "Convert the column to one type first (e.g. df[col].astype(str)).")
        seen[lab] = v
    return list(seen)


def _same(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # values that cannot be compared are different values
        return False


# ------------------------------------------------------------ transforms

_CONTRASTS = {
    "contr.treatment": "treatment", "contr.sum": "sum", "contr.helmert": "helmert",
    "contr.poly": "poly", "treatment": "treatment", "sum": "sum", "helmert": "helmert",
    "poly": "poly",
}


@dataclass(frozen=True)
class Transform:
    """One entry of the transform table: R's formals, which of them are data, and the code."""

    formals: tuple[str, ...]
    data: tuple[str, ...]
    defaults: dict[str, Any]
    run: Callable[..., Any]
    doc: str


def _numeric(value: Any, what: str) -> np.ndarray:
    if isinstance(value, str | list):
        raise FormulaError(f"'{what}' needs numbers, but is given the text {value!r}.")
    if isinstance(value, Factor):
        raise DataError(f"{what} needs numbers, but its argument is a factor.")
    if isinstance(value, Matrix):
        raise DataError(f"{what} needs a numeric vector, but its argument is a matrix.")
    return np.asarray(value, dtype=float)


def _math(fun: Callable[[np.ndarray], np.ndarray]) -> Callable[..., Any]:
    def run(ev: _Eval, key: str, x: Any) -> np.ndarray:
        with np.errstate(all="ignore"):
            return fun(_numeric(x, key))
    return run


def _log(ev: _Eval, key: str, x: Any, base: Any) -> np.ndarray:
    with np.errstate(all="ignore"):
        out = np.log(_numeric(x, key))
        return out if base == math.e else out / math.log(float(base))


def _round(ev: _Eval, key: str, x: Any, digits: Any) -> np.ndarray:
    return np.round(_numeric(x, key), int(digits))  # half to even, as R's round


def _identity(ev: _Eval, key: str, x: Any) -> Any:
    return x


def _scale(ev: _Eval, key: str, x: Any, center: Any, scale: Any) -> np.ndarray:
    v = _numeric(x, key)
    st = ev.state_for(key)
    if ev.fit:
        c = float(np.mean(v)) if center is True else (0.0 if center is False else float(center))
        if scale is True:
            # R: sd after centring; without centring, the root mean square over n - 1
            s = float(np.sqrt(np.sum((v - c) ** 2) / max(len(v) - 1, 1)))
        else:
            s = 1.0 if scale is False else float(scale)
        if s == 0:
            raise DataError(f"{key}: the column is constant, so it cannot be scaled.")
        st.update(center=c, scale=s)
    return (v - st["center"]) / st["scale"]


def _center(ev: _Eval, key: str, x: Any) -> np.ndarray:
    return _scale(ev, key, x, True, False)


def _poly(ev: _Eval, key: str, x: Any, degree: Any, raw: Any) -> Matrix:
    v = _numeric(x, key)
    d = int(degree)
    if d < 1 or d != degree:
        raise FormulaError(f"{key}: the degree must be a whole number of at least 1.")
    names = [str(k) for k in range(1, d + 1)]
    if raw is True:
        return Matrix(np.column_stack([v ** k for k in range(1, d + 1)]), names)
    st = ev.state_for(key)
    if ev.fit:
        if len(np.unique(v)) <= d:
            raise DataError(f"{key}: the degree must be less than the number of unique points "
                            f"({len(np.unique(v))}), as R's poly requires.")
        # Stieltjes' three-term recurrence: the same basis as R's poly (QR of the centred
        # powers) and the same alpha and norm2 that R's predict.poly replays
        alpha, norm2 = [], [1.0, float(len(v))]
        prev, cur = np.zeros_like(v), np.ones_like(v)
        for _ in range(d):
            a = float(np.sum(v * cur ** 2) / norm2[-1])
            alpha.append(a)
            nxt = (v - a) * cur - (norm2[-1] / norm2[-2]) * prev
            prev, cur = cur, nxt
            norm2.append(float(np.sum(cur ** 2)))
        st.update(alpha=alpha, norm2=norm2)
    alpha, norm2 = st["alpha"], st["norm2"]
    cols = [np.ones_like(v), v - alpha[0]]
    for i in range(1, d):
        cols.append((v - alpha[i]) * cols[i] - (norm2[i + 1] / norm2[i]) * cols[i - 1])
    Z = np.column_stack(cols[1:]) / np.sqrt(np.asarray(norm2[2:]))
    return Matrix(Z, names)


def _factor(ev: _Eval, key: str, x: Any, levels: Any = None, ordered: Any = False) -> Factor:
    if isinstance(x, Factor) and levels is None:
        used = sorted(set(np.unique(x.codes).tolist()))
        labels = [x.levels[i] for i in used]
        return ev.factor(key, labels, np.asarray(x.levels, dtype=object)[x.codes],
                         ordered=bool(ordered) or x.ordered)
    if isinstance(x, Matrix):
        raise DataError(f"{key}: a matrix cannot be made a factor.")
    values = np.asarray(x.levels, dtype=object)[x.codes] if isinstance(x, Factor) else np.asarray(x)
    if levels is None:
        uniq = list(pd.unique(pd.Series(values)))
        distinct_labels(uniq, f"'{key}'")
        try:
            uniq = sorted(uniq)
        except TypeError as err:
            raise DataError(f"'{key}': the values are of mixed types that cannot be sorted "
                            "into levels; convert the column to one type first.") from err
        labels = [level_label(v) for v in uniq]
    else:
        labels = [level_label(v) for v in (levels if isinstance(levels, list) else [levels])]
    return ev.factor(key, labels, values, ordered=bool(ordered))


def _as_factor(ev: _Eval, key: str, x: Any) -> Factor:
    return x if isinstance(x, Factor) else _factor(ev, key, x)


def _ordered(ev: _Eval, key: str, x: Any, levels: Any = None) -> Factor:
    return _factor(ev, key, x, levels, True)


def _as_ordered(ev: _Eval, key: str, x: Any) -> Factor:
    f = _as_factor(ev, key, x)
    return Factor(f.codes, f.levels, True, f.contrasts)


def _relevel(ev: _Eval, key: str, x: Any, ref: Any) -> Factor:
    f = x if isinstance(x, Factor) else _factor(ev, key, x)
    ref = level_label(ref)
    if ref not in f.levels:
        raise DataError(f"{key}: '{ref}' is not a level; the levels are {f.levels}.")
    order = [f.levels.index(ref)] + [i for i in range(len(f.levels)) if f.levels[i] != ref]
    remap = np.empty(len(order), dtype=np.int64)
    remap[order] = np.arange(len(order))
    return Factor(remap[f.codes], [f.levels[i] for i in order], f.ordered, f.contrasts)


def _C(ev: _Eval, key: str, object: Any, contr: Any, how_many: Any = None) -> Factor:
    f = object if isinstance(object, Factor) else _factor(ev, key, object)
    if how_many is not None:
        raise FormulaError(f"{key}: C()'s how.many is not supported.")
    kind = "poly" if contr is None and f.ordered else (contr or "treatment")
    return Factor(f.codes, f.levels, f.ordered, kind)


_OFFSET = ("offset() is not supported yet (offsets come with the GLMM families); "
           "remove it, or fit the model in R for now.")
_CBIND = ("cbind() responses (successes and failures) are not supported yet; they come "
          "with the binomial-with-trials family. Use a 0/1 response for now.")

TRANSFORMS: dict[str, Transform] = {}


def _add(name: str, formals: tuple[str, ...], run: Callable[..., Any], doc: str,
         defaults: dict[str, Any] | None = None, data: tuple[str, ...] = ("x",)) -> None:
    TRANSFORMS[name] = Transform(formals, data, defaults or {}, run, doc)


for _name, _fun, _doc in [
    ("log2", np.log2, "base-2 logarithm"), ("log10", np.log10, "base-10 logarithm"),
    ("log1p", np.log1p, "log(1 + x)"), ("exp", np.exp, "exponential"),
    ("expm1", np.expm1, "exp(x) - 1"), ("sqrt", np.sqrt, "square root"),
    ("abs", np.abs, "absolute value"), ("sin", np.sin, "sine"), ("cos", np.cos, "cosine"),
    ("tan", np.tan, "tangent"), ("asin", np.arcsin, "arc sine"),
    ("acos", np.arccos, "arc cosine"), ("atan", np.arctan, "arc tangent"),
    ("sinh", np.sinh, "hyperbolic sine"), ("cosh", np.cosh, "hyperbolic cosine"),
    ("tanh", np.tanh, "hyperbolic tangent"), ("floor", np.floor, "round down"),
    ("ceiling", np.ceil, "round up"), ("trunc", np.trunc, "round toward zero"),
    ("sign", np.sign, "sign (-1, 0, 1)"),
]:
    _add(_name, ("x",), _math(_fun), _doc)
_add("log", ("x", "base"), _log, "natural logarithm, or to base `base`", {"base": math.e})
_add("round", ("x", "digits"), _round, "round to `digits` decimals (half to even)",
     {"digits": 0})
_add("I", ("x",), _identity, "as is: arithmetic inside is arithmetic (`^` is a power)")
_add("scale", ("x", "center", "scale"), _scale,
     "centre and divide by the SD (R's scale; replayed on new data)",
     {"center": True, "scale": True})
_add("center", ("x",), _center, "subtract the mean (replayed on new data)")
_add("poly", ("x", "degree", "raw"), _poly,
     "orthogonal polynomials as R's poly (raw = TRUE: plain powers); replayed on new data",
     {"degree": 1, "raw": False})
_add("factor", ("x", "levels", "ordered"), _factor,
     "a factor with R's level order (sorted values, or `levels`)",
     {"levels": None, "ordered": False})
_add("as.factor", ("x",), _as_factor, "a factor (sorted levels)")
_add("ordered", ("x", "levels"), _ordered, "an ordered factor (contr.poly)", {"levels": None})
_add("as.ordered", ("x",), _as_ordered, "an ordered factor (contr.poly)")
_add("relevel", ("x", "ref"), _relevel, "a factor with `ref` as its first (reference) level",
     {"ref": None})
_add("C", ("object", "contr", "how.many"), _C,
     "a factor with the given contrasts: contr.treatment, contr.sum, contr.helmert, contr.poly",
     {"contr": None, "how.many": None}, data=("object",))
_NOT_YET = {"offset": _OFFSET, "cbind": _CBIND}


def _quoted(ev: _Eval, key: str, name: Any) -> Any:
    if not isinstance(name, str):
        raise FormulaError(f"{key}: Q() takes a column name in quotes, as in Q(\"days.sleep\").")
    return ev.column(name)


# Q("name"): formulaic's and patsy's quoting of a column name, for users coming from them
_add("Q", ("name",), _quoted, "the column of that name (as formulaic's and patsy's Q)",
     data=())

# Names R users may write that hierbayes has on purpose not (yet): a precise refusal.
_KNOWN_UNSUPPORTED = {"ns", "bs", "s", "te", "ti", "t2", "gp", "mo", "me", "mi", "lag",
                      "cut", "interaction", "as.numeric", "as.integer", "exp10"}


def check_call(node: Node, source: str | None = None) -> None:
    """Refuse a call whose function is not in the transform table (before anything runs)."""
    from hierbayes.errors import caret

    name = str(node.value)
    where = f"\n{caret(source, node.start, node.end)}" if source else ""
    if name in _NOT_YET:
        raise FormulaError(f"{_NOT_YET[name]}{where}")
    if name not in TRANSFORMS:
        if name in _KNOWN_UNSUPPORTED:
            what = f"The function '{name}()' is not supported in hierbayes formulas yet."
        else:
            what = f"'{name}()' is not a function hierbayes formulas support."
        raise FormulaError(
            f"{what}{where}\nSupported: {', '.join(sorted(TRANSFORMS, key=str.lower))} "
            "(see docs/formula.md). Compute the column in pandas first if you need another.")
    args = bind(node, TRANSFORMS[name], source)
    for f in TRANSFORMS[name].data:
        for sub in _outer_calls(args[f]):
            check_call(sub, source)


def _outer_calls(node: Node):
    """The calls in a tree that are not inside another call."""
    if node.kind == "call":
        yield node
        return
    for a in node.args:
        yield from _outer_calls(a)


def check_calls(node: Node, source: str | None = None) -> None:
    """Refuse every call in a formula whose function is not in the transform table."""
    for sub in _outer_calls(node):
        check_call(sub, source)


def bind(node: Node, spec: Transform, source: str | None = None) -> dict[str, Node]:
    """Match a call's arguments to the transform's formals (keywords exactly, then positions)."""
    from hierbayes.errors import caret

    where = f"\n{caret(source, node.start, node.end)}" if source else ""
    out: dict[str, Node] = {}
    positional = [a for a, k in zip(node.args, node.keywords, strict=True) if k is None]
    for a, k in zip(node.args, node.keywords, strict=True):
        if k is None:
            continue
        if k not in spec.formals:
            raise FormulaError(f"{node.value}() has no argument '{k}'; its arguments are "
                               f"{', '.join(spec.formals)}.{where}")
        out[k] = a
    free = [f for f in spec.formals if f not in out]
    if len(positional) > len(free):
        raise FormulaError(f"{node.value}() takes at most {len(spec.formals)} argument(s) "
                           f"({', '.join(spec.formals)}).{where}")
    out.update(zip(free, positional, strict=False))
    for f in spec.data:
        if f not in out:
            raise FormulaError(f"{node.value}() needs its argument '{f}'.{where}")
    for f, a in out.items():
        if f not in spec.data:
            _literal(a, f"{node.value}()'s argument '{f}'", allow_contrast=(node.value == "C"))
    return out


def _literal(node: Node, what: str, allow_contrast: bool = False) -> Any:
    """An option's value: a number, string, TRUE/FALSE, c(...) of those, or a contrast name."""
    if node.kind in ("number", "string", "const"):
        return node.value
    if node.kind == "unary" and node.value == "-" and node.args[0].kind == "number":
        return -float(node.args[0].value)  # type: ignore[arg-type]
    if node.kind == "name" and node.value in ("T", "F"):
        return node.value == "T"
    if allow_contrast and node.kind in ("name", "string") and node.value in _CONTRASTS:
        return _CONTRASTS[str(node.value)]
    if node.kind == "call" and node.value == "c":
        return [_literal(a, what) for a in node.args]
    raise FormulaError(f"{what} must be a literal value (a number, a string, TRUE/FALSE or "
                       f"c(...) of those"
                       + (", or contr.treatment/contr.sum/contr.helmert/contr.poly" if
                          allow_contrast else "") + f"), not '{label(node)}'.")


def columns_of(node: Node) -> list[str]:
    """The data columns a variable reads, in order of appearance (options are not columns)."""
    out: list[str] = []

    def visit(n: Node) -> None:
        if n.kind == "name":
            if n.value not in out:
                out.append(str(n.value))
        elif n.kind == "call":
            spec = TRANSFORMS.get(str(n.value))
            if spec is None:
                check_call(n)
            args = bind(n, spec)  # type: ignore[arg-type]
            if n.value == "Q":
                name = _literal(args["name"], "Q()'s argument")
                if name not in out:
                    out.append(str(name))
            for f in spec.data:  # type: ignore[union-attr]
                visit(args[f])
        else:
            for a in n.args:
                visit(a)

    visit(node)
    return out


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
            return _factor(self, name, values)
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
                          _literal(args[f], f, allow_contrast=name == "C") if f in args else
                          spec.defaults.get(f)) for f in spec.formals}
            return spec.run(self, label(node), *(values[f] for f in spec.formals))
        if kind == "unary":
            v = self(node.args[0])
            if node.value == "!":
                return ~np.asarray(v, dtype=bool)
            v = _numeric(v, label(node))
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
        a, b = _numeric(left, key), _numeric(right, key)
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
    arr = _numeric(value, key)
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
