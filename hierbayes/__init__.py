"""hierbayes: Bayesian hierarchical (mixed-effects) regression with lme4 formulas, on PyMC.

Examples
--------
>>> import hierbayes as hb
>>> df = hb.datasets.load("sleepstudy")
>>> model = hb.Model("Reaction ~ Days + (Days | Subject)", df)
>>> fit = model.fit(draws=1000, tune=1000, chains=4, seed=1)   # doctest: +SKIP
>>> print(fit.summary())                                       # doctest: +SKIP
"""

from . import datasets
from .design import Design, build_design
from .errors import (
    ConvergenceWarning,
    DataError,
    FitFileError,
    FormulaError,
    HierbayesError,
    HierbayesWarning,
    PriorError,
    SamplerError,
    SettingsError,
)
from .families import get_family
from .formula import ParsedFormula, RandomTerm, parse_formula
from .model import Model
from .priors import Prior, PriorTable
from .results import BayesFit, LmerFit, Sims, Summary
from .results.compare import anova, compare, loo_compare
from .sampling import available_samplers
from .save import load_fit

__version__ = "0.1.0"


def __getattr__(name: str):
    # The REML engine pulls in SciPy's optimisers and sparse matrices (half a second);
    # load it when first used, so a Bayesian fit does not pay for it.
    if name == "lmer":
        from .reml import lmer

        return lmer
    if name == "plot_compare":
        from .plots import plot_compare

        return plot_compare
    raise AttributeError(f"module 'hierbayes' has no attribute {name!r}")

__all__ = [
    "BayesFit",
    "ConvergenceWarning",
    "DataError",
    "Design",
    "FitFileError",
    "FormulaError",
    "HierbayesError",
    "HierbayesWarning",
    "LmerFit",
    "Model",
    "ParsedFormula",
    "Prior",
    "PriorError",
    "PriorTable",
    "RandomTerm",
    "SamplerError",
    "SettingsError",
    "Sims",
    "Summary",
    "anova",
    "available_samplers",
    "build_design",
    "compare",
    "datasets",
    "get_family",
    "lmer",
    "load_fit",
    "loo_compare",
    "parse_formula",
    "plot_compare",
]
