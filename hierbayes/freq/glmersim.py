"""Simulated responses from a GLMM fit, as lme4's ``simulate.merMod`` for a glmerMod.

Fixed effects and variance components stay at their estimates. With
``use_u=False`` (lme4's default, ``re.form = NA``) every level gets new group
effects from N(0, the fitted covariance); with ``use_u=True`` the fitted
conditional modes are kept. The means ``g^-1(eta)`` (offsets included) are
then drawn from the family: binomial successes out of the trials (0/1 for a
0/1 response), Poisson counts, negative binomial counts with the fitted
shape, Gamma values with shape ``1 / sigma^2`` (lme4's ``Gamma_simfun``).

Examples
--------
>>> import numpy as np
>>> import hierbayes as hb
>>> from hierbayes.freq.glmer import fit_glmer_design
>>> from hierbayes.spec.design import build_design
>>> from hierbayes.spec.formula import parse_formula
>>> d = build_design(parse_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)"),
...                  hb.datasets.load("cbpp"), family="binomial")
>>> y = simulate_glmer_responses(fit_glmer_design(d), 3, np.random.default_rng(1))
>>> y.shape, bool((y <= d.trials).all())
((3, 56), True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hierbayes.freq.sim import simulated_eta

if TYPE_CHECKING:
    from hierbayes.freq.glmermod import GlmerMod


def simulate_glmer_responses(fit: GlmerMod, n: int, rng: np.random.Generator,
                             use_u: bool = False) -> np.ndarray:
    """``n`` new responses (as the design holds them: binomial successes) from a GLMM fit.

    Returns
    -------
    numpy.ndarray
        ``(n, nobs)``.
    """
    d = fit.design
    eta = simulated_eta(fit, n, rng, use_u)
    mean = d.family.inverse_link(eta)
    if d.family.name == "negbinomial":
        dispersion = np.full(n, fit.dispersion)
    elif d.family.name == "gamma":
        dispersion = np.full(n, 1.0 / fit.sigma**2)
    else:
        dispersion = None
    return d.family.draw(rng, mean, dispersion, d.trials, d.weights)
