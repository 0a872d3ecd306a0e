"""A model specified for a power analysis before any data: a planned design and guesses of its parameters.

:func:`power_design` is simr's ``makeLmer`` / ``makeGlmer``: the formula, a
data frame of the planned design (subjects by days, say, made with pandas;
the response may be absent) and the parameters' values: every fixed effect,
each random-effect term's SDs (and correlations), and sigma. The result is a
:class:`~hierbayes.report.power_sim.PowerModel`, which
:func:`hierbayes.report.power.power` simulates from.

Examples
--------
>>> import pandas as pd
>>> plan = pd.DataFrame([(s, d) for s in range(10) for d in range(10)], columns=["Subject", "Days"])
>>> m = power_design("Reaction ~ Days + (Days | Subject)", plan,
...                  fixef={"(Intercept)": 250, "Days": 5}, sd={"Subject": [24, 6]},
...                  cor={"Subject": 0.07}, sigma=25)
>>> m.varcorr()["sdcor"].round(2).tolist()
[24.0, 6.0, 0.07, 25.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError, SettingsError
from hierbayes.families import get_family
from hierbayes.report.power_sim import (
    PowerModel,
    carry_arrays,
    check_number,
    covariances_from,
    rows_used,
)
from hierbayes.spec.design import build_design
from hierbayes.spec.formula import parse_formula
from hierbayes.spec.rexpr import parse

#: What an absent response column holds while the design is built (it is simulated anyway).
PLACEHOLDER = {"gamma": 1.0}


def _names(node: Any) -> list[str]:
    here = [str(node.value)] if node.kind == "name" else []
    return here + [n for a in (node.args or ()) for n in _names(a)]


def with_response(formula: str, data: pd.DataFrame, family: Any) -> pd.DataFrame:
    """``data`` with placeholder columns for a response it lacks (the simulations fill it)."""
    node = parse(parse_formula(formula).response)
    missing = [n for n in dict.fromkeys(_names(node)) if n not in data.columns]
    if not missing:
        return data
    if node.kind == "call" and node.value == "cbind":
        first = node.args[0]
        if first.kind != "name" or missing != [str(first.value)]:
            raise DataError(f"The planned data need the binomial trials: with the response "
                            f"{parse_formula(formula).response} the data must hold the failures' "
                            f"columns (missing: {missing}); e.g. cbind(s, n - s) with n, the "
                            "trials, in the data.")
    elif node.kind != "name":
        raise DataError(f"The response {parse_formula(formula).response} uses columns the data "
                        f"lack ({missing}); name the response as a plain column (it is "
                        "simulated), or add the columns.")
    value = PLACEHOLDER.get(get_family(family).name, 0.0)
    return data.assign(**{n: value for n in missing})


def power_design(formula: str, data: pd.DataFrame, fixef: dict[str, float],
                 sd: dict[str, Any], cor: dict[str, Any] | None = None,
                 sigma: float | None = None, family: Any = "gaussian",
                 shape: float | None = None, weights: Any = None, offset: Any = None,
                 reml: bool = True, nAGQ: int = 1) -> PowerModel:
    """A model to simulate from, specified by its parameters' values (simr's ``makeLmer``).

    Parameters
    ----------
    formula
        An lme4 formula (``"Reaction ~ Days + (Days | Subject)"``).
    data
        The planned design, one row per observation; the response's column
        may be absent (it is simulated).
    fixef
        Every fixed-effect coefficient by name, as the fit would name it
        (``{"(Intercept)": 250, "Days": 5}``; a factor's ``"groupB"``).
    sd
        Each random-effect term's SDs by group, in the term's order
        (``{"Subject": [24, 6]}``; ``"Subject.1"`` for a second term on
        Subject).
    cor
        Correlations by group: a number for a term of two coefficients, else
        the correlation matrix; 0 where not given.
    sigma
        The residual SD (Gaussian), or lme4's ``sigma`` of a Gamma model.
    family
        The response family (``"binomial"``, ``"poisson"``, ...).
    shape
        The negative binomial's shape.
    weights, offset
        As :func:`hierbayes.lmer`'s: column names or one value per row.
    reml, nAGQ
        How each simulated data set is refitted (lmer's REML or ML; glmer's
        quadrature points).

    Returns
    -------
    PowerModel
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame of the planned design, not "
                        f"{type(data).__name__}.")
    if not isinstance(fixef, dict) or not isinstance(sd, dict):
        raise SettingsError("fixef= and sd= are dicts: {'(Intercept)': 250, 'Days': 5} and "
                            "{'Subject': [24, 6]}.")
    if cor is not None and not isinstance(cor, dict):
        raise SettingsError(f"cor must be a dict by group ({{'Subject': 0.1}}), not {cor!r}.")
    fam = get_family(family)
    filled = with_response(formula, data, fam)
    design = build_design(parse_formula(formula), filled, family=fam, weights=weights,
                          offset=offset)
    if not design.blocks:
        raise DataError("The formula has no random-effect term; power_design() plans mixed "
                        "models.")
    names = design.fixef_names
    missing = [n for n in names if n not in fixef]
    extra = [n for n in fixef if n not in names]
    if missing or extra:
        raise SettingsError(f"fixef= needs a value for every fixed-effect coefficient, {names}"
                            + (f"; missing {missing}" if missing else "")
                            + (f"; not in the model: {extra}" if extra else "") + ".")
    beta = np.array([check_number(f"fixef[{n!r}]", fixef[n]) for n in names])
    covs = covariances_from(design, sd, cor or {})
    scale = fam.residual_sd or fam.name == "gamma"
    if scale and sigma is None:
        raise SettingsError(f"sigma= is needed: the {fam.name} family's "
                            f"{'residual SD' if fam.residual_sd else 'scale'}.")
    if not scale and sigma is not None:
        raise SettingsError(f"sigma= has no meaning for the {fam.name} family.")
    if (fam.name == "negbinomial") != (shape is not None):
        raise SettingsError("shape= is the negative binomial's (needed there, and only there).")
    if fam.supports_reml:
        from hierbayes.report.lmer import LmerFit

        wrap = LmerFit.from_mermod
    else:
        from hierbayes.report.glmer import GlmerFit

        wrap = GlmerFit.from_glmermod
    data, settings = carry_arrays(rows_used(design), dict(design.settings), filled)
    return PowerModel(design=design, data=data, settings=settings, beta=beta, covariances=covs,
                      sigma=None if sigma is None else check_number("sigma", sigma, positive=True),
                      shape=None if shape is None else check_number("shape", shape, positive=True),
                      reml=bool(reml), nAGQ=int(nAGQ), wrap=wrap)
