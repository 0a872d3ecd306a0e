"""Doctest set-up: the names the docstrings' examples take as given.

The examples of :class:`hierbayes.BayesFit`'s methods use ``fit``, the sleepstudy fit
that ``hierbayes/report/bayes.py``'s module docstring makes; it is fitted once here.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def _sleepstudy_fit():
    import hierbayes as hb

    model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
    return model.fit(draws=500, tune=500, chains=2, seed=1, progressbar=False, check=False)


@pytest.fixture(autouse=True)
def _doctest_names(request, doctest_namespace):
    import pandas as pd

    doctest_namespace["pd"] = pd
    if request.node.name.startswith(("hierbayes.report.bayes.", "hierbayes.report.checks",
                                     "hierbayes.report.sensitivity",
                                     "hierbayes.report.diagnostics")):
        doctest_namespace["fit"] = request.getfixturevalue("_sleepstudy_fit")
