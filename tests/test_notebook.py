"""A real Jupyter kernel: one live progress line per bar, each figure shown once."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

CELLS = [
    "import hierbayes as hb\ndf = hb.datasets.load('sleepstudy')",
    "reml = hb.lmer('Reaction ~ Days + (1 | Subject)', df)\n"
    "ci = reml.confint(method='boot', n_sims=40, seed=1)",
    "fit = hb.Model('Reaction ~ Days + (1 | Subject)', df).fit(draws=300, tune=300, chains=2, "
    "seed=1, check=False)",
    "reml.plot_effect('Days')",
    "reml.summary()",
    "fit.ppc_plot(num_pp_samples=20, seed=1)",
    "hb.Model('Reaction ~ Days + (1 | Subject)', df).plot_prior_predictive(draws=50, seed=1)",
    "prof = reml.confint(method='profile')",
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path_factory.mktemp("nb"))}}).execute()
    return nb.cells


@pytest.mark.slow
@pytest.mark.parametrize(("cell", "label", "total"), [(1, "Bootstrap refits", "40/40"),
                                                      (2, "Sampling 2 chains", "1200/1200"),
                                                      (7, "Profiling 4 parameters", "8/8")])
def test_one_live_progress_line(executed, cell, label, total):
    outputs = executed[cell].outputs
    streams = [o for o in outputs if o.output_type == "stream"]
    assert not any(label in o.text for o in streams), streams  # no line per redraw
    bars = [o for o in outputs if o.output_type == "display_data"
            and o.data.get("text/plain", "").startswith(label)]
    assert len(bars) == 1 and total in bars[0].data["text/plain"]  # updated in place to the end


@pytest.mark.slow
def test_each_figure_and_summary_shown_once(executed):
    for cell in (3, 5, 6):  # our own figure, and two that ArviZ draws with pyplot
        images = [o for o in executed[cell].outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, (cell, executed[cell].outputs)
    (summary,) = [o for o in executed[4].outputs if o.output_type == "execute_result"]
    assert "Number of obs: 180" in summary.data["text/html"]
    assert summary.data["text/plain"].startswith("Linear mixed model fit by REML")
