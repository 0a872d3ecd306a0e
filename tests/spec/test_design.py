"""Design: X and names as lme4 has them, random blocks, lme4's order, NA and rank handling."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.errors import FormulaError
from hierbayes.spec.design import build_design, factor_codes, r_name
from hierbayes.spec.formula import parse_formula


def design(formula: str, data: pd.DataFrame, **kw) -> hb.Design:
    return build_design(parse_formula(formula), data, **kw)


def public_lmer_fits(refs: dict) -> list[str]:
    return [k for k, v in refs.items() if isinstance(v, dict) and v.get("family") == "gaussian"]


def test_every_public_lmer_fit_has_lme4s_structure(lme4_refs):
    keys = public_lmer_fits(lme4_refs)
    assert len(keys) == 14
    for key in keys:
        ref = lme4_refs[key]
        data = hb.datasets.load(ref["data"].removesuffix(".csv"))
        d = design(ref["formula"], data)
        rows = [(r["grp"], r["var1"], r["var2"]) for r in ref["varcorr"]]
        assert d.varcorr_index() == rows, key
        assert d.fixef_names == list(ref["fixef"]), key
        assert d.n_obs == ref["nobs"], key
        assert d.ngrps() == ref["ngrps"], key


def test_names_follow_lme4():
    assert r_name("Intercept") == "(Intercept)"
    assert r_name("sex[T.Female]") == "sexFemale"
    assert r_name("sex[T.Female]:age") == "sexFemale:age"
    assert r_name("hospsize[medium]") == "hospsizemedium"


def test_categorical_in_bar_and_full_dummy_coding():
    nurses = hb.datasets.load("nurses")
    d = design("stress ~ 1 + (sex | hospital)", nurses)
    assert d.blocks[0].terms == ["(Intercept)", "sexFemale"]
    d = design("stress ~ 1 + (0 + sex | hospital)", nurses)
    assert d.blocks[0].terms == ["sexMale", "sexFemale"]
    assert np.allclose(d.blocks[0].Z.sum(axis=1), 1.0)


def test_group_index_is_an_index_not_a_dense_z(sleepstudy):
    d = design("Reaction ~ Days + (Days | Subject)", sleepstudy)
    blk = d.blocks[0]
    assert blk.Z.shape == (180, 2)
    assert blk.index.shape == (180,) and blk.index.dtype == np.int64
    assert blk.levels[:3] == ["308", "309", "310"]
    subject = sleepstudy["Subject"].astype(str).to_numpy()
    assert all(subject[i] == blk.levels[blk.index[i]] for i in range(180))


def test_interaction_levels_vary_first_factor_slowest():
    df = pd.DataFrame({"a": ["x", "x", "y", "y", "y"], "b": [2, 1, 1, 2, 1]})
    index, levels = factor_codes(df, ("a", "b"))
    assert levels == ["x:1", "x:2", "y:1", "y:2"]
    assert index.tolist() == [1, 0, 2, 3, 2]


def test_grouping_columns_numeric_string_or_categorical(sleepstudy):
    as_int = sleepstudy.assign(Subject=sleepstudy["Subject"].astype(int))
    as_str = sleepstudy.assign(Subject=sleepstudy["Subject"].astype(str))
    for df in (sleepstudy, as_int, as_str):
        d = design("Reaction ~ Days + (1 | Subject)", df)
        assert d.blocks[0].n_levels == 18
        assert d.blocks[0].levels[0] == "308"


def test_terms_sorted_by_levels_and_made_unique(sleepstudy):
    d = design("Reaction ~ Days + (Days || Subject)", sleepstudy)
    assert [b.group for b in d.blocks] == ["Subject", "Subject.1"]
    assert [b.factor for b in d.blocks] == ["Subject", "Subject"]
    pupils = hb.datasets.load("pupils")
    d = design("achievement ~ 1 + (1 | secondary_school_id) + (1 | primary_school_id)", pupils)
    assert [b.group for b in d.blocks] == ["primary_school_id", "secondary_school_id"]


def test_unknown_column_suggests_nearest(sleepstudy):
    with pytest.raises(hb.FormulaError, match="'Day'.*Did you mean 'Days'"):
        design("Reaction ~ Day + (1 | Subject)", sleepstudy)
    with pytest.raises(hb.FormulaError, match="'Subjet'.*grouping factor.*'Subject'"):
        design("Reaction ~ Days + (1 | Subjet)", sleepstudy)
    with pytest.raises(hb.FormulaError, match="'Reactoin'.*response.*'Reaction'"):
        design("Reactoin ~ Days + (1 | Subject)", sleepstudy)
    with pytest.raises(hb.FormulaError, match="'Dayz'"):
        design("Reaction ~ Days + (Dayz | Subject)", sleepstudy)


def test_missing_rows_dropped_with_count_and_data_untouched():
    df = hb.datasets.load("speed_dating")
    before = df.copy()
    formula = "decision ~ sex + samerace + attractive_sc + sincere_sc + intelligent_sc + (1 | iid)"
    with pytest.warns(hb.HierbayesWarning, match="Dropped 341 of 7707 rows"):
        d = design(formula, df, family="bernoulli")
    assert d.n_obs == 7366 and d.dropped_rows == 341
    pd.testing.assert_frame_equal(df, before)
    with pytest.raises(hb.DataError, match="341 of 7707 rows have missing values"):
        design(formula, df, family="bernoulli", na_action="raise")


def test_bernoulli_factor_response_counts_second_level_as_success():
    df = hb.datasets.load("speed_dating").dropna(subset=["attractive_sc"])
    d = design("decision ~ attractive_sc + (1 | iid)", df, family="bernoulli")
    assert set(np.unique(d.y)) == {0.0, 1.0}
    assert d.y.mean() == pytest.approx((df["decision"] == "Yes").mean())


def test_rank_deficient_columns_dropped_and_named(sleepstudy):
    df = sleepstudy.assign(Days2=2 * sleepstudy["Days"])
    with pytest.warns(hb.HierbayesWarning, match="rank deficient.*1 column.*Days2"):
        d = design("Reaction ~ Days + Days2 + (1 | Subject)", df)
    assert d.fixef_names == ["(Intercept)", "Days"]
    assert d.dropped_columns == ["Days2"]
    assert d.X.shape == (180, 2)


def test_one_level_grouping_factor(sleepstudy):
    df = sleepstudy.assign(one="a")
    with pytest.raises(hb.DataError, match="'one' has only 1 level"):
        design("Reaction ~ Days + (1 | one)", df)


def test_more_random_effects_than_observations(sleepstudy):
    small = sleepstudy.groupby("Subject", observed=True).head(2)
    with pytest.raises(hb.DataError, match="not more than the number of random effects"):
        design("Reaction ~ Days + (Days | Subject)", small)


def test_double_bar_on_a_factor_is_refused():
    nurses = hb.datasets.load("nurses")
    with pytest.raises(hb.FormulaError, match=r"'\|\|'.*\(1 \| hospital:<factor>\)"):
        design("stress ~ 1 + (hospsize || hospital)", nurses)


def test_non_numeric_response_and_infinite_values(sleepstudy):
    with pytest.raises(hb.DataError, match="not numeric"):
        design("Subject ~ Days + (1 | Subject)", sleepstudy.assign(Subject=sleepstudy.Subject.astype(str)))
    bad = sleepstudy.assign(Days=sleepstudy["Days"].astype(float))
    bad.loc[3, "Days"] = np.inf
    with pytest.raises(hb.DataError, match="'Days' has 1 infinite"):
        design("Reaction ~ Days + (1 | Subject)", bad)


def test_fixed_part_transforms_and_interactions(sleepstudy):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = design("log(Reaction) ~ Days * I(Days**2) + (1 | Subject)", sleepstudy)
    assert d.fixef_names == ["(Intercept)", "Days", "I(Days^2)", "Days:I(Days^2)"]
    assert np.allclose(d.y, np.log(sleepstudy["Reaction"]))


def test_columns_inside_stateful_transforms_are_found():
    # formulaic's required_variables leaves out center()'s and scale()'s arguments
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"y": rng.normal(size=40), "x": rng.normal(size=40),
                       "g": np.repeat(list("abcd"), 10)})
    d = build_design(parse_formula("y ~ center(x) + (0 + scale(x) | g)"), df)
    assert d.fixef_names == ["(Intercept)", "center(x)"]
    np.testing.assert_allclose(d.X[:, 1], df["x"] - df["x"].mean())
    with pytest.raises(FormulaError, match="Column 'z' in the fixed part is not in the data"):
        build_design(parse_formula("y ~ center(z) + C(g, contr.treatment) + (1 | g)"), df)
