"""Bad input, one row per case: what the user passed, what hierbayes raises (or
warns), and words its message must hold.

Every case also checks that the user's DataFrame is left exactly as it was, and
that nothing reached a sampler: the samplers are replaced by a function that
fails the test if called.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
import hierbayes.bayes.sampler as sampling

SLEEP = "Reaction ~ Days + (Days | Subject)"


@dataclass
class Case:
    id: str
    call: Callable[[dict[str, pd.DataFrame]], Any]
    expect: type
    words: tuple[str, ...]


def model(formula: str, data: str = "sleep", **kw) -> Callable:
    return lambda d: hb.Model(formula, d[data], **kw)


def fit(formula: str = SLEEP, data: str = "sleep", **kw) -> Callable:
    return lambda d: hb.Model(formula, d[data]).fit(progressbar=False, **kw)


def with_data(make: Callable[[pd.DataFrame], pd.DataFrame], formula: str = SLEEP, **kw) -> Callable:
    """A model on data made from sleepstudy (the case's own data, kept to check it is unchanged)."""
    def call(d):
        d["own"] = make(d["sleep"])
        d["own_before"] = d["own"].copy(deep=True)
        return hb.Model(formula, d["own"], **kw)
    return call


def with_column(name: str, make: Callable[[pd.DataFrame], Any], formula: str, **kw) -> Callable:
    """As :func:`with_data`, on sleepstudy with one column added or replaced."""
    return with_data(lambda df: df.assign(**{name: make(df)}), formula, **kw)


def _inf_days(df: pd.DataFrame) -> pd.Series:
    x = df["Days"].astype(float)
    x.iloc[3] = np.inf
    return x


def _nan_days(df: pd.DataFrame) -> pd.Series:
    x = df["Days"].astype(float)
    x.iloc[[0, 5, 9]] = np.nan
    return x


def _glmm_columns(df: pd.DataFrame) -> pd.DataFrame:
    """sleepstudy with counts, trials, a proportion and exposures (the GLMM families' cases)."""
    rng = np.random.default_rng(4)
    trials = rng.integers(1, 8, len(df))
    return df.assign(trials=trials, succ=rng.binomial(trials, 0.4), prop=0.5,
                     count=rng.poisson(3.0, len(df)), expo=rng.uniform(1, 2, len(df)))


def glmm(formula: str, **kw) -> Callable:
    return with_data(_glmm_columns, formula, **kw)


def lmer(formula: str, data: str = "sleep", **kw) -> Callable:
    return lambda d: hb.lmer(formula, d[data], **kw)


def _repeat_day(df: pd.DataFrame) -> pd.Series:
    days = df["Days"].copy()
    days.iloc[1] = days.iloc[0]  # subject 308 has day 0 twice
    return days


CASES = [
    # residual and covariance structures (issue 20)
    Case("correlation time duplicated within a group",
         with_column("day2", _repeat_day, "Reaction ~ Days + (1 | Subject)",
                     correlation=hb.ar1(time="day2")),
         hb.DataError, ("duplicate values", "'Subject'", "'308'", "one row per time")),
    Case("sigma formula names a missing column",
         model("Reaction ~ Days + (1 | Subject)", sigma="~ Dayz"), hb.FormulaError,
         ("'Dayz'", "sigma= formula", "Did you mean 'Days'")),
    Case("correlation time column missing",
         model("Reaction ~ Days + (1 | Subject)", correlation=hb.ar1(time="day")), hb.FormulaError,
         ("'day'", "correlation=")),
    Case("residual structure on a poisson model",
         glmm("count ~ Days + (1 | Subject)", family="poisson", sigma="~ Days"), hb.DataError,
         ("not supported yet", "poisson", "gaussian")),
    Case("correlation on a bernoulli model",
         lambda d: hb.glmer("I(Reaction > 300) ~ Days + (1 | Subject)", d["sleep"], family="bernoulli",
                            correlation=hb.ar1(time="Days")),
         hb.DataError, ("not supported yet", "bernoulli")),
    Case("structured term on a poisson model",
         glmm("count ~ Days + diag(Days | Subject)", family="poisson"), hb.DataError,
         ("not supported yet", "diag(Days | Subject)", "poisson")),
    Case("ar1 on fractional times",
         with_column("t", lambda df: df["Days"] + 0.5 * (df["Days"] > 4), "Reaction ~ Days + (1 | Subject)",
                     correlation=hb.ar1(time="t")),
         hb.DataError, ("integer times", "hb.car1")),
    Case("correlation given as a string", model("Reaction ~ Days + (1 | Subject)", correlation="ar1"),
         hb.DataError, ("hb.ar1(group=", "not 'ar1'")),
    Case("sigma formula without intercept",
         model("Reaction ~ Days + (1 | Subject)", sigma="~ 0 + Days"), hb.FormulaError,
         ("no intercept", "reference")),
    Case("sigma formula with a response", model("Reaction ~ Days + (1 | Subject)", sigma="Reaction ~ Days"),
         hb.FormulaError, ("one-sided formula",)),
    Case("ar1 term with an intercept", model("Reaction ~ Days + ar1(factor(Days) | Subject)"),
         hb.FormulaError, ("ar1(0 + f | Subject)",)),
    Case("unsupported covariance structure", model("Reaction ~ Days + ou(Days | Subject)"),
         hb.FormulaError, ("ou()", "not supported", "us, diag, cs and ar1")),
    Case("weights with a residual structure",
         with_column("w", lambda df: 1.0 + df["Days"] % 2, "Reaction ~ Days + (1 | Subject)",
                     weights="w", sigma="~ Days"),
         hb.DataError, ("weights=", "not supported yet")),
    Case("series not nested in the grouping factor",
         with_column("pair", lambda df: df["Subject"].cat.codes // 2, "Reaction ~ Days + (1 | Subject)",
                     correlation=hb.ar1(group="pair")),
         hb.DataError, ("not nested", "'Subject'")),
    # formula
    Case("R's dot for every other column", model("Reaction ~ . + (1 | Subject)"), hb.FormulaError,
         ("'.'", "not supported", "name the predictors")),
    Case("unclosed parenthesis", model("Reaction ~ Days + (Days | Subject"), hb.FormulaError,
         ("never closed", "^")),
    Case("stray closing parenthesis", model("Reaction ~ Days + Days | Subject)"), hb.FormulaError,
         ("closes nothing",)),
    Case("bar without grouping factor", model("Reaction ~ Days + (Days | )"), hb.FormulaError,
         ("no grouping factor", "(Days | )")),
    Case("bar without terms", model("Reaction ~ Days + ( | Subject)"), hb.FormulaError,
         ("nothing before '|'",)),
    Case("empty formula", model(""), hb.FormulaError, ("empty", "y ~ x + (1 | g)")),
    Case("no response", model("~ Days + (1 | Subject)"), hb.FormulaError, ("no response",)),
    Case("no tilde", model("Reaction Days + (1 | Subject)"), hb.FormulaError, ("no '~'",)),
    Case("two tildes", model("Reaction ~ Days ~ Subject"), hb.FormulaError, ("more than one '~'",)),
    Case("bar outside parentheses", model("Reaction ~ Days + 1 | Subject"), hb.FormulaError,
         ("inside its own parentheses",)),
    Case("subtracted bar", model("Reaction ~ Days - (1 | Subject)"), hb.FormulaError,
         ("cannot be subtracted",)),
    Case("two bars in one term", model("Reaction ~ Days + (1 | Subject | Days)"), hb.FormulaError,
         ("more than one bar",)),
    Case("formula not a string", lambda d: hb.Model(42, d["sleep"]), hb.FormulaError,
         ("must be a string",)),
    Case("fixed column not in data", model("Reaction ~ Day + (1 | Subject)"), hb.FormulaError,
         ("'Day'", "Did you mean 'Days'")),
    Case("grouping factor not in data", model("Reaction ~ Days + (1 | Subjet)"), hb.FormulaError,
         ("'Subjet'", "'Subject'")),
    Case("response not in data", model("Reactoin ~ Days + (1 | Subject)"), hb.FormulaError,
         ("'Reactoin'", "'Reaction'")),
    Case("random-term column not in data", model("Reaction ~ Days + (Dayz | Subject)"), hb.FormulaError,
         ("'Dayz'", "'Days'")),
    Case("double bar on a factor", model("stress ~ 1 + (hospsize || hospital)", "nurses"), hb.FormulaError,
         ("'||'", "(1 | hospital:<factor>)")),
    # data
    Case("data not a DataFrame", lambda d: hb.Model(SLEEP, d["sleep"].to_dict()), hb.DataError,
         ("pandas DataFrame",)),
    Case("empty DataFrame", with_data(lambda df: df.iloc[:0]), hb.DataError, ("no rows",)),
    Case("response not numeric", with_column("Reaction", lambda df: df["Reaction"].astype(str), SLEEP),
         hb.DataError, ("not numeric", "pd.to_numeric")),
    Case("bernoulli response not 0/1", model("Reaction ~ Days + (1 | Subject)", family="bernoulli"),
         hb.DataError, ("other than 0 and 1", "0/1")),
    Case("bernoulli factor with three levels",
         with_column("Reaction", lambda df: pd.cut(df["Reaction"], 3, labels=["lo", "mid", "hi"]),
                     "Reaction ~ Days + (1 | Subject)", family="bernoulli"),
         hb.DataError, ("3 levels", "needs two")),
    Case("poisson response negative", with_column("Reaction", lambda df: df["Reaction"] - 300,
                                                  "Reaction ~ Days + (1 | Subject)", family="poisson"),
         hb.DataError, ("non-negative integers",)),
    Case("unknown family", model(SLEEP, family="gamma_ish"), hb.DataError, ("Unknown family", "gaussian")),
    # the GLMM families' responses, weights and offsets (hb.Model, before any sampling)
    Case("binomial successes above the trials",
         glmm("cbind(succ, trials - succ - 2) ~ Days + (1 | Subject)", family="binomial"), hb.DataError,
         ("negative failures", ">= 0")),
    Case("binomial proportion outside [0, 1]",
         glmm("I(prop * 3) ~ Days + (1 | Subject)", family="binomial", weights="trials"), hb.DataError,
         ("outside [0, 1]", "proportion")),
    Case("binomial proportion times trials not whole",
         glmm("prop ~ Days + (1 | Subject)", family="binomial", weights="trials"), hb.DataError,
         ("not whole numbers", "trials")),
    Case("poisson count not an integer",
         glmm("I(count + 0.5) ~ Days + (1 | Subject)", family="poisson"), hb.DataError,
         ("non-negative integers",)),
    Case("negbinomial count not an integer",
         glmm("I(count + 0.5) ~ Days + (1 | Subject)", family="negbinomial"), hb.DataError,
         ("non-negative integers", "negbinomial")),
    Case("negbinomial count negative",
         glmm("I(count - 1) ~ Days + (1 | Subject)", family="negbinomial"), hb.DataError,
         ("non-negative integers",)),
    Case("gamma response not positive",
         glmm("I(Reaction - 300) ~ Days + (1 | Subject)", family=hb.get_family("gamma", link="log")),
         hb.DataError, ("not positive", "y > 0")),
    Case("gamma without its link", glmm("Reaction ~ Days + (1 | Subject)", family="gamma"), hb.DataError,
         ("needs its link said", "inverse link")),
    Case("negative weights", glmm("Reaction ~ Days + (1 | Subject)", weights=np.full(180, -1.0)),
         hb.DataError, ("negative", "weights")),
    Case("offset column not in data", glmm("count ~ Days + (1 | Subject)", family="poisson",
                                           offset="log_expo"), hb.DataError, ("names no column",)),
    Case("offset() variable not in data",
         glmm("count ~ Days + offset(log(exposure)) + (1 | Subject)", family="poisson"), hb.FormulaError,
         ("'exposure'", "not in the data")),
    Case("weights for a family without them",
         glmm("count ~ Days + (1 | Subject)", family="poisson", weights="expo"), hb.DataError,
         ("weights= is not supported for the poisson",)),
    Case("infinite predictor", with_column("Days", _inf_days, SLEEP), hb.DataError,
         ("'Days' has 1 infinite",)),
    Case("missing values, na_action='raise'", with_column("Days", _nan_days, SLEEP, na_action="raise"),
         hb.DataError, ("3 of 180 rows have missing values",)),
    Case("missing values dropped with a count", with_column("Days", _nan_days, SLEEP), hb.HierbayesWarning,
         ("Dropped 3 of 180 rows",)),
    Case("unknown na_action", model(SLEEP, na_action="drop"), hb.DataError, ("'omit' or 'raise'",)),
    Case("grouping factor with one level", with_column("one", lambda df: "a", "Reaction ~ Days + (1 | one)"),
         hb.DataError, ("'one' has only 1 level",)),
    Case("more random effects than observations",
         with_data(lambda df: df.groupby("Subject", observed=True).head(2)), hb.DataError,
         ("not more than the number of random effects",)),
    Case("rank-deficient fixed effects dropped and named",
         with_column("Days2", lambda df: 2 * df["Days"], "Reaction ~ Days + Days2 + (1 | Subject)"),
         hb.HierbayesWarning, ("rank deficient", "Days2")),
    # priors
    Case("unknown prior key", model(SLEEP, priors={"beta": "normal(0, 1)"}), hb.PriorError,
         ("Unknown prior key 'beta'",)),
    Case("prior on a coefficient not in the model", model(SLEEP, priors={"b[Dayz]": "normal(0, 1)"}),
         hb.PriorError, ("names no parameter", "b[Days]")),
    Case("prior on a grouping factor not in the model", model(SLEEP, priors={"sd[Animal]": "normal(0, 1)"}),
         hb.PriorError, ("names no parameter", "sd[Subject]")),
    Case("prior not a distribution", model(SLEEP, priors={"b": 3}), hb.PriorError, ("must be a distribution",)),
    Case("unknown distribution", model(SLEEP, priors={"b": "wobble(1)"}), hb.PriorError,
         ("Unknown prior distribution 'wobble'",)),
    Case("negative scale", model(SLEEP, priors={"b": "normal(0, -1)"}), hb.PriorError, ("must be positive",)),
    Case("missing distribution argument", model(SLEEP, priors={"sigma": "normal(0)"}), hb.PriorError,
         ("missing sigma",)),
    Case("lkj on correlations the model lacks", model("Reaction ~ Days + (1 | Subject)", priors={"cor": "lkj(2)"}),
         hb.PriorError, ("no random-effect block has two",)),
    Case("intercept prior without an intercept",
         model("Reaction ~ 0 + Days + (1 | Subject)", priors={"Intercept": "normal(0, 1)"}), hb.PriorError,
         ("no intercept",)),
    Case("priors not a dict", model(SLEEP, priors="normal(0, 1)"), hb.PriorError, ("must be a dict",)),
    # sampler settings
    Case("zero draws", fit(draws=0), hb.SamplerError, ("draws", "at least")),
    Case("zero chains", fit(chains=0), hb.SamplerError, ("chains", "at least")),
    Case("target_accept above 1", fit(target_accept=1.5), hb.SamplerError, ("target_accept", "between 0 and 1")),
    Case("unknown sampler", fit(sampler="stan"), hb.SamplerError, ("Unknown sampler 'stan'", "nutpie")),
    Case("sampler not a string", fit(sampler=3), hb.SamplerError, ("sampler must be None or a name",)),
    Case("negative tune", fit(tune=-1), hb.SamplerError, ("tune must be an integer of at least 0",)),
    Case("draws a float", fit(draws=100.0), hb.SamplerError, ("draws must be an integer", "100.0")),
    Case("draws a bool", fit(draws=True), hb.SamplerError, ("draws must be an integer", "True")),
    Case("chains a string", fit(chains="4"), hb.SamplerError, ("chains must be an integer", "'4'")),
    Case("negative seed", fit(seed=-1), hb.SamplerError, ("seed must be None or an integer from 0 to 2**32 - 1",
                                                          "-1")),
    Case("seed beyond 32 bits", fit(seed=2**40), hb.SamplerError, ("seed must be", "2**32 - 1")),
    Case("seed a float", fit(seed=1.5), hb.SamplerError, ("seed must be", "1.5")),
    Case("seed a bool", fit(seed=True), hb.SamplerError, ("seed must be", "True")),
    Case("negative cores", fit(cores=-1), hb.SamplerError, ("cores must be an integer of at least 1", "-1")),
    Case("cores a float", fit(cores=2.0), hb.SamplerError, ("cores must be an integer",)),
    Case("target_accept a string", fit(target_accept="0.9"), hb.SamplerError,
         ("target_accept must be a number between 0 and 1", "'0.9'")),
    Case("target_accept a bool", fit(target_accept=True), hb.SamplerError, ("target_accept must be a number",)),
    Case("target_accept nan", fit(target_accept=float("nan")), hb.SamplerError,
         ("target_accept must lie between 0 and 1", "nan")),
    Case("marginal a string", fit(marginal="no"), hb.SamplerError, ("marginal must be True, False or None", "'no'")),
    Case("marginal on a bernoulli model",
         lambda d: hb.Model("slow ~ Days + (1 | Subject)", d["sleep"].assign(slow=d["sleep"]["Reaction"] > 300),
                            family="bernoulli").fit(marginal=True, progressbar=False),
         hb.SamplerError, ("marginal=True needs a Gaussian model", "bernoulli")),
    Case("centred names an unknown block", fit(centred={"Subjet": True}), hb.SamplerError,
         ("centred names unknown blocks ['Subjet']", "'Subject'")),
    Case("centred a string", fit(centred="yes"), hb.SamplerError, ("centred must be None, True, False, or a dict",)),
    Case("centred value not a bool", fit(centred={"Subject": "yes"}), hb.SamplerError,
         ("centred's values must be True or False",)),
    Case("progressbar not a bool", lambda d: hb.Model(SLEEP, d["sleep"]).fit(progressbar="no"), hb.SamplerError,
         ("progressbar must be True or False", "'no'")),
    Case("check not a bool", fit(check="yes"), hb.SamplerError, ("check must be True or False",)),
    Case("prior predictive draws not a count", lambda d: hb.Model(SLEEP, d["sleep"]).prior_predictive(draws=0),
         hb.SettingsError, ("draws must be a positive integer",)),
]


@pytest.fixture
def frames() -> dict[str, pd.DataFrame]:
    return {"sleep": hb.datasets.load("sleepstudy"), "nurses": hb.datasets.load("nurses")}


@pytest.fixture
def no_sampling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a sampler was started before the bad input was caught")

    for name in ("_hierbayes", "_nutpie", "_pymc"):
        monkeypatch.setattr(sampling, name, refuse)


def test_the_table_is_large_enough():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, frames, no_sampling):
    before = {k: v.copy(deep=True) for k, v in frames.items()}
    if issubclass(case.expect, Warning):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            case.call(frames)
        hits = [w for w in caught if issubclass(w.category, case.expect)]
        assert len(hits) == 1, [str(w.message) for w in caught]
        message = str(hits[0].message)
    else:
        with pytest.raises(case.expect) as info:
            case.call(frames)
        assert isinstance(info.value, hb.HierbayesError)
        message = str(info.value)
    for w in case.words:
        assert w in message, f"{w!r} not in: {message}"
    for k, v in before.items():
        pd.testing.assert_frame_equal(frames[k], v)
    if "own" in frames:
        # the case's own data (a changed copy of sleepstudy) is left as it was passed
        pd.testing.assert_frame_equal(frames["own"], frames["own_before"])


def test_errors_share_one_base_and_builtin_classes():
    for cls in (hb.FormulaError, hb.DataError, hb.PriorError, hb.SamplerError, hb.SettingsError,
                hb.FitFileError):
        assert issubclass(cls, hb.HierbayesError) and issubclass(cls, ValueError)
    assert issubclass(hb.SamplerError, hb.SettingsError)  # sampler settings are settings
