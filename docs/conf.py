"""Sphinx configuration of hierbayes's documentation site (``make docs``).

Sphinx with the PyData theme and MyST-NB, the stack of PyMC, ArviZ and bambi: the user guide
pages are MyST Markdown, the API reference comes from the NumPy-style docstrings (autodoc with
napoleon), and the notebooks in ``notebooks/`` are MyST text notebooks executed at every build,
so what the site shows is what the code gives today.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hierbayes.version import __version__  # noqa: E402

project = "hierbayes"
author = "the hierbayes developers"
copyright = "2026, the hierbayes developers"  # noqa: A001
release = version = __version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
    "sphinx_copybutton",
]

# docs/sbc/results.md is written by benchmarks/sbc.py and shown inside sbc-results.md
exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints", "sbc/*.md"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
root_doc = "index"

# MyST: $...$ maths and headings that other pages link to by anchor
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
# the benchmark tables included under docs/benchmarks/ skip heading levels as their scripts
# write them; that is a style note, not a broken page
suppress_warnings = ["myst.header"]

# Every notebook runs at every build (no cache to go stale); a cell that raises fails the build.
nb_execution_mode = os.environ.get("HIERBAYES_NB_EXECUTION", "force")
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
# an output's text/markdown (fit.equation()) is MyST, so its $$ maths renders as maths
nb_render_markdown_format = "myst"

autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autosummary_generate = True
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
# dataclass fields are documented once, by autodoc; the Attributes section lists them as ivars
napoleon_use_ivar = True

intersphinx_mapping = {}  # the build has no network: links to other projects are plain URLs

# The site loads MathJax 3 from its CDN, as Sphinx sites do. To look at a build offline (the
# screenshots in docs/screenshots/), HIERBAYES_MATHJAX2 names a local MathJax 2, e.g. Debian's
# libjs-mathjax: /usr/share/javascript/mathjax/MathJax.js.
if os.environ.get("HIERBAYES_MATHJAX2"):
    mathjax_path = Path(os.environ["HIERBAYES_MATHJAX2"]).as_uri() + "?config=TeX-AMS-MML_HTMLorMML"
    # MyST-NB marks the page tex2jax_ignore and the maths "math" (its MathJax 3 settings)
    mathjax2_config = {"tex2jax": {"inlineMath": [["\\(", "\\)"]],
                                   "displayMath": [["\\[", "\\]"]], "processEscapes": True,
                                   "ignoreClass": "tex2jax_ignore|mathjax_ignore|document",
                                   "processClass": "tex2jax_process|mathjax_process|math|output_area"}}

html_theme = "pydata_sphinx_theme"
html_title = f"hierbayes {release}"
html_static_path = ["_static"]
html_css_files = ["hierbayes.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "header_links_before_dropdown": 6,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "secondary_sidebar_items": ["page-toc"],
}
html_context = {"default_mode": "light"}
