"""Laplace, adaptive Gauss-Hermite quadrature and Bayes on the same GLMMs: where they disagree.

``python benchmarks/glmm_methods.py [--reps 100]`` writes ``results/glmm_methods.md`` and
``.json`` (the numbers docs/glmm.md quotes). Not a timing: a simulation study of the three
fits of a random-intercept logistic model ``y ~ x + (1 | g)``, intercept logit(p0),
slope 0.5, group SD 1, in three designs:

* ``many groups``: 100 groups of 10 rows, p0 = 0.3 (the easy case);
* ``rare events``: 50 groups of 10 rows, p0 = 0.02 (about 0.2 events per group);
* ``few groups``: 5 groups of 40 rows, p0 = 0.3.

For each of ``--reps`` data sets: hb.glmer with nAGQ = 1 (Laplace) and nAGQ = 25 (AGQ); for
the first ``--bayes`` data sets also the Bayesian fit (default priors, 4 x 500 draws), its
posterior median and 90% interval. Reported: the mean estimate of the group SD and of the
intercept, the share of singular (SD = 0) ML fits, the mean |Laplace - AGQ| difference, and
the coverage of the 90% intervals of the SD (profile-free: Bayes only; the ML fits' Wald
interval of a boundary SD is not defined).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import hierbayes as hb

RESULTS = Path(__file__).resolve().parent / "results"
DESIGNS = {"many groups": (100, 10, 0.3), "rare events": (50, 10, 0.02), "few groups": (5, 40, 0.3)}
TRUTH = {"slope": 0.5, "sd": 1.0}


def simulate(groups: int, per: int, p0: float, rng: np.random.Generator) -> pd.DataFrame:
    g = np.repeat(np.arange(groups), per)
    x = rng.normal(size=g.size)
    eta = np.log(p0 / (1 - p0)) + TRUTH["slope"] * x + rng.normal(0, TRUTH["sd"], groups)[g]
    y = rng.random(g.size) < 1 / (1 + np.exp(-eta))
    return pd.DataFrame({"y": y.astype(float), "x": x, "g": [f"g{j}" for j in g]})


def ml(df: pd.DataFrame, nAGQ: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = hb.glmer("y ~ x + (1 | g)", df, family="binomial", nAGQ=nAGQ)
    sd = float(fit.varcorr()["sdcor"].iloc[0])
    return {"sd": sd, "intercept": float(fit.fixef()["Estimate"].iloc[0]),
            "slope": float(fit.fixef()["Estimate"].iloc[1]), "singular": sd < 1e-4}


def bayes(df: pd.DataFrame, seed: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = hb.Model("y ~ x + (1 | g)", df, family="bernoulli").fit(draws=500, tune=500, chains=4,
                                                                      seed=seed, progressbar=False)
    sd = np.asarray(fit.posterior["sd_g"]).reshape(-1)
    b = np.asarray(fit.posterior["fixef"]).reshape(-1, 2)
    lo, hi = np.quantile(sd, [0.05, 0.95])
    return {"sd": float(np.median(sd)), "intercept": float(np.median(b[:, 0])),
            "slope": float(np.median(b[:, 1])), "covers": bool(lo <= TRUTH["sd"] <= hi),
            "divergences": int(fit.diagnostics().divergences)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--bayes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=19)
    args = ap.parse_args()
    out: dict = {"reps": args.reps, "bayes_reps": args.bayes, "truth": TRUTH, "designs": {}}
    t0 = time.perf_counter()
    for name, (groups, per, p0) in DESIGNS.items():
        rng = np.random.default_rng(args.seed)
        rows = []
        for rep in range(args.reps):
            df = simulate(groups, per, p0, rng)
            row = {"rep": rep, "events": int(df["y"].sum()), "intercept_true": float(np.log(p0 / (1 - p0)))}
            for label, k in (("laplace", 1), ("agq", 25)):
                row.update({f"{label}_{key}": v for key, v in ml(df, k).items()})
            if rep < args.bayes:
                row.update({f"bayes_{key}": v for key, v in bayes(df, rep + 1).items()})
            rows.append(row)
        t = pd.DataFrame(rows)
        b = t.dropna(subset=["bayes_sd"])
        summary = {
            "groups": groups, "per_group": per, "p0": p0, "mean_events": float(t["events"].mean()),
            "laplace_sd_mean": float(t["laplace_sd"].mean()), "agq_sd_mean": float(t["agq_sd"].mean()),
            "laplace_singular": float(t["laplace_singular"].mean()),
            "agq_singular": float(t["agq_singular"].mean()),
            "laplace_agq_sd_absdiff": float((t["laplace_sd"] - t["agq_sd"]).abs().mean()),
            "laplace_intercept_mean": float(t["laplace_intercept"].mean()),
            "agq_intercept_mean": float(t["agq_intercept"].mean()),
            "laplace_agq_intercept_absdiff": float((t["laplace_intercept"] - t["agq_intercept"]).abs().mean()),
            "intercept_true": float(np.log(p0 / (1 - p0))),
            # the same data sets, for Bayes against ML
            "subset_laplace_sd_mean": float(b["laplace_sd"].mean()),
            "subset_laplace_singular": float(b["laplace_singular"].mean()),
            "bayes_sd_median_mean": float(b["bayes_sd"].mean()),
            "bayes_sd_90_coverage": float(b["bayes_covers"].mean()),
            "bayes_divergent_fits": int((b["bayes_divergences"] > 0).sum()),
        }
        out["designs"][name] = summary
        print(name, json.dumps(summary, indent=1))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "glmm_methods.json").write_text(json.dumps(out, indent=1))
    lines = [
        "# Laplace, AGQ (nAGQ = 25) and Bayes on simulated random-intercept logistic models",
        "",
        f"`python benchmarks/glmm_methods.py --reps {args.reps} --bayes {args.bayes}` "
        f"(seed {args.seed}; {out['seconds']:.0f} s). Truth: slope 0.5, group SD 1. Bayes: default "
        "priors, 4 x 500 draws, on the first data sets of each design; its SD is the posterior median.",
        "",
        "| design | groups x rows | events per data set | true intercept | Laplace SD (mean) | AGQ SD (mean) "
        "| singular (Laplace / AGQ) | mean abs. Laplace - AGQ: SD, intercept | Laplace intercept (mean) "
        "| AGQ intercept (mean) | Bayes SD (mean of medians) [Laplace SD, same data] | Bayes 90% coverage of SD |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in out["designs"].items():
        lines.append(
            f"| {name} | {s['groups']} x {s['per_group']} | {s['mean_events']:.1f} | {s['intercept_true']:.2f} "
            f"| {s['laplace_sd_mean']:.3f} | {s['agq_sd_mean']:.3f} "
            f"| {s['laplace_singular']:.0%} / {s['agq_singular']:.0%} "
            f"| {s['laplace_agq_sd_absdiff']:.3f}, {s['laplace_agq_intercept_absdiff']:.3f} "
            f"| {s['laplace_intercept_mean']:.3f} | {s['agq_intercept_mean']:.3f} "
            f"| {s['bayes_sd_median_mean']:.3f} [{s['subset_laplace_sd_mean']:.3f}] "
            f"| {s['bayes_sd_90_coverage']:.0%} ({s['bayes_divergent_fits']} fits with divergences) |")
    (RESULTS / "glmm_methods.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
