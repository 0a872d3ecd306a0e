"""Priors: brms notation, half-distributions on SDs, data-scaled defaults, overrides and errors."""

from __future__ import annotations

import numpy as np
import pytest

import hierbayes as hb
from hierbayes.bayes.priors import Prior
from tests.conftest import BRMS_PRIORS


def test_parse_brms_notation():
    assert Prior.parse("normal(0, 50)").params == {"mu": 0.0, "sigma": 50.0}
    assert Prior.parse("student_t(3, 0, 2.5)").pymc_name == "StudentT"
    assert Prior.parse("lkj(2)").params == {"eta": 2.0}
    assert Prior.parse("normal(mu=-1, sigma=2)").params == {"mu": -1.0, "sigma": 2.0}
    assert Prior.parse("HalfNormal(3)").dist == "half_normal"
    assert Prior("exponential", 1) == Prior.parse("exponential(1)")


def test_half_distributions_for_sds():
    assert str(Prior.parse("student_t(3, 0, 50)").half()) == "half_student_t(3, 50)"
    assert str(Prior.parse("normal(0, 1)").half()) == "half_normal(1)"
    assert str(Prior.parse("cauchy(0, 5)").half()) == "half_cauchy(5)"
    assert Prior.parse("exponential(2)").half() == Prior("exponential", 2)
    with pytest.raises(hb.PriorError, match="location 0"):
        Prior.parse("normal(3, 1)").half()


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (5, "must be a distribution"),
        (None, "must be a distribution"),
        ("normal", "Cannot read the prior"),
        ("normal(0)", "missing sigma"),
        ("normal(0, -1)", "'sigma' must be positive"),
        ("normal(0, 1, 2)", "takes 2 parameter"),
        ("wobble(1)", "Unknown prior distribution 'wobble'"),
        ("normal(0, x)", "'x' is not a number"),
        ("uniform(2, 1)", "must be below upper"),
        ("normal(0, inf)", "not a number"),
        ("normal(mu=0, scale=1)", "no parameter 'scale'"),
    ],
)
def test_bad_priors(spec, words):
    with pytest.raises(hb.PriorError, match=words):
        Prior.parse(spec)


def test_defaults_scale_with_the_data(sleepstudy):
    m = hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy)
    sy = sleepstudy["Reaction"].std()
    sx = sleepstudy["Days"].std()
    p = m.priors
    assert p.get("Intercept").params == pytest.approx({"mu": sleepstudy["Reaction"].mean(), "sigma": 2.5 * sy})
    assert p.get("b", coef="Days").params["sigma"] == pytest.approx(2.5 * sy / sx)
    assert p.get("sd", "Subject", "(Intercept)").params["sigma"] == pytest.approx(sy)
    assert p.get("sd", "Subject", "Days").params["sigma"] == pytest.approx(sy / sx)
    assert p.get("sigma").dist == "half_student_t"
    assert p.get("cor", "Subject").params == {"eta": 1.0}
    # rescaling y by 1000 rescales every location and scale by 1000
    m2 = hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy.assign(Reaction=sleepstudy.Reaction * 1000))
    assert m2.priors.get("b", coef="Days").params["sigma"] == pytest.approx(1000 * 2.5 * sy / sx)


def test_brms_sleepstudy_priors_are_expressible(sleepstudy):
    m = hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy, priors=BRMS_PRIORS)
    table = m.priors.to_frame()
    assert (table["source"] == "user").all()
    assert set(table["prior"]) == {"normal(250, 100)", "normal(0, 50)", "half_student_t(3, 50)", "lkj(2)"}
    assert "half_student_t(3, 50)" in str(m.priors)


def test_specific_keys_beat_class_keys(sleepstudy):
    m = hb.Model(
        "Reaction ~ Days + (Days | Subject)",
        sleepstudy,
        priors={"sd": "exponential(0.1)", "sd[Subject, Days]": "exponential(1)", "b[Days]": "normal(10, 5)"},
    )
    assert m.priors.get("sd", "Subject", "(Intercept)") == Prior("exponential", 0.1)
    assert m.priors.get("sd", "Subject", "Days") == Prior("exponential", 1)
    assert m.priors.get("b", coef="Days") == Prior("normal", 10, 5)


def test_group_key_covers_double_bar_blocks(sleepstudy):
    m = hb.Model("Reaction ~ Days + (Days || Subject)", sleepstudy, priors={"sd[Subject]": "half_normal(20)"})
    assert m.priors.get("sd", "Subject", "(Intercept)") == Prior("half_normal", 20)
    assert m.priors.get("sd", "Subject.1", "Days") == Prior("half_normal", 20)


@pytest.mark.parametrize(
    ("priors", "words"),
    [
        ({"beta": "normal(0, 1)"}, "Unknown prior key 'beta'"),
        ({"b[Dayz]": "normal(0, 1)"}, "names no parameter.*'b\\[Days\\]'"),
        ({"sd[Animal]": "normal(0, 1)"}, "names no parameter.*'sd\\[Subject\\]'"),
        ({"sd[Subject, Hours]": "normal(0, 1)"}, "names no parameter"),
        ({"b": 3}, "must be a distribution"),
        ({"b": "normal(0, -1)"}, "must be positive"),
        ({"cor": "normal(0, 1)"}, "correlations take lkj"),
        ({"sd": "lkj(2)"}, "lkj is for correlations"),
        ({"sd": "normal(5, 1)"}, "location 0"),
        ({"b[(Intercept)]": "normal(0, 1)"}, "key 'Intercept'"),
        ({"sigma[x]": "normal(0, 1)"}, "single parameter"),
        ("normal(0, 1)", "must be a dict"),
    ],
)
def test_bad_prior_specifications(sleepstudy, priors, words):
    with pytest.raises(hb.PriorError, match=words):
        hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy, priors=priors)


def test_priors_on_parameters_the_model_lacks(sleepstudy):
    with pytest.raises(hb.PriorError, match="no intercept"):
        hb.Model("Reaction ~ 0 + Days + (1 | Subject)", sleepstudy, priors={"Intercept": "normal(0, 1)"})
    with pytest.raises(hb.PriorError, match="no random-effect block has two"):
        hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy, priors={"cor": "lkj(2)"})


def test_mixed_families_in_one_lkj_block(sleepstudy):
    m = hb.Model(
        "Reaction ~ Days + (Days | Subject)",
        sleepstudy,
        priors={"sd[Subject, Days]": "exponential(1)"},
    )
    assert m.priors.get("sd", "Subject", "Days") == Prior("exponential", 1)
    assert m.priors.get("sd", "Subject", "(Intercept)").dist == "half_student_t"
    assert {"sd_Subject_0", "sd_Subject_1"} <= {v.name for v in m.pymc_model.free_RVs}
    assert np.isfinite(m.pymc_model.compile_logp()(m.pymc_model.initial_point()))


def test_mixed_families_on_b_allowed(sleepstudy):
    m = hb.Model(
        "Reaction ~ Days + I(Days**2) + (1 | Subject)",
        sleepstudy,
        priors={"b[Days]": "student_t(3, 0, 10)"},
    )
    names = {v.name for v in m.pymc_model.free_RVs}
    assert {"b_0", "b_1"} <= names
    assert np.isfinite(m.pymc_model.compile_logp()(m.pymc_model.initial_point()))


def test_a_flat_prior_is_for_fixed_effects_only(sleepstudy):
    # brms's default on b: improper, log density 0 (the kernel's code FLAT; its density against
    # PyMC's pm.Flat in test_logdensity's cases)
    from hierbayes.bayes.codes import FLAT
    from hierbayes.bayes.pack import pack

    m = hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy, priors={"b": "flat"})
    assert str(m.priors.get("b", coef="Days")) == "flat" and Prior.parse("flat()") == Prior("flat")
    packed = pack(m.design, m.priors)
    at = packed.layout["b"][0]
    assert [r[1] for r in packed.data.prior_index if r[0] == at] == [FLAT]
    for key in ("sd", "sigma", "Intercept"):
        with pytest.raises(hb.PriorError, match="flat .* fixed effects"):
            hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy, priors={key: "flat"})


def test_the_shape_has_its_class_and_brms_default(sleepstudy):
    df = sleepstudy.assign(count=(sleepstudy["Reaction"] // 30).astype(int))
    m = hb.Model("count ~ Days + (1 | Subject)", df, family="negbinomial")
    assert m.priors.get("shape") == Prior("gamma", 0.01, 0.01)
    table = m.priors.to_frame()
    assert table[table["class"] == "shape"][["prior", "source"]].values.tolist() == \
        [["gamma(0.01, 0.01)", "default"]]
    m = hb.Model("count ~ Days + (1 | Subject)", df, family="negbinomial",
                 priors={"shape": "student_t(3, 0, 5)"})
    assert m.priors.get("shape") == Prior("half_student_t", 3, 5)  # positive: the half
    with pytest.raises(hb.PriorError, match="no shape parameter"):
        hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy, priors={"shape": "gamma(2, 1)"})
    with pytest.raises(hb.PriorError, match="no residual SD"):
        hb.Model("count ~ Days + (1 | Subject)", df, family="negbinomial", priors={"sigma": "gamma(2, 1)"})
    with pytest.raises(hb.PriorError, match="single parameter"):
        hb.Model("count ~ Days + (1 | Subject)", df, family="negbinomial", priors={"shape[x]": "gamma(2, 1)"})
