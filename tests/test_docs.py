"""Every ```python block of the user guide (docs/*.md) runs as written.

Each page is one test (its id is the file name). Its ```python blocks run in order in one fresh
namespace, as a reader pasting them into one session would run them: the first block brings the
imports and the data, later blocks use what earlier ones made. The folder is globbed when the
tests are collected, so a new page is covered the day it lands; a page without a ```python block
has nothing to run and is not collected. docs/notebooks/ is not read here: the Sphinx build
executes those notebooks.

A block is compiled with the page's path as its file name and its own line numbers, so a
traceback points at the line of the page that failed; the failure message also quotes the
block.

Warnings. A ``hb.ConvergenceWarning`` from an example fails the page: an example that does not
converge (divergences, R-hat, low ESS, an optimiser stopped short, a k-fold refit of the data
that failed its checks) teaches a wrong fit, or hides a problem the page should explain. One
kind is let through: the count that ``bootstrap`` / ``confint(method="boot")`` and ``power``
give of their refits of *simulated* data sets that missed lme4's checks ("3 of 100 bootstrap
refits did not pass ..."), as long as it is at most 5% of the refits. Those refits are of data
drawn at random, not of the example's data; at lme4's tolerance a few percent of them stop just
above max|grad| = 0.002 even for a model that fits cleanly (sleepstudy's ``(Days | Subject)``),
as in bootMer and simr, which keep them too. Failing on them would push pages to hunt for a
lucky seed or to cut the simulations, which hides more than it shows; more than 5% means a hard
model and fails the page. A page whose example gives that count says so in its text (the
printed result shows it as "warnings").

Every other warning (a LOO Pareto-k note, a pandas deprecation) is the library or its
dependencies speaking about a correct example: it is recorded, not raised, and shown again
once, so it lands in pytest's warnings summary instead of being silenced. A block that means to
show a warning says so in the page's text; a warning nobody wrote about shows up in that
summary and should lead to a fix of the page or of the library. Recording, rather than turning
ConvergenceWarning into an error, keeps the library's own flow unchanged: its many-fit tools
catch and count their refits' warnings, and see them as they always do.

Blocks that are not Python to run are fenced ```text (printouts, grammar sketches, shell
lines) or ```r; an unlabelled fence, ```py or ```ipython would escape this check, so they are
refused (test_code_blocks_are_labelled).
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import matplotlib
import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"

# The pages that had ```python blocks when this test was written: each must stay collected (a
# page whose blocks were all relabelled or lost would otherwise drop out unnoticed).
KNOWN_PAGES = {
    "bayes_tools.md", "equations.md", "glmer.md", "glmm.md", "inference.md", "many-fits.md",
    "predict.md", "priors.md", "reml.md", "report.md", "structures.md",
}

# the count of simulated refits that bootstrap and power give (see the module's docstring)
SIMULATED_REFITS = re.compile(r"(\d+) of (\d+) (?:bootstrap refits|simulations a refit) did not pass")
SIMULATED_SHARE_ALLOWED = 0.05

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def fenced_blocks(text: str) -> list[tuple[str, int, str]]:
    """``(info, first line of code, code)`` of each fenced block, in order (CommonMark's rules:
    a fence closes on the same character, at least as long, with nothing after it)."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, indent = m["fence"], len(m["indent"])
        info, body, j = m["info"].strip(), [], i + 1
        while j < len(lines):
            close = FENCE.match(lines[j])
            if (close and close["fence"][0] == fence[0] and len(close["fence"]) >= len(fence)
                    and not close["info"].strip()):
                break
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        blocks.append((info, i + 2, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def simulated_refits_within_limit(message: str) -> bool:
    m = SIMULATED_REFITS.search(message)
    return m is not None and int(m[1]) <= SIMULATED_SHARE_ALLOWED * int(m[2])


def python_blocks(page: Path) -> list[tuple[int, str]]:
    return [(line, code) for info, line, code in fenced_blocks(page.read_text())
            if info.split()[:1] == ["python"]]


def pages_with_python() -> list[Path]:
    return sorted(p for p in DOCS.glob("*.md") if python_blocks(p))


PAGES = pages_with_python()


def test_the_known_pages_are_collected():
    assert KNOWN_PAGES <= {p.name for p in PAGES}


def test_code_blocks_are_labelled():
    # bare fences, ```py and ```ipython hold code this file would not run; MyST directives
    # (```{note}, ```{code-cell}) are not code blocks of that kind
    bad = [f"{page.name}:{line - 1}: ```{info}" for page in sorted(DOCS.glob("*.md"))
           for info, line, _ in fenced_blocks(page.read_text())
           if info.split()[:1] in ([], ["py"], ["ipython"], ["ipython3"], ["python3"])]
    assert not bad, "label these blocks python, text or r:\n" + "\n".join(bad)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_page_runs_as_written(page, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hierbayes import ConvergenceWarning

    monkeypatch.chdir(tmp_path)  # a block that saves a file writes it here
    namespace: dict = {"__name__": "__main__"}
    shown: set = set()
    start = time.perf_counter()
    try:
        for i, (line, code) in enumerate(python_blocks(page), start=1):
            where = f"docs/{page.name} block {i} (line {line})"
            # padded so that the traceback's line numbers are the page's
            compiled = compile("\n" * (line - 1) + code, str(page), "exec")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    exec(compiled, namespace)
                except Exception as err:
                    raise AssertionError(f"{where} fails:\n{code}") from err
            diverged = [w for w in caught if issubclass(w.category, ConvergenceWarning)
                        and not simulated_refits_within_limit(str(w.message))]
            assert not diverged, (f"{where} gives a ConvergenceWarning (docs examples must "
                                  f"converge): {diverged[0].message}\n{code}")
            for w in caught:
                key = (w.category, str(w.message))
                if key not in shown:
                    shown.add(key)
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    finally:
        plt.close("all")
        print(f"{page.name}: {time.perf_counter() - start:.1f} s")
