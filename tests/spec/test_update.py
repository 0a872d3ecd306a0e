"""update_formula: R's update.formula semantics for the fixed and random parts."""

from __future__ import annotations

import pytest

import hierbayes as hb
from hierbayes.spec.rexpr import parse, terms
from hierbayes.spec.update import update_formula

# (old, new, what R's update() gives): the expected formulas are R 4.2's output, compared by
# their terms (R writes "- 1" where we write "0 +", and "y ~ (1 | g)" where we keep the 1)
CASES = [
    ("Reaction ~ Days + (Days | Subject)", "~ . + sex", "Reaction ~ Days + (Days | Subject) + sex"),
    ("y ~ a * b + (1 | g)", ". ~ . - a:b", "y ~ a + b + (1 | g)"),
    ("Reaction ~ Days + (1 | Subject)", "log(.) ~ . - 1", "log(Reaction) ~ Days + (1 | Subject) - 1"),
    ("y ~ x + (1 | g)", ". ~ . - x", "y ~ (1 | g)"),
    ("y ~ x * f + (x | g)", ". ~ . - (x | g) + (1 | g) - x:f", "y ~ x + f + (1 | g)"),
    ("y ~ x + (1|g)", ". ~ . + (0 + x | g)", "y ~ x + (1 | g) + (0 + x | g)"),
    ("y ~ x + z", "z ~ .", "z ~ x + z"),
    ("y ~ (a + b + c)^2", ". ~ . - b:c", "y ~ a + b + c + a:b + a:c"),
    ("y ~ x + diag(0 + t | g)", ". ~ . - diag(0+t|g) + ar1(0 + t | g)", "y ~ x + ar1(0 + t | g)"),
    ("y ~ x + (1 | a/b)", ". ~ . + w", "y ~ x + (1 | a/b) + w"),
]


def _terms(formula: str) -> tuple[str, bool, set[str]]:
    lhs, rhs = formula.split("~")
    bars = []

    def strip(text: str) -> str:
        # the random terms as opaque names, as R's terms() treats parenthesised bars
        out, depth, start = [], 0, 0
        for ch in text:
            if ch == "(":
                if depth == 0:
                    start = len(out)
                depth += 1
            out.append(ch)
            if ch == ")":
                depth -= 1
                group = "".join(out[start:])
                if depth == 0 and "|" in group:
                    lead = "".join(out[:start]).rstrip()
                    call = next((c for c in ("diag", "ar1", "cs", "us") if lead.endswith(c)), "")
                    del out[start - len(call) if call else start:]
                    bars.append(call + group.replace(" ", ""))
                    out.append(f"BAR{len(bars)}")
        return "".join(out)

    text = strip(rhs)
    t = terms(parse(text))
    labels = {":".join(x) for x in t.labels}
    names = {f"BAR{i + 1}": b for i, b in enumerate(bars)}
    return lhs.replace(" ", ""), t.intercept, {names.get(x, x) for x in labels}


@pytest.mark.parametrize(("old", "new", "expected"), CASES)
def test_update_formula_as_r(old: str, new: str, expected: str) -> None:
    ours = update_formula(old, new)
    assert _terms(ours) == _terms(expected), ours
    hb.parse_formula(ours)  # what update gives is a formula hierbayes reads


def test_update_errors() -> None:
    with pytest.raises(hb.FormulaError, match="must contain '~'"):
        update_formula("y ~ x", ". + z")
    with pytest.raises(hb.FormulaError, match="nothing right of"):
        update_formula("y ~ x", "y ~ ")
    with pytest.raises(hb.FormulaError):
        update_formula("y ~ x", "~ . + __import__('os')")
