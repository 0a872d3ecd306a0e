"""REML fits: hierbayes beside statsmodels MixedLM and lme4 (through Rscript), in one run.

Each contender fits in a fresh process (interpreter start to estimates); the
fit time alone is reported too. statsmodels is stopped after --cap seconds
(on InstEval it has run past 10 minutes and 11 GB). Peers that are not
installed are reported as such.

    make bench-reml     # or: python benchmarks/reml.py [--cap 120] [--repeat 5] [--baseline DIR]

``--baseline DIR`` runs the hierbayes in the checkout DIR as well, in the same run,
so a change's cost reads as a ratio (the fit time is the median of ``--repeat`` fits).

Writes benchmarks/out/reml.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import sys

from _common import OUT, PY_PEAK, R_PEAK, baseline_label, python_peer, r_peer, run, save, table

CASES = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "Subject"),
    "InstEval": ("y ~ service + (1 | s) + (1 | d) + (1 | dept)", None),
}

HIERBAYES = """
import json, statistics, time, hierbayes as hb
df = hb.datasets.load("{data}")
times = []
for _ in range({repeat}):
    t = time.perf_counter()
    fit = hb.lmer("{formula}", df)
    times.append(time.perf_counter() - t)
fit_s = statistics.median(times)
print(fit.summary())
print("RESULT", json.dumps({{"fit_s": round(fit_s, 3), "criterion": fit.deviance, "evaluations": fit.opt.evaluations, "peak_mib": {peak}}}))
"""

STATSMODELS_SLEEP = """
import json, time, pandas as pd, statsmodels.formula.api as smf
df = pd.read_csv("{csv}")
t = time.perf_counter()
fit = smf.mixedlm("Reaction ~ Days", df, groups=df["Subject"], re_formula="~Days").fit(reml=True)
print(fit.summary())
print("RESULT", json.dumps({{"fit_s": round(time.perf_counter() - t, 3), "criterion": -2 * fit.llf, "peak_mib": {peak}}}))
"""

STATSMODELS_INSTEVAL = """
import json, time, numpy as np, pandas as pd, statsmodels.formula.api as smf
df = pd.read_csv("{csv}")
for c in ["s", "d", "dept", "service"]:
    df[c] = df[c].astype(str)
t = time.perf_counter()
vc = {{"s": "0 + C(s)", "d": "0 + C(d)", "dept": "0 + C(dept)"}}
fit = smf.mixedlm("y ~ service", df, groups=np.ones(len(df)), vc_formula=vc).fit(reml=True)
print(fit.summary())
print("RESULT", json.dumps({{"fit_s": round(time.perf_counter() - t, 3), "criterion": -2 * fit.llf, "peak_mib": {peak}}}))
"""

LME4 = """
suppressMessages(library(lme4))
df <- read.csv("{csv}")
for (c in c({factors})) df[[c]] <- factor(df[[c]])
t <- proc.time()[["elapsed"]]
m <- lmer({formula}, df)
fit_s <- proc.time()[["elapsed"]] - t
print(summary(m))
cat(sprintf("RESULT {{\\"fit_s\\": %.3f, \\"criterion\\": %.6f, \\"peak_mib\\": %d}}\\n", fit_s, REMLcrit(m), {rpeak}))
"""

FACTORS = {"sleepstudy": '"Subject"', "InstEval": '"s", "d", "dept", "service"'}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cap", type=float, default=120.0, help="seconds before statsmodels is stopped")
    parser.add_argument("--repeat", type=int, default=5,
                        help="hierbayes fits per process; the fit time is their median")
    parser.add_argument("--baseline", help="a checkout of an older hierbayes: run it too")
    args = parser.parse_args()
    import hierbayes as hb

    OUT.mkdir(exist_ok=True)
    py = sys.executable
    record = {"python": sys.version.split()[0], "cap_s": args.cap, "cases": {}}
    markdown = []
    for data, (formula, _) in CASES.items():
        csv = OUT / f"{data}.csv"
        hb.datasets.load(data).to_csv(csv, index=False)
        fmt = {"data": data, "formula": formula, "csv": csv, "factors": FACTORS[data],
               "peak": PY_PEAK, "rpeak": R_PEAK, "repeat": args.repeat}
        results = {"hierbayes": run([py, "-c", HIERBAYES.format(**fmt)])}
        if args.baseline:
            results[f"hierbayes {baseline_label(args.baseline)}"] = run(
                [py, "-c", HIERBAYES.format(**fmt)], baseline=args.baseline)
        code = STATSMODELS_SLEEP if data == "sleepstudy" else STATSMODELS_INSTEVAL
        results["statsmodels MixedLM"] = python_peer("statsmodels", code.format(**fmt), timeout=args.cap)
        results["lme4"] = r_peer(LME4.format(**fmt))
        record["cases"][data] = {"formula": formula, "results": results}
        text = table(results, "hierbayes", [("fit_s", "fit only (s)", ".2f"),
                                            ("criterion", "REML criterion", ".4f"),
                                            ("peak_mib", "peak MiB", "d")])
        markdown.append(f"{data}: `{formula}` (REML)\n\n{text}\n")
        print(f"\n{markdown[-1]}")
    (OUT / "reml.md").write_text("\n".join(markdown))
    print(f"JSON: {save('reml', record)}; table: {OUT / 'reml.md'}")


if __name__ == "__main__":
    main()
