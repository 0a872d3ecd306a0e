"""hierbayes.spec.transforms: the table of R transforms, its argument matching and refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hierbayes.errors import DataError, FormulaError
from hierbayes.spec.modelframe import ModelFrame
from hierbayes.spec.rexpr import parse
from hierbayes.spec.transforms import (
    TRANSFORMS,
    Factor,
    Matrix,
    bind,
    check_calls,
    columns_of,
    distinct_labels,
    level_label,
    literal,
    numeric_value,
)


def test_every_transform_documents_itself_and_has_its_data_among_its_formals():
    assert {"log", "I", "scale", "poly", "factor", "relevel", "C", "Q"} <= set(TRANSFORMS)
    for name, spec in TRANSFORMS.items():
        assert spec.doc, name
        assert set(spec.data) <= set(spec.formals), name
        assert set(spec.defaults) <= set(spec.formals), name


def test_bind_matches_keywords_then_positions_as_r():
    args = bind(parse("poly(degree = 2, x)"), TRANSFORMS["poly"])
    assert {k: v.value for k, v in args.items()} == {"degree": 2.0, "x": "x"}
    with pytest.raises(FormulaError, match=r"log\(\) has no argument 'bse'"):
        bind(parse("log(x, bse = 2)"), TRANSFORMS["log"])
    with pytest.raises(FormulaError, match=r"scale\(\) needs its argument 'x'"):
        bind(parse("scale(center = TRUE)"), TRANSFORMS["scale"])


def test_unknown_and_not_yet_supported_calls_are_refused_before_anything_runs():
    with pytest.raises(FormulaError, match=r"The function 'ns\(\)' is not supported in hierbayes "
                                           r"formulas yet\.\n  ns\(x, 3\) \+ y\n  \^{8}\nSupported: abs, acos"):
        check_calls(parse("ns(x, 3) + y"), "ns(x, 3) + y")
    with pytest.raises(FormulaError, match=r"'system\(\)' is not a function hierbayes formulas"):
        check_calls(parse("log(system(x))"))
    check_calls(parse("offset(log(x)) + cbind(s, n - s)"))  # both are supported now


def test_options_are_literals():
    assert literal(parse("c(1, -2)"), "levels") == [1.0, -2.0]
    assert literal(parse("contr.sum"), "contr", allow_contrast=True) == "sum"
    with pytest.raises(FormulaError, match="must be a literal value"):
        literal(parse("x + 1"), "degree")


def test_columns_of_reads_data_arguments_only():
    assert columns_of(parse("poly(age, degree = 2) * relevel(sex, ref = 'M') + Q('a.b')")) == [
        "age", "sex", "a.b"]


def test_values_as_r_makes_them():
    assert level_label(3.0) == "3" and level_label(False) == "FALSE"
    assert distinct_labels([2.0, 1.0], "x") == ["2", "1"]
    with pytest.raises(DataError, match="both read as the level '1'"):
        distinct_labels([1, "1"], "Column 'g'")
    assert numeric_value(np.array([True]), "x").dtype == float
    with pytest.raises(DataError, match="x needs numbers, but its argument is a factor"):
        numeric_value(Factor(np.zeros(1, dtype=int), ["a"]), "x")
    with pytest.raises(DataError, match="needs a numeric vector, but its argument is a matrix"):
        numeric_value(Matrix(np.zeros((1, 2)), ["1", "2"]), "x")


def test_stateful_transforms_record_through_the_evaluator_and_replay():
    mf = ModelFrame({"scale(x)": parse("scale(x)"), "factor(g)": parse("factor(g)")})
    fit = pd.DataFrame({"x": [1.0, 2.0, 3.0], "g": [2, 1, 2]})
    mf.evaluate(fit, fit=True)
    assert mf.state["scale(x)"] == {"center": 2.0, "scale": 1.0}
    assert mf.state["levels:factor(g)"]["levels"] == ["1", "2"]
    new = pd.DataFrame({"x": [4.0], "g": [3]})
    with pytest.raises(DataError, match=r"level\(s\) \['3'\] that the fitted data did not have"):
        mf.evaluate(new)
    np.testing.assert_array_equal(mf.evaluate(new, ["scale(x)"])["scale(x)"], [2.0])
