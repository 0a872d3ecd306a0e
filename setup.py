"""Build hierbayes's compiled kernels when the package is installed.

Everything else about the package is declared in pyproject.toml. The kernels
are plain C with no Python headers, loaded with ctypes: the Bayesian engine's
(``hierbayes/bayes/kernels/*.c`` and their header ``hb.h``, loaded by
``hierbayes/bayes/native.py``) into the extension ``hierbayes.bayes._ckernels``,
and the REML engine's factor kernel (``hierbayes/linalg/kernels``, loaded by
``hierbayes/linalg/blocked_native.py``) into ``hierbayes.linalg._cblocked``
(``kernel_sources.LIBRARIES``). pip compiles them once, at install time, into
the package folders (``_ckernels.cpython-*.so``, ``_cblocked...``), and nothing
is compiled or cached at run time. ``tools/build_kernels.py`` builds the same
libraries with the same flags without pip.
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
                                               HERE / "hierbayes" / "kernel_sources.py")
kernel_sources = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kernel_sources)


def _files(folder: Path) -> tuple[list[str], list[str]]:
    # setuptools wants paths relative to this file's folder
    sources = [(folder / p.name).as_posix() for p in kernel_sources.c_sources(HERE / folder)]
    headers = [(folder / p.name).as_posix() for p in kernel_sources.kernel_files(HERE / folder)
               if p.suffix == ".h"]
    return sources, headers


class BuildKernels(build_ext):
    """build_ext for a ctypes library: C flags per compiler, no ``PyInit_`` export."""

    def build_extensions(self) -> None:
        for ext in self.extensions:
            # one translation unit that includes every kernel file (kernel_sources.unity_source)
            folder = kernel_sources.LIBRARIES[ext.name]
            unity = Path(self.build_temp) / f"{ext.name.rsplit('.', 1)[-1]}.c"
            unity.parent.mkdir(parents=True, exist_ok=True)
            unity.write_text(kernel_sources.unity_source(HERE / folder))
            ext.depends = [*ext.sources, *ext.depends]
            ext.sources = [unity.as_posix()]
            if self.compiler.compiler_type == "unix":
                ext.extra_compile_args = [*kernel_sources.UNIX_FLAGS, *ext.extra_compile_args]
        super().build_extensions()

    def get_export_symbols(self, ext: Extension) -> list[str]:
        # a Python extension must export PyInit_<name>; this library exports the
        # hb_ functions it defines, and nothing else is looked for
        return ext.export_symbols


def _extension(name: str, exports: list[str]) -> Extension:
    folder = kernel_sources.LIBRARIES[name]
    sources, headers = _files(folder)
    # the loader compares this with the hash of the kernel files beside the library,
    # so a kernel edited in a checkout but not rebuilt is refused, not run stale
    digest = kernel_sources.source_sha256(HERE / folder)
    return Extension(name, sources=sources, depends=headers, include_dirs=[folder.as_posix()],
                     define_macros=[("HB_SOURCE_SHA256", f'"{digest}"')],
                     libraries=[] if sys.platform == "win32" else ["m"], export_symbols=exports)


setup(
    ext_modules=[
        _extension("hierbayes.bayes._ckernels", [
            "hb_logp", "hb_work_new", "hb_work_free", "hb_run_chain", "hb_draw_effects", "hb_draw_collapsed",
            "hb_cpc_cholesky", "hb_windows", "hb_pool_new", "hb_pool_free", "hb_nutpie_logp",
            "hb_nutpie_expand", "hb_model_check", "hb_source_sha256", "hb_model_size", "hb_model_fields",
            "hb_model_offsets", "hb_model_field_name", "hb_constant_count", "hb_constant_name",
            "hb_constant_value",
        ]),
        _extension("hierbayes.linalg._cblocked", ["hb_blocked_abi", "hb_blocked_source_sha256",
                                                  "hb_blocked_first"]),
    ],
    cmdclass={"build_ext": BuildKernels},
)
