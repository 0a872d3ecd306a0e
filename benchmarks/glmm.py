"""GLMMs (issue 19, item 6): hierbayes's two engines beside lme4, glmmTMB, brms and their Python peers.

Three cases, every contender in a fresh process (interpreter start to printed
estimates), each reading the same CSV under benchmarks/out/:

1. speed_dating by maximum likelihood (Laplace): ``hb.glmer`` beside lme4's
   ``glmer(..., family = binomial)``, glmmTMB and statsmodels'
   BinomialBayesMixedGLM (variational Bayes, not ML; no log-likelihood). The
   model is the tutorial's (../shared/seeds, 001: ``decision ~ sex + samerace +
   attractive_sc + sincere_sc + intelligent_sc + (1 | iid)``, 7,366 complete
   rows, 498 participants). Each process fits once; the fit time excludes
   imports and data loading. Every contender runs ``--runs`` times and its row
   is the run with the median wall time.
2. speed_dating by NUTS, 4 chains x 1000 draws after 1000 warm-up steps:
   ``hb.Model(..., family="bernoulli").fit()`` (default sampler, its default
   priors; over ``--seeds``, the row the seed with the median ESS/s) beside
   brms (default priors, rstan, ``cores = os.cpu_count()`` as hierbayes runs its
   chains in parallel on every core; seed 1) and bambi. brms's compile time
   (``brm(chains = 0)``) is reported apart from its sampling time
   (``update(recompile = FALSE)``, which includes rstan's start of its worker
   processes); ESS/s divides by the sampling time, warm-up included, for every
   sampler. brms's ESS/s over Stan's own chain times (summed over chains, divided
   by the cores) is reported beside it.
3. A simulated Bernoulli ``y ~ x + (1 | g)``: 100,000 rows, 10,000 groups of 10,
   seed 19 (written once to benchmarks/out/glmm_sim.csv): ``hb.glmer``, the
   Bayesian fit (4 chains x ``--sim-draws`` after as many warm-up steps),
   glmer and glmmTMB.

Min ESS-bulk and max R-hat are over the fixed effects and the SD (the group
effects' minimum ESS is reported apart). Contenders still running after
``--cap`` seconds are stopped and reported as such.

    make bench-glmm     # or: python benchmarks/glmm.py [--cap 1800] [--runs 3] [--seeds 1 2 3]

Writes benchmarks/results/glmm.json and benchmarks/results/glmm.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import OUT, PY_PEAK, R_PEAK, python_peer, run, table
from run import CASES, peer_data, r_installed

RESULTS = Path(__file__).resolve().parent / "results"
SD_CASE = CASES["speed_dating"]
SD_FORMULA = SD_CASE["formula"]
SIM_FORMULA = "y ~ x + (1 | g)"
SIM = {"rows": 100_000, "groups": 10_000, "seed": 19, "beta": [-0.5, 1.0], "sd_g": 1.0}

# ---------------------------------------------------------------- maximum likelihood
HB_GLMER = """
import json, time, pandas as pd, hierbayes as hb
import hierbayes.freq.glmer  # the engine's imports (SciPy) outside the timed fit
df = pd.read_csv("{csv}")
t = time.perf_counter()
fit = hb.glmer("{formula}", df, family="binomial")
fit_s = time.perf_counter() - t
print(fit.summary())
print("RESULT", json.dumps({{"fit_s": round(fit_s, 3), "logLik": fit.loglik, "evaluations": fit.opt.evaluations,
      "peak_mib": {peak}}}))
"""

R_GLMM = """
df <- read.csv("{csv}")
for (c in c({rfactors})) df[[c]] <- factor(df[[c]])
suppressMessages(library({package}))
t <- proc.time()[["elapsed"]]
m <- {call}({formula}, df, family = binomial)
fit_s <- proc.time()[["elapsed"]] - t
print(summary(m))
cat(sprintf("RESULT {{\\"fit_s\\": %.3f, \\"logLik\\": %.6f, \\"peak_mib\\": %d}}\\n", fit_s,
    as.numeric(logLik(m)), {rpeak}))
"""

STATSMODELS_VB = """
import json, time, pandas as pd
from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM
df = pd.read_csv("{csv}")
df["iid"] = df["iid"].astype(str)
t = time.perf_counter()
fit = BinomialBayesMixedGLM.from_formula(
    "decision ~ sex + samerace + attractive_sc + sincere_sc + intelligent_sc", {{"iid": "0 + C(iid)"}}, df).fit_vb()
fit_s = time.perf_counter() - t
print(fit.summary())
print("RESULT", json.dumps({{"fit_s": round(fit_s, 3), "peak_mib": {peak}}}))
"""

# ---------------------------------------------------------------- Bayesian
HB_BAYES = """
import json, time, numpy as np, pandas as pd, hierbayes as hb
from hierbayes.bayes.diagnostics import ess_bulk
df = pd.read_csv("{csv}")
t = time.perf_counter()
fit = hb.Model("{formula}", df, family="bernoulli").fit(draws={draws}, tune={tune}, chains={chains},
                                                       seed={seed}, progressbar=False, check=False)
fit_s = time.perf_counter() - t
d = fit.diagnostics()
print(fit.summary())
# the draws themselves, not fit.idata: that adds the pointwise log-likelihood (draws x rows)
post = fit.posterior.variables
ranef_ess = min(float(ess_bulk(x)) for v in post if v.startswith("r_")
                for x in np.moveaxis(post[v].reshape(*post[v].shape[:2], -1), -1, 0))
print("RESULT", json.dumps({{"sampling_s": fit.info.sampling_seconds, "compile_s": fit.info.compile_seconds,
      "fit_s": round(fit_s, 2), "min_ess_bulk": d.min_ess_bulk, "max_rhat": d.max_rhat,
      "divergences": d.divergences, "worst": d.table["ess_bulk"].idxmin(), "ranef_min_ess": ranef_ess,
      "leapfrog_per_draw": float(np.mean(fit.posterior.stats["n_steps"])), "peak_mib": {peak}}}))
"""

# brm(chains = 0) compiles only; update(recompile = FALSE) samples that model. The
# summaries: rank-normalised R-hat and ESS-bulk (posterior), as hierbayes computes them.
BRMS = """
df <- read.csv("{csv}")
for (c in c({rfactors})) df[[c]] <- factor(df[[c]])
suppressMessages(library(brms))
el <- function() proc.time()[["elapsed"]]
t <- el()
m0 <- brm({formula}, df, family = bernoulli(), chains = 0, refresh = 0)
compile_s <- el() - t
t <- el()
m <- update(m0, recompile = FALSE, chains = {chains}, iter = {draws} + {tune}, warmup = {tune}, cores = {cores},
            seed = 1, refresh = 0)
sampling_s <- el() - t
chains_s <- sum(rstan::get_elapsed_time(m$fit))  # warm-up and sampling, all chains
print(summary(m))
d <- posterior::summarise_draws(m, "rhat", "ess_bulk")
h <- d[grepl("^(b_|sd_|cor_|sigma)", d$variable), ]
r <- d[grepl("^r_", d$variable), ]
np <- nuts_params(m); div <- sum(np$Value[np$Parameter == "divergent__"])
leap <- mean(np$Value[np$Parameter == "n_leapfrog__"])
cat(sprintf(paste0("RESULT {{\\"compile_s\\": %.2f, \\"sampling_s\\": %.2f, \\"chains_total_s\\": %.2f, ",
    "\\"min_ess_bulk\\": %.1f, \\"max_rhat\\": %.4f, \\"divergences\\": %d, \\"worst\\": \\"%s\\", ",
    "\\"ranef_min_ess\\": %.1f, \\"leapfrog_per_draw\\": %.1f, \\"peak_mib\\": %d}}\\n"), compile_s, sampling_s,
    chains_s, min(h$ess_bulk), max(h$rhat), as.integer(div), h$variable[which.min(h$ess_bulk)], min(r$ess_bulk),
    leap, {rpeak}))
"""

BAMBI = """
import time, json, bambi as bmb, arviz as az, pandas as pd
df = pd.read_csv("{csv}")
for c in ["iid", "sex", "samerace"]:
    df[c] = df[c].astype(str)
m = bmb.Model("{formula}", df, family="bernoulli")
t = time.perf_counter()
idata = m.fit(draws={draws}, tune={tune}, chains={chains}, random_seed=1, progressbar=False)
s = time.perf_counter() - t
names = [v for v in idata.posterior.data_vars if "|" not in v or v.endswith("_sigma")]
summ = az.summary(idata, var_names=names)
print(summ)
print("RESULT", json.dumps({{"sampling_s": s, "min_ess_bulk": float(summ["ess_bulk"].min()),
      "max_rhat": float(summ["r_hat"].max()), "worst": str(summ["ess_bulk"].idxmin()),
      "divergences": int(idata.sample_stats["diverging"].sum()), "peak_mib": {peak}}}))
"""


def r_peer(code: str, timeout: float) -> dict:
    """An R contender through Rscript, stopped after ``timeout`` seconds."""
    if shutil.which("Rscript") is None:
        return {"status": "Rscript not found"}
    return run(["Rscript", "-e", code], timeout)


def r_package(package: str, code: str, timeout: float) -> dict:
    return r_peer(code, timeout) if r_installed(package) else {"status": "not installed"}


def simulated_csv() -> Path:
    """The simulated Bernoulli data, written once (the same seed gives the same file)."""
    path = OUT / "glmm_sim.csv"
    if path.exists():
        return path
    rng = np.random.default_rng(SIM["seed"])
    g = np.repeat(np.arange(SIM["groups"]), SIM["rows"] // SIM["groups"])
    x = rng.normal(size=SIM["rows"])
    b = rng.normal(scale=SIM["sd_g"], size=SIM["groups"])
    eta = SIM["beta"][0] + SIM["beta"][1] * x + b[g]
    y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    pd.DataFrame({"y": y, "x": np.round(x, 6), "g": [f"g{i:05d}" for i in g]}).to_csv(path, index=False)
    return path


def median_run(runs: list[dict], key: str) -> dict:
    """Of one contender's runs, the one with the median ``key`` (every run's value listed)."""
    ok = [r for r in runs if r.get("status") == "ok" and r.get(key) is not None]
    if len(ok) < len(runs):
        return next(r for r in runs if r not in ok)
    chosen = sorted(ok, key=lambda r: r[key])[len(ok) // 2]
    return {**chosen, f"{key}_by_run": [round(r[key], 2) for r in runs]}


def repeated(contender, runs: int, **kwargs) -> dict:
    """``runs`` fresh processes of one contender (``contender(**kwargs)``); the median by wall time."""
    return median_run([contender(**kwargs) for _ in range(runs)], "wall_s")


def ml_case(csv: Path, formula: str, rfactors: str, runs: int, cap: float, vb: bool) -> dict[str, dict]:
    py = sys.executable
    fmt = {"csv": csv, "formula": formula, "peak": PY_PEAK, "rpeak": R_PEAK, "rfactors": rfactors}
    res = {"hierbayes hb.glmer": repeated(run, runs, cmd=[py, "-c", HB_GLMER.format(**fmt)], timeout=cap),
           "lme4 glmer": repeated(r_package, runs, package="lme4", timeout=cap,
                                  code=R_GLMM.format(package="lme4", call="glmer", **fmt)),
           "glmmTMB": repeated(r_package, runs, package="glmmTMB", timeout=cap,
                               code=R_GLMM.format(package="glmmTMB", call="glmmTMB", **fmt))}
    if vb:
        res["statsmodels BinomialBayesMixedGLM (VB, not ML)"] = python_peer(
            "statsmodels", STATSMODELS_VB.format(**fmt), timeout=cap)
    ref = res["lme4 glmer"]
    for r in res.values():
        if r.get("status") == "ok" and ref.get("status") == "ok":
            r["fit_x_glmer"] = r["fit_s"] / ref["fit_s"] if ref["fit_s"] > 0 else float("nan")
            if "logLik" in r:
                r["dlogLik"] = r["logLik"] - ref["logLik"]
    return res


def bayes_hierbayes(csv: Path, formula: str, chains: int, draws: int, tune: int, seeds: list[int],
                    cap: float) -> dict:
    code = {s: HB_BAYES.format(csv=csv, formula=formula, chains=chains, draws=draws, tune=tune, seed=s,
                               peak=PY_PEAK) for s in seeds}
    runs = []
    for s in seeds:
        r = {**run([sys.executable, "-c", code[s]], cap), "seed": s}
        if r.get("status") == "ok":
            r["ess_per_s"] = r["min_ess_bulk"] / r["sampling_s"]
        runs.append(r)
    out = median_run(runs, "ess_per_s")
    if out.get("status") == "ok":
        out["seeds"] = seeds
        out["min_ess_by_seed"] = [round(r["min_ess_bulk"]) for r in runs]
    return out


def bayes_case(csv: Path, chains: int, draws: int, tune: int, seeds: list[int], cap: float,
               cores: int) -> dict[str, dict]:
    fmt = {"csv": csv, "formula": SD_FORMULA, "chains": chains, "draws": draws, "tune": tune,
           "peak": PY_PEAK, "rpeak": R_PEAK, "rfactors": '"iid", "sex", "samerace"', "cores": cores}
    res = {"hierbayes hb.Model.fit": bayes_hierbayes(csv, SD_FORMULA, chains, draws, tune, seeds, cap),
           "brms": r_package("brms", BRMS.format(**fmt), cap),
           "bambi (PyMC NUTS)": python_peer("bambi", BAMBI.format(**fmt), timeout=cap)}
    ref = res["brms"]
    ok = [r for r in res.values() if r.get("status") == "ok"]
    for r in ok:
        r["ess_per_s"] = r["min_ess_bulk"] / r["sampling_s"]
        r["ess_per_wall_s"] = r["min_ess_bulk"] / r["wall_s"]
    for r in ok:
        if ref.get("status") == "ok":
            r["ess_s_x_brms"] = r["ess_per_s"] / ref["ess_per_s"]
    if ref.get("status") == "ok":
        # Stan's own time in its chains, as if they had shared the cores perfectly: no worker start-up
        ref["stan_chains_s"] = ref["chains_total_s"] / min(cores, chains)
        ref["ess_per_chain_s"] = ref["min_ess_bulk"] / ref["stan_chains_s"]
    return res


def sim_case(csv: Path, chains: int, draws: int, cap: float) -> dict[str, dict]:
    res = ml_case(csv, SIM_FORMULA, '"g"', 1, cap, vb=False)
    hb = bayes_hierbayes(csv, SIM_FORMULA, chains, draws, draws, [1], cap)
    res = {"hierbayes hb.glmer": res.pop("hierbayes hb.glmer"),
           f"hierbayes hb.Model.fit ({chains} x {draws} after {draws})": hb, **res}
    return res


ML_COLUMNS = [("fit_s", "fit only (s)", ".2f"), ("fit_x_glmer", "fit x glmer", ".2f"),
              ("logLik", "logLik", ".4f"), ("dlogLik", "logLik - glmer's", ".1e"),
              ("peak_mib", "peak MiB", "d"), ("wall_s_by_run", "wall by run (s)", "")]
BAYES_COLUMNS = [("compile_s", "compile (s)", ".1f"), ("sampling_s", "sampling (s)", ".1f"),
                 ("min_ess_bulk", "min ESS-bulk", ".0f"), ("ess_per_s", "ESS/s (sampling)", ".1f"),
                 ("ess_s_x_brms", "ESS/s x brms", ".2f"), ("ess_per_wall_s", "ESS/s (wall)", ".1f"),
                 ("stan_chains_s", "Stan's chains (s)", ".1f"), ("ess_per_chain_s", "ESS/s (Stan's chains)", ".1f"),
                 ("max_rhat", "max R-hat", ".3f"), ("divergences", "div", "d"),
                 ("leapfrog_per_draw", "leapfrog / draw", ".1f"), ("worst", "lowest ESS", "s"),
                 ("ranef_min_ess", "group effects' min ESS", ".0f"), ("peak_mib", "peak MiB", "d"),
                 ("min_ess_by_seed", "min ESS by seed", "")]
SIM_COLUMNS = [("fit_s", "fit only (s)", ".2f"), ("fit_x_glmer", "fit x glmer", ".2f"),
               ("logLik", "logLik", ".3f"), ("sampling_s", "sampling (s)", ".1f"),
               ("min_ess_bulk", "min ESS-bulk", ".0f"), ("ess_per_s", "ESS/s", ".1f"),
               ("max_rhat", "max R-hat", ".3f"), ("divergences", "div", "d"),
               ("leapfrog_per_draw", "leapfrog / draw", ".1f"), ("worst", "lowest ESS", "s"),
               ("ranef_min_ess", "group effects' min ESS", ".0f"), ("peak_mib", "peak MiB", "d")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", choices=["ml", "bayes", "sim"], help="run only these cases")
    parser.add_argument("--cap", type=float, default=1800.0, help="seconds before a contender is stopped")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per ML contender on speed_dating")
    parser.add_argument("--seeds", nargs="*", type=int, default=[1, 2, 3],
                        help="seeds of hierbayes's Bayesian speed_dating fit (the row: median ESS/s)")
    parser.add_argument("--sim-draws", type=int, default=1000,
                        help="draws (and warm-up steps) per chain of hierbayes's Bayesian fit of the simulation")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    cores = os.cpu_count() or 1
    sd_csv = OUT / "glmm_speed_dating.csv"
    peer_data("speed_dating", SD_CASE).to_csv(sd_csv, index=False)
    chains, draws, tune = SD_CASE["chains"], SD_CASE["draws"], SD_CASE["tune"]
    record = {"python": sys.version.split()[0], "cores": cores, "cap_s": args.cap, "runs": args.runs,
              "seeds": args.seeds, "date": time.strftime("%Y-%m-%d %H:%M"), "cases": {}}
    md = ["# GLMM benchmark (benchmarks/glmm.py)\n",
          f"Machine: {cores} cores. Every contender in a fresh process, reading the same CSV; stopped after "
          f"{args.cap:.0f} s. Wall: the whole process (start, imports, data, fit, summary); fit only: the "
          "fitting call. ESS/s (sampling): min ESS-bulk over the fixed effects and the SD divided by the "
          "sampling time, warm-up included (brms: its `update(recompile = FALSE)` call, the Stan "
          "compilation excluded and reported as compile); ESS/s (wall): divided by the whole process.\n"]
    cases = args.only or ["ml", "bayes", "sim"]
    if "ml" in cases:
        res = ml_case(sd_csv, SD_FORMULA, '"iid", "sex", "samerace"', args.runs, args.cap, vb=True)
        record["cases"]["speed_dating_ml"] = {"formula": SD_FORMULA, "results": res}
        md += [f"## 1. speed_dating, maximum likelihood (Laplace): `{SD_FORMULA}`, binomial\n",
               f"Each contender run {args.runs} times; the row is its median run by wall time.\n",
               table(res, "lme4 glmer", ML_COLUMNS), ""]
        print("\n".join(md[-3:]), flush=True)
    if "bayes" in cases:
        res = bayes_case(sd_csv, chains, draws, tune, args.seeds, args.cap, cores)
        record["cases"]["speed_dating_bayes"] = {"formula": SD_FORMULA, "chains": chains, "draws": draws,
                                                 "tune": tune, "results": res}
        md += [f"## 2. speed_dating, NUTS: {chains} chains x {draws} draws after {tune} warm-up steps\n",
               f"hierbayes: default sampler and priors, chains in parallel on {cores} cores, seeds "
               f"{', '.join(map(str, args.seeds))} (the row: the median seed by ESS/s). brms: default priors, "
               f"rstan, `cores = {cores}`, seed 1; its sampling time is the `update(recompile = FALSE)` call "
               "(worker start-up included), \"Stan's chains\" the chains' own warm-up and sampling time summed "
               f"and divided by {min(cores, chains)} cores; its peak memory is the main R process only (the "
               "chains run in worker processes). Min ESS-bulk and max R-hat: fixed effects and the SD.\n",
               table(res, "hierbayes hb.Model.fit", BAYES_COLUMNS), ""]
        print("\n".join(md[-3:]), flush=True)
    if "sim" in cases:
        csv = simulated_csv()
        res = sim_case(csv, chains, args.sim_draws, args.cap)
        record["cases"]["simulated"] = {"formula": SIM_FORMULA, **SIM, "chains": chains,
                                        "draws": args.sim_draws, "results": res}
        md += [f"## 3. simulated Bernoulli `{SIM_FORMULA}`: {SIM['rows']:,} rows, {SIM['groups']:,} groups\n",
               f"Seed {SIM['seed']}; intercept {SIM['beta'][0]}, slope {SIM['beta'][1]}, group SD "
               f"{SIM['sd_g']}; x standard normal. One run each.\n",
               table(res, "lme4 glmer", SIM_COLUMNS), ""]
        print("\n".join(md[-3:]), flush=True)
    (RESULTS / "glmm.json").write_text(json.dumps(record, indent=2, default=str))
    (RESULTS / "glmm.md").write_text("\n".join(md))
    print(f"Wrote {RESULTS / 'glmm.json'} and {RESULTS / 'glmm.md'}")


if __name__ == "__main__":
    main()
