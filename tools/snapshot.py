"""Print what hierbayes reports on the public examples, to check a refactor changed nothing.

``python tools/snapshot.py > before.txt``, change the code, run it again and
``diff before.txt after.txt``: summaries, coef, ranef, varcorr, arm::sim tables,
predictions and simulate output of REML and Bayesian fits (default, full centred,
full non-centred, marginal; gaussian, bernoulli, poisson) with fixed seeds.
Draws are few, so this takes about a minute; the numbers are not meant to be good
estimates, only to be reproducible to the last printed digit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

import hierbayes as hb

pd.set_option("display.width", 200)
pd.set_option("display.max_columns", 30)
pd.set_option("display.max_rows", 400)
pd.set_option("display.precision", 10)

SETTINGS = dict(draws=150, tune=150, chains=2, seed=3, progressbar=False, check=False)


def show(title: str, value) -> None:
    print(f"## {title}")
    if isinstance(value, dict):
        for k, v in value.items():
            print(f"-- {k}")
            print(v)
    else:
        print(value)
    print()


def lmer_block(name: str, fit) -> None:
    show(f"{name}: summary", fit.summary())
    show(f"{name}: summary satterthwaite", fit.summary(ddf="satterthwaite"))
    show(f"{name}: coef", fit.coef())
    show(f"{name}: ranef", fit.ranef())
    show(f"{name}: varcorr", fit.varcorr())
    show(f"{name}: theta", np.array2string(fit.theta, precision=12))
    sims = fit.sim(n_sims=200, seed=7)
    show(f"{name}: sim summary", sims.summary())
    show(f"{name}: sim coef", sims.coef())
    show(f"{name}: predict", np.array2string(np.asarray(fit.predict())[:20], precision=10))
    show(f"{name}: simulate", fit.simulate(n=2, seed=5).head(10))
    show(f"{name}: confint wald", fit.confint(method="wald"))


def bayes_block(name: str, fit) -> None:
    show(f"{name}: summary", fit.summary())
    show(f"{name}: coef", fit.coef())
    show(f"{name}: ranef", fit.ranef())
    show(f"{name}: varcorr", fit.varcorr())
    show(f"{name}: fixef", fit.fixef())
    show(f"{name}: predict", fit.predict().head(10))
    show(f"{name}: simulate", fit.simulate(n=2, seed=5).head(10))


def main() -> None:
    warnings.simplefilter("ignore")
    sleep = hb.datasets.load("sleepstudy")
    pupils = hb.datasets.load("pupils")
    nurses = hb.datasets.load("nurses")
    gpa = hb.datasets.load("gpa")
    speed = hb.datasets.load("speed_dating")
    ticks = hb.datasets.load("grouseticks")

    m = hb.Model("Reaction ~ Days + (Days | Subject)", sleep)
    lmer_block("sleepstudy REML", m.fit_reml())
    lmer_block("sleepstudy ML", m.fit_ml())
    for label, kw in [("default", {}), ("full centred", dict(marginal=False, centred=True)),
                      ("full non-centred", dict(marginal=False, centred=False)),
                      ("marginal", dict(marginal=True))]:
        bayes_block(f"sleepstudy bayes {label}", m.fit(**SETTINGS, **kw))
    lmer_block("sleepstudy uncorrelated", hb.lmer("Reaction ~ Days + (Days || Subject)", sleep))

    crossed = "achievement ~ sex + ses + (1 | primary_school_id) + (1 | secondary_school_id)"
    lmer_block("pupils REML", hb.lmer(crossed, pupils))
    bayes_block("pupils bayes", hb.Model(crossed, pupils).fit(**SETTINGS))
    nested = "stress ~ age + sex + experience + treatment + wardtype + hospsize + (1 | hospital/ward)"
    lmer_block("nurses REML", hb.lmer(nested, nurses))
    bayes_block("nurses bayes", hb.Model(nested, nurses).fit(**SETTINGS))
    lmer_block("gpa REML", hb.lmer("gpa ~ occasion + job + (occasion | student)", gpa))
    binary = hb.Model("decision ~ attractive_sc + fun_sc + (1 | iid)", speed, family="bernoulli")
    bayes_block("speed dating bernoulli", binary.fit(**SETTINGS))
    bayes_block("speed dating bernoulli centred", binary.fit(**SETTINGS, centred=True))
    counts = hb.Model("TICKS ~ cHEIGHT + factor(YEAR) + (1 | BROOD) + (1 | LOCATION)", ticks,
                      family="poisson")
    bayes_block("grouseticks poisson", counts.fit(**SETTINGS))


if __name__ == "__main__":
    main()
