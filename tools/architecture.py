"""Write the module tree of docs/architecture.md from the package's own docstrings.

``python tools/architecture.py`` rewrites the part of docs/architecture.md
between the ``<!-- tree -->`` and ``<!-- /tree -->`` markers: every module and
kernel file of the package in folder order, each with the first sentence of its
docstring (a C file: of its header comment). ``--check`` only compares, and
fails when the file is stale; tests/test_layout.py runs it, so a new, moved or
renamed module cannot be left out of the document.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hierbayes"
DOC = ROOT / "docs" / "architecture.md"
START, END = "<!-- tree -->", "<!-- /tree -->"


def first_sentence(text: str) -> str:
    """The first paragraph's first sentence, capitalised, ending in a full stop."""
    para = " ".join(text.strip().split("\n\n")[0].split())
    match = re.match(r"(.+?\.)(\s|$)", para)
    out = match.group(1) if match else para.rstrip(":") + "."
    return out if out.startswith("hierbayes") else out[0].upper() + out[1:]


def describe(path: Path) -> str:
    if path.suffix == ".py":
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    else:
        match = re.match(r"\s*/\*(.*?)\*/", path.read_text(), re.S)
        doc = re.sub(r"^\s*\*\s?", "", match.group(1), flags=re.M) if match else ""
        doc = doc.strip().removeprefix(f"{path.name}:")  # the comment opens with the file's name
    if not doc.strip():
        raise SystemExit(f"{path.relative_to(ROOT)} has no docstring (or header comment) to describe it")
    return first_sentence(doc)


def files(folder: Path) -> list[Path]:
    keep = [p for p in folder.iterdir()
            if (p.is_dir() and (p / "__init__.py").exists() or p.name == "kernels" and p.is_dir())
            or p.suffix in (".py", ".c", ".h")]
    # a folder's own description (its __init__) first, then modules, then sub-folders
    return sorted(keep, key=lambda p: (p.is_dir(), p.name != "__init__.py", p.name))


def tree(folder: Path = PACKAGE, depth: int = 0) -> list[str]:
    lines = []
    for path in files(folder):
        indent = "  " * depth
        if path.is_dir():
            init = path / "__init__.py"
            text = describe(init) if init.exists() else "The compiled kernels, one concern per file."
            lines.append(f"{indent}- **`{path.relative_to(PACKAGE)}/`**: {text}")
            lines += tree(path, depth + 1)
        elif path.name != "__init__.py":
            lines.append(f"{indent}- `{path.name}`: {describe(path)}")
    return lines


def render(current: str) -> str:
    if START not in current or END not in current:
        raise SystemExit(f"{DOC} lacks the {START} ... {END} markers")
    head, rest = current.split(START, 1)
    _, tail = rest.split(END, 1)
    body = "\n".join(["- **`hierbayes/`**: " + describe(PACKAGE / "__init__.py"), *["  " + x for x in tree()]])
    return f"{head}{START}\n{body}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/architecture.md is stale")
    args = parser.parse_args()
    current = DOC.read_text()
    new = render(current)
    if args.check:
        if new != current:
            print(f"{DOC.relative_to(ROOT)} is stale: run `python tools/architecture.py`")
            return 1
        return 0
    DOC.write_text(new)
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
