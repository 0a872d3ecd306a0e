"""Build hierbayes's compiled kernels when the package is installed.

Everything else about the package is declared in pyproject.toml. The kernels
(``hierbayes/bayes/_ckernels.c``) are plain C with no Python headers, loaded with
ctypes by ``hierbayes/native.py``; they are built here as the extension
``hierbayes._ckernels`` so that pip compiles them once, at install time, into
the package folder (``_ckernels.cpython-*.so``), and nothing is compiled or
cached at run time.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCE = "hierbayes/bayes/_ckernels.c"
# native.py compares this with the hash of the _ckernels.c beside the library,
# so a kernel edited in a checkout but not rebuilt is refused, not run stale.
SOURCE_SHA256 = hashlib.sha256((Path(__file__).parent / SOURCE).read_bytes()).hexdigest()

# -O3 with IEEE semantics (no -ffast-math: the sampler tests for infinities and
# NaNs). Portable code, no -march=native, and no contraction of a * b + c into
# fused multiply-adds, so the kernels' arithmetic is the same on every x86-64 and
# ARM machine (the C library's exp and log aside); benchmarks/results.md
# measured -march=native: no gain.
UNIX_FLAGS = ["-O3", "-std=gnu99", "-ffp-contract=off"]


class BuildKernels(build_ext):
    """build_ext for a ctypes library: C flags per compiler, no ``PyInit_`` export."""

    def build_extensions(self) -> None:
        if self.compiler.compiler_type == "unix":
            for ext in self.extensions:
                ext.extra_compile_args = [*UNIX_FLAGS, *ext.extra_compile_args]
        super().build_extensions()

    def get_export_symbols(self, ext: Extension) -> list[str]:
        # a Python extension must export PyInit_<name>; this library exports the
        # hb_ functions it defines, and nothing else is looked for
        return ext.export_symbols


setup(
    ext_modules=[
        Extension(
            "hierbayes.bayes._ckernels",
            sources=[SOURCE],
            define_macros=[("HB_SOURCE_SHA256", f'"{SOURCE_SHA256}"')],
            libraries=[] if sys.platform == "win32" else ["m"],
            export_symbols=[
                "hb_logp", "hb_run_chain", "hb_draw_effects", "hb_draw_collapsed",
                "hb_source_sha256", "hb_model_size", "hb_model_fields", "hb_model_offsets",
            ],
        )
    ],
    cmdclass={"build_ext": BuildKernels},
)
