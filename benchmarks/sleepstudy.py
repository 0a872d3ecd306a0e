"""Wall time of a whole fresh process fitting sleepstudy, hierbayes beside its peers.

Each contender runs in its own Python (or R) process, from interpreter start to
printed estimates, in the same run, so the numbers are comparable ratios.
Peers that are not installed are reported as such, not skipped silently.

    make bench            # or: python benchmarks/sleepstudy.py [--draws 1000]

Writes benchmarks/out/sleepstudy.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys

from _common import OUT, PY_PEAK, R_PEAK, run

FORMULA = "Reaction ~ Days + (Days | Subject)"

HIERBAYES = """
import time, json, hierbayes as hb
df = hb.datasets.load("sleepstudy")
fit = hb.Model("{formula}", df).fit(draws={draws}, tune={draws}, chains=4, seed=1, progressbar=False)
d = fit.diagnostics()
print(fit.summary())
print("RESULT", json.dumps({{"sampling_s": fit.info.sampling_seconds, "compile_s": fit.info.compile_seconds,
      "min_ess_bulk": d.min_ess_bulk, "divergences": d.divergences, "peak_mib": {peak}}}))
"""

BAMBI = """
import time, json, bambi as bmb, arviz as az, pandas as pd
df = pd.read_csv("{csv}")
df["Subject"] = df["Subject"].astype(str)
m = bmb.Model("{formula}", df)
t = time.perf_counter()
idata = m.fit(draws={draws}, tune={draws}, chains=4, random_seed=1, inference_method="nutpie", progressbar=False)
s = time.perf_counter() - t
summ = az.summary(idata, var_names=["Intercept", "Days", "sigma"])
print(summ)
print("RESULT", json.dumps({{"sampling_s": s, "min_ess_bulk": float(summ["ess_bulk"].min()),
      "divergences": int(idata.sample_stats["diverging"].sum()), "peak_mib": {peak}}}))
"""

STATSMODELS = """
import json, pandas as pd, statsmodels.formula.api as smf
df = pd.read_csv("{csv}")
fit = smf.mixedlm("Reaction ~ Days", df, groups=df["Subject"], re_formula="~Days").fit(reml=True)
print(fit.summary())
print("RESULT", json.dumps({{"peak_mib": {peak}}}))
"""

LME4 = """
suppressMessages(library(lme4))
df <- read.csv("{csv}"); df$Subject <- factor(df$Subject)
m <- lmer({formula}, df)
print(summary(m))
cat(sprintf("RESULT {{\\"peak_mib\\": %d}}\\n", {rpeak}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--draws", type=int, default=1000, help="draws and tuning steps per chain")
    args = parser.parse_args()
    import hierbayes as hb

    OUT.mkdir(exist_ok=True)
    csv = OUT / "sleepstudy.csv"
    hb.datasets.load("sleepstudy").to_csv(csv, index=False)
    fmt = {"formula": FORMULA, "draws": args.draws, "csv": csv, "peak": PY_PEAK, "rpeak": R_PEAK}
    py = sys.executable
    results: dict[str, dict] = {}
    # Twice: the first run may fill numba's and PyTensor's caches (cold), the second uses them.
    results["hierbayes (first run)"] = run([py, "-c", HIERBAYES.format(**fmt)])
    results["hierbayes (warm cache)"] = run([py, "-c", HIERBAYES.format(**fmt)])
    if importlib.util.find_spec("bambi"):
        results["bambi + nutpie"] = run([py, "-c", BAMBI.format(**fmt)])
    else:
        results["bambi + nutpie"] = {"status": "not installed"}
    if importlib.util.find_spec("statsmodels"):
        results["statsmodels MixedLM (REML)"] = run([py, "-c", STATSMODELS.format(**fmt)])
    else:
        results["statsmodels MixedLM (REML)"] = {"status": "not installed"}
    if shutil.which("Rscript"):
        results["lme4 (REML)"] = run(["Rscript", "-e", LME4.format(**fmt)])
    else:
        results["lme4 (REML)"] = {"status": "Rscript not found"}

    record = {"dataset": "sleepstudy", "formula": FORMULA, "chains": 4, "draws": args.draws,
              "tune": args.draws, "python": sys.version.split()[0], "results": results}
    (OUT / "sleepstudy.json").write_text(json.dumps(record, indent=2))
    base = results["hierbayes (warm cache)"].get("wall_s")
    print(f"sleepstudy, {FORMULA}, 4 chains x {args.draws} draws + {args.draws} tuning\n")
    print("| contender | status | wall (s) | x hierbayes | sampling (s) | min ESS-bulk | divergences |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        wall = r.get("wall_s")
        ratio = f"{wall / base:.2f}" if wall and base else ""
        cells = [name, r["status"], f"{wall:.1f}" if wall else "", ratio,
                 f"{r['sampling_s']:.2f}" if "sampling_s" in r else "",
                 f"{r['min_ess_bulk']:.0f}" if "min_ess_bulk" in r else "",
                 str(r.get("divergences", ""))]
        print("| " + " | ".join(cells) + " |")
    print(f"\nJSON: {OUT / 'sleepstudy.json'}")


if __name__ == "__main__":
    main()
