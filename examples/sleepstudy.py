"""Fit lme4's sleepstudy model by NUTS and print lmer's summary with posterior intervals.

Run with ``make demo`` (which also sets up .venv), or ``python examples/sleepstudy.py``.
"""

from __future__ import annotations

import hierbayes as hb


def main() -> None:
    df = hb.datasets.load("sleepstudy")
    model = hb.Model("Reaction ~ Days + (Days | Subject)", df)
    print(model)
    print("\nPriors in force (data-scaled defaults):")
    print(model.priors)
    fit = model.fit(draws=1000, tune=1000, chains=4, seed=1)
    print()
    print(fit.summary())
    print(
        f"\nSampler {fit.info.sampler}: set up (kernels loaded and model packed, or compiled by nutpie) in {fit.info.compile_seconds:.1f} s, "
        f"sampled in {fit.info.sampling_seconds:.1f} s."
    )
    print("\nSubject-level slopes (fixed + random), first five subjects:")
    coef = fit.coef()
    print(coef[coef["term"] == "Days"].head().to_string(index=False))


if __name__ == "__main__":
    main()
