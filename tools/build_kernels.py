"""Rebuild hierbayes's compiled kernels in a checkout, without pip.

``python tools/build_kernels.py`` (or ``make kernels``) compiles every
``hierbayes/bayes/kernels/*.c`` with the flags and source hash that
``setup.py`` uses (both take them from :mod:`hierbayes.bayes.kernel_sources`)
into ``hierbayes/bayes/_ckernels<EXT_SUFFIX>`` for the Python running it. The
compiler is ``$CC`` or ``cc``. ``--print-hash`` prints the source hash only.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _kernel_sources():
    # by path, as setup.py does: importing hierbayes would need the library being built
    spec = importlib.util.spec_from_file_location(
        "_kernel_sources", ROOT / "hierbayes" / "bayes" / "kernel_sources.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print-hash", action="store_true", help="print the source hash and exit")
    parser.add_argument("--output", type=Path, help="the library to write (default: beside native.py)")
    args = parser.parse_args(argv)
    ks = _kernel_sources()
    digest = ks.source_sha256()
    if args.print_hash:
        print(digest)
        return 0
    out = args.output or ROOT / "hierbayes" / "bayes" / f"_ckernels{sysconfig.get_config_var('EXT_SUFFIX')}"
    cc = shlex.split(os.environ.get("CC", "cc"))
    with tempfile.TemporaryDirectory() as tmp:
        unity = Path(tmp) / "hb_kernels.c"  # one translation unit, as setup.py compiles them
        unity.write_text(ks.unity_source())
        cmd = [*cc, *ks.UNIX_FLAGS, "-fPIC", "-shared", f"-I{ks.KERNELS}",
               f'-DHB_SOURCE_SHA256="{digest}"', str(unity), "-lm", "-o", str(out)]
        print(" ".join(shlex.quote(c) for c in cmd))
        return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
