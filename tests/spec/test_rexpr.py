"""hierbayes.spec.rexpr: R's formula grammar, R's labels and terms, and formulas that try to run code."""

from __future__ import annotations

import pytest

import hierbayes as hb
from hierbayes.spec.rexpr import label, parse, terms

# Each of these ran code, read a file or reached a module when formula text was handed to
# Python (formulaic evaluates factor text with eval). Each must be refused, naming the text.
INJECTIONS = [
    ("Reaction ~ np.testing._private.utils.os.system('id > pwned.txt') + (1|Subject)",
     "np.testing._private.utils.os.system"),
    ("np.testing._private.utils.os.system('touch pwned.txt') ~ Days + (1|Subject)",
     "np.testing._private.utils.os.system"),
    ("Reaction ~ Days + (np.testing._private.utils.os.system('touch pwned.txt') | Subject)",
     "np.testing._private.utils.os.system"),
    ("Reaction ~ Days + (1 + np.testing._private.utils.os.system('touch pwned.txt') || Subject)",
     "np.testing._private.utils.os.system"),
    ("Reaction ~ np.load('payload.npy', allow_pickle=True) + (1|Subject)", "np.load"),
    ("Reaction ~ np.fromfile('/etc/passwd') + (1|Subject)", "np.fromfile"),
    ("Reaction ~ pd.read_csv('/etc/passwd') + (1|Subject)", "pd.read_csv"),
    ("Reaction ~ C.__globals__['os'].system('touch pwned.txt') + (1|Subject)", "["),
    ("Reaction ~ log.__self__.system('touch pwned.txt') + (1|Subject)", "log.__self__.system"),
    ("Reaction ~ __import__('os').system('touch pwned.txt') + (1|Subject)", "'_'"),
    ("Reaction ~ I(__import__('os').system('touch pwned.txt')) + (1|Subject)", "'_'"),
    ("Reaction ~ eval(\"__import__('os').system('touch pwned.txt')\") + (1|Subject)", "eval"),
    ("Reaction ~ exec('open(\"pwned.txt\", \"w\")') + (1|Subject)", "exec"),
    ("Reaction ~ open('pwned.txt', 'w') + (1|Subject)", "open"),
    ("Reaction ~ getattr(log, 'system') + (1|Subject)", "getattr"),
    ("Reaction ~ {__import__('os').system('touch pwned.txt')} + (1|Subject)", "'{'"),
    ("Reaction ~ I([c for c in ().__class__.__bases__]) + (1|Subject)", "'['"),
    ("Reaction ~ I((lambda: 1)()) + (1|Subject)", "expected ')'"),
    ("Reaction ~ function(x) x + (1|Subject)", "function definitions"),
    ("Reaction ~ \\(x) x + (1|Subject)", "backslash"),
    ("Reaction ~ base::system('touch pwned.txt') + (1|Subject)", "'::'"),
    ("Reaction ~ Days$system + (1|Subject)", "'$'"),
    ("Reaction ~ Days + (1|Subject); system('touch pwned.txt')", "';'"),
    ("Reaction ~ ｅｖａｌ('1') + (1|Subject)", "look-alike"),
    ("Reaction ~ ｎｐ.load('payload.npy') + (1|Subject)", "look-alike"),
    ("Reaction ~ `os`.system('touch pwned.txt') + (1|Subject)", "unexpected '.system"),
    ("Reaction ~ poly(Days, degree = system('touch pwned.txt')) + (1|Subject)", "literal value"),
    ("Reaction ~ C(Days, contr = np.system) + (1|Subject)", "literal value"),
    ("Reaction ~ I(Days)[0] + (1|Subject)", "'['"),
    ("Reaction ~ Days + (1 | os.system('touch pwned.txt'))", "not a column name"),
    ("Reaction ~ Days %o% Days + (1|Subject)", "%o%"),
    ("Reaction ~ scale(Days, center = __builtins__) + (1|Subject)", "'_'"),
]


@pytest.mark.parametrize("formula, offending", INJECTIONS)
def test_code_in_a_formula_is_refused_and_nothing_runs(formula, offending, sleepstudy, tmp_path,
                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "payload.npy").write_bytes(b"not a pickle")
    for build in (lambda: hb.Model(formula, sleepstudy), lambda: hb.lmer(formula, sleepstudy)):
        with pytest.raises(hb.FormulaError) as err:
            build()
        assert offending in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["payload.npy"]


def test_there_are_at_least_twenty_injection_cases():
    assert len(INJECTIONS) >= 20


def test_formulaic_evaluates_nothing_and_looks_up_only_our_variables(sleepstudy, monkeypatch):
    from formulaic.materializers.base import FormulaMaterializer

    looked_up: list[str] = []
    real_lookup = FormulaMaterializer._lookup

    def lookup(self, name):
        looked_up.append(name)
        return real_lookup(self, name)

    def evaluate(self, expr, *args, **kwargs):
        raise AssertionError(f"formulaic evaluated {expr!r}")

    monkeypatch.setattr(FormulaMaterializer, "_lookup", lookup)
    monkeypatch.setattr(FormulaMaterializer, "_evaluate", evaluate)
    fit = hb.lmer("log(Reaction) ~ poly(Days, 2) + I(Days^3 / 10) + (scale(Days) | Subject)",
                  sleepstudy)
    assert set(looked_up) == {"poly(Days, 2)", "I(Days^3/10)", "scale(Days)"}
    fit.predict(sleepstudy.head(3))
    assert set(looked_up) == {"poly(Days, 2)", "I(Days^3/10)", "scale(Days)"}


def test_parse_reads_dotted_names_and_r_powers():
    assert parse("days.sleep").kind == "name"
    assert parse("`days.sleep`").value == "days.sleep"
    tree = parse("-x^2")
    assert (tree.kind, tree.value) == ("unary", "-")  # ^ binds tighter than unary minus
    assert label(parse("x**2")) == "x^2"  # R reads ** as ^
    assert label(parse("a:b^2")) == "a:b^2"
    assert label(parse("2^3^2")) == "2^3^2" and parse("2^3^2").args[1].value == "^"


@pytest.mark.parametrize("text, expected", [
    ("I(age ^ 2)", "I(age^2)"),
    ("log( x+1 )", "log(x + 1)"),
    ("poly(x,2, raw=TRUE)", "poly(x, 2, raw = TRUE)"),
    ("factor(cyl)", "factor(cyl)"),
    ("I(x / 100000)", "I(x/1e+05)"),
    ("I(x - 10000)", "I(x - 10000)"),
    ("I(x*0.5)", "I(x * 0.5)"),
    ("relevel(f, ref='b')", 'relevel(f, ref = "b")'),
    ("I(x > 3 & z <= 2)", "I(x > 3 & z <= 2)"),
])
def test_labels_are_rs_deparse(text, expected):
    assert label(parse(text)) == expected


@pytest.mark.parametrize("rhs, intercept, expected", [
    ("a * b + c", True, ["a", "b", "c", "a:b"]),
    ("x + f + f:x", True, ["x", "f", "x:f"]),  # variables of a term in order of appearance
    ("(a + b + c)^2 - a:b", True, ["a", "b", "c", "a:c", "b:c"]),
    ("a/b", True, ["a", "a:b"]),
    ("(a + b)/c", True, ["a", "b", "a:b:c"]),
    ("a %in% b", True, ["a:b"]),
    ("0 + a", False, ["a"]),
    ("-1 + a", False, ["a"]),
    ("a - 1", False, ["a"]),
    ("a + 0 + b", False, ["a", "b"]),
    ("a - 1 - 0", True, ["a"]),
    ("a:b + a", True, ["a", "a:b"]),
    ("I(x^2) * z", True, ["I(x^2)", "z", "I(x^2):z"]),
    ("a*b - a", True, ["b", "a:b"]),
])
def test_terms_expand_as_r(rhs, intercept, expected):
    t = terms(parse(rhs))
    assert t.intercept is intercept
    assert [":".join(x) for x in t.labels] == expected


@pytest.mark.parametrize("rhs, words", [
    ("x + 2", "number 2"),
    ("(a + b)^x", "whole number"),
    ("x > 3", "wrap it in I()"),
    ("'a'", "cannot be a term"),
])
def test_terms_refuse_what_r_refuses(rhs, words):
    with pytest.raises(hb.FormulaError, match=words):
        terms(parse(rhs))


def test_offsets_are_kept_out_of_the_terms():
    t = terms(parse("x + offset(log(t)) + offset(u) + z"))
    assert t.labels == [("x",), ("z",)] and t.offsets == ["offset(log(t))", "offset(u)"]
    assert list(t.variables) == ["x", "offset(log(t))", "offset(u)", "z"]


@pytest.mark.parametrize("formula, words", [
    ("y ~ x + offset(log(t), 2) + (1|g)", "offset() takes at most 1 argument"),
    ("cbind(s) ~ x + (1|g)", "cbind() needs its argument 'failures'"),
    ("y ~ ns(x, 3) + (1|g)", "'ns()' is not supported in hierbayes formulas yet"),
    ("y ~ log(x, base = 2, 3) + (1|g)", "at most 2"),
    ("y ~ scale(x, centre = TRUE) + (1|g)", "no argument 'centre'"),
    ("y ~ x + (1|g) + (", "never closed"),
])
def test_unsupported_calls_say_so(formula, words):
    from hierbayes.spec.formula import parse_formula

    with pytest.raises(hb.FormulaError) as err:
        parse_formula(formula)
    assert words in str(err.value)
    assert "is not in the data" not in str(err.value)
