"""Fit sleepstudy both ways, Bayesian (NUTS) and REML, and compare them parameter by parameter.

``python examples/bayes_vs_reml.py``

How much did the priors, and the uncertainty in the variance components, move
the estimates? With 18 subjects the posterior SDs sit a little above the REML
estimates; the fixed effects barely move. arm::sim-style intervals hold the
variance components at their REML estimates, so they are narrower than the
posterior's. Then the REML side's p-values (lmerTest) and intervals (lme4's
profile and bootstrap).
"""

from __future__ import annotations

import hierbayes as hb


def main() -> None:
    df = hb.datasets.load("sleepstudy")
    model = hb.Model("Reaction ~ Days + (Days | Subject)", df)

    reml = model.fit_reml()
    print(reml.summary())
    print()
    print(reml.opt)

    fit = model.fit(draws=1000, tune=1000, chains=4, seed=1)
    print()
    print(hb.compare(fit, reml))

    sims = reml.sim(n_sims=4000, seed=1).summary()
    print("\narm::sim (theta held at its REML estimate):")
    print(sims[sims["kind"].isin(["fixef", "sigma"])].to_string(index=False))

    print("\nlmerTest's summary: Satterthwaite df and p-values")
    print(reml.fixef(ddf="satterthwaite").to_string(float_format="{:.4g}".format))
    print("\nlme4's 95% intervals: profile (default) and parametric bootstrap")
    print(reml.confint(method="profile").round(3))
    print(reml.confint(method="boot", n_sims=500, seed=1).round(3))

    print("\nLikelihood-ratio test of the Days slope (refitted by ML):")
    noslope = hb.lmer("Reaction ~ 1 + (Days | Subject)", df)
    print(hb.anova(noslope=noslope, slope=reml))


if __name__ == "__main__":
    main()
