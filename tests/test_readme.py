"""Every Python block of README.md runs as written, in order, in one namespace, and the sample
output it shows is what the code prints."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import matplotlib
import pytest

from .test_docs import python_blocks

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks() -> list[str]:
    # the docs pages' fence reader: one rule for what a python block is
    return [code for _, code in python_blocks(README)]


@pytest.mark.slow
def test_the_readme_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the README saves a figure where it runs
    matplotlib.use("Agg")
    found = blocks()
    assert len(found) >= 4
    namespace: dict = {}
    with warnings.catch_warnings():
        # the README's fits are small; their convergence advice and LOO's Pareto-k notes are
        # the library speaking, not a failure of the examples
        warnings.simplefilter("ignore")
        for i, code in enumerate(found):
            try:
                exec(compile(code, f"README.md block {i + 1}", "exec"), namespace)
            except Exception as err:  # say which block, with its text
                raise AssertionError(f"README.md block {i + 1} fails:\n{code}") from err
    # the printout under the first block is that block's fit's summary, as the code gives it now
    shown = re.search(r"```text\n(Bayesian linear mixed model fit by NUTS.*?)```", README.read_text(),
                      flags=re.S)
    assert shown is not None, "README.md lost its sample output"
    assert str(namespace["fit"].summary()).strip() == shown.group(1).strip()
