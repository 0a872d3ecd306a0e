"""Execute MyST-NB text notebooks (docs/notebooks/*.md) in a real Jupyter kernel, as the docs build does.

Prints each notebook's wall time and, with ``--show``, every cell's outputs; exits non-zero on
the first cell that raises. ``make docs`` runs the same notebooks through MyST-NB; this is the
quick way to try one while writing it.

Usage: ``.venv/bin/python tools/run_notebook.py docs/notebooks/sleepstudy-pooling.md [--show]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbclient
from myst_nb.core.read import read_myst_markdown_notebook


def run(path: Path, show: bool, timeout: int) -> float:
    nb = read_myst_markdown_notebook(path.read_text())
    start = time.perf_counter()
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    wall = time.perf_counter() - start
    if show:
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            print(f"--- cell {i}: {cell.source.splitlines()[0] if cell.source else ''}")
            for out in cell.get("outputs", []):
                if out.output_type == "stream":
                    print(f"[{out.name}] {out.text}", end="")
                elif "data" in out:
                    kinds = sorted(out.data)
                    text = out.data.get("text/plain", "")
                    print(f"[{out.output_type} {kinds}] {text[:2000]}")
                elif out.output_type == "error":
                    print(f"[error] {out.ename}: {out.evalue}")
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--show", action="store_true", help="print every cell's outputs")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    args = parser.parse_args()
    for path in args.notebooks:
        wall = run(path, args.show, args.timeout)
        print(f"{path}: ran in {wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
