"""The table of R transforms a formula may call, and their implementations.

A call in a formula (``log(y)``, ``I(age^2)``, ``factor(cyl)``,
``poly(x, 2)``, ``scale(x)``) runs only if its function is in
:data:`TRANSFORMS`: R's formals, which of them are data (evaluated on the
frame) and which are options (literals), and the NumPy code that computes it.
:func:`check_calls` refuses any other call before anything runs, with the
list of what is supported; :func:`bind` matches a call's arguments to the
formals as R does (keywords exactly, then positions).

The values a transform sees and returns are what R makes of them: NumPy
arrays of numbers or booleans, a :class:`Factor` (codes, levels, ordered,
contrasts) or a :class:`Matrix` (``poly``). Stateful transforms (``scale``,
``center``, ``poly``, the levels of every factor) keep their state through
the evaluator (:class:`Evaluator`, implemented by
:mod:`hierbayes.spec.modelframe`), which records it at fit time and replays it
on new data.

Examples
--------
>>> from hierbayes.spec.rexpr import parse
>>> sorted(TRANSFORMS)[:4]
['C', 'I', 'Q', 'abs']
>>> columns_of(parse("poly(age, degree = 2) + log(dose, base = 10)"))
['age', 'dose']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

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


class Evaluator(Protocol):
    """What a transform asks of the evaluator running it (:mod:`hierbayes.spec.modelframe`)."""

    fit: bool

    def state_for(self, key: str) -> dict:
        """The state recorded for ``key`` (created at fit time, replayed after)."""
        ...

    def factor(self, key: str, labels: list[str], values: Any, ordered: bool) -> Factor:
        """A factor of ``values`` on the fit's levels."""
        ...

    def column(self, name: str) -> Any:
        """A data column (or a name constant) as R reads it."""
        ...


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


def numeric_value(value: Any, what: str) -> np.ndarray:
    """A value as a float array, refusing text, factors and matrices (``what`` names it).

    Examples
    --------
    >>> numeric_value(np.array([True, False]), "x")
    array([1., 0.])
    """
    if isinstance(value, str | list):
        raise FormulaError(f"'{what}' needs numbers, but is given the text {value!r}.")
    if isinstance(value, Factor):
        raise DataError(f"{what} needs numbers, but its argument is a factor.")
    if isinstance(value, Matrix):
        raise DataError(f"{what} needs a numeric vector, but its argument is a matrix.")
    return np.asarray(value, dtype=float)


def _math(fun: Callable[[np.ndarray], np.ndarray]) -> Callable[..., Any]:
    def run(ev: Evaluator, key: str, x: Any) -> np.ndarray:
        with np.errstate(all="ignore"):
            return fun(numeric_value(x, key))
    return run


def _log(ev: Evaluator, key: str, x: Any, base: Any) -> np.ndarray:
    with np.errstate(all="ignore"):
        out = np.log(numeric_value(x, key))
        return out if base == math.e else out / math.log(float(base))


def _round(ev: Evaluator, key: str, x: Any, digits: Any) -> np.ndarray:
    return np.round(numeric_value(x, key), int(digits))  # half to even, as R's round


def _identity(ev: Evaluator, key: str, x: Any) -> Any:
    return x


def _scale(ev: Evaluator, key: str, x: Any, center: Any, scale: Any) -> np.ndarray:
    v = numeric_value(x, key)
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


def _center(ev: Evaluator, key: str, x: Any) -> np.ndarray:
    return _scale(ev, key, x, True, False)


def _poly(ev: Evaluator, key: str, x: Any, degree: Any, raw: Any) -> Matrix:
    v = numeric_value(x, key)
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


def to_factor(ev: Evaluator, key: str, x: Any, levels: Any = None,
              ordered: Any = False) -> Factor:
    """R's ``factor(x, levels, ordered)``: levels sorted, or ``levels`` as given.

    The levels are recorded under ``key`` at fit time and replayed on new
    data (:meth:`Evaluator.factor`).
    """
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


def _as_factor(ev: Evaluator, key: str, x: Any) -> Factor:
    return x if isinstance(x, Factor) else to_factor(ev, key, x)


def _ordered(ev: Evaluator, key: str, x: Any, levels: Any = None) -> Factor:
    return to_factor(ev, key, x, levels, True)


def _as_ordered(ev: Evaluator, key: str, x: Any) -> Factor:
    f = _as_factor(ev, key, x)
    return Factor(f.codes, f.levels, True, f.contrasts)


def _relevel(ev: Evaluator, key: str, x: Any, ref: Any) -> Factor:
    f = x if isinstance(x, Factor) else to_factor(ev, key, x)
    ref = level_label(ref)
    if ref not in f.levels:
        raise DataError(f"{key}: '{ref}' is not a level; the levels are {f.levels}.")
    order = [f.levels.index(ref)] + [i for i in range(len(f.levels)) if f.levels[i] != ref]
    remap = np.empty(len(order), dtype=np.int64)
    remap[order] = np.arange(len(order))
    return Factor(remap[f.codes], [f.levels[i] for i in order], f.ordered, f.contrasts)


def _C(ev: Evaluator, key: str, object: Any, contr: Any, how_many: Any = None) -> Factor:
    f = object if isinstance(object, Factor) else to_factor(ev, key, object)
    if how_many is not None:
        raise FormulaError(f"{key}: C()'s how.many is not supported.")
    kind = "poly" if contr is None and f.ordered else (contr or "treatment")
    return Factor(f.codes, f.levels, f.ordered, kind)


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
_add("factor", ("x", "levels", "ordered"), to_factor,
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


def _offset(ev: Evaluator, key: str, x: Any) -> np.ndarray:
    return numeric_value(x, key)


def _cbind(ev: Evaluator, key: str, successes: Any, failures: Any) -> Matrix:
    s, f = numeric_value(successes, key), numeric_value(failures, key)
    return Matrix(np.column_stack(np.broadcast_arrays(s, f)), ["successes", "failures"])


# offset(): a term of the linear predictor with coefficient 1 (rexpr.terms sets it apart);
# cbind(): a binomial response's successes and failures (the design reads its two columns)
_add("offset", ("x",), _offset, "a known part of the linear predictor, coefficient 1")
_add("cbind", ("successes", "failures"), _cbind,
     "a binomial response: cbind(successes, failures)", data=("successes", "failures"))
_NOT_YET: dict[str, str] = {}


def _quoted(ev: Evaluator, key: str, name: Any) -> Any:
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
            literal(a, f"{node.value}()'s argument '{f}'", allow_contrast=(node.value == "C"))
    return out


def literal(node: Node, what: str, allow_contrast: bool = False) -> Any:
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
        return [literal(a, what) for a in node.args]
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
                name = literal(args["name"], "Q()'s argument")
                if name not in out:
                    out.append(str(name))
            for f in spec.data:  # type: ignore[union-attr]
                visit(args[f])
        else:
            for a in n.args:
                visit(a)

    visit(node)
    return out


