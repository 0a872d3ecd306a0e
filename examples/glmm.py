"""The speed-dating GLMM of "Mixed Models with R" (section 20.7), by glmer's method and by Bayes.

``python examples/glmm.py``

The tutorial fits

    glmer(decision ~ sex + samerace + attractive_sc + sincere_sc + intelligent_sc + (1 | iid),
          data = speed_dating, family = binomial)

and reads mixedup's tables: the fixed effects with their z tests and Wald
intervals, and the variance component with its share of the variance. Here the
same model is fitted by the Laplace approximation (``hb.glmer``), then by NUTS
under the default priors, and the two are lined up by ``hb.compare``. With 498
raters and some 15 decisions each, the two agree closely: the posterior SD of
the rater effects sits a little above glmer's estimate, as a posterior
integrating over the fixed effects and the SD itself should.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import hierbayes as hb

FORMULA = "decision ~ sex + samerace + attractive_sc + sincere_sc + intelligent_sc + (1 | iid)"


def fixed_effects_table(fit: hb.GlmerFit) -> pd.DataFrame:
    """mixedup's ``extract_fixed_effects``: value, se, z, p_value and the 95% Wald interval."""
    fx = fit.fixef()
    ci = fit.confint(method="wald").loc[fx.index]
    table = pd.DataFrame({"value": fx["Estimate"], "se": fx["Std. Error"], "z": fx["z value"],
                          "p_value": fx["Pr(>|z|)"], "lower_2.5": ci.iloc[:, 0], "upper_97.5": ci.iloc[:, 1]})
    return table.rename(index={"(Intercept)": "Intercept"})


def variance_table(fit: hb.GlmerFit) -> pd.DataFrame:
    """mixedup's ``extract_vc``: each variance, its SD and its share of the total (a binomial
    GLMM has no residual variance, so one component has all of it)."""
    vc = fit.varcorr()
    variances = vc[vc["var2"].isna()] if "var2" in vc else vc
    return pd.DataFrame({"group": variances["grp"], "effect": variances["var1"],
                         "variance": variances["vcov"], "sd": variances["sdcor"],
                         "var_prop": variances["vcov"] / variances["vcov"].sum()}).reset_index(drop=True)


def main() -> None:
    df = hb.datasets.load("speed_dating")  # 7,707 rows; those with missing values are dropped, as R does

    ml = hb.glmer(FORMULA, df, family="binomial")
    print(ml.summary())
    print("\nFixed effects (mixedup::extract_fixed_effects):")
    print(fixed_effects_table(ml).round(3).to_string())
    print("\nVariance components (mixedup::extract_vc):")
    print(variance_table(ml).round(3).to_string(index=False))

    bayes = hb.Model(FORMULA, df, family="bernoulli").fit(draws=1000, tune=1000, chains=4, seed=1)
    print()
    print(bayes.summary())
    print("\nBayes (NUTS, default priors) beside glmer (Laplace):")
    print(hb.compare(bayes, ml))

    # what the attractiveness effect means on the probability scale, for a typical rater
    p = ml.predict(pd.DataFrame({"sex": ["Female"] * 2, "samerace": ["No"] * 2, "attractive_sc": [0.0, 1.0],
                                 "sincere_sc": [0.0] * 2, "intelligent_sc": [0.0] * 2, "iid": ["new"] * 2}),
                   type="response", re_form="~0")
    print(f"\nP(yes), a typical rater, attractiveness at its mean and one unit up: "
          f"{np.round(p.to_numpy(), 3).tolist()}")


if __name__ == "__main__":
    main()
