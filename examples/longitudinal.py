"""Residual structures for the gpa data of "Mixed Models with R" (section 20.6), by REML and by Bayes.

``python examples/longitudinal.py``

The tutorial fits four models of 200 students' grade point averages over six
semesters, each with a random intercept per student:

    lme(gpa ~ occasion, random = ~ 1 | student, weights = varIdent(form = ~ 1 | occasion))
    glmmTMB(gpa ~ occasion + (1 | student) + diag(0 + occas | student))
    lme(gpa ~ occasion, random = ~ 1 | student, correlation = corAR1(form = ~ occasion))
    glmmTMB(gpa ~ occasion + ar1(0 + occas | student) + (1 | student))

Here each is fitted by ``hb.lmer`` (nlme's REML for the first and third, glmmTMB's
ML for the glmmTMB two), then by NUTS under the default priors (``hb.Model``). The
Bayesian diag() model shows why the tutorial's glmmTMB alternative is a
workaround: its residual SD is not identified, the chains wander along the
ridge, and only each occasion's total within-student variance is determined.
The printed tables are mixedup's: fixed effects with SE and z, variance
components, and the tutorial's comparison of the residual variance per occasion
from the varIdent model (nlme's SD ratios times sigma, squared) with the
glmmTMB model's (each occasion's diag() variance plus the residual's; that
model's residual SD is not identified apart from the six SDs, but their sums
are).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import hierbayes as hb
from hierbayes.bayes.diagnostics import rhat

FORMULA = "gpa ~ occasion + (1 | student)"
DIAG = "gpa ~ occasion + (1 | student) + diag(0 + occas | student)"
AR1_TERM = "gpa ~ occasion + ar1(0 + occas | student) + (1 | student)"


def load() -> pd.DataFrame:
    gpa = hb.datasets.load("gpa")
    # the tutorial's occas is the occasion as a factor (levels 0..5)
    return gpa.assign(occas=pd.Categorical(gpa["occasion"].astype(int).astype(str),
                                           categories=[str(k) for k in range(6)]))


def fixed_effects_table(fit) -> pd.DataFrame:
    """mixedup's extract_fixed_effects: value, se, z (REML) or the posterior's mean and SD."""
    fx = fit.fixef()
    if "Std. Error" in fx:
        table = pd.DataFrame({"value": fx["Estimate"], "se": fx["Std. Error"],
                              "z": fx["Estimate"] / fx["Std. Error"]})
    else:
        table = pd.DataFrame({"value": fx["Estimate"], "se": fx["Est.Error"]})
    return table.rename(index={"(Intercept)": "Intercept"}).round(3)


def variance_table(fit) -> pd.DataFrame:
    """mixedup's extract_vc: each variance, its SD and its share of the total."""
    vc = fit.varcorr()
    vc = vc[vc["var2"].isna()]
    out = pd.DataFrame({"group": vc["grp"], "effect": vc["var1"].fillna(""),
                        "variance": vc["sdcor"] ** 2, "sd": vc["sdcor"]})
    out["var_prop"] = out["variance"] / out["variance"].sum()
    return out.reset_index(drop=True).round(3)


def residual_variance_by_occasion(varident, diag) -> pd.DataFrame:
    """The tutorial's table: the residual variance of each occasion under both models."""
    ratio = varident.residual_params()
    cov = diag.covariance()
    groups = [b.group for b in diag.design.blocks]
    within = cov[groups.index("student.1")].diagonal() + diag.sigma**2
    return pd.DataFrame({"relative_val": ratio.to_numpy(),
                         "hetero_res (varIdent)": (ratio.to_numpy() * varident.sigma) ** 2,
                         "hetero_res (diag term)": within}, index=ratio.index).round(5)


def identified_variances(fit) -> pd.DataFrame:
    """What the diag() model identifies: each occasion's within-student variance.

    The residual SD and the six diag() SDs trade off along a ridge (only their
    squares' sums are determined), so their own chains do not mix (R-hat far
    above 1.01) while each sum's do; ``sigma="~ occas"`` is the same model
    without the ridge.
    """
    post = fit.posterior
    sd = np.asarray(post["sd_student.1"])
    sigma = np.asarray(post["sigma"])
    within = sd**2 + sigma[..., None] ** 2
    rows = {level: {"posterior mean": within[..., k].mean(), "R-hat": rhat(within[..., k]),
                    "R-hat of its SD": rhat(sd[..., k])}
            for k, level in enumerate(fit.design.block("student.1").terms)}
    return pd.DataFrame(rows).T.round(4)


def main() -> None:
    gpa = load()
    reml = {
        "varIdent (nlme)": hb.lmer(FORMULA, gpa, sigma="~ occas"),
        "diag term (glmmTMB)": hb.lmer(DIAG, gpa, reml=False),
        "corAR1 (nlme)": hb.lmer(FORMULA, gpa, correlation=hb.ar1(time="occasion")),
        "ar1 term (glmmTMB)": hb.lmer(AR1_TERM, gpa, reml=False),
    }
    for name, fit in reml.items():
        print(f"\n== {name}: {'REML' if fit.reml else 'ML'}, logLik {fit.loglik:.4f}")
        print(fixed_effects_table(fit).to_string())
        print(variance_table(fit).head(3).to_string())
        if not fit.residual_params().empty:
            print(fit.residual_params().round(4).to_string())
    print("\n== residual variance per occasion (20.6.1)")
    print(residual_variance_by_occasion(reml["varIdent (nlme)"], reml["diag term (glmmTMB)"]).to_string())
    print("\n" + str(reml["corAR1 (nlme)"].summary()))

    bayes = {
        "varIdent": hb.Model(FORMULA, gpa, sigma="~ occas"),
        "diag term": hb.Model(DIAG, gpa),
        "corAR1": hb.Model(FORMULA, gpa, correlation=hb.ar1(time="occasion")),
        "ar1 term": hb.Model(AR1_TERM, gpa),
    }
    for name, model in bayes.items():
        # the diag model's occasion variances are on a ridge: it warns that its chains disagree
        fit = model.fit(draws=1000, tune=1000, chains=4, seed=1, progressbar=False)
        d = fit.diagnostics()
        print(f"\n== Bayes, {name} ({fit.info.sampler}): max R-hat {d.max_rhat:.3f}, "
              f"min ESS-bulk {d.min_ess_bulk:.0f}")
        print(fixed_effects_table(fit).to_string())
        if not fit.residual_params().empty:
            print(pd.DataFrame({"posterior mean": fit.residual_params(),
                                "REML": reml[next(k for k in reml if k.startswith(name))]
                                .residual_params()}).round(3).to_string())
        elif name == "diag term":
            print(identified_variances(fit).to_string())
        else:
            print(variance_table(fit).head(3).to_string())
    print(f"\n(numpy {np.__version__}; hierbayes {hb.__version__})")


if __name__ == "__main__":
    main()
