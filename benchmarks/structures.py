"""Covariance structures (issue 20, item 6): several terms on one grouping factor, residual
structures and glmmTMB's structured terms, by hierbayes's two engines beside lme4, nlme,
glmmTMB and brms.

Every contender runs in a fresh process and reads the same CSV under benchmarks/out/
(the gpa data of seed 001 section 20.6: 200 students x 6 occasions, ``occas`` the
occasion as a factor, ``occ0`` ... ``occ5`` its indicators; and sleepstudy).

1. REML/ML. Each process fits ``--repeat`` times; the row's fit time is their median
   (the first fit, which pays for lazy imports, is reported apart), the logLik the
   last fit's, beside its peer's in the same run:

   * ``(1 | g) + (0 + x | g)`` (sleepstudy and gpa) and the seven-term varIdent
     workaround ``(1 | student) + (0 + occ0 | student) + ... + (0 + occ5 | student)``
     by ``hb.lmer`` and lme4's ``lmer`` (``check.nobs.vs.nRE = "ignore"``: the
     workaround has more effects than rows), the correlated ``(occasion | student)``
     for scale;
   * ``sigma="~ occas"`` (nlme's ``varIdent(form = ~ 1 | occasion)``),
     ``correlation=hb.ar1(time="occasion")`` (``corAR1(form = ~ occasion)``) and both,
     by REML beside ``nlme::lme``;
   * ``diag(0 + occas | student)``, ``ar1(0 + occas | student)`` and
     ``cs(0 + occas | student)`` terms by ML beside glmmTMB.

2. NUTS, 4 chains x ``--draws`` after as many warm-up steps: hierbayes's default
   sampler and priors (seeds ``--seeds``; the row: the seed with the median ESS/s)
   on the two-term and correlated forms (sleepstudy, gpa), the varIdent and the
   AR(1) models, beside brms (default priors, ``sigma ~ occas`` and
   ``ar(time = occasion, gr = student)``; compile time apart from sampling, seed 1).
   Min ESS-bulk and max R-hat are over the fixed effects, SDs, correlations and the
   residual structure's parameters; ESS/s divides by the sampling time, warm-up
   included. The two-term rows give the ratio of their sampling time and ESS/s to
   the correlated form's (issue 20 measured 5.9 s against 0.3 s before terms on one
   factor were handled together).

    make bench-structures   # or: python benchmarks/structures.py [--only reml bayes] [--no-brms]

Writes benchmarks/results/structures.json and benchmarks/results/structures.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import OUT, PY_PEAK, R_PEAK, run, table
from glmm import median_run, r_package

import hierbayes as hb

RESULTS = Path(__file__).resolve().parent / "results"
SEVEN = " + ".join(f"(0 + occ{k} | student)" for k in range(6))

# name: (data, hierbayes formula, hb.lmer keywords, peer package, peer call); the call's
# {formula} is the hierbayes formula, the same text in R
REML_CASES: dict[str, tuple[str, str, str, str, str]] = {
    "sleepstudy (1|S) + (0+Days|S)": (
        "sleepstudy", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", "", "lme4", "lmer({formula}, df)"),
    "sleepstudy (Days|S)": ("sleepstudy", "Reaction ~ Days + (Days | Subject)", "", "lme4", "lmer({formula}, df)"),
    "gpa (1|s) + (0+occasion|s)": (
        "gpa", "gpa ~ occasion + (1 | student) + (0 + occasion | student)", "", "lme4", "lmer({formula}, df)"),
    "gpa (occasion|s)": ("gpa", "gpa ~ occasion + (occasion | student)", "", "lme4", "lmer({formula}, df)"),
    "gpa seven terms (varIdent workaround)": (
        "gpa", f"gpa ~ occasion + (1 | student) + {SEVEN}", "", "lme4",
        "lmer({formula}, df, control = lmerControl(check.nobs.vs.nRE = 'ignore'))"),
    "gpa varIdent": (
        "gpa", "gpa ~ occasion + (1 | student)", "sigma='~ occas'", "nlme",
        "lme(gpa ~ occasion, random = ~ 1 | student, weights = varIdent(form = ~ 1 | occas), data = df)"),
    "gpa corAR1": (
        "gpa", "gpa ~ occasion + (1 | student)", "correlation=hb.ar1(time='occasion')", "nlme",
        "lme(gpa ~ occasion, random = ~ 1 | student, correlation = corAR1(form = ~ occasion), data = df)"),
    "gpa varIdent + corAR1": (
        "gpa", "gpa ~ occasion + (1 | student)", "sigma='~ occas', correlation=hb.ar1(time='occasion')", "nlme",
        "lme(gpa ~ occasion, random = ~ 1 | student, weights = varIdent(form = ~ 1 | occas), "
        "correlation = corAR1(form = ~ occasion), data = df)"),
    "gpa diag() term, ML": (
        "gpa", "gpa ~ occasion + (1 | student) + diag(0 + occas | student)", "reml=False", "glmmTMB",
        "glmmTMB({formula}, df)"),
    "gpa ar1() term, ML": (
        "gpa", "gpa ~ occasion + ar1(0 + occas | student) + (1 | student)", "reml=False", "glmmTMB",
        "glmmTMB({formula}, df)"),
    "gpa cs() term, ML": ("gpa", "gpa ~ occasion + cs(0 + occas | student)", "reml=False", "glmmTMB",
                          "glmmTMB({formula}, df)"),
}

# name: (data, hierbayes formula, hb.Model keywords, brms formula); the first three are the
# REML case's of that name, the brms formula a template of the hierbayes one as above
BRMS = {
    "sleepstudy (1|S) + (0+Days|S)": "{formula}",
    "sleepstudy (Days|S)": "{formula}",
    "gpa (1|s) + (0+occasion|s)": "{formula}",
    "gpa (occasion|s)": "{formula}",
    "gpa varIdent": "bf({formula}, sigma ~ occas)",
    "gpa corAR1": "{formula} + ar(time = occasion, gr = student, p = 1)",
}
BAYES_CASES: dict[str, tuple[str, str, str, str]] = {
    name: (*REML_CASES[name][:3], brms) for name, brms in BRMS.items()}
# the two-term rows and the correlated form each is compared with
PAIRS = {"sleepstudy (1|S) + (0+Days|S)": "sleepstudy (Days|S)", "gpa (1|s) + (0+occasion|s)": "gpa (occasion|s)"}
FACTORS = {"sleepstudy": '"Subject"', "gpa": '"student", "occas"'}

HB_REML = """
import json, statistics, time, pandas as pd, hierbayes as hb
df = pd.read_csv("{csv}", dtype={{c: str for c in ("Subject", "student", "occas")}})
times = []
for _ in range({repeat}):
    t = time.perf_counter()
    fit = hb.lmer("{formula}", df, {kwargs})
    times.append(time.perf_counter() - t)
print(fit.summary())
print("RESULT", json.dumps({{"fit_s": round(statistics.median(times), 4), "first_fit_s": round(times[0], 4),
      "logLik": fit.loglik, "evaluations": fit.opt.evaluations, "peak_mib": {peak}}}))
"""

R_REML = """
df <- read.csv("{csv}")
for (c in c({factors})) df[[c]] <- factor(df[[c]])
suppressMessages(library({package}))
times <- numeric(0)
for (i in seq_len({repeat})) {{
  t <- proc.time()[["elapsed"]]
  m <- {call}
  times <- c(times, proc.time()[["elapsed"]] - t)
}}
print(summary(m))
cat(sprintf("RESULT {{\\"fit_s\\": %.4f, \\"first_fit_s\\": %.4f, \\"logLik\\": %.6f, \\"peak_mib\\": %d}}\\n",
    median(times), times[1], as.numeric(logLik(m)), {rpeak}))
"""

HB_BAYES = """
import json, time, numpy as np, pandas as pd, hierbayes as hb
df = pd.read_csv("{csv}", dtype={{c: str for c in ("Subject", "student", "occas")}})
t = time.perf_counter()
fit = hb.Model("{formula}", df, {kwargs}).fit(draws={draws}, tune={draws}, chains=4, seed={seed},
                                              progressbar=False, check=False)
fit_s = time.perf_counter() - t
d = fit.diagnostics()
print(fit.summary())
print("RESULT", json.dumps({{"sampling_s": fit.info.sampling_seconds, "compile_s": fit.info.compile_seconds,
      "fit_s": round(fit_s, 2), "sampler": fit.info.sampler, "min_ess_bulk": d.min_ess_bulk,
      "max_rhat": d.max_rhat, "divergences": d.divergences, "worst": d.table["ess_bulk"].idxmin(),
      "leapfrog_per_draw": float(np.mean(fit.posterior.stats["n_steps"])), "peak_mib": {peak}}}))
"""

BRMS = """
df <- read.csv("{csv}")
for (c in c({factors})) df[[c]] <- factor(df[[c]])
suppressMessages(library(brms))
el <- function() proc.time()[["elapsed"]]
t <- el()
m0 <- brm({formula}, df, family = gaussian(), chains = 0, refresh = 0)
compile_s <- el() - t
t <- el()
m <- update(m0, recompile = FALSE, chains = 4, iter = 2 * {draws}, warmup = {draws}, cores = {cores}, seed = 1,
            refresh = 0)
sampling_s <- el() - t
print(summary(m))
d <- posterior::summarise_draws(m, "rhat", "ess_bulk")
h <- d[grepl("^(b_|sd_|cor_|sigma|ar\\\\[)", d$variable), ]
np <- nuts_params(m); div <- sum(np$Value[np$Parameter == "divergent__"])
leap <- mean(np$Value[np$Parameter == "n_leapfrog__"])
cat(sprintf(paste0("RESULT {{\\"compile_s\\": %.2f, \\"sampling_s\\": %.2f, \\"min_ess_bulk\\": %.1f, ",
    "\\"max_rhat\\": %.4f, \\"divergences\\": %d, \\"worst\\": \\"%s\\", \\"leapfrog_per_draw\\": %.1f, ",
    "\\"peak_mib\\": %d}}\\n"), compile_s, sampling_s, min(h$ess_bulk), max(h$rhat), as.integer(div),
    h$variable[which.min(h$ess_bulk)], leap, {rpeak}))
"""


def write_data() -> dict[str, Path]:
    """The CSVs every contender reads: gpa with the tutorial's occas factor and its indicators."""
    OUT.mkdir(exist_ok=True)
    gpa = hb.datasets.load("gpa")
    occasion = gpa["occasion"].astype(int)
    frame = pd.DataFrame({"student": gpa["student"].astype(str), "occasion": occasion,
                          "occas": occasion.astype(str), "gpa": gpa["gpa"]})
    for k in range(6):
        frame[f"occ{k}"] = (occasion == k).astype(int)
    paths = {"gpa": OUT / "structures_gpa.csv", "sleepstudy": OUT / "structures_sleepstudy.csv"}
    frame.to_csv(paths["gpa"], index=False)
    sleep = hb.datasets.load("sleepstudy")
    sleep.assign(Subject=sleep["Subject"].astype(str)).to_csv(paths["sleepstudy"], index=False)
    return paths


def reml_case(name: str, csv: Path, repeat: int, cap: float) -> dict[str, dict]:
    data, formula, kwargs, package, call = REML_CASES[name]
    call = call.format(formula=formula)
    hb_code = HB_REML.format(csv=csv, formula=formula, kwargs=kwargs, repeat=repeat, peak=PY_PEAK)
    r_code = R_REML.format(csv=csv, factors=FACTORS[data], package=package, call=call, repeat=repeat,
                           rpeak=R_PEAK)
    res = {"hierbayes hb.lmer": run([sys.executable, "-c", hb_code], cap),
           package: r_package(package, r_code, cap)}
    mine, peer = res["hierbayes hb.lmer"], res[package]
    if mine.get("status") == "ok" and peer.get("status") == "ok":
        mine["fit_x_peer"] = mine["fit_s"] / peer["fit_s"] if peer["fit_s"] > 0 else float("nan")
        mine["dlogLik"] = mine["logLik"] - peer["logLik"]
    return res


def bayes_hierbayes(name: str, csv: Path, draws: int, seeds: list[int], cap: float) -> dict:
    data, formula, kwargs, _ = BAYES_CASES[name]
    runs = []
    for s in seeds:
        code = HB_BAYES.format(csv=csv, formula=formula, kwargs=kwargs, draws=draws, seed=s, peak=PY_PEAK)
        r = {**run([sys.executable, "-c", code], cap), "seed": s}
        if r.get("status") == "ok":
            r["ess_per_s"] = r["min_ess_bulk"] / r["sampling_s"]
        runs.append(r)
    out = median_run(runs, "ess_per_s")
    if out.get("status") == "ok":
        out["sampling_s_by_seed"] = [round(r["sampling_s"], 2) for r in runs]
        out["min_ess_by_seed"] = [round(r["min_ess_bulk"]) for r in runs]
    return out


def bayes_case(name: str, csv: Path, draws: int, seeds: list[int], cap: float, brms: bool,
               cores: int) -> dict[str, dict]:
    data, formula, _, brms_formula = BAYES_CASES[name]
    brms_formula = brms_formula.format(formula=formula)
    res = {"hierbayes hb.Model.fit": bayes_hierbayes(name, csv, draws, seeds, cap)}
    if brms:
        code = BRMS.format(csv=csv, factors=FACTORS[data], formula=brms_formula, draws=draws, cores=cores,
                           rpeak=R_PEAK)
        res["brms"] = r_package("brms", code, cap)
        if res["brms"].get("status") == "ok":
            res["brms"]["ess_per_s"] = res["brms"]["min_ess_bulk"] / res["brms"]["sampling_s"]
    mine, peer = res["hierbayes hb.Model.fit"], res.get("brms", {})
    if mine.get("status") == "ok" and peer.get("status") == "ok":
        mine["ess_s_x_brms"] = mine["ess_per_s"] / peer["ess_per_s"]
    return res


def pair_rows(cases: dict[str, dict]) -> list[str]:
    """The two-term forms beside the correlated ones: hierbayes's sampling time and ESS/s ratios."""
    lines = ["| two-term form | its sampling (s) | correlated form's (s) | time ratio | ESS/s ratio |",
             "|---|---|---|---|---|"]
    ratios = {}
    for two, corr in PAIRS.items():
        a = cases.get(two, {}).get("results", {}).get("hierbayes hb.Model.fit", {})
        b = cases.get(corr, {}).get("results", {}).get("hierbayes hb.Model.fit", {})
        if a.get("status") != "ok" or b.get("status") != "ok":
            continue
        ratios[two] = {"time_ratio": a["sampling_s"] / b["sampling_s"],
                       "ess_per_s_ratio": a["ess_per_s"] / b["ess_per_s"]}
        cell = two.replace("|", r"\|")
        lines.append(f"| {cell} | {a['sampling_s']:.2f} | {b['sampling_s']:.2f} | "
                     f"{ratios[two]['time_ratio']:.2f} | {ratios[two]['ess_per_s_ratio']:.2f} |")
    return lines if ratios else []


REML_COLUMNS = [("fit_s", "fit, median (s)", ".3f"), ("first_fit_s", "first fit (s)", ".3f"),
                ("fit_x_peer", "fit x peer", ".2f"), ("logLik", "logLik", ".6f"),
                ("dlogLik", "logLik - peer's", ".1e"), ("evaluations", "evaluations", "d"),
                ("peak_mib", "peak MiB", "d")]
BAYES_COLUMNS = [("sampler", "sampler", "s"), ("compile_s", "compile (s)", ".1f"),
                 ("sampling_s", "sampling (s)", ".2f"), ("min_ess_bulk", "min ESS-bulk", ".0f"),
                 ("ess_per_s", "ESS/s", ".0f"), ("ess_s_x_brms", "ESS/s x brms", ".2f"),
                 ("max_rhat", "max R-hat", ".3f"), ("divergences", "div", "d"),
                 ("leapfrog_per_draw", "leapfrog / draw", ".1f"), ("worst", "lowest ESS", "s"),
                 ("sampling_s_by_seed", "sampling by seed (s)", ""), ("min_ess_by_seed", "min ESS by seed", "")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", choices=["reml", "bayes"], help="run only these sections")
    parser.add_argument("--cap", type=float, default=900.0, help="seconds before a contender is stopped")
    parser.add_argument("--repeat", type=int, default=5, help="fits per process; the fit time is their median")
    parser.add_argument("--draws", type=int, default=1000, help="draws (and warm-up steps) per chain")
    parser.add_argument("--seeds", nargs="*", type=int, default=[1, 2, 3], help="hierbayes's seeds (NUTS)")
    parser.add_argument("--no-brms", action="store_true", help="leave brms out of the NUTS section")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    paths = write_data()
    cores = os.cpu_count() or 1
    record = {"python": sys.version.split()[0], "numpy": np.__version__, "cores": cores, "repeat": args.repeat,
              "draws": args.draws, "seeds": args.seeds, "date": time.strftime("%Y-%m-%d %H:%M"),
              "reml": {}, "bayes": {}}
    md = ["# Covariance structures benchmark (benchmarks/structures.py)\n",
          f"Machine: {cores} cores. Every contender in a fresh process, reading the same CSV.\n"]
    sections = args.only or ["reml", "bayes"]
    if "reml" in sections:
        md += ["## 1. REML and ML\n",
               f"Fit: the median of {args.repeat} fits in one process (the first pays for lazy imports); "
               "the peer is lme4 (`lmer`), nlme (`lme`) or glmmTMB as the row's model names, in the same run.\n"]
        for name in REML_CASES:
            data, formula, kwargs = REML_CASES[name][:3]
            res = reml_case(name, paths[data], args.repeat, args.cap)
            record["reml"][name] = {"formula": formula, "kwargs": kwargs,
                                    "peer_call": REML_CASES[name][4].format(formula=formula),
                                    "results": res}
            md += [f"### {name}: `{formula}`{', ' + kwargs if kwargs else ''}\n",
                   table(res, REML_CASES[name][3], REML_COLUMNS), ""]
            print("\n".join(md[-3:]), flush=True)
    if "bayes" in sections:
        md += [f"## 2. NUTS: 4 chains x {args.draws} draws after {args.draws} warm-up steps\n",
               f"hierbayes: default sampler and priors, seeds {', '.join(map(str, args.seeds))} (the row: the "
               "median seed by ESS/s). brms: default priors, rstan, seed 1, compile time apart; sampling is "
               "the `update(recompile = FALSE)` call. Min ESS-bulk and max R-hat over the fixed effects, SDs, "
               "correlations and residual-structure parameters.\n"]
        for name in BAYES_CASES:
            data, formula, kwargs, _ = BAYES_CASES[name]
            res = bayes_case(name, paths[data], args.draws, args.seeds, args.cap, not args.no_brms, cores)
            record["bayes"][name] = {"formula": formula, "kwargs": kwargs,
                                     "brms_formula": BAYES_CASES[name][3].format(formula=formula),
                                     "results": res}
            md += [f"### {name}: `{formula}`{', ' + kwargs if kwargs else ''}\n",
                   table(res, "hierbayes hb.Model.fit", BAYES_COLUMNS), ""]
            print("\n".join(md[-3:]), flush=True)
        pairs = pair_rows(record["bayes"])
        if pairs:
            md += ["### Several terms on one factor against the correlated form (hierbayes)\n", *pairs, ""]
            print("\n".join(md[-len(pairs) - 2:]), flush=True)
    stem = "structures" if not args.only else "structures_" + "_".join(sections)
    (RESULTS / f"{stem}.json").write_text(json.dumps(record, indent=2, default=str))
    (RESULTS / f"{stem}.md").write_text("\n".join(md))
    print(f"Wrote {RESULTS / (stem + '.json')} and {RESULTS / (stem + '.md')}")


if __name__ == "__main__":
    main()
