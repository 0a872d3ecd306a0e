"""hierbayes.spec.modelframe: formulas mean what they mean in R (names, levels, contrasts, transforms)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.report.predict import prediction_rows
from hierbayes.spec.design import build_design
from hierbayes.spec.formula import parse_formula


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 60
    out = pd.DataFrame({
        "y": rng.normal(size=n), "x": rng.normal(size=n), "days.sleep": rng.normal(size=n),
        "f": rng.choice(list("abc"), n), "g": np.repeat(np.arange(6), 10),
        "cyl": rng.choice([4.0, 6.0, 10.0], n), "b": rng.random(n) > 0.5,
        "age": rng.choice([8.0, 10.0, 12.0, 14.0], n),
    })
    out["o"] = pd.Categorical(rng.choice(["lo", "mid", "hi", "top"], n),
                              categories=["lo", "mid", "hi", "top"], ordered=True)
    return out


def design(formula: str, data: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.HierbayesWarning)
        return build_design(parse_formula(formula), data)


def test_caret_inside_I_is_a_power_not_xor(df):
    d = design("y ~ age + I(age^2) + (1 | g)", df)
    assert d.fixef_names == ["(Intercept)", "age", "I(age^2)"]
    np.testing.assert_array_equal(d.X[:, 2], df["age"].to_numpy() ** 2)
    # ** is R's other spelling of ^
    np.testing.assert_array_equal(design("y ~ I(age**2) + (1 | g)", df).X[:, 1],
                                  df["age"].to_numpy() ** 2)


def test_caret_outside_I_is_crossing(df):
    d = design("y ~ (x + f)^2 + (1 | g)", df)
    assert d.fixef_names == ["(Intercept)", "x", "fb", "fc", "x:fb", "x:fc"]


def test_interaction_names_follow_the_order_variables_appear():
    # mlmRev's Hsb82: R names the interaction cses:sectorCatholic in both spellings below
    rng = np.random.default_rng(2)
    data = pd.DataFrame({"y": rng.normal(size=40), "cses": rng.normal(size=40),
                         "sector": rng.choice(["Public", "Catholic"], 40),
                         "school": np.repeat(np.arange(8), 5)})
    a = design("y ~ cses * sector + (1 | school)", data)
    b = design("y ~ cses + sector + sector:cses + (1 | school)", data)
    assert a.fixef_names == b.fixef_names == [
        "(Intercept)", "cses", "sectorPublic", "cses:sectorPublic"]
    c = design("y ~ sector * cses + (1 | school)", data)
    assert c.fixef_names == ["(Intercept)", "sectorPublic", "cses", "sectorPublic:cses"]


def test_ordered_factors_get_contr_poly(df):
    d = design("y ~ o + (1 | g)", df)
    assert d.fixef_names == ["(Intercept)", "o.L", "o.Q", "o.C"]
    # R's contr.poly(4)
    L = np.array([-3, -1, 1, 3]) / np.sqrt(20)
    Q = np.array([1, -1, -1, 1]) / 2
    C = np.array([-1, 3, -3, 1]) / np.sqrt(20)
    codes = df["o"].cat.codes.to_numpy()
    np.testing.assert_allclose(d.X[:, 1:], np.column_stack([L, Q, C])[codes], atol=1e-12)
    five = df.assign(o=pd.Categorical(np.resize(list("abcde"), len(df)), ordered=True))
    assert design("y ~ o + (1 | g)", five).fixef_names[-1] == "o^4"
    # with no intercept every level gets its indicator, as R's model.matrix
    assert design("y ~ 0 + o + (1 | g)", df).fixef_names == ["olo", "omid", "ohi", "otop"]


def test_factor_of_a_number_has_rs_level_order_and_names(df):
    d = design("y ~ factor(cyl) + (1 | g)", df)
    assert d.fixef_names == ["(Intercept)", "factor(cyl)6", "factor(cyl)10"]  # 10 after 6
    np.testing.assert_array_equal(d.X[:, 2], (df["cyl"] == 10).astype(float))
    d = design("y ~ factor(cyl, levels = c(10, 6, 4)) + (1 | g)", df)
    assert d.fixef_names[1:] == ["factor(cyl, levels = c(10, 6, 4))6",
                                 "factor(cyl, levels = c(10, 6, 4))4"]
    d = design("y ~ relevel(factor(cyl), ref = 6) + (1 | g)", df)
    assert d.fixef_names[1:] == ["relevel(factor(cyl), ref = 6)4", "relevel(factor(cyl), ref = 6)10"]


def test_dotted_names_are_columns(df):
    for formula in ["y ~ days.sleep + (1 | g)", "y ~ `days.sleep` + (1 | g)"]:
        d = design(formula, df)
        assert d.fixef_names == ["(Intercept)", "days.sleep"]
        np.testing.assert_array_equal(d.X[:, 1], df["days.sleep"].to_numpy())
    d = design('y ~ Q("days.sleep") + (1 | g)', df)
    assert d.fixef_names == ["(Intercept)", 'Q("days.sleep")']
    np.testing.assert_array_equal(d.X[:, 1], df["days.sleep"].to_numpy())
    d = design("y ~ 1 + (days.sleep | g)", df)
    assert d.blocks[0].terms == ["(Intercept)", "days.sleep"]
    with pytest.raises(hb.FormulaError, match="Column 'days.slep' in the fixed part"):
        design("y ~ days.slep + (1 | g)", df)


def test_logical_columns_are_factors_with_false_and_true(df):
    assert design("y ~ b + (1 | g)", df).fixef_names == ["(Intercept)", "bTRUE"]
    assert design("y ~ I(x > 0) + (1 | g)", df).fixef_names == ["(Intercept)", "I(x > 0)TRUE"]


def test_contrast_functions_name_columns_as_r(df):
    d = design("y ~ C(f, contr.sum) + (1 | g)", df)
    assert d.fixef_names == ["(Intercept)", "C(f, contr.sum)1", "C(f, contr.sum)2"]
    codes = pd.Categorical(df["f"]).codes
    np.testing.assert_array_equal(d.X[:, 1:], np.array([[1, 0], [0, 1], [-1, -1]])[codes])
    d = design("y ~ C(f, contr.helmert) + (1 | g)", df)
    np.testing.assert_array_equal(d.X[:, 1:], np.array([[-1, -1], [1, -1], [0, 2]])[codes])


def test_poly_is_rs_orthogonal_basis_and_replays_on_new_data(df):
    data = pd.DataFrame({"y": np.arange(10.0), "x": np.tile(np.arange(1.0, 6.0), 2),
                         "g": np.repeat(["a", "b"], 5)})
    d = design("y ~ poly(x, 2) + (1 | g)", data)
    assert d.fixef_names == ["(Intercept)", "poly(x, 2)1", "poly(x, 2)2"]
    # R: poly(rep(1:5, 2), 2)
    p1 = np.array([-2, -1, 0, 1, 2]) / np.sqrt(20)
    p2 = np.array([2, -1, -2, -1, 2]) / np.sqrt(28)
    np.testing.assert_allclose(d.X[:5, 1:], np.column_stack([p1, p2]), atol=1e-12)
    # predict.poly: new x on the fitted basis, not a basis of its own
    rows = prediction_rows(d, pd.DataFrame({"x": [3.0, 6.0], "g": ["a", "a"]}))
    np.testing.assert_allclose(rows.X[0, 1:], [0.0, -2 / np.sqrt(28)], atol=1e-12)
    np.testing.assert_allclose(rows.X[1, 1:], [3 / np.sqrt(20), 7 / np.sqrt(28)], atol=1e-12)


def test_scale_is_rs_and_replays_the_fitted_centre_and_sd(df):
    d = design("y ~ scale(x) + (0 + scale(x) | g)", df)
    x = df["x"].to_numpy()
    z = (x - x.mean()) / x.std(ddof=1)
    np.testing.assert_allclose(d.X[:, 1], z)
    np.testing.assert_allclose(d.blocks[0].Z[:, 0], z)
    rows = prediction_rows(d, pd.DataFrame({"x": [0.0], "g": [0]}))
    np.testing.assert_allclose(rows.X[0, 1], -x.mean() / x.std(ddof=1))
    # R: scale(x, center = FALSE) divides by the root mean square over n - 1
    d = design("y ~ scale(x, center = FALSE) + (1 | g)", df)
    np.testing.assert_allclose(d.X[:, 1], x / np.sqrt((x ** 2).sum() / (len(x) - 1)))


def test_response_transforms_and_non_finite_results(df):
    d = design("log(exp(y)) ~ x + (1 | g)", df)
    np.testing.assert_allclose(d.y, df["y"])
    assert d.response_label == "log(exp(y))"
    with pytest.raises(hb.DataError, match=r"'log\(y\)' gives \d+ non-finite"):
        design("log(y) ~ x + (1 | g)", df)


def test_values_that_print_alike_are_refused_not_merged():
    base = pd.DataFrame({"y": np.arange(8.0), "x": np.arange(8.0)})
    mixed = base.assign(g=pd.Series([1, "1", 2, "2", 1, "1", 2, "2"], dtype=object))
    with pytest.raises(hb.DataError, match="both read as the level '1'"):
        design("y ~ x + (1 | g)", mixed)
    with pytest.raises(hb.DataError, match="both read as the level '1'"):
        design("y ~ g + (1 | x)", mixed)
    colon = base.assign(a=["x:y", "x", "x:y", "x", "p", "p", "q", "q"],
                        b=["z", "y:z", "z", "y:z", "r", "s", "r", "s"])
    with pytest.raises(hb.DataError, match="both read as 'x:y:z'"):
        design("y ~ x + (1 | a:b)", colon)


def test_unseen_levels_of_a_transformed_factor_are_refused_in_prediction(df):
    d = design("y ~ factor(cyl) + (1 | g)", df)
    with pytest.raises(hb.DataError, match=r"newdata's 'factor\(cyl\)' has level\(s\) \['8'\]"):
        prediction_rows(d, pd.DataFrame({"cyl": [8.0], "g": [0]}))


def test_fits_agree_whichever_spelling(sleepstudy):
    a = hb.lmer("Reaction ~ Days + I(Days^2) + (Days | Subject)", sleepstudy)
    b = hb.lmer("Reaction ~ poly(Days, 2, raw = TRUE) + (Days | Subject)", sleepstudy)
    assert a.fixef()["Estimate"].iloc[2] == pytest.approx(b.fixef()["Estimate"].iloc[2], rel=1e-8)


def test_a_design_pickles_and_replays_after(df):
    # many-fit workers receive designs by pickle; the frozen transforms must travel
    import pickle

    d = design("y ~ C(f, contr.sum) + poly(x, 2) + scale(age) + o + (1 | g)", df)
    back = pickle.loads(pickle.dumps(d))
    np.testing.assert_array_equal(prediction_rows(back, df.head(7)).X, d.X[:7])
