"""Complete, no and partial pooling on sleepstudy, in pictures.

``python examples/pooling.py`` writes the figures to examples/out/;
``python examples/pooling.py --gallery`` (``make gallery``) writes them to docs/gallery/,
where docs/gallery.md shows them.

Eighteen subjects, ten days of sleep deprivation each. Three ways to fit a line:

* complete pooling: one line for everybody, as if the subjects were one person;
* no pooling: a separate least-squares line per subject, as if they had nothing in common;
* partial pooling: the mixed model ``Reaction ~ Days + (Days | Subject)``. Each subject's
  line is drawn toward the population line, more so when its own data say less.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hierbayes as hb

ROOT = Path(__file__).resolve().parents[1]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    df = hb.datasets.load("sleepstudy")
    model = hb.Model("Reaction ~ Days + (Days | Subject)", df)
    fit = model.fit(draws=1000, tune=1000, chains=4, seed=1, progressbar=False)
    reml = model.fit_reml()

    def save(fig, name: str) -> None:
        fig.savefig(out / f"{name}.png", dpi=80)
        print(f"wrote {out / name}.png")

    # 1. The data, with the three lines per subject. Subject 309's flat data pull its no-pooling
    #    line down; the partial-pooling line sits between it and the population.
    save(fit.plot_groups("Days"), "groups")

    # 2. Shrinkage: each subject's own (intercept, slope) moves toward the population estimate.
    #    Subjects whose own lines are extreme move most.
    save(fit.plot_shrinkage(), "shrinkage")

    # 3. The group effects with their intervals (Bayesian) and with conditional SDs (REML).
    save(fit.plot_caterpillar(), "caterpillar")
    save(reml.plot_caterpillar(), "caterpillar_reml")

    # 4. The population line with its 95% band.
    save(fit.plot_effect("Days"), "effect")

    # 5. Checks: residuals, QQ plots, traces, what the data taught beyond the priors.
    save(fit.plot_diagnostics(), "diagnostics")
    save(fit.plot_trace(), "trace")
    save(fit.plot_prior_posterior(), "prior_posterior")
    save(fit.ppc_plot(seed=1), "ppc")

    # 6. Bayes against REML, parameter by parameter.
    save(hb.plot_compare(fit, reml), "compare")
    print(hb.compare(fit, reml))


if __name__ == "__main__":
    gallery = "--gallery" in sys.argv[1:]
    main(ROOT / "docs" / "gallery" if gallery else Path(__file__).resolve().parent / "out")
