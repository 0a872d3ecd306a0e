"""Rebuild hierbayes's compiled kernels in a checkout, without pip.

``python tools/build_kernels.py`` (or ``make kernels``) compiles each folder of
kernels in :data:`hierbayes.kernel_sources.LIBRARIES` (``hierbayes/bayes/kernels``
into ``hierbayes/bayes/_ckernels<EXT_SUFFIX>``, ``hierbayes/linalg/kernels`` into
``hierbayes/linalg/_cblocked<EXT_SUFFIX>``) with the flags and source hash that
``setup.py`` uses (both take them from :mod:`hierbayes.kernel_sources`), for the
Python running it. The compiler is ``$CC`` or ``cc``. ``--print-hash`` prints
the Bayesian kernels' source hash only; ``--output`` writes the Bayesian
library there and builds nothing else.
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
        "_kernel_sources", ROOT / "hierbayes" / "kernel_sources.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print-hash", action="store_true", help="print the source hash and exit")
    parser.add_argument("--output", type=Path, help="the library to write (default: beside native.py)")
    args = parser.parse_args(argv)
    ks = _kernel_sources()
    if args.print_hash:
        print(ks.source_sha256())
        return 0
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    builds = [(ROOT / folder, ROOT / folder.parent / f"{name.rsplit('.', 1)[-1]}{suffix}")
              for name, folder in ks.LIBRARIES.items()]
    if args.output:
        builds = [(builds[0][0], args.output)]
    cc = shlex.split(os.environ.get("CC", "cc"))
    for folder, out in builds:
        digest = ks.source_sha256(folder)
        with tempfile.TemporaryDirectory() as tmp:
            unity = Path(tmp) / "hb_kernels.c"  # one translation unit, as setup.py compiles them
            unity.write_text(ks.unity_source(folder))
            cmd = [*cc, *ks.UNIX_FLAGS, "-fPIC", "-shared", f"-I{folder}",
                   f'-DHB_SOURCE_SHA256="{digest}"', str(unity), "-lm", "-o", str(out)]
            print(" ".join(shlex.quote(c) for c in cmd))
            rc = subprocess.run(cmd).returncode
        if rc:
            return rc
    return 0

if __name__ == "__main__":
    sys.exit(main())
