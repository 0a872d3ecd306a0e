"""Many fits (issue 22, item 5): serially, on a local process pool and on a Dask cluster,
beside R's bootMer, brms's kfold and simr's powerCurve.

Each hierbayes workload runs three ways, each in a fresh process (this script again,
``--child``): serial (``n_jobs=1``), two local worker processes (``n_jobs=2``) and a
two-worker Dask cluster (``distributed.LocalCluster(n_workers=2, threads_per_worker=1,
processes=True)``, passed as ``client=``). A row's times are

* wall: the whole process, interpreter start to exit;
* start-up: everything but the workload: the interpreter, ``import hierbayes``, the
  data and the full fit, and (Dask) starting the cluster, its workers' imports and
  closing it, each in the JSON;
* work: the workload's call alone, which includes starting the local pool's workers
  (the pool is the call's own; forked, they inherit this process's imports), sending
  the shared data, and the workers' lazy imports on their first task;

fits/s divides the workload's fits by the work time. The three ways' results (the
bootstrap replicates, the k-fold pointwise elpd, the power simulations) are written
to ``benchmarks/out/`` and checked equal byte for byte: the script fails when they
are not, after writing its tables.

1. ``boot``: ``fit.confint(method="boot", n_sims=500, seed=1)`` on sleepstudy's
   ``Reaction ~ Days + (Days | Subject)`` beside lme4's ``bootMer(m, FUN = function(.)
   c(fixef(.), sigma(.)), nsim = 500, parallel = "multicore", ncpus = 1 | 2)``.
2. ``kfold``: ``kfold(fit, K=10, group=..., seed=1)`` of sleepstudy (by Subject) and
   pupils (``achievement ~ sex + ses + (1 | primary_school_id) + (1 |
   secondary_school_id)``, by primary_school_id), REML and Bayesian (2 chains x 500
   draws after 500 warm-up steps per fold), beside brms's ``kfold(fit, K = 10, group =
   "Subject")`` on sleepstudy (chains = 2, iter = 1000, cores = 2; compile apart).
3. ``power``: a 6-point power curve of 200 simulations per point on sleepstudy, beside
   simr's ``powerCurve`` when simr is installed (CRAN is out of reach here and R 4.2 gets no
   current simr from it anyway: the committed run found simr 1.0.9 built from its sources on
   ``R_LIBS``, as tests/r/power.R's header describes).

The machine's cores are recorded: on two cores two workers can at best halve the time.

    make bench-many   # or: python benchmarks/many.py [--only boot kfold power] [--no-r] [--sims N]

Writes benchmarks/results/many.json and benchmarks/results/many.md (``--only``,
``--sims`` or ``--no-r``: many_partial.*).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
from _common import OUT, R_PEAK, run
from glmm import r_package

RESULTS = Path(__file__).resolve().parent / "results"
WAYS = {"serial": "n_jobs=1", "pool": "n_jobs=2", "dask": "LocalCluster(n_workers=2, threads_per_worker=1)"}
SLEEP = "Reaction ~ Days + (Days | Subject)"
PUPILS = "achievement ~ sex + ses + (1 | primary_school_id) + (1 | secondary_school_id)"
KFOLD_DATA = {"sleepstudy": (SLEEP, "Subject"), "pupils": (PUPILS, "primary_school_id")}
LEVELS = [4, 6, 8, 10, 14, 18]
EFFECT = {"Days": 5.0}
MODULES = {"boot": "hierbayes.freq.bootstrap", "kfold": "hierbayes.report.kfold", "power": "hierbayes.report.power"}
POWER_TEST = "lrt"  # simr's fixed("Days", "lr")


# ---------------------------------------------------------------- the child process


def load(hb, name: str):
    """The data every contender reads: the shipped dataset, factors as strings."""
    df = hb.datasets.load(name)
    for c in ("Subject", "primary_school_id", "secondary_school_id"):
        if c in df:
            df[c] = df[c].astype(str)
    return df


def setup(hb, workload: str, draws: int):
    """The full fit the workload starts from."""
    if workload in ("boot", "power"):
        return hb.lmer(SLEEP, load(hb, "sleepstudy"))
    _, method, data = workload.split("_")
    formula = KFOLD_DATA[data][0]
    if method == "reml":
        return hb.lmer(formula, load(hb, data))
    return hb.Model(formula, load(hb, data)).fit(draws=draws, tune=draws, chains=2, seed=1,
                                                  progressbar=False, check=False)


def work(workload: str, fit, where: dict, sims: int, draws: int) -> tuple[np.ndarray, int, dict]:
    """Run the workload; its results as one array (checked across the ways), its fits, a summary."""
    if workload == "boot":
        ci = fit.confint(method="boot", n_sims=sims, seed=1, progressbar=False, **where)
        reps = ci.attrs["replicates"]
        summary = {"conf_low": ci["conf_low"].round(4).to_dict(), "conf_high": ci["conf_high"].round(4).to_dict(),
                   "convergence_failures": int(reps.attrs.get("convergence_failures", 0))}
        return reps.to_numpy(), sims, summary
    if workload == "power":
        return power_call(fit, where, sims)
    from hierbayes.report.kfold import kfold

    _, method, data = workload.split("_")
    settings = {"draws": draws, "tune": draws, "chains": 2} if method == "bayes" else {}
    kf = kfold(fit, K=10, group=KFOLD_DATA[data][1], seed=1, progressbar=False, **where, **settings)
    summary = {"elpd_kfold": float(kf.elpd_kfold), "se": float(kf.se), "p_kfold": float(kf.p_kfold)}
    return kf.pointwise["elpd"].to_numpy(), 10, summary


def power_call(fit, where: dict, sims: int) -> tuple[np.ndarray, int, dict]:
    """The power curve by likelihood ratio (two ML refits a simulation, with and without Days)."""
    from hierbayes.report.power import power

    res = power(fit, effect=EFFECT, test=POWER_TEST, n_sims=sims, along="Subject", levels=LEVELS, seed=1,
                progressbar=False, **where)
    pv = res.pvalues
    summary = {"power": res.table["power"].round(4).tolist(), "levels": LEVELS, "test": POWER_TEST,
               "errors": int(res.table["errors"].sum()), "warnings": int(res.table["warnings"].sum())}
    values = np.column_stack([pv["p_value"], pv["estimate"], pv["warning"].astype(float)])
    return values, 2 * sims * len(LEVELS), summary


def child(args: argparse.Namespace) -> None:
    t = time.perf_counter()
    import hierbayes as hb

    times = {"import_s": time.perf_counter() - t}
    t = time.perf_counter()
    fit = setup(hb, args.child, args.draws)
    times["setup_s"] = time.perf_counter() - t
    where: dict = {"n_jobs": 1} if args.way == "serial" else {"n_jobs": 2}
    cluster = client = None
    if args.way == "dask":
        from distributed import Client, LocalCluster

        t = time.perf_counter()
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True)
        client = Client(cluster)
        where = {"client": client}
        times["cluster_s"] = time.perf_counter() - t
        # the workers are fresh interpreters (a forked pool's inherit this one's imports): their
        # import of the workload's modules is start-up, timed apart
        t = time.perf_counter()
        client.run(importlib.import_module, MODULES[args.child.split("_")[0]])
        times["workers_import_s"] = time.perf_counter() - t
    t = time.perf_counter()
    values, fits, summary = work(args.child, fit, where, args.sims, args.draws)
    times["work_s"] = time.perf_counter() - t
    if cluster is not None:
        t = time.perf_counter()
        client.close()
        cluster.close()
        times["cluster_close_s"] = time.perf_counter() - t
    values = np.ascontiguousarray(values, dtype=float)
    np.save(args.npy, values)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print("RESULT", json.dumps({**{k: round(v, 3) for k, v in times.items()}, "fits": fits,
                                "fits_per_s": fits / times["work_s"], "shape": list(values.shape),
                                "sha256": hashlib.sha256(values.tobytes()).hexdigest()[:16],
                                **summary, "peak_mib": peak}))


# ---------------------------------------------------------------- R peers


R_BOOT = """
t <- proc.time()[["elapsed"]]
suppressMessages(library(lme4))
df <- read.csv("{csv}")
df$Subject <- factor(df$Subject)
m <- lmer({formula}, df)
setup_s <- proc.time()[["elapsed"]] - t
set.seed(1)
t <- proc.time()[["elapsed"]]
b <- bootMer(m, FUN = function(.) c(fixef(.), sigma(.)), nsim = {sims}, parallel = "multicore", ncpus = {ncpus})
work_s <- proc.time()[["elapsed"]] - t
print(b)
cat(sprintf("RESULT {{\\"setup_s\\": %.3f, \\"work_s\\": %.3f, \\"fits\\": %d, \\"peak_mib\\": %d}}\\n",
    setup_s, work_s, {sims}L, {rpeak}))
"""

R_BRMS_KFOLD = """
el <- function() proc.time()[["elapsed"]]
t <- el()
suppressMessages(library(brms))
df <- read.csv("{csv}")
df$Subject <- factor(df$Subject)
load_s <- el() - t
t <- el()
m0 <- brm({formula}, df, family = gaussian(), chains = 0, refresh = 0)
compile_s <- el() - t
t <- el()
m <- update(m0, recompile = FALSE, chains = 2, iter = {iter}, warmup = {warmup}, cores = 2, seed = 1,
            refresh = 0)
fit_s <- el() - t
set.seed(1)
t <- el()
kf <- kfold(m, K = 10, group = "Subject", chains = 2, iter = {iter}, warmup = {warmup}, cores = 2,
            refresh = 0)
work_s <- el() - t
print(kf)
cat(sprintf(paste0("RESULT {{\\"setup_s\\": %.2f, \\"compile_s\\": %.2f, \\"fit_s\\": %.2f, ",
    "\\"work_s\\": %.2f, \\"fits\\": 10, \\"elpd_kfold\\": %.4f, \\"se\\": %.4f, \\"peak_mib\\": %d}}\\n"),
    load_s + compile_s + fit_s, compile_s, fit_s, work_s, kf$estimates["elpd_kfold", "Estimate"],
    kf$estimates["elpd_kfold", "SE"], {rpeak}))
"""

R_SIMR = """
t <- proc.time()[["elapsed"]]
suppressMessages({{library(lme4); library(simr)}})
df <- read.csv("{csv}")
df$Subject <- factor(df$Subject)
m <- lmer({formula}, df)
fixef(m)["Days"] <- {effect}
setup_s <- proc.time()[["elapsed"]] - t
t <- proc.time()[["elapsed"]]
pc <- powerCurve(m, test = fixed("Days", "lr"), along = "Subject", breaks = c({levels}), nsim = {sims}, seed = 1,
                 progress = FALSE)
work_s <- proc.time()[["elapsed"]] - t
print(pc)
s <- summary(pc)
cat(sprintf("RESULT {{\\"setup_s\\": %.3f, \\"work_s\\": %.3f, \\"fits\\": %d, \\"power\\": [%s], \\"peak_mib\\": %d}}\\n",
    setup_s, work_s, {fits}L, paste(sprintf("%.4f", s$mean), collapse = ", "), {rpeak}))
"""


# ---------------------------------------------------------------- the parent


def write_data() -> dict[str, Path]:
    import hierbayes as hb

    OUT.mkdir(exist_ok=True)
    path = OUT / "many_sleepstudy.csv"
    load(hb, "sleepstudy").to_csv(path, index=False)
    return {"sleepstudy": path}


def r_versions() -> dict[str, str]:
    """R's version and its peers' (None: not installed), for the record."""
    import shutil
    import subprocess

    if shutil.which("Rscript") is None:
        return {"R": "Rscript not found"}
    code = ('cat(R.version.string, "\\n"); for (p in c("lme4", "brms", "rstan", "simr")) cat(p, '
            'if (requireNamespace(p, quietly = TRUE)) as.character(packageVersion(p)) else "none", "\\n")')
    out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True).stdout.splitlines()
    versions = {"R": out[0].strip()} if out else {}
    versions.update(dict(line.split() for line in out[1:] if len(line.split()) == 2))
    return versions


def hierbayes_ways(workload: str, sims: int, draws: int) -> dict[str, dict]:
    """The workload serial, on the pool and on Dask, each in a fresh process; identity checked."""
    rows: dict[str, dict] = {}
    arrays = {}
    for way in WAYS:
        npy = OUT / f"many_{workload}_{way}.npy"
        npy.unlink(missing_ok=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", workload, "--way", way,
               "--sims", str(sims), "--draws", str(draws), "--npy", str(npy)]
        r = run(cmd)
        if r.get("status") == "ok":
            r["startup_s"] = round(r["wall_s"] - r["work_s"], 2)
            arrays[way] = np.load(npy)
        rows[way] = r
        print(f"  {workload} {way}: {r.get('status')} wall {r.get('wall_s')} s, work {r.get('work_s')} s",
              flush=True)
    serial = arrays.get("serial")
    for way, r in rows.items():
        if way in arrays and serial is not None:
            r["identical_to_serial"] = bool(arrays[way].shape == serial.shape
                                            and arrays[way].tobytes() == serial.tobytes())
    return rows


def r_rows(workload: str, csv: Path, sims: int, draws: int) -> dict[str, dict]:
    """The R peer's rows: bootMer with 1 and 2 cores, brms's kfold, simr's powerCurve."""
    fmt = {"csv": csv, "formula": SLEEP, "rpeak": R_PEAK}
    if workload == "boot":
        return {f"ncpus = {n}": r_package("lme4", R_BOOT.format(**fmt, sims=sims, ncpus=n), 1800)
                for n in (1, 2)}
    if workload == "kfold_bayes_sleepstudy":
        return {"cores = 2": r_package("brms", R_BRMS_KFOLD.format(**fmt, iter=2 * draws, warmup=draws), 3600)}
    if workload == "power":
        code = R_SIMR.format(**fmt, effect=EFFECT["Days"], levels=", ".join(map(str, LEVELS)), sims=sims,
                             fits=2 * sims * len(LEVELS))
        r = r_package("simr", code, 3600)
        if r.get("status") == "not installed":
            r["status"] = "not installable"
            r["note"] = ("install.packages('simr') could not reach CRAN from this machine and Debian has no "
                         "r-cran-simr; install it from its sources into a library on R_LIBS as "
                         "tests/r/power.R's header says")
        return {"serial": r}
    return {}


def ratios(rows: dict[str, dict], peer: dict[str, dict]) -> None:
    """work time over the serial row's, and over R's with the same number of workers."""
    serial = rows.get("serial", {}).get("work_s")
    r1 = next((r["work_s"] for r in peer.values() if r.get("status") == "ok"), None)
    r2 = next((r["work_s"] for r in reversed(list(peer.values())) if r.get("status") == "ok"), None)
    for way, r in rows.items():
        if r.get("status") != "ok":
            continue
        if serial:
            r["x_serial"] = r["work_s"] / serial
        ref = r1 if way == "serial" else r2
        if ref:
            r["x_r"] = r["work_s"] / ref
    p1 = next((r for r in peer.values() if r.get("status") == "ok"), None)
    for r in peer.values():
        if r.get("status") == "ok":
            r.setdefault("fits_per_s", r["fits"] / r["work_s"])
            r["startup_s"] = round(r["wall_s"] - r["work_s"], 2)
            if p1 is not None:
                r["x_serial"] = r["work_s"] / p1["work_s"]


def fmt(value, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else ""


def md_table(rows: dict[str, dict], peer_name: str, peer: dict[str, dict]) -> list[str]:
    head = ["contender", "way", "status", "wall (s)", "start-up (s)", "work (s)", "fits", "fits/s",
            "work x serial", "work x R", "identical to serial"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, group in (("hierbayes", rows), (peer_name, peer)):
        for way, r in group.items():
            ident = {True: "yes", False: "**NO**"}.get(r.get("identical_to_serial"), "")
            way_text = f"{way} ({WAYS[way]})" if name == "hierbayes" else way
            lines.append("| " + " | ".join([
                name, way_text, r.get("status", ""), fmt(r.get("wall_s"), ".1f"), fmt(r.get("startup_s"), ".1f"),
                fmt(r.get("work_s"), ".2f"), fmt(r.get("fits"), "d"), fmt(r.get("fits_per_s"), ".1f"),
                fmt(r.get("x_serial"), ".2f"), fmt(r.get("x_r"), ".2f"), ident]) + " |")
    return lines


TITLES = {
    "boot": ("1. Parametric bootstrap, 500 replicates", "lme4 bootMer",
             f"sleepstudy `{SLEEP}`: `fit.confint(method='boot', n_sims={{n}}, seed=1)` beside `bootMer(m, FUN = "
             "function(.) c(fixef(.), sigma(.)), nsim = {n}, parallel = 'multicore', ncpus = 1 | 2)`. hierbayes's "
             "replicates are every parameter (SDs, correlation, sigma, fixed effects); R's start from "
             "`set.seed(1)` and are not the same draws."),
    "kfold_reml_sleepstudy": ("2a. k-fold, REML, sleepstudy by Subject", "", f"`{SLEEP}`, K = 10."),
    "kfold_bayes_sleepstudy": ("2b. k-fold, Bayesian, sleepstudy by Subject", "brms kfold",
                               f"`{SLEEP}`, K = 10, 2 chains x {{d}} draws after {{d}} warm-up steps per fold (serially "
                               "the chains run on 2 cores; on the pool and Dask one per worker, `cores=1`). brms: "
                               "chains = 2, iter = 2 x {d}, cores = 2, compile (once) and the full fit in start-up."),
    "kfold_reml_pupils": ("2c. k-fold, REML, pupils by primary_school_id", "", f"`{PUPILS}`, K = 10."),
    "kfold_bayes_pupils": ("2d. k-fold, Bayesian, pupils by primary_school_id", "",
                           f"`{PUPILS}`, K = 10, 2 chains x {{d}} draws after {{d}} warm-up steps per fold."),
    "power": ("3. Power curve, 6 points x 200 simulations", "simr powerCurve",
              f"sleepstudy `{SLEEP}`, effect Days = 5, along Subject at {LEVELS}, {{n}} simulations per point, "
              "`test='lrt'` (simr's `fixed('Days', 'lr')`): two ML refits a simulation, counted as two fits."),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", choices=["boot", "kfold", "power"], help="run only these workloads")
    parser.add_argument("--no-r", action="store_true", help="leave the R peers out")
    parser.add_argument("--sims", type=int, help="bootstrap replicates and power simulations per point "
                        "(default 500 and 200)")
    parser.add_argument("--draws", type=int, default=500, help="draws and warm-up steps per chain (k-fold, Bayes)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--way", choices=list(WAYS), help=argparse.SUPPRESS)
    parser.add_argument("--npy", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    import distributed

    import hierbayes as hb

    sections = args.only or ["boot", "kfold", "power"]
    missing = {m: f"hierbayes/report/{m}.py is not there yet" for m in ("kfold", "power")
               if not (Path(hb.__file__).parent / "report" / f"{m}.py").exists()}
    paths = write_data()
    cores = os.cpu_count() or 1
    record = {"python": sys.version.split()[0], "numpy": np.__version__, "hierbayes": hb.__version__,
              "distributed": distributed.__version__, "cores": cores, "load_1min": os.getloadavg()[0],
              "date": time.strftime("%Y-%m-%d %H:%M"), "draws": args.draws, "ways": WAYS,
              "r": {} if args.no_r else r_versions(), "workloads": {}}
    md = ["# Many fits benchmark (benchmarks/many.py)\n",
          f"Machine: {cores} cores (two workers can at best halve a workload's time). Each row is a fresh "
          "process; wall is the whole process, start-up everything but the workload (interpreter, imports, data, "
          "the full fit, starting a Dask cluster, its workers' import of hierbayes and closing it), work the workload's call alone (a local pool "
          "starts its workers inside it). fits/s = fits / work. `work x serial`: over the serial row's; "
          "`work x R`: over R's with as many workers (1 for serial, 2 otherwise). Identical: the results' bytes "
          "equal the serial run's.\n",
          f"hierbayes {hb.__version__}, Python {record['python']}, numpy {np.__version__}, distributed "
          f"{distributed.__version__}" + "".join(f", {k} {v}" for k, v in record["r"].items() if k != "R")
          + (f"; {record['r']['R']}" if "R" in record["r"] else "") + ".\n"]
    plan = []
    if "boot" in sections:
        plan.append(("boot", args.sims or 500))
    if "kfold" in sections:
        plan += [(f"kfold_{m}_{d}", 10) for d in KFOLD_DATA for m in ("reml", "bayes")]
    if "power" in sections:
        plan.append(("power", args.sims or 200))
    failures = []
    for workload, sims in plan:
        title, peer_name, note = TITLES[workload]
        module = workload.split("_")[0]
        if module in missing:
            record["workloads"][workload] = {"status": "left out", "why": missing[module]}
            md += [f"## {title}\n", f"Left out: {missing[module]}.\n"]
            print(f"{workload}: left out ({missing[module]})", flush=True)
            continue
        print(f"{workload}:", flush=True)
        rows = hierbayes_ways(workload, sims, args.draws)
        peer = {} if args.no_r else r_rows(workload, paths["sleepstudy"], sims, args.draws)
        ratios(rows, peer)
        identical = [r.get("identical_to_serial") for r in rows.values()]
        all_identical = all(x is True for x in identical)
        if not all_identical:
            failures.append(workload)
        record["workloads"][workload] = {"sims": sims, "identical": all_identical, "hierbayes": rows,
                                         peer_name or "peer": peer}
        md += [f"## {title}\n", note.replace("{n}", str(sims)).replace("{d}", str(args.draws)) + "\n",
               *md_table(rows, peer_name, peer), "",
               f"Results identical across the three ways: {'yes' if all_identical else '**NO**'}.\n"]
        md += [f"{peer_name}, {way}: {r['status']}: {r['note']}.\n" for way, r in peer.items() if "note" in r]
        md += [f"{peer_name} {way}: compile {r['compile_s']:.1f} s and the full fit {r['fit_s']:.1f} s, in its "
               "start-up.\n" for way, r in peer.items() if "compile_s" in r]
        print("\n".join(md[-len(rows) - len(peer) - 6:]), flush=True)
    full = not (args.only or args.sims or args.no_r)
    stem = "many" if full else "many_partial"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(record, indent=2, default=str))
    (RESULTS / f"{stem}.md").write_text("\n".join(md))
    print(f"Wrote {RESULTS / (stem + '.json')} and {RESULTS / (stem + '.md')}")
    if failures:
        raise AssertionError(f"results differ between the ways for {', '.join(failures)} (see {stem}.json)")


if __name__ == "__main__":
    main()
