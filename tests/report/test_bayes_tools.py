"""brms's conveniences: hypothesis(), bayes_R2() and conditional_effects().

Each result is checked against the same quantity computed here from the posterior draws
(the fraction of draws, the posterior mean of a linear combination, the R2 of each draw
from the fixed and group effects), and against brms 2.18 on sleepstudy:
``tests/data/r/bayes_r2.json``, made by ``tests/r/bayes_r2.R`` (its header says how to rerun
it), a fit of 4 x 1,000 draws under proper priors that are read from the JSON and set here
too. Both sides are Monte Carlo estimates, so the posterior means must agree within 0.15
posterior SD (the Monte Carlo error of the difference is about 0.03 SD), quantiles within
0.3 SD, and the Savage-Dickey ratios, kernel density estimates at a point, within 25%.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import hierbayes as hb
from hierbayes.errors import DataError, SettingsError
from hierbayes.report.effects import conditional_effects, effect_grid
from hierbayes.report.hypothesis import hypothesis, parse_hypothesis
from hierbayes.report.r2 import bayes_r2, r2_draws

REF = json.loads((Path(__file__).resolve().parents[1] / "data" / "r" / "bayes_r2.json").read_text())


def flat(fit, name):
    v = np.asarray(fit.posterior[name])
    return v.reshape(-1, *v.shape[2:])


def fixef(fit, name):
    return flat(fit, "fixef")[:, fit.design.fixef_names.index(name)]


@pytest.fixture(scope="module")
def sex_data(sleepstudy):
    d = sleepstudy.copy()
    subjects = list(d["Subject"].cat.categories)
    sex = {s: "F" if i % 2 else "M" for i, s in enumerate(subjects)}
    d["Sex"] = pd.Categorical(d["Subject"].map(sex).astype(str), categories=["F", "M"])
    d["age"] = d["Subject"].cat.codes.astype(float) * 1.5 + 20
    return d


@pytest.fixture(scope="module")
def sex_fit(sex_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        return hb.Model("Reaction ~ Days * Sex + age + (Days | Subject)", sex_data).fit(
            draws=300, tune=300, chains=2, seed=3, progressbar=False)


def brms_priors() -> dict[str, str]:
    """Our priors for the reference's prior_summary: each class's row without coef or group."""
    t = REF["priors"]
    out = {}
    for prior, cls, coef, group in zip(t["prior"], t["class"], t["coef"], t["group"], strict=True):
        if prior and not coef and not group:
            out["cor" if cls == "L" else cls] = prior.replace("lkj_corr_cholesky", "lkj")
    assert out == {"b": "normal(0, 50)", "Intercept": "normal(250, 100)", "cor": "lkj(2)",
                   "sd": "student_t(3, 0, 50)", "sigma": "student_t(3, 0, 50)"}, out
    return out


@pytest.fixture(scope="module")
def brms_fit(sleepstudy):
    """The reference's model and priors, 4 chains x 1,000 draws as brms's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        return hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy, priors=brms_priors()).fit(
            draws=1000, tune=1000, chains=4, seed=5, progressbar=False)


# ---------------------------------------------------------------- hypothesis

def test_one_sided_hypotheses_from_draws(sleep_fit):
    days, icpt = fixef(sleep_fit, "Days"), fixef(sleep_fit, "(Intercept)")
    h = hypothesis(sleep_fit, ["Days > 5", "(Intercept) + 7 * Days > 300", "Days - 2 > 0",
                               "Days < 10", "-Days / 2 < -3"])
    f = h.frame
    assert f["hypothesis"].tolist() == ["(Days)-(5) > 0", "((Intercept)+7*Days)-(300) > 0",
                                        "(Days-2) > 0", "(Days)-(10) < 0", "(-Days/2)-(-3) < 0"]
    for row, x, greater in [(0, days - 5, True), (1, icpt + 7 * days - 300, True),
                            (2, days - 2, True), (3, days - 10, False), (4, -days / 2 + 3, False)]:
        r = f.iloc[row]
        p = np.mean(x > 0) if greater else np.mean(x < 0)
        assert r["estimate"] == pytest.approx(x.mean(), rel=1e-12)
        assert r["est_error"] == pytest.approx(x.std(ddof=1), rel=1e-12)
        assert [r["conf_low"], r["conf_high"]] == pytest.approx(np.quantile(x, [0.05, 0.95]))
        assert r["post_prob"] == pytest.approx(p)
        assert r["evid_ratio"] == (np.inf if p == 1 else pytest.approx(p / (1 - p)))
        assert r["star"] == ("*" if p > 0.95 else "")
    assert h.draws["H2"].to_numpy() == pytest.approx(icpt + 7 * days - 300)
    assert f.attrs["conf_level"] == 0.95 and f.attrs["conf_level_one_sided"] == pytest.approx(0.9)
    # Intercept is brms's spelling of (Intercept); alpha is brms's argument
    g = hypothesis(sleep_fit, "Intercept + 7 * Days > 300", alpha=0.1).frame.iloc[0]
    assert g["estimate"] == f.iloc[1]["estimate"]
    x = icpt + 7 * days - 300
    assert [g["conf_low"], g["conf_high"]] == pytest.approx(np.quantile(x, [0.1, 0.9]))


def test_group_sd_sigma_and_correlation_hypotheses(sleep_fit):
    sd = flat(sleep_fit, "sd_Subject")
    h = hypothesis(sleep_fit, {"slope sd": "sd_Days|Subject > 5", "s": "sigma < 2 * sd_Days|Subject",
                               "r": "cor_Days.(Intercept)|Subject > 0"}, point="median").frame
    assert h["hypothesis"].tolist() == ["slope sd", "s", "r"]
    cases = [sd[:, 1] - 5, flat(sleep_fit, "sigma") - 2 * sd[:, 1], flat(sleep_fit, "cor_Subject")[:, 0]]
    for (_, r), x in zip(h.iterrows(), cases, strict=True):
        assert r["estimate"] == pytest.approx(np.median(x))
        assert r["est_error"] == pytest.approx(x.std(ddof=1))
    assert h["post_prob"].tolist() == pytest.approx([np.mean(cases[0] > 0), np.mean(cases[1] < 0),
                                                     np.mean(cases[2] > 0)])


def test_point_hypothesis_savage_dickey(sleep_fit):
    h = hypothesis(sleep_fit, ["Days = 10", "2 * Days = 20"], seed=4)
    x = fixef(sleep_fit, "Days") - 10
    prior_idata = sleep_fit.model.prior_predictive(draws=len(x), seed=4)
    prior = prior_idata.prior["fixef"].sel(fixef_term="Days").to_numpy().ravel() - 10

    def density_at_zero(v):  # a Gaussian KDE with R's bw.nrd0
        iqr = np.subtract(*np.quantile(v, [0.75, 0.25]))
        bw = 0.9 * min(v.std(ddof=1), iqr / 1.34) * len(v) ** -0.2
        return stats.gaussian_kde(v, bw_method=bw / v.std(ddof=1))(0.0)[0]

    er = density_at_zero(x) / density_at_zero(prior)
    r = h.frame.iloc[0]
    assert r["evid_ratio"] == pytest.approx(er, rel=1e-6)
    assert r["post_prob"] == pytest.approx(er / (1 + er))
    lo, hi = np.quantile(x, [0.025, 0.975])
    assert [r["conf_low"], r["conf_high"]] == pytest.approx([lo, hi])
    assert r["star"] == ("" if lo <= 0 <= hi else "*")
    # the ratio of densities does not change with the scale of the hypothesis
    assert h.frame.iloc[1]["evid_ratio"] == pytest.approx(er, rel=1e-6)
    assert h.prior_draws["H1"].to_numpy() == pytest.approx(prior)


def test_flat_prior_gives_na_and_says_why(sleepstudy):
    fit = hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy, priors={"b": "flat"}).fit(
        draws=200, tune=200, chains=1, seed=1, progressbar=False, check=False)
    h = hypothesis(fit, ["Days = 10", "Days > 5"])
    assert np.isnan(h.frame["evid_ratio"].iloc[0]) and np.isnan(h.frame["post_prob"].iloc[0])
    assert not np.isnan(h.frame["evid_ratio"].iloc[1])  # one-sided: from the draws alone
    assert "flat" in str(h) and "NA" in str(h)


def test_printout_as_brms(sleep_fit):
    text = str(hypothesis(sleep_fit, ["Days > 5", "Intercept + 7 * Days > 300"]))
    lines = text.splitlines()
    assert lines[0] == "Hypothesis Tests for class b:"
    assert lines[1].split() == ["Hypothesis", "Estimate", "Est.Error", "CI.Lower", "CI.Upper",
                                "Evid.Ratio", "Post.Prob", "Star"]
    assert lines[2].startswith("1") and "(Days)-(5) > 0" in lines[2]
    assert "(Intercept+7*Days... > 0" in lines[3]  # brms's limit_chars
    assert lines[4] == "---"
    assert "'CI': 90%-CI for one-sided and 95%-CI for two-sided hypotheses." in text
    assert "<table>" in hypothesis(sleep_fit, "Days > 5")._repr_html_()


def test_interactions_backticks_and_group_scopes(sex_fit):
    inter = fixef(sex_fit, "Days:SexM")
    h = hypothesis(sex_fit, ["Days:SexM > 0", "`Days:SexM` + Days > 10"]).frame
    assert h["estimate"].tolist() == pytest.approx([inter.mean(), (inter + fixef(sex_fit, "Days")).mean() - 10])
    r = flat(sex_fit, "r_Subject")  # (draws, levels, terms)
    levels = sex_fit.design.block("Subject").levels
    ran = hypothesis(sex_fit, "Days > 1", scope="ranef", group="Subject").frame
    assert ran["level"].tolist() == list(levels) and set(ran["group"]) == {"Subject"}
    assert ran["post_prob"].to_numpy() == pytest.approx(np.mean(r[:, :, 1] > 1, axis=0))
    co = hypothesis(sex_fit, ["Days > 10", "Intercept = 250"], scope="coef", group="Subject")
    slope = fixef(sex_fit, "Days")[:, None] + r[:, :, 1]
    assert co.frame["estimate"].to_numpy()[::2] == pytest.approx(slope.mean(axis=0) - 10)
    assert co.frame["evid_ratio"].isna().to_numpy()[1::2].all()  # no prior draws, as brms
    assert "scope='coef' has no prior draws" in str(co)


def test_parser_errors_show_where():
    names, alias = ["(Intercept)", "Days", "sd_Days|Subject"], {"Intercept": "(Intercept)"}
    cases = {
        "Days > (5 + 1": ("position 7", "not closed by the end"),
        "(Days - 5)) > 0": ("position 10", "closes no parenthesis"),
        "Days > 5 > 3": ("position 9", "second comparison"),
        "Dayz > 1": ("no parameter 'Dayz'", "sd_Days|Subject"),
        "__import__('os').system('touch x') > 0": ("function calls are not supported", "position 0"),
        "exp(Days) > 1": ("function calls are not supported", "exp(...)"),
        "Days ^ 2 > 1": ("powers", "position 5"),
        "Days >= 3": ("'>=' is not supported", "position 5"),
        "Days": ("needs one comparison", "position 4"),
        "7Days > 1": ("7 * Days", "position 0"),
        "Days / 0 > 1": ("division by zero", "position 5"),
        "`Days > 1": ("never closed", "position 0"),
        "2 > 1": ("names no parameter", ""),
    }
    for text, (a, b) in cases.items():
        with pytest.raises(DataError) as err:
            parse_hypothesis(text, names, alias)
        assert a in str(err.value) and b in str(err.value), (text, str(err.value))
    assert "^" in str(pytest.raises(DataError, parse_hypothesis, "Days > (5", names).value)
    h = parse_hypothesis("sd_Days|Subject - `Days` > -1e-1", names)
    assert h.parameters == ["sd_Days|Subject", "Days"] and h.label == "(sd_Days|Subject-`Days`)-(-1e-1) > 0"


def test_errors_come_before_any_work(sleep_fit, monkeypatch):
    def no_prior(*args, **kwargs):
        raise AssertionError("prior drawn before the hypotheses were checked")

    monkeypatch.setattr(sleep_fit.model, "prior_predictive", no_prior)
    with pytest.raises(DataError, match="no parameter 'Dayz'"):
        hypothesis(sleep_fit, ["Days = 10", "Dayz > 1"])
    for kwargs, match in [({"hypotheses": []}, "non-empty"), ({"hypotheses": 5}, "string"),
                          ({"hypotheses": "Days > 1", "prob": 0.9, "alpha": 0.05}, "disagree"),
                          ({"hypotheses": "Days > 1", "alpha": 0.6}, "alpha"),
                          ({"hypotheses": "Days > 1", "scope": "group"}, "scope"),
                          ({"hypotheses": "Days > 1", "scope": "coef"}, "group="),
                          ({"hypotheses": "Days > 1", "point": "mode"}, "point"),
                          ({"hypotheses": [None]}, "non-empty text")]:
        with pytest.raises(SettingsError, match=match):
            hypothesis(sleep_fit, **kwargs)
    with pytest.raises(DataError, match="No grouping factor"):
        hypothesis(sleep_fit, "Days > 1", scope="ranef", group="Day")


# ---------------------------------------------------------------- bayes_r2

def r2_by_hand(fit, with_groups: bool) -> np.ndarray:
    d = fit.design
    mu = flat(fit, "fixef") @ d.X.T
    if with_groups:
        for b in d.blocks:
            r = flat(fit, f"r_{b.group}")  # (draws, levels, terms)
            mu = mu + np.einsum("nt,snt->sn", b.Z, r[:, b.index, :])
    if d.trials is not None:
        mu = d.family.inverse_link(mu) * d.trials
    e = d.y - mu
    return mu.var(axis=1, ddof=1) / (mu.var(axis=1, ddof=1) + e.var(axis=1, ddof=1))


def test_bayes_r2_from_draws(sleep_fit):
    draws = bayes_r2(sleep_fit, summary=False)
    assert draws.columns.tolist() == ["conditional", "marginal"]
    cond, marg = r2_by_hand(sleep_fit, True), r2_by_hand(sleep_fit, False)
    assert draws["conditional"].to_numpy() == pytest.approx(cond, rel=1e-10)
    assert draws["marginal"].to_numpy() == pytest.approx(marg, rel=1e-10)
    s = bayes_r2(sleep_fit, prob=0.9)
    assert s.loc["conditional"].tolist() == pytest.approx(
        [cond.mean(), cond.std(ddof=1), *np.quantile(cond, [0.05, 0.95])])
    assert s.attrs["conf_level"] == 0.9
    assert s.loc["marginal", "estimate"] < s.loc["conditional", "estimate"]
    assert bayes_r2(sleep_fit, re_form=None).index.tolist() == ["conditional"]
    assert bayes_r2(sleep_fit, re_form="~0", point="median")["estimate"].iloc[0] == pytest.approx(np.median(marg))
    one = bayes_r2(sleep_fit, re_form="~(Days | Subject)", summary=False)
    assert one.iloc[:, 0].to_numpy() == pytest.approx(cond, rel=1e-10)


def test_bayes_r2_in_blocks_of_rows(sleep_fit, monkeypatch):
    import hierbayes.report.predict as predict

    whole = r2_draws(sleep_fit)
    original = predict.iter_posterior_draws
    monkeypatch.setattr(predict, "iter_posterior_draws",
                        lambda *a, **k: original(*a, **k, max_values=7 * 2000))  # 7 rows a block
    assert r2_draws(sleep_fit) == pytest.approx(whole, rel=1e-10)


def test_bayes_r2_binomial_counts_successes():
    fit = hb.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", hb.datasets.load("cbpp"),
                   family="binomial").fit(draws=200, tune=300, chains=2, seed=2, progressbar=False,
                                          check=False)
    assert r2_draws(fit) == pytest.approx(r2_by_hand(fit, True), rel=1e-10)
    with pytest.raises(SettingsError, match="Bayesian"):
        bayes_r2(hb.lmer("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy")))


# ---------------------------------------------------------------- conditional_effects

def test_conditional_effects_from_predict_draws(sex_fit, sex_data):
    ce = conditional_effects(sex_fit, "Days", by="Sex", resolution=7, prob=0.9)
    f = ce.frame
    assert f.columns.tolist() == ["Days", "Sex", "age", "estimate", "est_error", "conf_low", "conf_high"]
    assert list(dict.fromkeys(f["Sex"])) == ["F", "M"]
    grid = pd.DataFrame({"Days": np.tile(np.linspace(0, 9, 7), 2), "Sex": ["F"] * 7 + ["M"] * 7,
                         "age": sex_data["age"].mean()})
    draws = sex_fit.predict_draws(grid, re_form="~0")
    assert f["Days"].tolist() == grid["Days"].tolist() and (f["age"] == grid["age"]).all()
    assert f["estimate"].to_numpy() == pytest.approx(draws.mean(axis=0))
    assert f["est_error"].to_numpy() == pytest.approx(draws.std(axis=0, ddof=1))
    q = np.quantile(draws, [0.05, 0.95], axis=0)
    assert f["conf_low"].to_numpy() == pytest.approx(q[0]) and f["conf_high"].to_numpy() == pytest.approx(q[1])
    assert f.attrs["conf_level"] == 0.9
    # a numeric by: mean - SD, mean, mean + SD, as brms
    age = sex_data["age"]
    by_age = conditional_effects(sex_fit, "Sex", by="age").frame
    assert list(dict.fromkeys(by_age["age"])) == pytest.approx(
        [age.mean() - age.std(), age.mean(), age.mean() + age.std()])
    assert by_age["Sex"].tolist() == ["F", "M"] * 3 and (by_age["Days"] == 4.5).all()


def test_conditional_effects_plot_and_display(sex_fit):
    ce = conditional_effects(sex_fit, "Days", by="Sex", resolution=10)
    ax = ce.plot().axes[0]
    assert len(ax.get_lines()) == 2  # one line per level of by
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["data", "Sex = F", "Sex = M"]
    assert len(conditional_effects(sex_fit, "Days").plot(data=False).axes[0].collections) == 1  # band
    assert "<img" in ce._repr_html_() and "<table" in ce._repr_html_()
    assert "<img" not in conditional_effects(sex_fit, "Days", plot=False)._repr_html_()
    assert repr(ce).startswith("Conditional effects of Days by Sex (95% credible interval):")
    cat = conditional_effects(sex_fit, "Sex").plot().axes[0]
    assert [t.get_text() for t in cat.get_xticklabels()] == ["F", "M"]


def test_conditional_effects_errors_and_conditions(sex_fit):
    for kwargs, err, match in [
        ({"effect": "Subject"}, DataError, "not a variable of the model's fixed part"),
        ({"effect": "Reaction"}, DataError, r"it uses \['Days', 'Sex', 'age'\]"),
        ({"effect": "Days", "by": "Days"}, SettingsError, "by names the effect"),
        ({"effect": "Days", "re_form": None}, DataError, "name the level"),
        ({"effect": "Days", "conditions": {"height": 1}}, DataError, "does not hold fixed"),
        ({"effect": "Days", "conditions": {"Sex": "X"}}, DataError, "not one of its levels"),
        ({"effect": "Days", "conditions": {"age": "old"}}, DataError, "give a number"),
        ({"effect": "Days", "resolution": 1}, SettingsError, "resolution"),
        ({"effect": "Days", "kind": "probability"}, SettingsError, "kind"),
    ]:
        with pytest.raises(err, match=match):
            conditional_effects(sex_fit, **kwargs)
    f = conditional_effects(sex_fit, "Days", re_form=None, conditions={"Subject": "308", "Sex": "F"},
                            resolution=3).frame
    grid = pd.DataFrame({"Days": [0.0, 4.5, 9.0], "Sex": "F", "age": f["age"].iloc[0], "Subject": 308})
    assert f["estimate"].to_numpy() == pytest.approx(sex_fit.predict_draws(grid).mean(axis=0))


def test_conditional_effects_wald_for_reml_and_glmer(sleepstudy):
    fit = hb.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    f = conditional_effects(fit, "Days", resolution=4).frame
    X = np.column_stack([np.ones(4), np.linspace(0, 9, 4)])
    beta, V = fit.fixef()["Estimate"].to_numpy(), fit.vcov().to_numpy()
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, V, X))
    assert f["estimate"].to_numpy() == pytest.approx(X @ beta)
    assert f["conf_high"].to_numpy() == pytest.approx(X @ beta + stats.norm.ppf(0.975) * se)
    assert f["std_error"].to_numpy() == pytest.approx(se)
    g = hb.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", hb.datasets.load("cbpp"),
                 family="binomial")
    p = conditional_effects(g, "period").frame
    b = g.estimates.beta
    eta = b[0] + np.r_[0, b[1:]]
    assert p["period"].astype(int).tolist() == [1, 2, 3, 4]
    assert p["estimate"].to_numpy() == pytest.approx(1 / (1 + np.exp(-eta)))
    assert (p["conf_low"] < p["estimate"]).all() and (p["estimate"] < p["conf_high"]).all()
    with pytest.raises(SettingsError, match="population-level"):
        conditional_effects(fit, "Days", re_form=None)
    assert effect_grid(fit, "Days", resolution=3)["Days"].tolist() == [0.0, 4.5, 9.0]


# ---------------------------------------------------------------- against brms

def test_agrees_with_brms(brms_fit):
    ours = {"sd_Subject__Days > 5": "sd_Days|Subject > 5", "sigma = 25": "sigma = 25",
            "sd_Subject__Intercept = 25": "sd_(Intercept)|Subject = 25"}
    for key in ("hypothesis_b", "hypothesis_other"):
        ref = REF[key]
        mine = hypothesis(brms_fit, [ours.get(h, h) for h in ref["input"]], seed=1).frame
        if key == "hypothesis_b":
            assert mine["hypothesis"].tolist() == ref["hypothesis"]  # brms's labels
        sd = np.array(ref["est_error"])
        assert mine["est_error"].to_numpy() == pytest.approx(sd, rel=0.15)
        assert (np.abs(mine["estimate"] - ref["estimate"]) < 0.15 * sd).all()
        for col in ("conf_low", "conf_high"):
            assert (np.abs(mine[col] - ref[col]) < 0.3 * sd).all(), col
        for sign, mine_er, ref_er, ref_pp, mine_pp in zip(
                [h.split()[-2] for h in mine["hypothesis"]], mine["evid_ratio"], ref["evid_ratio"],
                ref["post_prob"], mine["post_prob"], strict=True):
            if sign == "=":  # Savage-Dickey: kernel density estimates at a point
                assert mine_er == pytest.approx(ref_er, rel=0.25)
            assert mine_pp == pytest.approx(ref_pp, abs=0.03)
        assert mine["star"].tolist() == ref["star"]
    r2 = bayes_r2(brms_fit)
    for row in ("conditional", "marginal"):
        ref = REF["bayes_r2"][row]
        assert abs(r2.loc[row, "estimate"] - ref["estimate"]) < 0.15 * ref["est_error"], row
        assert r2.loc[row, "est_error"] == pytest.approx(ref["est_error"], rel=0.15)
    ce, ref = conditional_effects(brms_fit, "Days").frame, REF["conditional_effects"]
    assert ce["Days"].to_numpy() == pytest.approx(ref["Days"])
    sd = np.array(ref["est_error"])
    assert (np.abs(ce["estimate"] - ref["estimate"]) < 0.15 * sd).all()
    assert ce["est_error"].to_numpy() == pytest.approx(sd, rel=0.15)
    for col in ("conf_low", "conf_high"):
        assert (np.abs(ce[col] - ref[col]) < 0.3 * sd).all(), col
