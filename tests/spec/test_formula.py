"""The lme4 formula pass: every form's parsed structure, and errors that name the bad part."""

from __future__ import annotations

import pytest

from hierbayes import FormulaError, HierbayesError, parse_formula


def terms(formula: str) -> list[tuple[str, str, bool]]:
    return [(t.expr, t.group_name, t.from_double_bar) for t in parse_formula(formula).random]


@pytest.mark.parametrize(
    ("formula", "fixed", "random"),
    [
        ("y ~ x + (1 | g)", "x", [("1", "g", False)]),
        ("y ~ x + (x | g)", "x", [("x", "g", False)]),
        ("y ~ x + (1 + x | g)", "x", [("1 + x", "g", False)]),
        ("y ~ x + (0 + x | g)", "x", [("0 + x", "g", False)]),
        ("y ~ x + (-1 + x | g)", "x", [("-1 + x", "g", False)]),
        ("y ~ x + (x || g)", "x", [("1", "g", True), ("0 + x", "g", True)]),
        ("y ~ (1 + x + z || g)", "1", [("1", "g", True), ("0 + x", "g", True), ("0 + z", "g", True)]),
        ("y ~ (0 + x + z || g)", "1", [("0 + x", "g", True), ("0 + z", "g", True)]),
        ("y ~ x + (1 | a/b)", "x", [("1", "b:a", False), ("1", "a", False)]),
        ("y ~ x + (x | a/b)", "x", [("x", "b:a", False), ("x", "a", False)]),
        ("y ~ (1 | a/b/c)", "1", [("1", "c:b:a", False), ("1", "b:a", False), ("1", "a", False)]),
        ("y ~ x + (1 | a:b)", "x", [("1", "a:b", False)]),
        ("y ~ x + (1 | a) + (1 | b)", "x", [("1", "a", False), ("1", "b", False)]),
        ("y ~ x + (1 | g) + (0 + x | g)", "x", [("1", "g", False), ("0 + x", "g", False)]),
        ("y ~ x + (f | g)", "x", [("f", "g", False)]),
        ("y ~ a*b + I(x**2) + log(z) + (1|g)", "a*b + I(x**2) + log(z)", [("1", "g", False)]),
        ("y ~ 0 + x + (1 | g)", "0 + x", [("1", "g", False)]),
        ("y ~ x - 1 + (1 | g)", "x - 1", [("1", "g", False)]),
        ("y ~ (1 | g)", "1", [("1", "g", False)]),
        ("y~x+(1|g)", "x", [("1", "g", False)]),
        ("log(y) ~ x + (1 | g)", "x", [("1", "g", False)]),
    ],
)
def test_parsed_structure(formula, fixed, random):
    parsed = parse_formula(formula)
    assert parsed.fixed == fixed
    assert terms(formula) == random


def test_response_and_round_trip():
    parsed = parse_formula("Reaction ~ Days + (Days | Subject)")
    assert parsed.response == "Reaction"
    assert str(parsed) == "Reaction ~ Days + (Days | Subject)"
    assert parse_formula("log(y) ~ x").response == "log(y)"


@pytest.mark.parametrize(
    ("formula", "words"),
    [
        ("y ~ x + (1 | g", ["never closed", "^"]),
        ("y ~ x + 1 | g)", ["closes nothing"]),
        ("y ~ x + (x | )", ["no grouping factor", "(x | )"]),
        ("y ~ x + ( | g)", ["nothing before '|'"]),
        ("", ["empty"]),
        ("   ", ["empty"]),
        ("~ x + (1 | g)", ["no response"]),
        ("y x + (1 | g)", ["no '~'"]),
        ("y ~ ", ["nothing on the right"]),
        ("y ~ x + 1 | g", ["inside its own parentheses"]),
        ("y ~ x - (1 | g)", ["cannot be subtracted"]),
        ("y ~ x + (1 | g + h)", ["grouping factor", "g + h"]),
        ("y ~ x + (1 | g | h)", ["more than one bar"]),
        ("y ~ x + ", ["empty term"]),
        ("y ~ x +", ["empty term"]),
        ("y ~ (1 | g) + ", ["empty term"]),  # found by test_formula_properties
        ("y ~ (1 | g) + + x", ["empty term"]),
        ("y ~ x ~ z", ["more than one '~'"]),
    ],
)
def test_malformed_formulas_name_the_part(formula, words):
    with pytest.raises(FormulaError) as info:
        parse_formula(formula)
    for w in words:
        assert w in str(info.value)
    assert isinstance(info.value, HierbayesError) and isinstance(info.value, ValueError)


def test_error_marks_position():
    with pytest.raises(FormulaError) as info:
        parse_formula("y ~ x + (1 | g")
    lines = str(info.value).splitlines()
    marked = next(i for i, line in enumerate(lines) if line.strip() == "y ~ x + (1 | g")
    assert lines[marked + 1].index("^") == lines[marked].index("(")


def test_not_a_string():
    with pytest.raises(FormulaError, match="must be a string"):
        parse_formula(42)
