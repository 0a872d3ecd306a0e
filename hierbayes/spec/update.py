"""R's ``update.formula``: a new formula written against an old one with ``.``.

``.`` on the right stands for the old right-hand side and on the left for
the old response, so ``". ~ . + sex"`` adds a term, ``"~ . - Days"`` removes
one (the left side kept), ``". ~ . - (Days | Subject) + (1 | Subject)"``
swaps a random-effect term and ``"log(.) ~ ."`` transforms the response. As in
R, the result is simplified to its terms (``terms.formula(simplify = TRUE)``):
``a*b`` with ``- a:b`` leaves ``a + b``, and a term written twice appears once.
Random-effect terms (bars, and glmmTMB-style ``diag(...)``, ``cs(...)``,
``ar1(...)``, ``us(...)``) are terms of their own, matched by their text with
spaces ignored, as R matches them.

The formula is read by :mod:`hierbayes.spec.rexpr` (never evaluated), so
update accepts exactly the text a formula may hold.

Examples
--------
>>> update_formula("Reaction ~ Days + (Days | Subject)", "~ . + sex")
'Reaction ~ Days + (Days | Subject) + sex'
>>> update_formula("y ~ a * b + (1 | g)", ". ~ . - a:b")
'y ~ a + b + (1 | g)'
>>> update_formula("Reaction ~ Days + (Days | Subject)", ". ~ . - (Days | Subject) + (Days || Subject)")
'Reaction ~ Days + (Days || Subject)'
>>> update_formula("Reaction ~ Days + (1 | Subject)", "log(.) ~ . - 1")
'log(Reaction) ~ 0 + Days + (1 | Subject)'
"""

from __future__ import annotations

from hierbayes.errors import FormulaError
from hierbayes.spec.covstruct import STRUCTURES
from hierbayes.spec.rexpr import Node, label, parse, terms

_PLACEHOLDER = "hbRandomTerm"


def _sides(text: str, what: str) -> tuple[Node | None, Node]:
    """The two sides of a formula (``None`` for a one-sided ``~ rhs``)."""
    if not isinstance(text, str) or "~" not in text:
        raise FormulaError(f"The {what} formula must contain '~' (for example '. ~ . + x' or "
                           f"'~ . - x'); got {text!r}.")
    if text.count("~") != 1:
        raise FormulaError(f"The {what} formula must have one '~'; got {text!r}.")
    left, right = text.split("~")
    if not right.strip():
        raise FormulaError(f"The {what} formula {text!r} has nothing right of '~'.")
    return (parse(left.strip()) if left.strip() else None), parse(right.strip())


def _is_random(node: Node) -> bool:
    inner = node.args[0] if node.kind == "paren" else None
    if inner is not None and inner.kind == "binary" and inner.value in ("|", "||"):
        return True
    return node.kind == "call" and node.value in STRUCTURES and len(node.args) == 1 and \
        node.args[0].kind == "binary" and node.args[0].value == "|"


def _replace(node: Node, dot: Node | None, bars: dict[str, str]) -> Node:
    """``node`` with ``.`` replaced by ``dot`` (in parentheses) and each random-effect term by a
    placeholder name, the same for the same text."""
    if node.kind == "name" and node.value == ".":
        if dot is None:
            raise FormulaError("'.' stands for the old formula's side, which is empty here.")
        # a name or call needs no parentheses (log(.) is log(Reaction), not log((Reaction)))
        return dot if dot.kind in ("name", "call", "paren") else Node("paren", "(", (dot,))
    if _is_random(node):
        key = label(node).replace(" ", "")
        name = bars.setdefault(key, f"{_PLACEHOLDER}{len(bars)}")
        return Node("name", name)
    if not node.args:
        return node
    return Node(node.kind, node.value, tuple(_replace(a, dot, bars) for a in node.args),
                node.keywords, node.start, node.end)


def update_formula(old: str, new: str) -> str:
    """The formula ``new`` with its ``.`` read against ``old``, simplified to its terms.

    Parameters
    ----------
    old
        The fitted model's formula.
    new
        A formula in R's update notation: ``". ~ . + x"``, ``"~ . - x"`` (the
        response kept), ``"log(.) ~ ."``, or a whole new formula.

    Raises
    ------
    FormulaError
        When ``new`` is not a formula, or a term cannot be read.
    """
    old_lhs, old_rhs = _sides(old, "old")
    new_lhs, new_rhs = _sides(new, "new")
    if old_lhs is None:
        raise FormulaError(f"The model's formula {old!r} has no response.")
    bars: dict[str, str] = {}
    lhs = old_lhs if new_lhs is None else _replace(new_lhs, old_lhs, {})
    rhs = _replace(new_rhs, _replace(old_rhs, None, bars), bars)
    expanded = terms(rhs)
    originals = {name: key for key, name in bars.items()}
    written = {}
    for node in _walk(old_rhs):
        written.setdefault(label(node).replace(" ", ""), label(node))
    for node in _walk(new_rhs):
        written.setdefault(label(node).replace(" ", ""), label(node))
    parts = []
    for t in expanded.labels:
        if len(t) == 1 and t[0] in originals:
            parts.append(written[originals[t[0]]])
        elif any(v in originals for v in t):
            raise FormulaError(f"A random-effect term cannot be crossed with another term in "
                               f"{new!r}.")
        else:
            parts.append(":".join(t))
    if not expanded.intercept:
        parts.insert(0, "0")
    elif not any(not (len(t) == 1 and t[0] in originals) for t in expanded.labels):
        parts.insert(0, "1")  # only bars left: keep the intercept visible, as lme4 needs one side
    return f"{label(lhs)} ~ {' + '.join(parts)}"


def _walk(node: Node):
    if _is_random(node):
        yield node
        return
    for a in node.args:
        yield from _walk(a)
