"""R's formula language, read by hierbayes itself: tokens, syntax tree, labels and terms.

Formula text is untrusted input (it comes from config files and shared
notebooks), so it is never handed to Python's ``eval``. This module reads it
as R reads it: names may contain dots (``days.sleep`` is one name), ``^`` is
a power inside a call and crossing outside, and the only calls allowed are
those of the transform table in :mod:`hierbayes.spec.transforms`. Anything else
(``$``, ``@``, ``[``, ``{``, ``::``, ``;``, backslash lambdas, ``function``)
is refused with a :class:`~hierbayes.errors.FormulaError` that marks the
offending text, before anything is evaluated.

:func:`terms` expands the formula operators (``+ - * / : ^ %in%``) into the
term list R's ``terms.formula`` gives: terms ordered by degree, and the
variables of each interaction in the order they first appear, so ``x + f +
f:x`` has the interaction ``x:f`` as in R.

Examples
--------
>>> from hierbayes.spec.rexpr import parse, label, terms
>>> label(parse("I(age ^ 2)"))
'I(age^2)'
>>> t = terms(parse("a * b + c"))
>>> t.intercept, [":".join(term) for term in t.labels]
(True, ['a', 'b', 'c', 'a:b'])
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field

from hierbayes.errors import FormulaError, caret

# R's binding powers (?Syntax), weakest first. ``~`` only appears at the top.
_BINARY = {
    "~": 1, "|": 2, "||": 2, "&": 3, "&&": 3,
    "==": 5, "!=": 5, "<": 5, ">": 5, "<=": 5, ">=": 5,
    "+": 6, "-": 6, "*": 7, "/": 7, "%%": 8, "%/%": 8, "%in%": 8, ":": 9, "^": 11,
}
_UNARY_MINUS = 10
_NOT = 4

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>0[xX][0-9a-fA-F]+L?|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?)
  | (?P<name>(?:[^\W\d_]|\.(?!\d))[\w.]*)
  | (?P<backtick>`[^`]*`)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<op>%[^%\s]*%|:::?|\*\*|<=|>=|==|!=|&&|\|\||[~+\-*/^:(),=<>&|!])
    """,
    re.VERBOSE,
)
# R's reserved words: none of them names a column or a transform.
_RESERVED = {"if", "else", "repeat", "while", "function", "for", "in", "next", "break",
             "NULL", "NA", "NA_integer_", "NA_real_", "NA_character_", "NaN"}
# reserved constants; T, F and pi are ordinary names (a column may be called T), resolved late
_CONSTANTS = {"TRUE": True, "FALSE": False, "Inf": math.inf}
_REFUSED = {
    "$": "'$' (element access) is not allowed in a formula; name the column itself",
    "@": "'@' (slot access) is not allowed in a formula; name the column itself",
    "[": "subscripts ('[') are not allowed in a formula; make the column you need first",
    "]": "subscripts (']') are not allowed in a formula; make the column you need first",
    "{": "braces ('{') are not allowed in a formula",
    "}": "braces ('}') are not allowed in a formula",
    ";": "';' is not allowed in a formula: write one formula",
    "\\": "a backslash (R's lambda) is not allowed in a formula",
    "?": "'?' is not allowed in a formula",
    "#": "comments ('#') are not allowed in a formula",
}


@dataclass(frozen=True)
class Node:
    """One node of a formula's syntax tree.

    Attributes
    ----------
    kind
        ``"name"``, ``"number"``, ``"string"``, ``"const"`` (TRUE, FALSE,
        Inf), ``"call"``, ``"binary"``, ``"unary"`` or ``"paren"``.
    value
        The name, the number, the string, the constant, the called function's
        name, or the operator.
    args
        Operands (binary: left, right; unary and paren: one; call: its
        positional and keyword arguments in order).
    keywords
        For a call, the keyword of each argument (``None`` for positional).
    start, end
        Where the node lies in the text that was parsed.
    """

    kind: str
    value: object
    args: tuple[Node, ...] = ()
    keywords: tuple[str | None, ...] = ()
    start: int = 0
    end: int = 0


@dataclass
class _Token:
    kind: str
    text: str
    start: int
    end: int


def _tokens(text: str, offset: int, source: str) -> list[_Token]:
    out: list[_Token] = []
    i = 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None or m.end() == i:
            ch = text[i]
            why = _REFUSED.get(ch, f"the character {ch!r} has no meaning in an R formula")
            raise FormulaError(f"Cannot read the formula: {why}.\n"
                               f"{caret(source, offset + i)}")
        kind = m.lastgroup or ""
        if kind != "space":
            tok = m.group()
            if kind == "op" and tok in ("::", ":::"):
                raise FormulaError(
                    f"Cannot read the formula: '{tok}' (namespace access) is not allowed in a "
                    f"formula.\n{caret(source, offset + i, offset + m.end())}")
            if kind == "op" and tok == "**":
                tok = "^"  # R reads ** as ^
            if kind == "op" and tok.startswith("%") and tok not in _BINARY:
                raise FormulaError(
                    f"The operator {tok} is not supported in formulas.\n"
                    f"{caret(source, offset + i, offset + m.end())}")
            out.append(_Token(kind, tok, offset + i, offset + m.end()))
        i = m.end()
    return out


def _check_name(name: str, tok: _Token, source: str) -> None:
    if unicodedata.normalize("NFKC", name) != name:
        # Python would read 'ｅｖａｌ' as 'eval': a look-alike name is never a name here.
        raise FormulaError(
            f"The name '{name}' contains look-alike (compatibility) characters, which are not "
            f"allowed in a formula; put a real column name in backticks.\n"
            f"{caret(source, tok.start, tok.end)}")
    if name in _RESERVED:
        what = "function definitions are" if name == "function" else f"'{name}' is"
        raise FormulaError(f"{what} not allowed in a formula.\n{caret(source, tok.start, tok.end)}")


class _Parser:
    """A Pratt parser for R expressions (R's precedences; ``^`` right-associative)."""

    def __init__(self, text: str, offset: int, source: str) -> None:
        self.source = source
        self.toks = _tokens(text, offset, source)
        self.i = 0
        self.end = offset + len(text)

    def peek(self) -> _Token | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def fail(self, message: str, tok: _Token | None) -> FormulaError:
        where = (tok.start, tok.end) if tok else (self.end, self.end + 1)
        return FormulaError(f"{message}\n{caret(self.source, *where)}")

    def take(self, text: str) -> _Token:
        tok = self.peek()
        if tok is None or tok.kind != "op" or tok.text != text:
            found = f"'{tok.text}'" if tok else "the end"
            raise self.fail(f"Cannot read the formula: expected '{text}', found {found}.", tok)
        self.i += 1
        return tok

    def expression(self, power: int = 0) -> Node:
        left = self.prefix()
        while True:
            tok = self.peek()
            if tok is None or tok.kind != "op" or tok.text not in _BINARY:
                return left
            p = _BINARY[tok.text]
            if p <= power and not (tok.text == "^" and p == power):
                return left
            self.i += 1
            # ^ is right-associative and takes a signed exponent (2^-1)
            right = self.expression(p - 1 if tok.text == "^" else p)
            left = Node("binary", tok.text, (left, right), start=left.start, end=right.end)

    def prefix(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise self.fail("Cannot read the formula: it ends where a term should be.", None)
        self.i += 1
        if tok.kind == "number":
            text = tok.text.rstrip("L")
            value = float(int(text, 16)) if text[:2].lower() == "0x" else float(text)
            return Node("number", value, start=tok.start, end=tok.end)
        if tok.kind == "string":
            body = tok.text[1:-1]
            value = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), body)
            return Node("string", value, start=tok.start, end=tok.end)
        if tok.kind in ("name", "backtick"):
            name = tok.text if tok.kind == "name" else tok.text[1:-1]
            if tok.kind == "backtick" and not name:
                raise self.fail("An empty name (``) is not a column.", tok)
            _check_name(name, tok, self.source)
            nxt = self.peek()
            if nxt is not None and nxt.kind == "op" and nxt.text == "(":
                return self.call(name, tok)
            if tok.kind == "name" and name in _CONSTANTS:
                return Node("const", _CONSTANTS[name], start=tok.start, end=tok.end)
            return Node("name", name, start=tok.start, end=tok.end)
        if tok.kind == "op" and tok.text == "(":
            inner = self.expression()
            close = self.take(")")
            return Node("paren", "(", (inner,), start=tok.start, end=close.end)
        if tok.kind == "op" and tok.text in ("-", "+"):
            operand = self.expression(_UNARY_MINUS)
            return Node("unary", tok.text, (operand,), start=tok.start, end=operand.end)
        if tok.kind == "op" and tok.text == "!":
            operand = self.expression(_NOT)
            return Node("unary", "!", (operand,), start=tok.start, end=operand.end)
        raise self.fail(f"Cannot read the formula: unexpected '{tok.text}'.", tok)

    def call(self, name: str, tok: _Token) -> Node:
        self.take("(")
        args: list[Node] = []
        keywords: list[str | None] = []
        nxt = self.peek()
        if not (nxt and nxt.kind == "op" and nxt.text == ")"):
            while True:
                key = None
                a, b = self.peek(), (self.toks[self.i + 1] if self.i + 1 < len(self.toks) else None)
                if (a and a.kind == "name" and b and b.kind == "op" and b.text == "="):
                    key = a.text
                    self.i += 2
                args.append(self.expression())
                keywords.append(key)
                nxt = self.peek()
                if nxt and nxt.kind == "op" and nxt.text == ",":
                    self.i += 1
                    continue
                break
        close = self.take(")")
        return Node("call", name, tuple(args), tuple(keywords), start=tok.start, end=close.end)


def check_tokens(text: str) -> None:
    """Refuse characters and operators R's formula language does not have, before any parsing.

    Examples
    --------
    >>> check_tokens("y ~ x[1]")
    Traceback (most recent call last):
    ...
    hierbayes.errors.FormulaError: Cannot read the formula: subscripts ('[') are not allowed in a formula; make the column you need first.
      y ~ x[1]
           ^
    """
    _tokens(text, 0, text)


def parse(text: str, source: str | None = None, offset: int = 0) -> Node:
    """Read R text into a syntax tree, refusing anything R's formula language does not have.

    Parameters
    ----------
    text
        An R expression or formula (``"y ~ x + (1 | g)"``, ``"log(y)"``).
    source, offset
        The whole formula and where ``text`` starts in it, for the caret
        under the offending part of an error.

    Raises
    ------
    FormulaError
        For a character R formulas do not have (``$ @ [ { ; \\``), an unknown
        ``%op%``, a reserved word, look-alike characters, or bad syntax.

    Examples
    --------
    >>> parse("days.sleep").kind, parse("days.sleep").value
    ('name', 'days.sleep')
    >>> parse("x^2").value
    '^'
    """
    source = text if source is None else source
    p = _Parser(text, offset, source)
    node = p.expression()
    rest = p.peek()
    if rest is not None:
        raise p.fail(f"Cannot read the formula: unexpected '{rest.text}' after a complete "
                     "expression (a missing operator?).", rest)
    return node


def _number(value: float) -> str:
    """A number as R's deparse writes it (15 significant digits, fixed unless e-form is shorter)."""
    if math.isinf(value):
        return "Inf"
    fixed = f"{value:.15g}"
    if "e" in fixed:
        mant, exp = fixed.split("e")
        sci = f"{mant}e{exp[0]}{int(exp[1:]):02d}"
        fixed = f"{value:.15f}".rstrip("0").rstrip(".")
    else:
        sig = f"{value:.15e}".split("e")
        mant = sig[0].rstrip("0").rstrip(".")
        sci = f"{mant}e{sig[1][0]}{int(sig[1][1:]):02d}"
    return fixed if len(fixed) <= len(sci) else sci


def label(node: Node) -> str:
    """The node as R's deparse writes it: the name R gives a variable (``I(age^2)``).

    Examples
    --------
    >>> label(parse("log( x+1 )")), label(parse("poly(x,2, raw=TRUE)"))
    ('log(x + 1)', 'poly(x, 2, raw = TRUE)')
    """
    kind = node.kind
    if kind == "name":
        name = str(node.value)
        return name if re.fullmatch(r"(?:[^\W\d_]|\.(?!\d))[\w.]*", name) else f"`{name}`"
    if kind == "number":
        return _number(float(node.value))  # type: ignore[arg-type]
    if kind == "string":
        return '"' + str(node.value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if kind == "const":
        v = node.value
        return "Inf" if v == math.inf else ("TRUE" if v else "FALSE")
    if kind == "paren":
        return f"({label(node.args[0])})"
    if kind == "unary":
        return f"{node.value}{label(node.args[0])}"
    if kind == "call":
        parts = [label(a) if k is None else f"{k} = {label(a)}"
                 for a, k in zip(node.args, node.keywords, strict=True)]
        return f"{node.value}({', '.join(parts)})"
    op = str(node.value)
    left, right = (label(a) for a in node.args)
    if op in ("^", ":", "/"):  # R's deparse writes these without spaces
        return f"{left}{op}{right}"
    return f"{left} {op} {right}"


# ----------------------------------------------------------------- terms


@dataclass
class Terms:
    """A formula's right-hand side expanded as R's ``terms.formula`` expands it.

    Attributes
    ----------
    intercept
        Whether the intercept is in (R's default unless ``0`` or ``- 1``).
    labels
        The terms in R's order (by degree, then as written), each a tuple of
        variable labels in the order the variables first appear.
    variables
        Each variable's label and syntax tree, in order of first appearance
        (the offsets' too).
    offsets
        The labels of ``offset(...)`` terms, which R keeps out of the term list:
        they enter the linear predictor with coefficient 1.
    """

    intercept: bool
    labels: list[tuple[str, ...]]
    variables: dict[str, Node] = field(default_factory=dict)
    offsets: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The terms written out again in R (``"1 + x + x:f"``)."""
        body = [":".join(t) for t in self.labels]
        return " + ".join(["1" if self.intercept else "0", *body])


_FORMULA_OPS = {"+", "-", "*", "/", ":", "^", "%in%"}


def terms(node: Node, source: str | None = None) -> Terms:
    """Expand formula operators into R's term list.

    Parameters
    ----------
    node
        The right-hand side of a formula (or the left-hand side of a bar).
    source
        The whole formula, for error carets.

    Raises
    ------
    FormulaError
        For a number other than 0 or 1 used as a term, a non-integer power,
        or an operator that is not a formula operator (``==``, ``&``) outside
        ``I()``.

    Examples
    --------
    >>> [":".join(t) for t in terms(parse("(a + b + c)^2 - a:b")).labels]
    ['a', 'b', 'c', 'a:c', 'b:c']
    >>> terms(parse("0 + x")).intercept
    False
    """
    variables: dict[str, Node] = {}
    order: dict[str, int] = {}
    offsets: list[str] = []
    text = source if source is not None else label(node)

    def var(n: Node) -> list[frozenset[str]]:
        name = label(n)
        if name not in variables:
            variables[name] = n
            order[name] = len(order)
        return [frozenset([name])]

    def union(a: list[frozenset[str]], b: list[frozenset[str]]) -> list[frozenset[str]]:
        return a + [t for t in b if t not in a]

    def cross(a: list[frozenset[str]], b: list[frozenset[str]]) -> list[frozenset[str]]:
        out: list[frozenset[str]] = []
        for ta in a:
            for tb in b:
                t = ta | tb
                if t not in out:
                    out.append(t)
        return out

    def expand(n: Node) -> tuple[list[frozenset[str]], bool | None]:
        """(terms, intercept: True added / False removed / None unsaid)."""
        if n.kind == "paren":
            return expand(n.args[0])
        if n.kind == "number":
            if n.value in (0.0, 1.0):
                return [], n.value == 1.0
            raise FormulaError(f"The number {label(n)} cannot be a term of a formula: write 1 "
                               "(intercept), 0 (none) or a column.\n"
                               f"{caret(text, n.start, n.end)}" if source else
                               f"The number {label(n)} cannot be a term of a formula.")
        if n.kind == "unary" and n.value in ("-", "+"):
            t, icpt = expand(n.args[0])
            if n.value == "+":
                return t, icpt
            return [], (None if icpt is None else not icpt)
        if n.kind != "binary" or n.value not in _FORMULA_OPS:
            if n.kind in ("binary", "unary"):
                where = f"\n{caret(text, n.start, n.end)}" if source else ""
                raise FormulaError(
                    f"'{label(n)}' uses the operator '{n.value}', which is not a formula "
                    f"operator; wrap it in I() to compute it, as in I({label(n)}).{where}")
            if n.kind in ("string", "const"):
                where = f"\n{caret(text, n.start, n.end)}" if source else ""
                raise FormulaError(f"{label(n)} cannot be a term of a formula.{where}")
            if n.kind == "call" and n.value == "offset":
                var(n)
                if label(n) not in offsets:
                    offsets.append(label(n))
                return [], None
            return var(n), None
        op = n.value
        left, right = n.args
        if op == "^":
            base, icpt = expand(left)
            k = right.value if right.kind == "number" else None
            if k is None or k != int(k) or k < 1:
                where = f"\n{caret(text, right.start, right.end)}" if source else ""
                raise FormulaError(f"In '{label(n)}', the power of a formula term must be a "
                                   f"whole number; for a numeric power write I({label(n)}).{where}")
            out = base
            for _ in range(int(k) - 1):
                out = union(out, cross(out, base))
            return out, icpt
        lt, li = expand(left)
        rt, ri = expand(right)
        if op == "+":
            return union(lt, rt), (ri if ri is not None else li)
        if op == "-":
            icpt = li
            if ri is not None:
                icpt = not ri
            return [t for t in lt if t not in rt], icpt
        if op in (":", "%in%"):
            return cross(lt, rt), None
        if op == "*":
            return union(union(lt, rt), cross(lt, rt)), None
        # a / b = a + (all of a's variables):b, as R's terms.formula
        whole = frozenset().union(*lt) if lt else frozenset()
        return union(lt, cross([whole], rt) if whole else rt), None

    found, icpt = expand(node)
    found = [t for t in found if t]
    ranked = sorted(range(len(found)), key=lambda i: (len(found[i]), i))
    labels = [tuple(sorted(found[i], key=order.__getitem__)) for i in ranked]
    return Terms(intercept=icpt is not False, labels=labels, variables=variables, offsets=offsets)
