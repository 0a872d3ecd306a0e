"""Build hierbayes's compiled kernels when the package is installed.

Everything else about the package is declared in pyproject.toml. The kernels
(``hierbayes/bayes/kernels/*.c`` and their header ``hb.h``) are plain C with
no Python headers, loaded with ctypes by ``hierbayes/bayes/native.py``; they
are built here, every C file into the one extension
``hierbayes.bayes._ckernels``, so that pip compiles them once, at install
time, into the package folder (``_ckernels.cpython-*.so``), and nothing is
compiled or cached at run time. ``tools/build_kernels.py`` builds the same
library with the same flags without pip.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
# loaded by path: the package itself (and NumPy) cannot be imported while it is being built
_spec = importlib.util.spec_from_file_location("_kernel_sources",
                                               HERE / "hierbayes" / "bayes" / "kernel_sources.py")
kernel_sources = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kernel_sources)

# setuptools wants paths relative to this file's folder
KERNELS = Path("hierbayes", "bayes", "kernels")
SOURCES = [(KERNELS / p.name).as_posix() for p in kernel_sources.c_sources(HERE / KERNELS)]
HEADERS = [(KERNELS / p.name).as_posix() for p in kernel_sources.kernel_files(HERE / KERNELS)
           if p.suffix == ".h"]
# native.py compares this with the hash of the kernel files beside the library,
# so a kernel edited in a checkout but not rebuilt is refused, not run stale.
SOURCE_SHA256 = kernel_sources.source_sha256(HERE / KERNELS)


class BuildKernels(build_ext):
    """build_ext for a ctypes library: C flags per compiler, no ``PyInit_`` export."""

    def build_extensions(self) -> None:
        # one translation unit that includes every kernel file (kernel_sources.unity_source)
        unity = Path(self.build_temp) / "hb_kernels.c"
        unity.parent.mkdir(parents=True, exist_ok=True)
        unity.write_text(kernel_sources.unity_source(HERE / KERNELS))
        for ext in self.extensions:
            ext.sources = [unity.as_posix()]
            ext.depends = [*SOURCES, *HEADERS]
            if self.compiler.compiler_type == "unix":
                ext.extra_compile_args = [*kernel_sources.UNIX_FLAGS, *ext.extra_compile_args]
        super().build_extensions()

    def get_export_symbols(self, ext: Extension) -> list[str]:
        # a Python extension must export PyInit_<name>; this library exports the
        # hb_ functions it defines, and nothing else is looked for
        return ext.export_symbols


setup(
    ext_modules=[
        Extension(
            "hierbayes.bayes._ckernels",
            sources=SOURCES,
            depends=HEADERS,
            include_dirs=[KERNELS.as_posix()],
            define_macros=[("HB_SOURCE_SHA256", f'"{SOURCE_SHA256}"')],
            libraries=[] if sys.platform == "win32" else ["m"],
            export_symbols=[
                "hb_logp", "hb_work_new", "hb_work_free", "hb_run_chain", "hb_draw_effects", "hb_draw_collapsed", "hb_cpc_cholesky", "hb_windows",
                "hb_pool_new", "hb_pool_free", "hb_nutpie_logp", "hb_nutpie_expand",
                "hb_model_check", "hb_source_sha256", "hb_model_size", "hb_model_fields",
                "hb_model_offsets", "hb_model_field_name", "hb_constant_count", "hb_constant_name", "hb_constant_value",
            ],
        )
    ],
    cmdclass={"build_ext": BuildKernels},
)
