"""The model as LaTeX (hierbayes.report.equation), checked against equatiomatic's own snapshots,
the seed tutorial's equation (seed 001) and the fits' estimates.

The snapshot models ran in R on equatiomatic's datasets (hsb, sim_longitudinal, polls, arrests);
an equation reads of the data only the factor levels and which predictors are constant within
groups, so the frames below rebuild those datasets' structure with the same names.
"""

from __future__ import annotations

import dataclasses
import re
import types

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.errors import DataError, SettingsError
from hierbayes.report.equation import equation

# /work/shared/seeds/001: extract_eq(lmer(gpa ~ occasion + (1 | student), data = gpa))
SEED = r"""\begin{aligned}
  \operatorname{gpa}_{i}  &\sim N \left(\alpha_{j[i]} + \beta_{1}(\operatorname{occasion}), \sigma^2 \right) \\
    \alpha_{j}  &\sim N \left(\mu_{\alpha_{j}}, \sigma^2_{\alpha_{j}} \right)
    \text{, for student j = 1,} \dots \text{,J}
\end{aligned}"""

# Expected LaTeX copied from equatiomatic's test snapshots (github.com/datalorax/equatiomatic,
# commit 225bdf5, tests/testthat/_snaps/): name -> (snapshot file, section, which one).
SNAPSHOTS = {
    # lmerMod.md, "Unstructured variance-covariances work as expected", equation 1
    "hsb1": r"""\begin{aligned}
  \operatorname{math}_{i}  &\sim N \left(\mu, \sigma^2 \right) \\
    \mu &=\alpha_{j[i]} + \beta_{1}(\operatorname{female}) + \beta_{2}(\operatorname{ses}) + \beta_{3j[i]}(\operatorname{minority}) \\
\left(
  \begin{array}{c}
    \begin{aligned}
      &\alpha_{j} \\
      &\beta_{3j}
    \end{aligned}
  \end{array}
\right)
  &\sim N \left(
\left(
  \begin{array}{c}
    \begin{aligned}
      &\mu_{\alpha_{j}} \\
      &\mu_{\beta_{3j}}
    \end{aligned}
  \end{array}
\right)
,
\left(
  \begin{array}{cc}
     \sigma^2_{\alpha_{j}} & \rho_{\alpha_{j}\beta_{3j}} \\
     \rho_{\beta_{3j}\alpha_{j}} & \sigma^2_{\beta_{3j}}
  \end{array}
\right)
 \right)
    \text{, for sch.id j = 1,} \dots \text{,J}
\end{aligned}""",
    # lmerMod.md, "Unstructured variance-covariances work as expected", equation 2
    "hsb2": r"""\begin{aligned}
  \operatorname{math}_{i}  &\sim N \left(\mu, \sigma^2 \right) \\
    \mu &=\alpha_{j[i]} + \beta_{1j[i]}(\operatorname{female}) + \beta_{2j[i]}(\operatorname{ses}) + \beta_{3}(\operatorname{minority}) \\
\left(
  \begin{array}{c}
    \begin{aligned}
      &\alpha_{j} \\
      &\beta_{1j} \\
      &\beta_{2j}
    \end{aligned}
  \end{array}
\right)
  &\sim N \left(
\left(
  \begin{array}{c}
    \begin{aligned}
      &\mu_{\alpha_{j}} \\
      &\mu_{\beta_{1j}} \\
      &\mu_{\beta_{2j}}
    \end{aligned}
  \end{array}
\right)
,
\left(
  \begin{array}{ccc}
     \sigma^2_{\alpha_{j}} & \rho_{\alpha_{j}\beta_{1j}} & \rho_{\alpha_{j}\beta_{2j}} \\
     \rho_{\beta_{1j}\alpha_{j}} & \sigma^2_{\beta_{1j}} & \rho_{\beta_{1j}\beta_{2j}} \\
     \rho_{\beta_{2j}\alpha_{j}} & \rho_{\beta_{2j}\beta_{1j}} & \sigma^2_{\beta_{2j}}
  \end{array}
\right)
 \right)
    \text{, for sch.id j = 1,} \dots \text{,J}
\end{aligned}""",
    # lmerMod.md, "Alternate random effect VCV structures work", equation 1
    "hsb_varsonly": r"""\begin{aligned}
  \operatorname{math}_{i}  &\sim N \left(\mu, \sigma^2 \right) \\
    \mu &=\alpha_{j[i]} + \beta_{1j[i]}(\operatorname{minority}) + \beta_{2j[i]}(\operatorname{female}) + \beta_{3j[i]}(\operatorname{female} \times \operatorname{minority}) \\
\left(
  \begin{array}{c}
    \begin{aligned}
      &\alpha_{j} \\
      &\beta_{1j} \\
      &\beta_{2j} \\
      &\beta_{3j}
    \end{aligned}
  \end{array}
\right)
  &\sim N \left(
\left(
  \begin{array}{c}
    \begin{aligned}
      &\mu_{\alpha_{j}} \\
      &\mu_{\beta_{1j}} \\
      &\mu_{\beta_{2j}} \\
      &\mu_{\beta_{3j}}
    \end{aligned}
  \end{array}
\right)
,
\left(
  \begin{array}{cccc}
     \sigma^2_{\alpha_{j}} & 0 & 0 & 0 \\
     0 & \sigma^2_{\beta_{1j}} & 0 & 0 \\
     0 & 0 & \sigma^2_{\beta_{2j}} & 0 \\
     0 & 0 & 0 & \sigma^2_{\beta_{3j}}
  \end{array}
\right)
 \right)
    \text{, for sch.id j = 1,} \dots \text{,J}
\end{aligned}""",
    # lmerMod.md, "Alternate random effect VCV structures work", equation 3
    "long_mixed_ranef": r"""\begin{aligned}
  \operatorname{score}_{i}  &\sim N \left(\alpha_{j[i],k[i],l[i],m[i]} + \beta_{1j[i],k[i],m[i]}(\operatorname{wave}), \sigma^2 \right) \\
\left(
  \begin{array}{c}
    \begin{aligned}
      &\alpha_{j} \\
      &\beta_{1j}
    \end{aligned}
  \end{array}
\right)
  &\sim N \left(
\left(
  \begin{array}{c}
    \begin{aligned}
      &\mu_{\alpha_{j}} \\
      &\mu_{\beta_{1j}}
    \end{aligned}
  \end{array}
\right)
,
\left(
  \begin{array}{cc}
     \sigma^2_{\alpha_{j}} & 0 \\
     0 & \sigma^2_{\beta_{1j}}
  \end{array}
\right)
 \right)
    \text{, for sid j = 1,} \dots \text{,J} \\
\left(
  \begin{array}{c}
    \begin{aligned}
      &\alpha_{k} \\
      &\beta_{1k}
    \end{aligned}
  \end{array}
\right)
  &\sim N \left(
\left(
  \begin{array}{c}
    \begin{aligned}
      &\mu_{\alpha_{k}} \\
      &\mu_{\beta_{1k}}
    \end{aligned}
  \end{array}
\right)
,
\left(
  \begin{array}{cc}
     \sigma^2_{\alpha_{k}} & \rho_{\alpha_{k}\beta_{1k}} \\
     \rho_{\beta_{1k}\alpha_{k}} & \sigma^2_{\beta_{1k}}
  \end{array}
\right)
 \right)
    \text{, for school k = 1,} \dots \text{,K} \\    \alpha_{l}  &\sim N \left(\mu_{\alpha_{l}}, \sigma^2_{\alpha_{l}} \right)
    \text{, for school.1 l = 1,} \dots \text{,L} \\
\left(
  \begin{array}{c}
    \begin{aligned}
      &\alpha_{m} \\
      &\beta_{1m}
    \end{aligned}
  \end{array}
\right)
  &\sim N \left(
\left(
  \begin{array}{c}
    \begin{aligned}
      &\mu_{\alpha_{m}} \\
      &\mu_{\beta_{1m}}
    \end{aligned}
  \end{array}
\right)
,
\left(
  \begin{array}{cc}
     \sigma^2_{\alpha_{m}} & 0 \\
     0 & \sigma^2_{\beta_{1m}}
  \end{array}
\right)
 \right)
    \text{, for district m = 1,} \dots \text{,M}
\end{aligned}""",
    # lmerMod.md, "Nested model syntax works", equation 1
    "nested_m1": r"""\begin{aligned}
  \operatorname{score}_{i}  &\sim N \left(\alpha_{j[i],k[i]}, \sigma^2 \right) \\
    \alpha_{j}  &\sim N \left(\mu_{\alpha_{j}}, \sigma^2_{\alpha_{j}} \right)
    \text{, for school:sid j = 1,} \dots \text{,J} \\
    \alpha_{k}  &\sim N \left(\mu_{\alpha_{k}}, \sigma^2_{\alpha_{k}} \right)
    \text{, for sid k = 1,} \dots \text{,K}
\end{aligned}""",
    # lmerMod.md, "Unconditional lmer models work", equation 2
    "um_long2": r"""\begin{aligned}
  \operatorname{score}_{i}  &\sim N \left(\alpha_{j[i],k[i]}, \sigma^2 \right) \\
    \alpha_{j}  &\sim N \left(\mu_{\alpha_{j}}, \sigma^2_{\alpha_{j}} \right)
    \text{, for sid j = 1,} \dots \text{,J} \\
    \alpha_{k}  &\sim N \left(\mu_{\alpha_{k}}, \sigma^2_{\alpha_{k}} \right)
    \text{, for school k = 1,} \dots \text{,K}
\end{aligned}""",
    # lmerMod.md, "Mean separate works as expected", equation 1
    "lev1_hsb_inline": r"""\begin{aligned}
  \operatorname{math}_{i}  &\sim N \left(\alpha_{j[i]} + \beta_{1}(\operatorname{female}) + \beta_{2}(\operatorname{ses}) + \beta_{3}(\operatorname{minority}), \sigma^2 \right) \\
    \alpha_{j}  &\sim N \left(\mu_{\alpha_{j}}, \sigma^2_{\alpha_{j}} \right)
    \text{, for sch.id j = 1,} \dots \text{,J}
\end{aligned}""",
    # lmerMod.md, "Categorical variable level parsing works (from issue #140)", equation 1
    "cat_interaction": r"""\begin{aligned}
  \operatorname{error}_{i}  &\sim N \left(\mu, \sigma^2 \right) \\
    \mu &=\alpha_{j[i]} + \beta_{1}(\operatorname{brochure}_{\operatorname{standard}}) + \beta_{2}(\operatorname{disease}_{\operatorname{DS}}) + \beta_{3}(\operatorname{brochure}_{\operatorname{standard}} \times \operatorname{disease}_{\operatorname{DS}}) \\
    \alpha_{j}  &\sim N \left(\mu_{\alpha_{j}}, \sigma^2_{\alpha_{j}} \right)
    \text{, for ID j = 1,} \dots \text{,J}
\end{aligned}""",
    # lmerMod.md, "Interactions work as expected", equation 3
    "cl_long1": r"""\begin{aligned}
  \operatorname{score}_{i}  &\sim N \left(\alpha_{j[i],k[i],l[i]} + \beta_{1j[i]}(\operatorname{wave}), \sigma^2 \right) \\
\left(
  \begin{array}{c}
    \begin{aligned}
      &\alpha_{j} \\
      &\beta_{1j}
    \end{aligned}
  \end{array}
\right)
  &\sim N \left(
\left(
  \begin{array}{c}
    \begin{aligned}
      &\gamma_{0}^{\alpha} + \gamma_{1}^{\alpha}(\operatorname{treatment}_{\operatorname{1}}) \\
      &\gamma^{\beta_{1}}_{0} + \gamma^{\beta_{1}}_{1}(\operatorname{treatment}_{\operatorname{1}})
    \end{aligned}
  \end{array}
\right)
,
\left(
  \begin{array}{cc}
     \sigma^2_{\alpha_{j}} & \rho_{\alpha_{j}\beta_{1j}} \\
     \rho_{\beta_{1j}\alpha_{j}} & \sigma^2_{\beta_{1j}}
  \end{array}
\right)
 \right)
    \text{, for sid j = 1,} \dots \text{,J} \\    \alpha_{k}  &\sim N \left(\mu_{\alpha_{k}}, \sigma^2_{\alpha_{k}} \right)
    \text{, for school k = 1,} \dots \text{,K} \\    \alpha_{l}  &\sim N \left(\mu_{\alpha_{l}}, \sigma^2_{\alpha_{l}} \right)
    \text{, for district l = 1,} \dots \text{,L}
\end{aligned}""",
    # glmerMod.md, "Binomial Logistic Regression models work", equation 1
    "polls_binomial": r"""\begin{aligned}
  \operatorname{bush}_{i}  &\sim \operatorname{Binomial}(n = 1, \operatorname{prob}_{\operatorname{bush} = 1} = \widehat{P}) \\
    \log\left[\frac{\hat{P}}{1 - \hat{P}} \right] &=\alpha_{j[i]} + \beta_{1j[i]}(\operatorname{black}) + \beta_{2}(\operatorname{female}) + \beta_{3}(\operatorname{edu}) \\
\left(
  \begin{array}{c}
    \begin{aligned}
      &\alpha_{j} \\
      &\beta_{1j}
    \end{aligned}
  \end{array}
\right)
  &\sim N \left(
\left(
  \begin{array}{c}
    \begin{aligned}
      &\mu_{\alpha_{j}} \\
      &\mu_{\beta_{1j}}
    \end{aligned}
  \end{array}
\right)
,
\left(
  \begin{array}{cc}
     \sigma^2_{\alpha_{j}} & \rho_{\alpha_{j}\beta_{1j}} \\
     \rho_{\beta_{1j}\alpha_{j}} & \sigma^2_{\beta_{1j}}
  \end{array}
\right)
 \right)
    \text{, for state j = 1,} \dots \text{,J}
\end{aligned}""",
    # glmerMod.md, "Standard Poisson regression models work", equation 2
    "p_complicated": r"""\begin{aligned}
  \operatorname{stops}_{i}  &\sim \operatorname{Poisson}(\lambda_i) \\
    \log(\lambda_i) &=\alpha_{j[i]} + \beta_{1j[i]}(\operatorname{eth}_{\operatorname{hispanic}}) + \beta_{2j[i]}(\operatorname{eth}_{\operatorname{white}}) \\
\left(
  \begin{array}{c}
    \begin{aligned}
      &\alpha_{j} \\
      &\beta_{1j} \\
      &\beta_{2j}
    \end{aligned}
  \end{array}
\right)
  &\sim N \left(
\left(
  \begin{array}{c}
    \begin{aligned}
      &\gamma_{0}^{\alpha} + \gamma_{1}^{\alpha}(\operatorname{total\_arrests}) \\
      &\gamma^{\beta_{1}}_{0} + \gamma^{\beta_{1}}_{1}(\operatorname{total\_arrests}) \\
      &\gamma^{\beta_{2}}_{0} + \gamma^{\beta_{2}}_{1}(\operatorname{total\_arrests})
    \end{aligned}
  \end{array}
\right)
,
\left(
  \begin{array}{ccc}
     \sigma^2_{\alpha_{j}} & \rho_{\alpha_{j}\beta_{1j}} & \rho_{\alpha_{j}\beta_{2j}} \\
     \rho_{\beta_{1j}\alpha_{j}} & \sigma^2_{\beta_{1j}} & \rho_{\beta_{1j}\beta_{2j}} \\
     \rho_{\beta_{2j}\alpha_{j}} & \rho_{\beta_{2j}\beta_{1j}} & \sigma^2_{\beta_{2j}}
  \end{array}
\right)
 \right)
    \text{, for precinct j = 1,} \dots \text{,J}
\end{aligned}""",
    # glmerMod.md, "Poisson regression models with an offset work", equation 1
    "p_offset1": r"""\begin{aligned}
  \operatorname{stops}_{i}  &\sim \operatorname{Poisson}(\lambda_i) \\
    \log(\lambda_i) &=\log(\operatorname{arrests}) + \alpha_{j[i]} + \beta_{1}(\operatorname{eth}_{\operatorname{hispanic}}) + \beta_{2}(\operatorname{eth}_{\operatorname{white}}) \\
    \alpha_{j}  &\sim N \left(\mu_{\alpha_{j}}, \sigma^2_{\alpha_{j}} \right)
    \text{, for precinct j = 1,} \dots \text{,J}
\end{aligned}""",
}


def norm(tex: str) -> str:
    """Whitespace-normalised LaTeX: runs of space as one, kept only between two letters or digits."""
    return re.sub(r"(?<=[^A-Za-z0-9]) | (?=[^A-Za-z0-9])", "", re.sub(r"\s+", " ", tex.strip()))


def check_tex(tex: str) -> None:
    """Braces, \\left/\\right and \\begin/\\end balance (the math itself is not compiled here)."""
    depth, stack = 0, []
    for m in re.finditer(r"\\[{}]|\\(begin|end)\{(\w+)\}|[{}]|\\left\b|\\right\b", tex):
        tok = m.group(0)
        if tok in ("{", "}"):
            depth += 1 if tok == "{" else -1
            assert depth >= 0, tex
        elif m.group(1) == "begin" or tok == r"\left":
            stack.append(m.group(2) or "left")
        elif m.group(1) == "end" or tok == r"\right":
            assert stack and stack.pop() == (m.group(2) or "left"), tex
    assert depth == 0 and not stack, tex


def eq(obj, **kwargs) -> str:
    tex = equation(obj, **kwargs).latex
    check_tex(tex)
    return tex


_COEF = re.compile(r"(-?)\s*(\d+(?:\.\d+)?)_\{(\\alpha(?:_\{[^{}]*\})?|\\beta_\{[^{}]*\}"
                   r"|\\gamma_\{\d+\}\^\{\\alpha\})\}")


def coefs(tex: str) -> dict[str, float]:
    """The estimates written before each symbol, by symbol (use_coefs's ``2.6_{\\alpha_{j[i]}}``)."""
    return {sym: float(sign + num) for sign, num, sym in _COEF.findall(tex)}


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(1)
    # hsb: students in schools; female, minority and ses vary within schools
    n_s, per = 30, 16
    hsb = pd.DataFrame({"sch.id": np.repeat([str(1000 + k) for k in range(n_s)], per),
                        "female": np.tile([0, 1] * 8, n_s), "minority": np.tile([0, 0, 1, 1] * 4, n_s),
                        "ses": rng.normal(size=n_s * per), "math": rng.normal(12, 3, n_s * per)})
    # sim_longitudinal: waves of students (sid) in schools in districts; treatment and group
    # are constant within students, prop_low within schools
    rows, sid = [], 0
    for d in range(6):
        for s in range(4):
            prop = rng.uniform()
            for _ in range(5):
                sid += 1
                tr, grp = str(rng.integers(2)), ["low", "medium", "high"][rng.integers(3)]
                rows += [dict(district=f"d{d}", school=f"s{d}_{s}", sid=str(sid), wave=w, treatment=tr,
                              group=grp, prop_low=prop, score=rng.normal(200, 10)) for w in range(5)]
    long = pd.DataFrame(rows).astype({"treatment": pd.CategoricalDtype(["0", "1"])})
    # polls: 0/1 votes by state; arrests: stops by ethnicity, total_arrests constant by precinct
    polls = pd.DataFrame({"state": rng.integers(0, 12, 400).astype(str), "bush": rng.integers(0, 2, 400),
                          "black": np.tile([0, 1, 0, 0], 100), "female": np.tile([0, 1], 200),
                          "edu": rng.integers(1, 5, 400)})
    arrests = pd.DataFrame([dict(precinct=str(p + 1), eth=e, total_arrests=100 + 37 * p,
                                 stops=int(rng.poisson(50)), arrests=int(rng.integers(5, 50)))
                            for p in range(12) for e in ("black", "hispanic", "white") for _ in range(3)])
    # test-lmerMod.R's DF (issue #140), as given there
    DF = pd.DataFrame({
        "brochure": pd.Categorical.from_codes([1, 0, 1, 0, 0, 0, 0, 1, 0, 0], ["pictorial", "standard"]),
        "disease": pd.Categorical.from_codes([0, 1, 1, 1, 0, 1, 1, 0, 0, 1], ["BC", "DS"]),
        "ID": [1, 2, 3, 4, 5, 1, 2, 3, 4, 5],
        "error": [5, 3.9, 70, 73.5, 0.2, 19.9, 60.6, 50.8, 0.1, 0.3]})
    return {"hsb": hsb, "long": long, "polls": polls, "arrests": arrests, "DF": DF,
            "gpa": hb.datasets.load("gpa")}


@pytest.mark.parametrize("name, formula, frame, kwargs", [
    ("hsb1", "math ~ female + ses + minority + (minority | sch.id)", "hsb", {}),
    ("hsb2", "math ~ female + ses + minority + (ses + female | sch.id)", "hsb", {}),
    ("hsb_varsonly", "math ~ minority * female + (minority * female || sch.id)", "hsb", {}),
    ("long_mixed_ranef", "score ~ wave + (wave || sid) + (wave | school) + (1 | school) "
     "+ (wave || district)", "long", {}),
    ("nested_m1", "score ~ 1 + (1 | sid / school)", "long", {}),
    ("um_long2", "score ~ 1 + (1 | sid) + (1 | school)", "long", {}),
    ("lev1_hsb_inline", "math ~ female + ses + minority + (1 | sch.id)", "hsb", {"mean_separate": False}),
    ("cat_interaction", "error ~ brochure * disease + (1 | ID)", "DF", {}),
    ("cl_long1", "score ~ treatment * wave + (wave | sid) + (1 | school) + (1 | district)", "long", {}),
    ("polls_binomial", "bush ~ 1 + black + female + edu + (black | state)", "polls", {"family": "binomial"}),
    ("p_complicated", "stops ~ eth * total_arrests + (eth | precinct)", "arrests", {"family": "poisson"}),
    ("p_offset1", "stops ~ eth + offset(log(arrests)) + (1 | precinct)", "arrests", {"family": "poisson"}),
])
def test_equatiomatic_snapshots(frames, name, formula, frame, kwargs):
    kwargs = dict(kwargs)
    separate = kwargs.pop("mean_separate", None)
    model = hb.Model(formula, frames[frame], **kwargs)
    assert norm(eq(model, mean_separate=separate)) == norm(SNAPSHOTS[name])


def test_normalisation_drops_only_whitespace():
    for tex in [SEED, *SNAPSHOTS.values()]:
        assert norm(tex).replace(" ", "") == re.sub(r"\s", "", tex)
    assert len({norm(t) for t in SNAPSHOTS.values()}) == len(SNAPSHOTS)


def test_seed_gpa_equation(frames):
    fit = hb.lmer("gpa ~ occasion + (1 | student)", frames["gpa"])
    assert norm(eq(fit)) == norm(SEED)
    assert eq(hb.Model("gpa ~ occasion + (1 | student)", frames["gpa"])) == eq(fit)
    assert str(e := equation(fit)) == repr(e) == e.latex
    assert e._repr_latex_() == e._repr_markdown_() == f"$$\n{e.latex}\n$$"


def test_group_level_predictors_move_to_their_level(frames):
    tex = eq(hb.Model("gpa ~ occasion + sex + highgpa + (occasion | student)", frames["gpa"]))
    first, student = tex.split(r"\text{, for student", 1)[0].split(r"\left(", 2)[1:]
    assert "sex" not in first and "highgpa" not in first
    assert (r"&\gamma_{0}^{\alpha} + \gamma_{1}^{\alpha}(\operatorname{sex}_{\operatorname{male}}) "
            r"+ \gamma_{2}^{\alpha}(\operatorname{highgpa})") in student
    # a predictor that varies within students, or whose coefficient varies, stays on the first line
    tex = eq(hb.Model("gpa ~ occasion * sex + (sex | student)", frames["gpa"]))
    assert r"\beta_{2j[i]}(\operatorname{sex}_{\operatorname{male}})" in tex
    assert r"\beta_{3}(\operatorname{occasion} \times \operatorname{sex}_{\operatorname{male}})" in tex


def test_use_coefs_are_the_fits_estimates(frames):
    fit = hb.lmer("gpa ~ occasion + sex + (occasion | student)", frames["gpa"])
    fx, vc = fit.fixef()["Estimate"], fit.varcorr()
    tex = eq(fit, use_coefs=True, digits=3)
    assert coefs(tex) == {r"\alpha_{j[i]}": round(fx["(Intercept)"], 3),
                          r"\beta_{1j[i]}": round(fx["occasion"], 3),
                          r"\gamma_{1}^{\alpha}": round(fx["sexmale"], 3)}
    sds, cor = vc[vc["var2"].isna()], vc.loc[vc["var2"].notna(), "sdcor"].item()
    sd = dict(zip(sds["var1"].fillna("sigma"), sds["sdcor"].round(3), strict=True))
    assert [float(x) for x in re.findall(r"(\d+(?:\.\d+)?)\^2", tex)] == [
        sd["sigma"], sd["(Intercept)"], sd["occasion"]]
    for r, a, b in re.findall(r"(-?[\d.]+) \\times ([\d.]+) \\times ([\d.]+)", tex):
        assert float(r) == round(cor, 3) and {float(a), float(b)} == {sd["(Intercept)"], sd["occasion"]}
    assert r"\mu_" not in tex and r"\sigma^2" not in tex and r"\rho" not in tex
    assert coefs(eq(fit, use_coefs=True))[r"\beta_{1j[i]}"] == round(fx["occasion"], 2)


def test_use_coefs_glmer_and_bayes(frames, sleep_fit):
    cbpp = hb.datasets.load("cbpp")
    fit = hb.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    tex = eq(fit, use_coefs=True)
    fx = fit.fixef()["Estimate"]
    assert coefs(tex) == {r"\alpha_{j[i]}": round(fx.iloc[0], 2),
                          **{rf"\beta_{{{k}}}": round(fx.iloc[k], 2) for k in (1, 2, 3)}}
    assert r"\operatorname{Binomial}(n = \operatorname{incidence}_{i} + " in tex
    assert rf"\alpha_{{j}} &\sim N \left(0, {round(fit.varcorr()['sdcor'].iloc[0], 2)}^2 \right)" in tex
    for point in ("mean", "median"):
        fx = sleep_fit.fixef(point=point)["Estimate"]
        got = coefs(eq(sleep_fit, use_coefs=True, digits=1, point=point))
        assert got == {r"\alpha_{j[i]}": round(fx["(Intercept)"], 1), r"\beta_{1j[i]}": round(fx["Days"], 1)}
    with pytest.raises(SettingsError, match="use_coefs=True writes a fit's estimates"):
        equation(sleep_fit.model, use_coefs=True)


def test_families_and_links(frames):
    cbpp, a = hb.datasets.load("cbpp"), frames["arrests"]
    probit = eq(hb.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                         family=hb.get_family("binomial", link="probit")))
    assert r"\Phi^{-1}\left(\hat{P}\right) &=\alpha_{j[i]}" in probit
    yes = frames["polls"].assign(bush=np.where(frames["polls"]["bush"] == 1, "yes", "no"))
    assert r"\operatorname{prob}_{\operatorname{bush} = \operatorname{yes}}" in eq(
        hb.Model("bush ~ female + (1 | state)", yes, family="bernoulli"))
    nb = eq(hb.Model("stops ~ eth + (1 | precinct)", a, family="negbinomial", offset=np.log(a["arrests"])))
    assert r"\operatorname{NegBinomial}(\mu = \lambda_i, \operatorname{shape} = \theta)" in nb
    assert r"\log(\lambda_i) &=\operatorname{offset}_{i} + \alpha_{j[i]}" in nb
    gamma = eq(hb.Model("size ~ period + (1 | herd)", cbpp, family=hb.get_family("gamma", link="log")),
               priors=True)
    assert r"\operatorname{Gamma}(\operatorname{shape} = \nu, \operatorname{rate} = \nu / \mu_i)" in gamma
    assert r"\nu &\sim \operatorname{Gamma}(0.01, 0.01)" in gamma


def test_residual_structures(frames):
    gpa = frames["gpa"]
    model = hb.Model("gpa ~ occasion + (1 | student)", gpa, sigma="~ factor(occasion)",
                     correlation=hb.ar1(time="occasion"))
    tex = eq(model)
    assert r"\left(\alpha_{j[i]} + \beta_{1}(\operatorname{occasion}), \sigma^2_{i} \right)" in tex
    assert r"\sigma_{i} &= \sigma\,\delta_{s[i]}\text{, for factor(occasion) s = 1,}" in tex
    assert (r"\operatorname{cor}\left(\epsilon_{i}, \epsilon_{i'}\right) &= \phi^{\left|"
            r"\operatorname{occasion}_{i} - \operatorname{occasion}_{i'}\right|}") in tex
    fit = hb.lmer(model.formula.formula, gpa, sigma="~ factor(occasion)", correlation=hb.ar1(time="occasion"))
    tex, params = eq(fit, use_coefs=True), fit.residual_params()
    ratios = ", ".join(f"{round(v, 2):g}" for v in params.iloc[:-1])
    assert rf"(\delta_{{1}}, \dots, \delta_{{6}}) = ({ratios})" in tex
    assert rf"= {round(params['phi'], 2):g}^{{\left|" in tex
    assert rf"\sigma_{{i}} &= {round(fit.sigma, 2):g}\," in tex
    varexp = eq(hb.Model("gpa ~ occasion + (1 | student)", gpa, sigma="~ occasion"))
    assert r"\sigma_{i} &= \sigma \exp\left(\delta_{1}(\operatorname{occasion})\right)" in varexp


def test_covariance_structures(frames):
    gpa = frames["gpa"]
    diag = eq(hb.Model("gpa ~ occasion + diag(0 + occas | student) + (1 | student)", gpa))
    assert r"u_{1j[i]}(\operatorname{occas}_{\operatorname{year\ 1\ semester\ 1}})" in diag
    assert r"\sigma^2_{\alpha_{j}} & 0 & 0 & 0 & 0 & 0 & 0 \\" in diag and r"&\mu_{\alpha_{j}} \\" in diag
    cs = eq(hb.Model("gpa ~ occasion + cs(0 + occas | student)", gpa))
    assert r"\sigma^2_{u_{1j}} & \rho_{j}\sigma_{u_{1j}}\sigma_{u_{2j}} & " in cs
    ar1 = eq(hb.Model("gpa ~ occasion + ar1(0 + occas | student)", gpa), priors=True)
    assert r"\sigma^2_{j} & \sigma^2_{j}\rho_{j} & \sigma^2_{j}\rho_{j}^{2} & " in ar1
    assert ar1.count(r"\sigma_{j} &\sim") == 1 and r"\rho_{j} &\sim \operatorname{Uniform}(-1, 1)" in ar1


def test_priors_lines(frames, sleepstudy):
    model = hb.Model("gpa ~ occasion + (1 | student)", frames["gpa"], priors={"b": "normal(0, 10)"})
    assert r"\beta_{1} &\sim \operatorname{Normal}(0, 10)" in eq(model, priors=True)
    model = hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy,
                     priors={"b": "normal(0, 50)", "sd": "student_t(3, 0, 50)", "cor": "lkj(2)"})
    tex = eq(model, priors=True)
    for line in (r"\mu_{\beta_{1j}} &\sim \operatorname{Normal}(0, 50)",
                 r"\sigma_{\alpha_{j}} &\sim \operatorname{Student\ t}^{+}(3, 0, 50)",
                 r"\operatorname{cor}\left(\alpha_{j}, \beta_{1j}\right) &\sim \operatorname{LKJ}(2)"):
        assert line in tex
    assert tex.count(r"&\sim") == 2 + len(model.priors.entries)


def test_names_are_escaped():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"y_%": rng.normal(size=60), "x&y#1": rng.normal(size=60), "z{1}": rng.normal(size=60),
                       "g$": np.repeat(np.arange(6), 10).astype(str), "t": np.tile(np.arange(10.0), 6)})
    tex = eq(hb.Model("`y_%` ~ `x&y#1` + `z{1}` + I(t^2) + log(t + 1) + (1 | `g$`)", df))
    for name in (r"\operatorname{y\_\%}_{i}", r"\operatorname{x\&y\#1}", r"\operatorname{z\{1\}}",
                 r"\operatorname{I(t^{2})}", r"\operatorname{\log(t\ +\ 1)}", r"\text{, for g\$ j"):
        assert name in tex


def test_refuses_what_it_cannot_write(frames):
    model = hb.Model("gpa ~ occasion + (1 | student)", frames["gpa"])
    with pytest.raises(SettingsError, match="takes a fit"):
        equation("gpa ~ occasion")
    with pytest.raises(SettingsError, match="priors=True"):
        equation(hb.lmer("gpa ~ occasion + (1 | student)", frames["gpa"]), priors=True)
    for kwargs in ({"digits": -1}, {"digits": 1.5}, {"point": "mode"}, {"mean_separate": "yes"}):
        with pytest.raises(SettingsError):
            equation(model, **kwargs)
    fake = types.SimpleNamespace(name="beta", link=types.SimpleNamespace(name="logit"))
    with pytest.raises(DataError, match="beta family with the logit link"):
        equation(dataclasses.replace(model.design, family=fake))
    df = pd.DataFrame({"y": np.random.default_rng(2).normal(size=60), "f": ["a", "b", "c"] * 20,
                       "h": ["u", "v"] * 30, "g": np.repeat(np.arange(6), 10).astype(str)})
    with pytest.raises(DataError, match="two or more cs"):
        equation(hb.Model("y ~ 1 + cs(0 + f | g) + cs(0 + h | g)", df))
    many = pd.DataFrame({"y": np.random.default_rng(3).normal(size=60),
                         **{f"g{k}": np.random.default_rng(k).integers(0, 3, 60).astype(str) for k in range(18)}})
    crossed = hb.Model("y ~ 1 + " + " + ".join(f"(1 | g{k})" for k in range(18)), many)
    with pytest.raises(DataError, match="18 grouping levels"):
        equation(crossed)
