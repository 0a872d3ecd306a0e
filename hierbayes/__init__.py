"""hierbayes: Bayesian hierarchical (mixed-effects) regression with lme4 formulas, on PyMC.

Examples
--------
>>> import hierbayes as hb
>>> df = hb.datasets.load("sleepstudy")
>>> model = hb.Model("Reaction ~ Days + (Days | Subject)", df)
>>> fit = model.fit(draws=1000, tune=1000, chains=4, seed=1)   # doctest: +SKIP
>>> print(fit.summary())                                       # doctest: +SKIP
"""

from hierbayes import datasets
from hierbayes.api import Model, load_fit
from hierbayes.bayes.priors import Prior, PriorTable
from hierbayes.bayes.sampler import available_samplers
from hierbayes.errors import (
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
from hierbayes.families import get_family
from hierbayes.families import get_family as family  # hb.family("binomial", link="probit")
from hierbayes.report import BayesFit, GlmerFit, LmerFit, Sims, Summary
from hierbayes.report.compare import anova, compare, loo_compare
from hierbayes.report.emmeans import emmeans
from hierbayes.report.equation import equation
from hierbayes.report.kfold import kfold_compare
from hierbayes.report.many import refit_many
from hierbayes.report.power import PowerResult, power
from hierbayes.report.power_design import power_design
from hierbayes.residuals import ar1, car1
from hierbayes.spec.design import Design, build_design
from hierbayes.spec.formula import ParsedFormula, RandomTerm, parse_formula
from hierbayes.version import __version__ as __version__


def __getattr__(name: str):
    # The REML engine pulls in SciPy's optimisers and sparse matrices (half a second), the
    # plots SciPy's distributions and matplotlib; each loads when first used (hb.lmer calls
    # the REML engine, hb.plot_compare the plots), so a Bayesian fit pays for neither.
    if name == "lmer":
        from hierbayes.api import lmer

        return lmer
    if name == "glmer":
        from hierbayes.api import glmer

        return glmer
    if name == "plot_compare":
        from hierbayes.report.compare import plot_compare

        return plot_compare
    raise AttributeError(f"module 'hierbayes' has no attribute {name!r}")

__all__ = [
    "BayesFit",
    "ConvergenceWarning",
    "DataError",
    "Design",
    "FitFileError",
    "FormulaError",
    "GlmerFit",
    "HierbayesError",
    "HierbayesWarning",
    "LmerFit",
    "Model",
    "ParsedFormula",
    "PowerResult",
    "Prior",
    "PriorError",
    "PriorTable",
    "RandomTerm",
    "SamplerError",
    "SettingsError",
    "Sims",
    "Summary",
    "anova",
    "ar1",
    "available_samplers",
    "build_design",
    "car1",
    "compare",
    "datasets",
    "emmeans",
    "equation",
    "family",
    "get_family",
    "glmer",
    "kfold_compare",
    "lmer",
    "load_fit",
    "loo_compare",
    "parse_formula",
    "plot_compare",
    "power",
    "power_design",
    "refit_many",
]
