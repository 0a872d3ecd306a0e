"""Reading lme4 formulas: the response, the fixed part and the ``( ... | ... )`` bars.

formulaic reads the fixed part and the left-hand side of every bar; it does
not know bars, so this module finds them first, as lme4's ``findbars`` does,
and expands ``||`` (``expandDoubleVerts``) and ``/`` (``expandSlash``) the way
lme4 does, names included: ``(1 | a/b)`` becomes ``(1 | a) + (1 | b:a)``.

Examples
--------
>>> from hierbayes.spec.formula import parse_formula
>>> f = parse_formula("Reaction ~ Days + (Days || Subject)")
>>> f.fixed
'Days'
>>> [(t.expr, t.group_name) for t in f.random]
[('1', 'Subject'), ('0 + Days', 'Subject')]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hierbayes.errors import FormulaError, caret
from hierbayes.spec import rexpr
from hierbayes.spec.transforms import check_calls

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$|^`[^`]+`$")
# glmmTMB's covariance structures around a bar: diag(x | g), cs(x | g), ar1(0 + f | g), us(x | g)
_STRUCTURE = re.compile(r"^(us|diag|cs|ar1)\s*\(")
_UNSUPPORTED_STRUCTURES = ("ou", "exp", "gau", "mat", "toep", "rr", "homdiag", "homcs", "propto", "equalto")
_OPEN = "([{"
_CLOSE = ")]}"


@dataclass(frozen=True)
class RandomTerm:
    """One random-effect term: a model formula for its columns and a grouping factor.

    Attributes
    ----------
    expr
        Right-hand side for the term's model matrix, e.g. ``"1 + Days"`` or
        ``"0 + Days"``; formulaic reads it.
    group
        Names of the columns whose interaction is the grouping factor, in
        lme4's order: ``("ward", "hospital")`` for ``ward:hospital``.
    from_double_bar
        True when the term came from expanding ``||``; such a term must give
        one column, or its coefficients would be correlated after all.
    source
        The bar as the user wrote it, for messages.
    structure
        The covariance structure of its effects, glmmTMB's name: ``"us"``
        (unstructured, a plain bar), ``"diag"``, ``"cs"`` or ``"ar1"``
        (:mod:`hierbayes.spec.covstruct`).
    """

    expr: str
    group: tuple[str, ...]
    from_double_bar: bool = False
    source: str = ""
    structure: str = "us"

    @property
    def group_name(self) -> str:
        """The grouping factor's name as lme4 prints it (``"ward:hospital"``)."""
        return ":".join(self.group)

    def __str__(self) -> str:
        bar = f"{self.expr} | {self.group_name}"
        return f"({bar})" if self.structure == "us" else f"{self.structure}({bar})"


@dataclass(frozen=True)
class ParsedFormula:
    """An lme4 formula split into its parts.

    Attributes
    ----------
    formula
        The formula as given.
    response
        Left-hand side (a column name or an expression formulaic can evaluate).
    fixed
        Right-hand side without the bars, as formulaic reads it. ``"1"`` when
        only bars were given, as in lme4.
    random
        Random-effect terms after expanding ``||`` and ``/``, in the order
        written (the design stage reorders them as lme4 does).
    """

    formula: str
    response: str
    fixed: str
    random: tuple[RandomTerm, ...]

    def __str__(self) -> str:
        parts = [self.fixed] + [str(t) for t in self.random]
        return f"{self.response} ~ {' + '.join(parts)}"


def _check_brackets(text: str) -> list[int]:
    """Return the nesting depth before each character, raising on imbalance."""
    depth: list[int] = []
    stack: list[tuple[str, int]] = []
    for i, ch in enumerate(text):
        depth.append(len(stack))
        if ch in _OPEN:
            stack.append((ch, i))
        elif ch in _CLOSE:
            want = _OPEN[_CLOSE.index(ch)]
            if not stack:
                raise FormulaError(
                    f"Unbalanced parentheses: '{ch}' at position {i} closes nothing.\n"
                    f"{caret(text, i)}\nRemove it or add the matching '{want}'."
                )
            if stack[-1][0] != want:
                raise FormulaError(
                    f"Mismatched brackets: '{stack[-1][0]}' at position {stack[-1][1]} is closed "
                    f"by '{ch}' at position {i}.\n{caret(text, stack[-1][1], i + 1)}"
                )
            stack.pop()
    if stack:
        ch, i = stack[-1]
        raise FormulaError(
            f"Unbalanced parentheses: '{ch}' at position {i} is never closed.\n"
            f"{caret(text, i, len(text))}\nAdd the missing '{_CLOSE[_OPEN.index(ch)]}'."
        )
    return depth


def _split_top(text: str, offset: int, depth: list[int]) -> list[tuple[str, str, int]]:
    """Split a right-hand side at top-level ``+`` and ``-``.

    Returns ``(sign, piece, start)`` triples; ``start`` indexes the full formula.
    ``**`` and the sign of an exponent (``1e-3``) are not split points.
    """
    pieces: list[tuple[str, str, int]] = []
    sign, start = "+", 0
    for i, ch in enumerate(text):
        if depth[offset + i] != 0 or ch not in "+-":
            continue
        if ch == "-" and i > 0 and text[i - 1] in "eE" and i > 1 and text[i - 2].isdigit():
            continue
        pieces.append((sign, text[start:i], offset + start))
        sign, start = ch, i + 1
    pieces.append((sign, text[start:], offset + start))
    return pieces


def _find_top(text: str, token: str, depth: list[int], offset: int, level: int) -> int:
    """Index of the first ``token`` in ``text`` at nesting ``level``, or -1."""
    i = text.find(token)
    while i != -1:
        if depth[offset + i] == level:
            return i
        i = text.find(token, i + 1)
    return -1


def _group_parts(rhs: str, formula: str, start: int) -> list[tuple[str, ...]]:
    """Read a grouping expression (``g``, ``a:b``, ``a/b``) into its slash parts."""
    parts = []
    for chunk in rhs.split("/"):
        names = tuple(n.strip() for n in chunk.split(":"))
        for n in names:
            if not _NAME.match(n):
                where = formula.find(rhs, start)
                raise FormulaError(
                    f"Cannot read the grouping factor '{rhs.strip()}': '{n}' is not a column name."
                    f"\n{caret(formula, where, where + len(rhs))}\nA grouping factor is a column "
                    "('g'), an interaction of columns ('a:b') or a nesting ('a/b')."
                )
        parts.append(tuple(n.strip("`") for n in names))
    return parts


def _expand_slash(parts: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """lme4's expandSlash: ``a/b/c`` gives ``c:b:a``, ``b:a`` and ``a``, in that order."""
    groups = [parts[0]]
    for part in parts[1:]:
        groups.append(part + groups[-1])
    return groups[::-1]


def _double_bar_terms(lhs: str, formula: str, start: int) -> list[str]:
    """lme4's expandDoubleVerts: ``1 + x + z`` gives ``1``, ``0 + x``, ``0 + z``."""
    t = rexpr.terms(rexpr.parse(lhs, formula, start), formula)
    out = ["1"] if t.intercept else []
    out += [f"0 + {':'.join(term)}" for term in t.labels]
    return out


def _parse_bar(content: str, formula: str, start: int, depth: list[int]) -> list[RandomTerm]:
    """Turn the inside of one ``( lhs | group )`` into random terms."""
    source = f"({content})"
    cut = _find_top(content, "|", depth, start, 1)
    double = content[cut : cut + 2] == "||"
    lhs = content[:cut].strip()
    rhs = content[cut + (2 if double else 1) :].strip()
    if not rhs:
        raise FormulaError(
            f"The random-effect term '{source}' has no grouping factor after '|'.\n"
            f"{caret(formula, start - 1, start + len(content) + 1)}\n"
            "Write the grouping column after the bar, e.g. (1 | Subject)."
        )
    if not lhs:
        raise FormulaError(
            f"The random-effect term '{source}' has nothing before '|'.\n"
            f"{caret(formula, start - 1, start + len(content) + 1)}\n"
            "Write the varying terms before the bar: 1 for intercepts, e.g. (1 | g) or (1 + x | g)."
        )
    if "|" in rhs:
        raise FormulaError(
            f"The random-effect term '{source}' has more than one bar.\n"
            f"{caret(formula, start - 1, start + len(content) + 1)}"
        )
    groups = _expand_slash(_group_parts(rhs, formula, start + cut))
    lead = start + len(content) - len(content.lstrip())
    exprs = _double_bar_terms(lhs, formula, lead) if double else [lhs]
    if double and not exprs:
        raise FormulaError(f"'{source}' has no terms to expand.")
    return [
        RandomTerm(expr=e, group=g, from_double_bar=double, source=source)
        for g in groups
        for e in exprs
    ]


def _structure_term(text: str, formula: str, lead: int, depth: list[int],
                    sign: str) -> list[RandomTerm] | None:
    """``diag(x | g)`` and its kin as random terms with their structure, or None for other text."""
    m = _STRUCTURE.match(text)
    name = re.match(r"^([A-Za-z_.][A-Za-z0-9_.]*)\s*\(", text)
    if m is None:
        if name is not None and name.group(1) in _UNSUPPORTED_STRUCTURES and text.endswith(")"):
            raise FormulaError(
                f"The covariance structure {name.group(1)}() in {text} is not supported; hierbayes "
                f"has glmmTMB's us, diag, cs and ar1.\n{caret(formula, lead, lead + len(text))}")
        return None
    open_at = lead + m.end() - 1
    closing = lead + len(text) - 1
    if not text.endswith(")") or not all(depth[k] >= 1 for k in range(open_at + 1, closing + 1)):
        return None
    if sign == "-":
        raise FormulaError(f"A random-effect term cannot be subtracted.\n{caret(formula, lead, closing + 1)}")
    content = formula[open_at + 1 : closing]
    if _find_top(content, "||", depth, open_at + 1, 1) != -1:
        raise FormulaError(
            f"{m.group(1)}() takes a single bar, as in {m.group(1)}(x | g); '||' already means "
            f"independent effects (diag).\n{caret(formula, lead, closing + 1)}")
    terms = _parse_bar(content, formula, open_at + 1, depth)
    return [RandomTerm(t.expr, t.group, t.from_double_bar, text, m.group(1)) for t in terms]


def _check_calls(node: rexpr.Node, source: str) -> None:
    """:func:`check_calls` on every call but the covariance structures around bars (their insides)."""
    if node.kind == "call" and node.value in ("us", "diag", "cs", "ar1") and len(node.args) == 1 \
            and node.args[0].kind == "binary" and node.args[0].value == "|":
        check_calls(node.args[0], source)
        return
    if node.kind == "call":
        check_calls(node, source)
        return
    for a in node.args:
        _check_calls(a, source)


def parse_formula(formula: str) -> ParsedFormula:
    """Split an lme4 formula into response, fixed part and random-effect terms.

    Parameters
    ----------
    formula
        An lme4 formula such as ``"Reaction ~ Days + (Days | Subject)"``.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    FormulaError
        With the offending part marked, for unbalanced parentheses, a missing
        ``~`` or response, a bar without grouping factor or terms, or a bar
        outside parentheses.

    Examples
    --------
    >>> parse_formula("y ~ x + (1 | a/b)").random[0].group_name
    'b:a'
    """
    if not isinstance(formula, str):
        raise FormulaError(
            f"The formula must be a string such as 'y ~ x + (1 | g)', not {type(formula).__name__}."
        )
    if not formula.strip():
        raise FormulaError("The formula is empty. Write one such as 'y ~ x + (1 | g)'.")
    rexpr.check_tokens(formula)  # before anything else reads the text
    depth = _check_brackets(formula)
    tildes = [i for i, ch in enumerate(formula) if ch == "~" and depth[i] == 0]
    if not tildes:
        raise FormulaError(
            f"The formula '{formula}' has no '~'. Write the response on its left, "
            "e.g. 'y ~ x + (1 | g)'."
        )
    if len(tildes) > 1:
        raise FormulaError(f"The formula has more than one '~'.\n{caret(formula, tildes[1])}")
    tilde = tildes[0]
    response = formula[:tilde].strip()
    if not response:
        raise FormulaError(
            f"The formula '{formula}' has no response on the left of '~'.\n{caret(formula, tilde)}\n"
            "Name the column to model, e.g. 'y ~ x + (1 | g)'."
        )
    rhs_start = tilde + 1
    rhs = formula[rhs_start:]
    if not rhs.strip():
        raise FormulaError(
            f"The formula '{formula}' has nothing on the right of '~'.\n{caret(formula, tilde)}\n"
            "Write at least an intercept, e.g. 'y ~ 1 + (1 | g)'."
        )
    fixed: list[str] = []
    random: list[RandomTerm] = []
    for k, (sign, piece, start) in enumerate(_split_top(rhs, rhs_start, depth)):
        text = piece.strip()
        lead = start + len(piece) - len(piece.lstrip())
        bar = _find_top(piece, "|", depth, start, 1)
        structured = _structure_term(text, formula, lead, depth, sign) if bar != -1 else None
        if structured is not None:
            random.extend(structured)
            continue
        if text.startswith("(") and text.endswith(")") and bar != -1:
            closing = lead + len(text) - 1
            if all(depth[k] >= 1 for k in range(lead + 1, closing + 1)):
                if sign == "-":
                    raise FormulaError(
                        f"A random-effect term cannot be subtracted.\n{caret(formula, lead, closing + 1)}"
                    )
                random.extend(_parse_bar(text[1:-1], formula, lead + 1, depth))
                continue
        top_bar = _find_top(piece, "|", depth, start, 0)
        if top_bar != -1 or bar != -1:
            where = start + (top_bar if top_bar != -1 else bar)
            raise FormulaError(
                f"A '|' must sit inside its own parentheses, as in (1 + x | g).\n"
                f"{caret(formula, where)}"
            )
        if not text:
            # only the first piece may be empty ("y ~ -1 + x", "y ~ +x"); any later one
            # follows a sign with nothing after it ("y ~ x +", "y ~ (1 | g) + + x")
            if k > 0:
                raise FormulaError(
                    f"The formula has an empty term near position {start}.\n{caret(formula, start - 1)}"
                )
            continue
        fixed.append(f"{'- ' if sign == '-' else ''}{text}")
    # The whole formula in R's grammar: a character, an operator or a call outside the
    # language is refused here, before any part of the formula is evaluated.
    _check_calls(rexpr.parse(formula), formula)
    fixed_text = " + ".join(fixed).replace("+ - ", "- ") if fixed else "1"
    if fixed_text.startswith("- ") or fixed_text in {"0", "- 1", "-1"}:
        # "y ~ 0 + (1|g)" or "y ~ -1 + (x|g)": no fixed terms besides dropping the intercept.
        fixed_text = fixed_text if not fixed_text.startswith("- ") else "0 " + fixed_text
    return ParsedFormula(formula=formula, response=response, fixed=fixed_text, random=tuple(random))
