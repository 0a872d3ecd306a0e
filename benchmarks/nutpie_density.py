"""Our NUTS against nutpie's, both on hierbayes's compiled density: ESS per gradient and per second.

Both samplers read the same packed model in the same form (the fit's default),
so what differs is the sampler alone: its warm-up, its metric (ours diagonal;
nutpie's diagonal, or its low-rank modified mass matrix) and its trajectories.
For each model, contender and seed: 4 chains x 1000 draws after 1000 warm-up,
the smallest bulk ESS over the headline parameters (fixed effects, SDs,
correlations, sigma), the post-warm-up gradients (the sum of ``n_steps``),
and the sampling seconds. The table gives the median over the seeds of
ESS per 1,000 gradients (free of the machine's load) and ESS/s (same run,
contenders interleaved seed by seed).

    python benchmarks/nutpie_density.py [--seeds 1 2 3] [--models sleepstudy pupils speed_dating]

Writes benchmarks/out/nutpie_density.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np

import hierbayes as hb
from hierbayes.bayes import nutpie_native
from hierbayes.bayes.diagnostics import ess_bulk

OUT = Path(__file__).resolve().parent / "out"

MODELS = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "gaussian"),
    "pupils": ("achievement ~ sex + ses + (1 | primary_school_id) + (1 | secondary_school_id)",
               "pupils", "gaussian"),
    "speed_dating": ("decision ~ sex + samerace + attractive_sc + sincere_sc + intelligent_sc + (1 | iid)",
                     "speed_dating", "bernoulli"),
}

CONTENDERS = ("hierbayes", "nutpie diag", "nutpie low-rank")


def fit_once(model: hb.Model, contender: str, seed: int, cores: int | None) -> dict:
    real = nutpie_native.sample
    if contender == "nutpie low-rank":
        nutpie_native.sample = partial(real, low_rank=True)  # what fit(sampler="nutpie") calls
    try:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hb.ConvergenceWarning)
            fit = model.fit(sampler="hierbayes" if contender == "hierbayes" else "nutpie", draws=1000,
                            tune=1000, chains=4, seed=seed, cores=cores, progressbar=False, check=False)
        wall = time.perf_counter() - t0
    finally:
        nutpie_native.sample = real
    ess = {k: ess_bulk(v) for k, v in fit.headline_draws().items()}
    worst = min(ess, key=ess.get)
    grads = float(fit.posterior.stats["n_steps"].sum())
    return {"min_ess_bulk": ess[worst], "worst": worst, "gradients": grads,
            "ess_per_1000_grad": 1000 * ess[worst] / grads, "sampling_s": fit.info.sampling_seconds,
            "ess_per_s": ess[worst] / fit.info.sampling_seconds, "wall_s": wall,
            "divergences": int(fit.posterior.stats["diverging"].sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--cores", type=int, default=None, help="threads per fit (default: each sampler's own)")
    args = parser.parse_args()
    if nutpie_native.unsupported():
        raise SystemExit(nutpie_native.unsupported())
    results: dict = {}
    for name in args.models:
        formula, data, family = MODELS[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hb.HierbayesWarning)  # speed_dating drops rows with NAs
            model = hb.Model(formula, hb.datasets.load(data), family=family)
        results[name] = {c: [] for c in CONTENDERS}
        for seed in args.seeds:
            for contender in CONTENDERS:
                r = fit_once(model, contender, seed, args.cores)
                results[name][contender].append(r)
                print(f"{name} {contender} seed {seed}: min ESS {r['min_ess_bulk']:.0f} ({r['worst']}), "
                      f"{r['ess_per_1000_grad']:.1f}/1000 grads, {r['ess_per_s']:.1f}/s, "
                      f"{r['divergences']} divergences", flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "nutpie_density.json").write_text(json.dumps(results, indent=1))
    lines = ["| model | sampler | min ESS-bulk | ESS / 1000 gradients | ESS/s | sampling s | "
             "gradients | worst parameter |", "|---|---|---|---|---|---|---|---|"]
    for name, by in results.items():
        for contender, runs in by.items():
            med = {k: float(np.median([r[k] for r in runs])) for k in
                   ("min_ess_bulk", "ess_per_1000_grad", "ess_per_s", "sampling_s", "gradients")}
            worst = max({r["worst"] for r in runs}, key=[r["worst"] for r in runs].count)
            lines.append(f"| {name} | {contender} | {med['min_ess_bulk']:.0f} | "
                         f"{med['ess_per_1000_grad']:.1f} | {med['ess_per_s']:.0f} | "
                         f"{med['sampling_s']:.2f} | {med['gradients']:.0f} | {worst} |")
    print(f"\nMedian of seeds {args.seeds}; 4 chains x 1000 draws after 1000 warm-up.\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
