"""The sampler's efficiency: min ESS-bulk per 1,000 gradients and per second, median over seeds.

Wall-clock ESS/s on shared cores varies by 15% between runs; ESS per gradient
(post-warm-up leapfrog steps, the ``n_steps`` statistic summed) does not depend
on the machine's load, so a change to the sampler's algorithm shows there
first. For each model and seed, each contender runs in a fresh process:

* ``hierbayes`` as ``fit()`` runs it;
* ``hierbayes, Stan's warm-up``: the first metric 1, as Stan's, instead of
  hierbayes's curvature-based one (``nuts.sample(curvature=False)``);
* with ``--baseline DIR``, the hierbayes of an older checkout, in the same run.

    make bench-sampler                       # or: python benchmarks/sampler.py
    python benchmarks/sampler.py --only speed_dating --seeds 1 2 3 --baseline ../base

Writes benchmarks/results/sampler.json and benchmarks/results/sampler.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from _common import baseline_label, run

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

MODELS = {
    "sleepstudy": {"formula": "Reaction ~ Days + (Days | Subject)", "chains": 4, "draws": 1000,
                   "tune": 1000},
    "pupils": {"formula": "achievement ~ sex + ses + (1 | primary_school_id) + (1 | secondary_school_id)",
               "chains": 4, "draws": 1000, "tune": 1000},
    "InstEval": {"formula": "y ~ service + (1 | s) + (1 | d) + (1 | dept)", "chains": 2, "draws": 500,
                 "tune": 500},
    "speed_dating": {"formula": "decision ~ sex + samerace + attractive_sc + sincere_sc + intelligent_sc + "
                                "(1 | iid)", "family": "bernoulli", "chains": 4, "draws": 1000, "tune": 1000},
}

CODE = """
import functools, json, time, warnings
import numpy as np
import hierbayes as hb
if {stan_warmup}:
    import hierbayes.bayes.nuts as N
    N.sample = functools.partial(N.sample, curvature=False)
warnings.simplefilter("ignore")
df = hb.datasets.load({data!r})
kw = {{"family": {family!r}}} if {family!r} != "gaussian" else {{}}
t0 = time.perf_counter()
fit = hb.Model({formula!r}, df, **kw).fit(draws={draws}, tune={tune}, chains={chains}, seed={seed},
                                       progressbar=False, check=False)
wall = time.perf_counter() - t0
d = fit.diagnostics()
grads = float(np.sum(fit.posterior.stats["n_steps"]))
print("RESULT " + json.dumps({{"min_ess_bulk": d.min_ess_bulk, "lowest": d.table["ess_bulk"].idxmin(),
      "gradients": grads, "sampling_s": fit.info.sampling_seconds, "fit_s": wall,
      "divergences": d.divergences, "max_rhat": d.max_rhat}}))
"""


def one(model: str, spec: dict, seed: int, stan_warmup: bool, baseline: str | None) -> dict:
    code = CODE.format(data=model, formula=spec["formula"], family=spec.get("family", "gaussian"),
                       draws=spec["draws"], tune=spec["tune"], chains=spec["chains"], seed=seed,
                       stan_warmup=stan_warmup)
    r = run([sys.executable, "-c", code], timeout=1200, baseline=baseline)
    if r.get("status") == "ok":
        r["ess_per_1000_grad"] = 1000 * r["min_ess_bulk"] / r["gradients"]
        r["ess_per_s"] = r["min_ess_bulk"] / r["fit_s"]
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(MODELS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[1, 2, 3])
    parser.add_argument("--baseline", help="a checkout of an older hierbayes to run beside this one")
    parser.add_argument("--no-stan-warmup", action="store_true", help="leave out the Stan-warm-up variant")
    args = parser.parse_args()
    contenders = {"hierbayes": (False, None)}
    if not args.no_stan_warmup:
        contenders["hierbayes, Stan's warm-up"] = (True, None)
    if args.baseline:
        contenders[f"hierbayes {baseline_label(args.baseline)}"] = (False, args.baseline)
    record: dict = {"cores": os.cpu_count(), "seeds": args.seeds, "models": {}}
    lines = ["Median over seeds " + ", ".join(map(str, args.seeds)) + f" on {os.cpu_count()} cores; "
             "ESS is the minimum bulk ESS over fixed effects, SDs, correlations and sigma; gradients "
             "are post-warm-up leapfrog steps; ESS/s divides by the whole fit's time (warm-up included).", ""]
    for model in args.only or list(MODELS):
        spec = MODELS[model]
        lines += [f"### {model}: `{spec['formula']}`, {spec['chains']} x {spec['draws']} after {spec['tune']}",
                  "", "| contender | ESS / 1000 gradients | ESS/s | min ESS | gradients | fit (s) | "
                  "divergences | lowest ESS |", "|---|---|---|---|---|---|---|---|"]
        record["models"][model] = {}
        for label, (stan, base) in contenders.items():
            runs = [one(model, spec, s, stan, base) for s in args.seeds]
            record["models"][model][label] = runs
            ok = [r for r in runs if r.get("status") == "ok"]
            if not ok:
                lines.append(f"| {label} | {runs[0].get('status')} | | | | | | |")
                continue

            def med(key: str, rows: list = ok) -> float:
                return statistics.median(r[key] for r in rows)

            lines.append(f"| {label} | {med('ess_per_1000_grad'):.1f} | {med('ess_per_s'):.1f} | "
                         f"{med('min_ess_bulk'):.0f} | {med('gradients'):.0f} | {med('fit_s'):.1f} | "
                         f"{sum(r['divergences'] for r in ok)} | {ok[0]['lowest']} |")
            print(lines[-1], flush=True)
        lines.append("")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sampler.json").write_text(json.dumps(record, indent=1))
    (RESULTS / "sampler.md").write_text("# Sampler efficiency (benchmarks/sampler.py)\n\n" + "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
