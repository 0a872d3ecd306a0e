"""Predict, check and compare: every tool of the predictive workflow on sleepstudy.

``python examples/predict.py`` (about 10 s; writes ppc.png and prior_predictive.png to examples/out/)

1. REML predictions as lme4's ``predict``: with the subject's effects, at population
   level (``re_form="~0"``), and for a subject the fit never saw.
2. merTools-style simulated prediction intervals from the REML fit.
3. The Bayesian fit's predictions: a new subject's interval is wider than a seen one's,
   because its effects are drawn from the fitted population distribution.
4. Prior and posterior predictive checks, with p-values per statistic and subject.
5. ``simulate`` from both fits, and a simulate-and-refit check of the REML fit.
6. PSIS-LOO comparison of three random-effect structures.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib
import pandas as pd

import hierbayes as hb

matplotlib.use("Agg")
OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    df = hb.datasets.load("sleepstudy")
    new = pd.DataFrame({"Days": [0, 5, 9, 0, 5, 9],
                        "Subject": ["308"] * 3 + ["new_subject"] * 3})

    # 1-2. REML: lme4's predict, and merTools' predictInterval
    reml = hb.lmer("Reaction ~ Days + (Days | Subject)", df)
    table = new.assign(conditional=reml.predict(new), population=reml.predict(new, re_form="~0"))
    print("REML predictions (a new subject gets the population prediction):")
    print(table.round(2).to_string(index=False))
    print("\nSimulated 95% prediction intervals (merTools::predictInterval style):")
    print(new.join(reml.predict_interval(new, n_sims=2000, seed=1)).round(1).to_string(index=False))

    # 3. Bayesian predictions
    model = hb.Model("Reaction ~ Days + (Days | Subject)", df)
    fit = model.fit(draws=1000, tune=1000, chains=4, seed=1, progressbar=False)
    print("\nPosterior of the expected reaction time (kind='mean'):")
    print(new.join(fit.predict(new, seed=1)).round(1).to_string(index=False))
    print("\nPosterior predictive of a new observation (kind='response'):")
    print(new.join(fit.predict(new, kind="response", seed=1)).round(1).to_string(index=False))

    # 4. Predictive checks
    OUT.mkdir(exist_ok=True)
    model.plot_prior_predictive(draws=200, seed=1).savefig(OUT / "prior_predictive.png", dpi=80)
    fit.ppc_plot(seed=1).savefig(OUT / "ppc.png", dpi=80)
    p = fit.ppc_pvalues(seed=1)
    print("\nPosterior predictive p-values, whole data:")
    print(p[p["group"] == "(all)"].round(3).to_string(index=False))
    worst = p[p["group"] == "Subject"].assign(dist=lambda t: (t["p"] - 0.5).abs())
    print("\nThe most extreme per-subject p-values (values near 0 or 1 flag a misfit):")
    print(worst.nlargest(5, "dist").drop(columns="dist").round(3).to_string(index=False))

    # 5. simulate, and simulate-and-refit
    print("\nThree data sets simulated from the REML fit (new subject effects each time):")
    print(reml.simulate(3, seed=1).head().round(1).to_string())
    print("\nThree from the posterior (a different draw each):")
    print(fit.simulate(3, seed=1).head().round(1).to_string())
    sims = reml.simulate(20, seed=2)
    slopes = [reml.refit(sims[c]).fixef().loc["Days", "Estimate"] for c in sims]
    print(f"\nDays slope refitted to 20 simulated data sets: mean {pd.Series(slopes).mean():.2f}, "
          f"sd {pd.Series(slopes).std():.2f} (estimate {reml.fixef().loc['Days', 'Estimate']:.2f}, "
          f"SE {reml.fixef().loc['Days', 'Std. Error']:.2f})")

    # 6. LOO
    fits = {"slope": fit}
    for name, formula in [("intercept", "Reaction ~ Days + (1 | Subject)"),
                          ("null", "Reaction ~ 1 + (1 | Subject)")]:
        fits[name] = hb.Model(formula, df).fit(draws=1000, tune=1000, chains=4, seed=1,
                                               progressbar=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", hb.HierbayesWarning)
        table = hb.loo_compare(fits)
    print("\nPSIS-LOO comparison:")
    print(table[["rank", "elpd_loo", "p_loo", "elpd_diff", "dse", "weight"]].round(2).to_string())
    for w in caught:
        print("warning:", w.message)


if __name__ == "__main__":
    main()
