"""Wall time of a whole fresh process fitting sleepstudy, hierbayes beside its peers.

Each contender runs in its own Python (or R) process, from interpreter start to
printed estimates, in the same run, so the numbers are comparable ratios.
Peers that are not installed are reported as such, not skipped silently.

    make bench            # or: python benchmarks/sleepstudy.py [--draws 1000]

Writes benchmarks/out/sleepstudy.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys

from _common import OUT, PY_PEAK, R_PEAK, python_peer, r_peer, run, save, table

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
    results["bambi + nutpie"] = python_peer("bambi", BAMBI.format(**fmt))
    results["statsmodels MixedLM (REML)"] = python_peer("statsmodels", STATSMODELS.format(**fmt))
    results["lme4 (REML)"] = r_peer(LME4.format(**fmt))

    record = {"dataset": "sleepstudy", "formula": FORMULA, "chains": 4, "draws": args.draws,
              "tune": args.draws, "python": sys.version.split()[0], "results": results}
    print(f"sleepstudy, {FORMULA}, 4 chains x {args.draws} draws + {args.draws} tuning\n")
    print(table(results, "hierbayes (warm cache)", [
        ("sampling_s", "sampling (s)", ".2f"), ("min_ess_bulk", "min ESS-bulk", ".0f"),
        ("divergences", "divergences", "d"), ("peak_mib", "peak MiB", "d")]))
    print(f"\nJSON: {save('sleepstudy', record)}")

if __name__ == "__main__":
    main()
