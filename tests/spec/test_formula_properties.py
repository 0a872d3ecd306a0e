"""Property-based tests of the formula reader (hypothesis).

Valid formulas are generated with the structure lme4's rules give them
(``findbars``, ``expandDoubleVerts``, ``expandSlash``), computed here from the
generated parts, never from the parser. Invalid ones are valid formulas with
one part broken. Arbitrary text over the formula alphabet must either parse or
raise :class:`hierbayes.FormulaError`, never another exception.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import hierbayes as hb
from hierbayes.spec.formula import parse_formula

NAMES = st.sampled_from(["x", "z", "Days", "age_sc", "w.2", "sex"])
GROUPS = st.sampled_from(["g", "Subject", "school", "class_id", "h2"])
SPACE = st.sampled_from(["", " ", "  "])


@st.composite
def bars(draw):
    """One bar: (source text, expected terms as (expr, group, from_double_bar))."""
    variables = draw(st.lists(NAMES, min_size=0, max_size=3, unique=True))
    start = draw(st.sampled_from(["", "1", "0", "-1"] if variables else ["1"]))
    double = draw(st.booleans()) and bool(variables)
    if double:
        groups = [draw(GROUPS)]
    else:
        groups = draw(st.lists(GROUPS, min_size=1, max_size=3, unique=True))
    nested = not double and len(groups) > 1 and draw(st.booleans())
    parts = ([start] if start else []) + variables
    lhs = " + ".join(parts)
    s = draw(SPACE)
    if nested:
        group_text = "/".join(groups)
    else:
        group_text = ":".join(groups)
    source = f"({s}{lhs}{s}{'||' if double else '|'}{s}{group_text}{s})"
    if double:
        # expandDoubleVerts: an intercept term unless suppressed, then one term per variable
        expected = [] if start in ("0", "-1") else [("1", groups[0], True)]
        expected += [(f"0 + {v}", groups[0], True) for v in variables]
    elif nested:
        # expandSlash: a/b/c is c:b:a, b:a, a (the innermost first, as lme4 writes them)
        expected = [(lhs, ":".join(reversed(groups[: k + 1])), False) for k in reversed(range(len(groups)))]
    else:
        expected = [(lhs, group_text, False)]
    return source, expected


@st.composite
def formulas(draw):
    response = draw(st.sampled_from(["y", "Reaction", "log(y)", "score_1"]))
    fixed_vars = draw(st.lists(NAMES, min_size=0, max_size=3, unique=True))
    fixed_start = draw(st.sampled_from(["", "1 + ", "0 + "])) if fixed_vars else ""
    fixed = fixed_start + " + ".join(fixed_vars)
    random = draw(st.lists(bars(), min_size=1, max_size=3))
    pieces = ([fixed] if fixed else []) + [src for src, _ in random]
    text = f"{response}{draw(SPACE)}~{draw(SPACE)}" + " + ".join(pieces)
    expected_fixed = fixed if fixed else "1"
    expected_random = [t for _, terms in random for t in terms]
    return text, response, expected_fixed, expected_random


def _squash(s: str) -> str:
    return "".join(s.split())


@settings(max_examples=300, deadline=None)
@given(formulas())
def test_valid_formulas_parse_to_lme4s_structure(case):
    text, response, fixed, random = case
    parsed = parse_formula(text)
    assert parsed.response == response
    assert _squash(parsed.fixed) == _squash(fixed)
    got = [(_squash(t.expr), t.group_name, t.from_double_bar) for t in parsed.random]
    assert got == [(_squash(e), g, d) for e, g, d in random]
    # what the parser prints reads back to the same structure
    again = parse_formula(str(parsed))
    assert [(_squash(t.expr), t.group_name) for t in again.random] == [(e, g) for e, g, _ in got]


BREAKS = [
    ("drop a closing parenthesis", lambda t: t[: t.rindex(")")] + t[t.rindex(")") + 1:]),
    ("drop an opening parenthesis", lambda t: t[: t.index("(", t.index("~"))] + t[t.index("(", t.index("~")) + 1:]),
    ("drop the grouping factor", lambda t: t[: t.rindex("|") + 1] + ")"),
    ("drop the tilde", lambda t: t.replace("~", " ", 1)),
    ("add a second tilde", lambda t: t + " ~ x"),
    ("drop the response", lambda t: t[t.index("~"):]),
    ("trailing plus", lambda t: t + " + "),
    ("subtract a bar", lambda t: t[: t.rindex("(")].rstrip().removesuffix("+") + " - " + t[t.rindex("("):]),
    ("second bar in a term", lambda t: t[: t.rindex(")")] + " | q)"),
]


@settings(max_examples=200, deadline=None)
@given(formulas(), st.sampled_from(BREAKS))
def test_broken_formulas_raise_our_error(case, brk):
    text = case[0]
    _, breaker = brk
    broken = breaker(text)
    try:
        parse_formula(broken)
    except hb.FormulaError:
        return
    raise AssertionError(f"{brk[0]}: {broken!r} parsed without an error")


ALPHABET = st.sampled_from(list("yxg~+-*/:|()[]{}01 ._`^,") + ["||", "np.log(", "I(", "a", "b"])


@settings(max_examples=500, deadline=None)
@given(st.lists(ALPHABET, max_size=30).map("".join))
def test_any_text_parses_or_raises_formula_error(text):
    try:
        parse_formula(text)
    except hb.FormulaError:
        pass
