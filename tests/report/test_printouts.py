"""Printouts against R's: lmer, lmerTest and glmer summaries and anova, line by line.

``tests/r/printouts.R`` prints R's fits of the same models on the same data into
``tests/data/r/printouts.json``. Every line must match R's. The only differences
allowed are in the last printed digit of a number where the two fits differ
below the printed precision (up to 3 in the last digit: glmer's optimum on cbpp
is 1e-4 away from ours in the herd variance, lmer's on Penicillin 2e-4 in the
sample variance, both within lme4's own tolerances), and the ``||`` formula, which lme4 prints expanded.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest

import hierbayes as hb
from hierbayes.report.rprint import format_pval, r_format, zapsmall

REFS = json.loads((Path(__file__).resolve().parents[1] / "data" / "r" / "printouts.json").read_text())
CASES = {c["id"]: c for c in REFS["cases"]}
NUMBER = re.compile(r"^-?\d+(\.\d+)?(e[-+]\d+)?$")


def _fit(case: dict):
    data = hb.datasets.load(case["data"])
    s = case["settings"]
    if case["kind"] == "glmer":
        return hb.glmer(case["formula"], data, family=s["family"])
    return hb.lmer(case["formula"], data, reml=s.get("REML", True))


def _printed(case: dict) -> str:
    if case["kind"] == "anova":
        a, b = case["formula"].split("; ")
        data = hb.datasets.load(case["data"])
        named = dict(zip(case["settings"]["names"], (hb.lmer(a, data), hb.lmer(b, data)), strict=True))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hb.HierbayesWarning)
            return str(hb.anova(**named))
    fit = _fit(case)
    ddf = case["settings"].get("ddf")
    return str(fit.summary(ddf=ddf) if ddf else fit.summary())


def _same_token(ours: str, theirs: str) -> bool:
    if ours == theirs:
        return True
    if not (NUMBER.match(ours) and NUMBER.match(theirs)) or len(ours) != len(theirs):
        return False
    # same layout (width, decimals, notation); the value may differ by one in its last digit
    if ("e" in ours) != ("e" in theirs):
        return False
    if "e" in ours:
        (m1, e1), (m2, e2) = ours.split("e"), theirs.split("e")
        return e1 == e2 and _same_token(m1, m2)
    decimals = len(ours.split(".")[1]) if "." in ours else 0
    return abs(float(ours) - float(theirs)) <= 3.01 * 10.0**-decimals


@pytest.mark.parametrize("case_id", list(CASES))
def test_printout_matches_r(case_id: str) -> None:
    case = CASES[case_id]
    ours = [line.rstrip() for line in _printed(case).splitlines()]
    theirs = [line.rstrip() for line in case["text"].splitlines()]
    if "||" in case["formula"]:
        # lme4 prints the formula with || expanded into its bars; we print the user's formula
        assert ours[1] == f"Formula: {case['formula']}"
        ours[1] = theirs[1]
    assert len(ours) == len(theirs), "\n".join(ours)
    loose = 0
    for a, b in zip(ours, theirs, strict=True):
        ta, tb = a.split(), b.split()
        assert a == b or (len(a) == len(b) and len(ta) == len(tb) and all(
            _same_token(x, y) for x, y in zip(ta, tb, strict=True))), f"\nours: {a!r}\nR:    {b!r}"
        loose += a != b
    # the digits themselves agree except for a handful of last-digit differences
    assert loose <= 3


def test_columns_are_formatted_together() -> None:
    # R's format(): one number of decimals for the column, enough for its value needing most
    assert r_format([267.967, 2.2096], 4) == ["267.97", "  2.21"]
    assert r_format([1.11e3, 2.036e2, 4.564e-02, 5.684e-03], 4)[0] == "1.110e+03"
    assert r_format([0.0, 1e-20], 4) == ["0e+00", "1e-20"]
    assert zapsmall([1e-17, 3.2], 7).tolist() == [0.0, 3.2]
    assert format_pval([0.5, 1e-300], 3) == ["0.5", "<2e-16"]


def test_anova_tells_close_models_apart(sleepstudy) -> None:
    # 4 significant digits printed both AICs as 1764; R's five show which is smaller
    a = hb.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, reml=False)
    b = hb.lmer("Reaction ~ Days + (Days || Subject)", sleepstudy, reml=False)
    text = str(hb.anova(b=b, a=a))
    assert f"{a.aic:.1f}" in text and f"{b.aic:.1f}" in text
    assert text.splitlines()[0] == "Data: sleepstudy"


def test_html_carries_the_text(sleepstudy) -> None:
    fit = hb.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    html = fit.summary(ddf="satterthwaite")._repr_html_()
    for piece in ("Number of obs: 180, groups:  Subject, 18", "Scaled residuals", "-3.9536",
                  "Correlation of Fixed Effects", "-0.138", "Signif. codes", "3.26e-06",
                  "lmerModLmerTest"):
        assert piece in html, piece
    assert "None" not in html and "nan" not in html.lower()
    assert html.count(">Subject<") == 1   # the group named once, as the text shows it


def test_data_is_named_by_argument_or_attrs(sleepstudy) -> None:
    plain = sleepstudy.copy()
    plain.attrs = {}
    assert "   Data: data" in str(hb.lmer("Reaction ~ Days + (1 | Subject)", plain).summary())
    named = hb.lmer("Reaction ~ Days + (1 | Subject)", plain, data_name="my_sleep")
    assert "   Data: my_sleep" in str(named.summary())
    glmm = hb.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                    hb.datasets.load("cbpp"), family="binomial", data_name="cbpp_here")
    assert "   Data: cbpp_here" in str(glmm.summary())
    plain.attrs["name"] = "from_attrs"
    assert hb.Model("Reaction ~ Days + (1 | Subject)", plain).design.data_name == "from_attrs"
    assert sleepstudy.attrs["name"] == "sleepstudy"  # the user's frame is left as it was
