"""Planning a sleep-deprivation study: how many subjects for 80% power? (simr's powerCurve)

``python examples/power.py`` prints the power curve and writes examples/out/power.png.

The planned study is sleepstudy's design, ten days per subject, and the effect to detect is a
slope of 5 ms/day. Its other parameters are guesses taken from sleepstudy itself: the SDs of the
subjects' intercepts and slopes, their correlation and the residual SD of
``lmer(Reaction ~ Days + (Days | Subject))``. For each number of subjects, 200 data sets are
simulated from that model with new subjects and noise, each is refitted with and without
``Days`` by ML, and the likelihood-ratio test's rejections at 5% are counted (the intervals are
Clopper-Pearson's, as simr gives them). Sleepstudy's estimate of about 10 ms/day would need
far fewer subjects; a study planned on the smaller 5 ms/day is safe if the real effect is that
big.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import hierbayes as hb

ROOT = Path(__file__).resolve().parents[1]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # the parameters' guesses: sleepstudy's estimates
    fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
    vc = fit.varcorr()
    sd = vc.loc[vc["grp"] == "Subject", "sdcor"].to_numpy()
    print(vc, "\n")

    # the planned design: subjects x days, made with pandas (no response yet)
    plan = pd.DataFrame([(s, d) for s in range(1, 11) for d in range(10)],
                        columns=["Subject", "Days"])
    model = hb.power_design("Reaction ~ Days + (Days | Subject)", plan,
                         fixef={"(Intercept)": float(fit.fixef().loc["(Intercept)", "Estimate"]),
                                "Days": 5.0},
                         sd={"Subject": [sd[0], sd[1]]}, cor={"Subject": float(sd[2])},
                         sigma=float(fit.sigma))
    print(model, "\n")

    # the curve: 6 to 24 subjects (beyond the 10 planned, the subjects' rows are copied)
    curve = hb.power(model, test="lrt", along="Subject", levels=[6, 8, 10, 12, 14, 16, 20, 24],
                  n_sims=200, seed=2024, n_jobs=-1, progressbar=False)
    print(curve, "\n")
    enough = curve.table[curve.table["power"] >= 0.8]
    sure = curve.table[curve.table["conf_low"] >= 0.8]
    if len(enough):
        print(f"80% power from {int(enough['n_levels'].iloc[0])} subjects (point estimate); "
              + (f"from {int(sure['n_levels'].iloc[0])} with the interval above 80%."
                 if len(sure) else "no size tried has its whole interval above 80%."))
    fig = curve.plot()
    fig.savefig(out / "power.png", dpi=80)
    print(f"wrote {out / 'power.png'}")


if __name__ == "__main__":
    main(ROOT / "examples" / "out")
