"""Design for GLMMs: cbind() and proportion responses, prior weights, offsets, and their bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.errors import DataError, FormulaError, HierbayesWarning
from hierbayes.spec.design import build_design
from hierbayes.spec.formula import parse_formula


def design(formula: str, data: pd.DataFrame, **kw) -> hb.Design:
    return build_design(parse_formula(formula), data, **kw)


@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    return hb.datasets.load("cbpp")


def test_cbind_gives_successes_and_trials(cbpp):
    d = design("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    np.testing.assert_array_equal(d.y, cbpp["incidence"].to_numpy(float))
    np.testing.assert_array_equal(d.trials, cbpp["size"].to_numpy(float))
    assert d.weights is None and d.offset is None
    assert d.fixef_names == ["(Intercept)", "period2", "period3", "period4"]  # period is R's factor
    assert d.response_label == "cbind(incidence, size - incidence)"


def test_a_proportion_with_weights_is_the_same_binomial(cbpp):
    a = design("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    data = cbpp.assign(p=cbpp["incidence"] / cbpp["size"])
    b = design("p ~ period + (1 | herd)", data, family="binomial", weights="size")
    c = design("p ~ period + (1 | herd)", data, family="binomial", weights=data["size"].to_numpy())
    for other in (b, c):
        np.testing.assert_allclose(other.y, a.y, rtol=1e-15)
        np.testing.assert_array_equal(other.trials, a.trials)
        assert other.weights is None  # for a binomial family the weights are the trials
    y, wt = a.family.glm_response(a.y, a.trials, a.weights)
    np.testing.assert_allclose(y, data["p"].to_numpy(), rtol=1e-15)
    np.testing.assert_array_equal(wt, cbpp["size"].to_numpy(float))


def test_offsets_from_the_formula_and_the_argument_add_up(cbpp):
    d = design("incidence ~ period + offset(log(size)) + (1 | herd)", cbpp, family="poisson")
    np.testing.assert_allclose(d.offset, np.log(cbpp["size"].to_numpy(float)), rtol=1e-15)
    assert d.fixef_names == ["(Intercept)", "period2", "period3", "period4"]
    assert d.offset_terms == ["offset(log(size))"] and d.x_variables == ["period"]
    both = design("incidence ~ period + offset(log(size)) + (1 | herd)", cbpp, family="poisson",
                  offset=np.ones(len(cbpp)))
    np.testing.assert_allclose(both.offset, d.offset + 1.0, rtol=1e-15)
    arg = design("incidence ~ period + (1 | herd)", cbpp, family="poisson", offset="size")
    np.testing.assert_array_equal(arg.offset, cbpp["size"].to_numpy(float))
    assert arg.offset_terms == []


def test_gaussian_weights_and_offset(sleepstudy):
    w = 1.0 + np.arange(len(sleepstudy)) % 3
    d = design("Reaction ~ Days + offset(Days) + (1 | Subject)", sleepstudy, weights=w)
    np.testing.assert_array_equal(d.weights, w)
    np.testing.assert_array_equal(d.offset, sleepstudy["Days"].to_numpy(float))
    assert d.trials is None and d.fixef_names == ["(Intercept)", "Days"]


def test_rows_missing_a_weight_or_offset_are_dropped(sleepstudy):
    w = np.ones(len(sleepstudy))
    w[[3, 7]] = np.nan
    with pytest.warns(HierbayesWarning, match=r"Dropped 2 of 180 rows .*\(weights\) \(2\)"):
        d = design("Reaction ~ Days + (1 | Subject)", sleepstudy, weights=w)
    assert d.n_obs == 178 and len(d.weights) == 178
    with pytest.raises(DataError, match=r"2 of 180 rows have missing values .*\(offset\) \(2\)"):
        design("Reaction ~ Days + (1 | Subject)", sleepstudy, offset=w, na_action="raise")


def test_the_users_data_is_not_changed(cbpp):
    before = cbpp.copy()
    design("cbind(incidence, size - incidence) ~ period + offset(log(size)) + (1 | herd)", cbpp,
           family="binomial")
    pd.testing.assert_frame_equal(cbpp, before)


@pytest.mark.parametrize(("formula", "family", "kw", "error", "words"), [
    ("p ~ period + (1 | herd)", "binomial", {"weights": "size"}, DataError,
     r"values outside \[0, 1\] \(first: 1\.5\); with weights= \(the trials\)"),
    ("incidence ~ period + (1 | herd)", "binomial", {}, DataError,
     r"values other than 0 and 1 .*for proportions give the trials as weights=, and for counts "
     r"write cbind\(successes, failures\)"),
    ("cbind(incidence, size - incidence - 20) ~ period + (1 | herd)", "binomial", {}, DataError,
     r"has \d+ negative failures .*must be >= 0"),
    ("cbind(incidence, size) ~ period + (1 | herd)", "poisson", {}, FormulaError,
     r"gives successes and failures, which needs family='binomial'"),
    ("cbind(incidence, size) ~ period + (1 | herd)", "binomial", {"weights": "size"}, DataError,
     r"With a cbind\(\) response the trials are successes \+ failures"),
    ("x ~ period + (1 | herd)", "poisson", {}, DataError, r"not non-negative integers"),
    ("x ~ period + (1 | herd)", "negbinomial", {}, DataError,
     r"not non-negative integers, which the negbinomial family needs"),
    ("z ~ period + (1 | herd)", ("gamma", "log"), {}, DataError,
     r"1 values that are not positive \(first: 0\.0\); the gamma family needs y > 0"),
    ("size ~ period + (1 | herd)", "gaussian", {"weights": "neg"}, DataError,
     r"weights= has 1 negative or infinite values \(first: -1\.0\)"),
    ("size ~ period + (1 | herd)", "gaussian", {"weights": "zero"}, DataError,
     r"weights= has 1 zero weights"),
    ("incidence ~ period + (1 | herd)", "poisson", {"weights": "size"}, DataError,
     r"weights= is not supported for the poisson family"),
    ("incidence ~ period + (1 | herd)", "poisson", {"offset": "exposure"}, DataError,
     r"offset='exposure' names no column of the data"),
    ("incidence ~ period + (1 | herd)", "poisson", {"offset": [1.0, 2.0]}, DataError,
     r"offset= needs one value per row of the data \(56\)"),
    ("incidence ~ period + offset(log(incidence)) + (1 | herd)", "poisson", {}, DataError,
     r"'offset\(log\(incidence\)\)' gives 22 non-finite value\(s\)"),
    ("incidence ~ period + (1 + offset(size) | herd)", "poisson", {}, FormulaError,
     r"offset\(\) inside the random-effect term"),
    ("incidence ~ period + offset(lsize) + (1 | herd)", "poisson", {}, FormulaError,
     r"Column 'lsize' in the fixed part is not in the data\. Did you mean 'size'"),
])
def test_bad_input_is_refused_before_fitting(cbpp, formula, family, kw, error, words):
    data = cbpp.assign(p=np.where(np.arange(len(cbpp)) == 2, 1.5, cbpp["incidence"] / cbpp["size"]),
                       x=cbpp["incidence"] + 0.5, z=cbpp["incidence"] * 1.0 + 1.0,
                       neg=np.where(np.arange(len(cbpp)) == 4, -1.0, 1.0),
                       zero=np.where(np.arange(len(cbpp)) == 4, 0.0, 1.0))
    data.loc[0, "z"] = 0.0
    fam = hb.families.get_family(*family) if isinstance(family, tuple) else family
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(error, match=words):
            design(formula, data, family=fam, **kw)
