"""Crossed (pupils) and nested (nurses) random effects, and brms-style priors.

``python examples/crossed_and_nested.py``
"""

from __future__ import annotations

import hierbayes as hb


def main() -> None:
    pupils = hb.datasets.load("pupils")
    crossed = hb.Model(
        "achievement ~ sex + ses + (1 | primary_school_id) + (1 | secondary_school_id)", pupils
    )
    fit = crossed.fit(draws=500, tune=500, chains=4, seed=1)
    print(fit.summary())

    nurses = hb.datasets.load("nurses")
    nested = hb.Model(
        "stress ~ age + sex + experience + treatment + wardtype + hospsize + (1 | hospital/ward)",
        nurses,
        priors={"b": "normal(0, 2)", "sd": "student_t(3, 0, 1)", "sigma": "exponential(1)"},
    )
    print(nested.priors)
    print(nested.fit(draws=500, tune=500, chains=4, seed=1).varcorr())


if __name__ == "__main__":
    main()
