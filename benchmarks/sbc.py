"""Simulation-based calibration of `y ~ x + (x | g)` with 20 groups (Talts et al. 2018).

For each replicate: parameters from the priors in `hierbayes.calibration.SBC_PRIORS`,
a data set of 20 groups x 10 rows from them, a fit (2 chains x 500 draws after 500
tuning steps), and the rank of each true value among 99 thinned draws. Ranks of the
fixed effects, both SDs, the correlation and sigma are tested for uniformity by a
chi-square test on 20 bins. Run for the default sampler form (group effects integrated
out) and for the full model (group effects sampled).

    python benchmarks/sbc.py [--replicates 200] [--seed 4]

The default run (seed 4, 200 replicates) is the acceptance run. It was fixed on 2026-11-24,
after seeds 1-3 had been run and before it was run itself, and every earlier run stays listed
beside it. Two further checks use every replicate kept in docs/sbc/: the chi-square test on the
pooled ranks, and a paired comparison of the two sampler forms, which fit the same simulated data
and so must give ranks that differ by Monte Carlo noise alone.

Writes docs/sbc/results-seed<S>-n<R>.json, docs/sbc/ranks-<variant>-seed<S>-n<R>.png, and
docs/sbc/results.md listing every run kept there.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import calibration as cal
import numpy as np

import hierbayes as hb

OUT = Path(__file__).resolve().parents[1] / "docs" / "sbc"
VARIANTS = {"default (marginal)": {}, "full model": {"marginal": False}}
KEEP, BINS = 99, 20


def run_variant(kwargs: dict, replicates: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    ranks: dict[str, list[int]] = {}
    divergences, min_ess = 0, []
    t0 = time.perf_counter()
    for i in range(replicates):
        data, truth = cal.simulate(rng, n_groups=20, per_group=10, slope=True)
        model = hb.Model(cal.formula(True), data, priors=cal.priors(True))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hb.ConvergenceWarning)
            fit = model.fit(draws=500, tune=500, chains=2, seed=seed * 100_000 + i, progressbar=False,
                            check=False, **kwargs)
        for name, r in cal.ranks(truth, cal.headline(fit), keep=KEEP).items():
            ranks.setdefault(name, []).append(r)
        d = fit.diagnostics()
        divergences += d.divergences
        min_ess.append(d.min_ess_bulk)
    pvalues = {k: cal.uniformity_pvalue(np.array(v), keep=KEEP, bins=BINS) for k, v in ranks.items()}
    return {"replicates": replicates, "seconds": round(time.perf_counter() - t0, 1), "pvalues": pvalues,
            "ranks": ranks, "divergences": divergences, "median_min_ess": float(np.median(min_ess))}


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
    for ax, (param, values) in zip(axes.flat, ranks.items(), strict=True):
        ax.axhspan(lo, hi, color="0.85", zorder=0)
        ax.hist(values, bins=np.arange(0, KEEP + 2, (KEEP + 1) // BINS), color="C0", edgecolor="white")
        ax.set_title(f"{param}  (p = {result['pvalues'][param]:.2f})", fontsize=10)
        ax.set_xlabel("rank among 99 draws")
    for ax in axes[:, 0]:
        ax.set_ylabel("replicates")
    fig.suptitle(f"SBC ranks, y ~ x + (x | g), {name}: {n} replicates (grey: 99% band per bin)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


PARAMS = ["(Intercept)", "x", "sd_(Intercept)", "sd_x", "cor", "sigma"]


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


def pooled_tables(runs: list[dict]) -> str:
    ranks: dict[str, dict[str, list[int]]] = {}
    for run in runs:
        for name, res in run["variants"].items():
            for k, v in res["ranks"].items():
                ranks.setdefault(name, {}).setdefault(k, []).extend(v)
    n = len(next(iter(next(iter(ranks.values())).values())))
    lines = [f"Pooled over every run above ({n} replicates per form): chi-square p-values on 20 bins.", "",
             "| variant | " + " | ".join(f"p {k}" for k in PARAMS) + " |", "|" + "---|" * (len(PARAMS) + 1)]
    for name, r in ranks.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{cal.uniformity_pvalue(np.array(r[k]), keep=KEEP, bins=BINS):.3f}" for k in PARAMS) + " |")
    forms = list(ranks)
    if len(forms) == 2:
        a, b = ranks[forms[0]], ranks[forms[1]]
        lines += ["", f"Paired, {forms[0]} against {forms[1]} on the same replicates: p-values for a shift "
                  "in location (t-test of rank differences) and in spread (slope of the difference on "
                  "the mean rank); the SD of the differences is Monte Carlo noise.", "",
                  "| parameter | mean difference | SD of differences | p location | p spread |",
                  "|---|---|---|---|---|"]
        for k in PARAMS:
            d = np.array(a[k], float) - np.array(b[k], float)
            pl, ps = paired(a[k], b[k])
            lines.append(f"| {k} | {d.mean():+.2f} | {d.std():.2f} | {pl:.3f} | {ps:.3f} |")
    return "\n".join(lines)


def write_table() -> str:
    """docs/sbc/results.md from every run's JSON in docs/sbc/, so runs of other seeds stay listed."""
    runs = [json.loads(path.read_text()) for path in sorted(OUT.glob("results-*.json"))]
    lines = ["| run | variant | replicates | seconds | divergences | median min ESS | "
             + " | ".join(f"p {k}" for k in PARAMS) + " |", "|" + "---|" * 12]
    for run in runs:
        for name, res in run["variants"].items():
            p = res["pvalues"]
            lines.append(f"| seed {run['seed']} | {name} | {res['replicates']} | {res['seconds']} | "
                         f"{res['divergences']} | {res['median_min_ess']:.0f} | "
                         + " | ".join(f"{p[k]:.3f}" for k in PARAMS) + " |")
    table = "\n".join(lines) + "\n\n" + pooled_tables(runs)
    (OUT / "results.md").write_text(
        f"SBC of `y ~ x + (x | g)`, 20 groups x 10 rows, priors `{cal.SBC_PRIORS}`; 2 chains x 500 "
        "draws after 500 tuning steps; ranks among 99 thinned draws; chi-square p-values on 20 bins. "
        "Each run: `benchmarks/sbc.py --replicates R --seed S`; histograms in "
        "`ranks-<variant>-seed<S>-n<R>.png`. The acceptance run, fixed before it was run, is seed 4 "
        "with 200 replicates (`make sbc`).\n\n" + table + "\n")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    tag = f"seed{args.seed}-n{args.replicates}"
    variants = {}
    for name, kwargs in VARIANTS.items():
        res = run_variant(kwargs, args.replicates, args.seed)
        variants[name] = res
        plot(name, res, OUT / f"ranks-{name.split()[0]}-{tag}.png")
        print(name, {k: round(v, 3) for k, v in res["pvalues"].items()}, flush=True)
    (OUT / f"results-{tag}.json").write_text(
        json.dumps({"seed": args.seed, "replicates": args.replicates, "variants": variants}, indent=1))
    print(write_table())


if __name__ == "__main__":
    main()
