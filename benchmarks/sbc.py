"""Simulation-based calibration of every sampler form and family (Talts et al. 2018).

Variants (``calibration.VARIANTS``): the gaussian ``y ~ x + (x | g)`` with its group effects
integrated out (marginal), sampled centred, and sampled non-centred; the gaussian
``y ~ x + (1 | g)`` whose random intercept is collapsed (summed over rows sorted by level,
unequal level sizes, shuffled rows); bernoulli (logit) and poisson (log) ``y ~ x + (x | g)``
sampled centred and non-centred. Each variant's fit must reach the form it names: the script
stops if the sampler packed the model otherwise (``calibration.fit_variant``).

For each replicate: parameters from the priors in ``calibration.FAMILY_PRIORS``, a data set
from them, a fit (2 chains x 500 draws after 500 tuning steps), and the rank of each true value
among 99 thinned draws. Each parameter's ranks are tested for uniformity by a chi-square test on
20 bins. Variants of one simulation fit the same data sets, so their ranks are also compared
pair by pair: they differ by Monte Carlo noise alone when both forms sample the same posterior.

    python benchmarks/sbc.py [--replicates 200] [--seed 6] [--variants NAME ...] [--table]
                             [--jobs 2 | --scheduler tcp://host:8786]

The replicates run through hierbayes's execution layer (``hierbayes.execution.run_tasks``):
serially, on ``--jobs`` local processes, or on a Dask cluster (``--scheduler``), with the same
ranks on each, since replicate ``i`` draws its data and its fit's seed from child ``i`` of
``SeedSequence([seed, stream])``. Runs made so are marked ``"seeding": "tasks"``; the runs listed
before it drew the replicates in turn from one stream (same design, other data sets).

The acceptance run of every variant is seed 6 with 200 replicates (the defaults, ``make sbc``),
fixed on 2026-12-02 before it was run. Before it, seeds 1-4 (the gaussian model alone, marginal
and full with centring chosen from the data; seed 4 was that model's acceptance run) and a pilot
of every variant (seed 5, 40 replicates, to size the run) were run; every run stays listed.

Writes docs/sbc/results-seed<S>-n<R>-<variant>.json, docs/sbc/ranks-<variant>-seed<S>-n<R>.png,
and docs/sbc/results.md listing every run kept there (``--table`` only rewrites the latter).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import calibration as cal
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "docs" / "sbc"
KEEP, BINS = 99, 20
PARAMS = ["(Intercept)", "x", "sd_(Intercept)", "sd_x", "cor", "sigma"]
# runs before every form and family had a variant: the gaussian slope model, two variants
LEGACY = {"default (marginal)": ("gaussian marginal", "marginal"),
          "full model": ("full model", "centring chosen from the data")}


def run_variant(variant: cal.Variant, replicates: int, seed: int, n_jobs: int = 1,
                client=None) -> dict:
    from hierbayes.execution import run_tasks

    sim = variant.simulation
    t0 = time.perf_counter()
    # replicate i's data and fit seed come from child i of SeedSequence([seed, stream]): the
    # variants of one simulation fit the same data sets, on any executor
    out = run_tasks(cal.sbc_replicate, range(replicates), shared=(variant.name, 500, KEEP),
                    seed=np.random.SeedSequence([seed, sim.stream]), n_jobs=n_jobs, client=client,
                    label=f"SBC {variant.name}")
    seconds = time.perf_counter() - t0
    ranks: dict[str, list[int]] = {}
    for r in out:
        for name, value in r["ranks"].items():
            ranks.setdefault(name, []).append(value)
    divergences = [r["divergences"] for r in out]
    min_ess = [r["min_ess_bulk"] for r in out]
    gradients = [r["gradients"] for r in out]
    pvalues = {k: cal.uniformity_pvalue(np.array(v), keep=KEEP, bins=BINS) for k, v in ranks.items()}
    return {"model": sim.describe(), "stream": sim.stream, "seeding": "tasks", "priors": sim.priors, "form": variant.form,
            "fit": variant.fit_kwargs, "replicates": replicates, "seconds": round(seconds, 1),
            "seconds_per_replicate": round(seconds / replicates, 3),
            "median_gradients": float(np.median(gradients)), "pvalues": pvalues, "ranks": ranks,
            "divergences": int(sum(divergences)),
            "divergent_replicates": int(np.count_nonzero(divergences)),
            "median_min_ess": float(np.median(min_ess)),
            "per_replicate": {"divergences": divergences, "min_ess_bulk": min_ess,
                              "gradients": gradients}}


def plot(name: str, result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    ranks = result["ranks"]
    n = result["replicates"]
    fig, axes = plt.subplots(2, 3, figsize=(10, 5.5), sharey=True)
    # the band each bin's count stays inside with 99% probability under uniformity
    lo, hi = stats.binom.ppf([0.005, 0.995], n, 1 / BINS)
    params = [k for k in PARAMS if k in ranks]
    for ax in axes.flat[len(params):]:
        ax.set_visible(False)
    for ax, param in zip(axes.flat, params, strict=False):
        ax.axhspan(lo, hi, color="0.85", zorder=0)
        ax.hist(ranks[param], bins=np.arange(0, KEEP + 2, (KEEP + 1) // BINS), color="C0",
                edgecolor="white")
        ax.set_title(f"{param}  (p = {result['pvalues'][param]:.2f})", fontsize=10)
        ax.set_xlabel("rank among 99 draws")
    for ax in axes[:, 0]:
        ax.set_ylabel("replicates")
    fig.suptitle(f"SBC ranks, {name}: {result['model']}, {n} replicates (grey: 99% band per bin)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """p-values that two forms' ranks of the same replicates differ in location and in spread.

    The first is a t-test of the rank differences. The second regresses the difference on the
    mean rank: a form whose posterior is narrower than the other's pushes its ranks outwards,
    which shows as a slope.
    """
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    d = a - b
    return float(stats.ttest_1samp(d, 0.0).pvalue), float(stats.linregress((a + b) / 2, d).pvalue)


def load_runs() -> list[dict]:
    """Every run kept in docs/sbc/, its variants' files merged by seed and replicates, oldest first.

    A legacy run's variants get the fields later runs record (model, form, stream).
    """
    runs: dict[tuple[int, int], dict] = {}
    for path in sorted(OUT.glob("results-*.json")):
        run = json.loads(path.read_text())
        into = runs.setdefault((run["seed"], run["replicates"]), {
            "seed": run["seed"], "replicates": run["replicates"], "variants": {}})
        for name, res in run["variants"].items():
            if name in LEGACY:
                res = {"model": cal.GAUSSIAN_SLOPE.describe(), "stream": "legacy",
                       "form": LEGACY[name][1], "pooled_as": LEGACY[name][0], **res}
            into["variants"][name] = res
    order = {name: i for i, name in enumerate([*LEGACY, *cal.VARIANTS])}
    for run in runs.values():
        run["variants"] = dict(sorted(run["variants"].items(), key=lambda kv: order.get(kv[0], 99)))
    return [runs[k] for k in sorted(runs)]


def _cells(pvalues: dict[str, float]) -> str:
    return " | ".join(f"{pvalues[k]:.3f}" if k in pvalues else "" for k in PARAMS)


def pooled_tables(runs: list[dict]) -> str:
    ranks: dict[str, dict[str, list[int]]] = {}
    for run in runs:
        for name, res in run["variants"].items():
            for k, v in res["ranks"].items():
                ranks.setdefault(res.get("pooled_as", name), {}).setdefault(k, []).extend(v)
    lines = ["Pooled over every run above (`default (marginal)` counts as `gaussian marginal`: the "
             "same model, priors and form): chi-square p-values on 20 bins.", "",
             "| variant | replicates | " + " | ".join(f"p {k}" for k in PARAMS) + " |",
             "|" + "---|" * (len(PARAMS) + 2)]
    for name, r in ranks.items():
        n = len(next(iter(r.values())))
        p = {k: cal.uniformity_pvalue(np.array(v), keep=KEEP, bins=BINS) for k, v in r.items()}
        lines.append(f"| {name} | {n} | {_cells(p)} |")
    # pairs of variants that fitted the same data sets: same simulation and stream, same run
    pairs: dict[tuple[str, str], dict[str, tuple[list, list]]] = {}
    for run in runs:
        for (na, a), (nb, b) in itertools.combinations(run["variants"].items(), 2):
            if (a["model"], a["stream"]) != (b["model"], b["stream"]):
                continue
            into = pairs.setdefault((na, nb), {})
            for k in a["ranks"]:
                got = into.setdefault(k, ([], []))
                got[0].extend(a["ranks"][k])
                got[1].extend(b["ranks"][k])
    if pairs:
        lines += ["", "Paired, two forms on the same replicates: p-values for a shift in location "
                  "(t-test of rank differences) / in spread (slope of the difference on the mean "
                  "rank).", "",
                  "| forms | replicates | " + " | ".join(PARAMS) + " |", "|" + "---|" * (len(PARAMS) + 2)]
        for (na, nb), by_param in pairs.items():
            cells = []
            for k in PARAMS:
                if k in by_param:
                    pl, ps = paired(*by_param[k])
                    cells.append(f"{pl:.3f} / {ps:.3f}")
                else:
                    cells.append("")
            n = len(next(iter(by_param.values()))[0])
            lines.append(f"| {na} vs {nb} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_table() -> str:
    """docs/sbc/results.md from every run's JSON in docs/sbc/, so runs of other seeds stay listed."""
    runs = load_runs()
    models = ["| variant | model | form | `fit()` arguments | priors |", "|---|---|---|---|---|"]
    for v in cal.VARIANTS.values():
        args = ", ".join(f"{k}={val}" for k, val in v.fit_kwargs.items())
        # a bar inside a table cell ends it, code span or not
        models.append(f"| {v.name} | {v.simulation.describe().replace('|', chr(92) + '|')} | "
                      f"{v.form} | {args} | "
                      f"`{v.simulation.priors}` |")
    lines = ["| run | variant | replicates | s / replicate | median gradients | divergences "
             "(replicates) | median min ESS | " + " | ".join(f"p {k}" for k in PARAMS) + " |",
             "|" + "---|" * (len(PARAMS) + 7)]
    for run in runs:
        for name, res in run["variants"].items():
            per = res.get("seconds_per_replicate", res["seconds"] / res["replicates"])
            grads = f"{res['median_gradients']:.0f}" if "median_gradients" in res else ""
            div = str(res["divergences"]) + (f" ({res['divergent_replicates']})"
                                             if "divergent_replicates" in res else "")
            lines.append(f"| seed {run['seed']} | {name} | {res['replicates']} | {per:.3f} | {grads} | "
                         f"{div} | {res['median_min_ess']:.0f} | {_cells(res['pvalues'])} |")
    table = "\n".join(lines) + "\n\n" + pooled_tables(runs)
    (OUT / "results.md").write_text(
        "Simulation-based calibration: parameters from the priors, data from them, a fit of 2 "
        "chains x 500 draws after 500 tuning steps, ranks of the true values among 99 thinned "
        "draws, chi-square p-values on 20 bins. Each run: `benchmarks/sbc.py --replicates R "
        "--seed S`; histograms in `ranks-<variant>-seed<S>-n<R>.png`. The acceptance run of "
        "every variant, fixed before it was run, is seed 6 with 200 replicates (`make sbc`); "
        "seeds 1-4 calibrated the gaussian slope model alone (seed 4 was its acceptance run), "
        "with the variants `default (marginal)` and `full model` (the full model with the "
        "centring chosen from each data set); seed 5 was the pilot.\n\n"
        + "\n".join(models) + "\n\n"
        "Divergences: the total over the run's replicates, and in how many replicates any "
        "occurred. Median gradients: NUTS's leapfrog steps (gradients) per replicate over both "
        "chains' draws after warm-up, a cost free of the shared machine's noise.\n\n" + table + "\n")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--variants", nargs="+", choices=list(cal.VARIANTS), default=list(cal.VARIANTS),
                        metavar="NAME", help=f"any of: {', '.join(cal.VARIANTS)} (default: all)")
    parser.add_argument("--table", action="store_true", help="only rewrite docs/sbc/results.md")
    parser.add_argument("--jobs", type=int, default=1, help="local worker processes")
    parser.add_argument("--scheduler", default=None,
                        help="a Dask scheduler's address (tcp://host:8786) to run the fits on")
    args = parser.parse_args()
    client = None
    if args.scheduler:
        import cloudpickle
        from distributed import Client

        # the workers have hierbayes but not this folder: calibration's functions go by value
        cloudpickle.register_pickle_by_value(cal)
        client = Client(args.scheduler)
    OUT.mkdir(parents=True, exist_ok=True)
    tag = f"seed{args.seed}-n{args.replicates}"
    for name in [] if args.table else args.variants:
        variant = cal.VARIANTS[name]
        res = run_variant(variant, args.replicates, args.seed, args.jobs, client)
        plot(name, res, OUT / f"ranks-{variant.slug}-{tag}.png")
        (OUT / f"results-{tag}-{variant.slug}.json").write_text(json.dumps(
            {"seed": args.seed, "replicates": args.replicates, "variants": {name: res}}, indent=1))
        print(f"{name}: {res['seconds_per_replicate']:.3f} s per replicate, {res['divergences']} "
              f"divergences, median min ESS {res['median_min_ess']:.0f}, p",
              {k: round(v, 3) for k, v in res["pvalues"].items()}, flush=True)
    print(write_table())


if __name__ == "__main__":
    main()
