"""The compiled kernels' sources, flags and source hash, shared by the build and the loader.

``setup.py`` and ``tools/build_kernels.py`` compile every ``kernels/*.c``
into one library with :data:`UNIX_FLAGS` and pass :func:`source_sha256` to
it; :mod:`hierbayes.bayes.native` compares that hash with the files' at load,
so a kernel edited in a checkout but not rebuilt is refused, not run stale.
This module imports nothing but the standard library: ``setup.py`` loads it
by path, before NumPy or hierbayes can be imported.

Examples
--------
>>> from hierbayes.bayes.kernel_sources import KERNELS, kernel_files, source_sha256
>>> [p.name for p in kernel_files(KERNELS)][:3]
['draws.c', 'families.c', 'family_bernoulli.c']
>>> len(source_sha256(KERNELS))
64
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: The folder of the kernels' C files and their header.
KERNELS = Path(__file__).with_name("kernels")

# -O3 with IEEE semantics (no -ffast-math: the sampler tests for infinities and
# NaNs). Portable code, no -march=native, and no contraction of a * b + c into
# fused multiply-adds, so the kernels' arithmetic is the same on every x86-64 and
# ARM machine (the C library's exp and log aside); benchmarks/results.md
# measured -march=native: no gain.
UNIX_FLAGS = ["-O3", "-std=gnu99", "-ffp-contract=off"]


def kernel_files(folder: Path = KERNELS) -> list[Path]:
    """The kernels' ``.c`` and ``.h`` files in ``folder``, sorted by name."""
    return sorted((p for p in folder.glob("*") if p.suffix in (".c", ".h") and p.is_file()),
                  key=lambda p: p.name)


def c_sources(folder: Path = KERNELS) -> list[Path]:
    """The files to compile: every ``.c`` in ``folder``, sorted by name."""
    return [p for p in kernel_files(folder) if p.suffix == ".c"]


def source_sha256(folder: Path = KERNELS) -> str:
    """SHA-256 over every kernel file's name and bytes, in name order ('' when there are none)."""
    files = kernel_files(folder)
    if not files:
        return ""
    h = hashlib.sha256()
    for p in files:
        data = p.read_bytes()
        # the name and the length frame each file, so moving text between files changes the hash
        h.update(f"{p.name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()
