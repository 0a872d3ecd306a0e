"""The REML engine's compiled factor kernel (``kernels/blocked.c``), loaded and checked through ctypes.

``pip install`` (``setup.py``; in a checkout also ``tools/build_kernels.py``)
compiles ``hierbayes/linalg/kernels`` into the extension
``hierbayes.linalg._cblocked`` beside this module; :func:`load` opens it once
per process and refuses a library whose ABI number (``HB_BLOCKED_ABI`` in
``kernels/blocked.h``) is not :data:`ABI` or, in a checkout, that was built from
other kernel files than those beside it. :func:`first_blocks` is the one entry
point: the first random-effect term's blocks of
:class:`hierbayes.linalg.blocked.BlockedCholesky`'s factor.

Examples
--------
>>> import numpy as np
>>> A11 = np.array([[[2.0, 1.0], [1.0, 2.0]]])
>>> AD1 = np.array([[[1.0, 0.0]]])
>>> L11, LD1, ld = first_blocks(np.ones(2), A11, AD1, np.empty(2))
>>> np.allclose(L11[0] @ L11[0].T, A11[0] + np.eye(2)), round(ld, 6)
(True, 2.079442)
"""

from __future__ import annotations

import ctypes
import importlib.util
import threading
from ctypes import byref, c_char_p, c_double, c_int, c_int64, c_void_p
from pathlib import Path

import numpy as np

from hierbayes.errors import HierbayesError
from hierbayes.kernel_sources import BLOCKED_KERNELS, kernel_files, source_sha256

EXTENSION = f"{__package__}._cblocked"
#: The kernels' signature version, ``HB_BLOCKED_ABI`` in ``kernels/blocked.h``.
ABI = 1
REBUILD = ("Rebuild it: `pip install --force-reinstall --no-deps hierbayes`, or in a checkout "
           "`make kernels`, `pip install -e .` or `python tools/build_kernels.py`.")

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def library_path() -> Path:
    """The installed factor kernel's shared library.

    Raises
    ------
    HierbayesError
        When the package was installed without it.
    """
    spec = importlib.util.find_spec(EXTENSION)
    if spec is None or spec.origin is None:
        raise HierbayesError(f"hierbayes's compiled factor kernel ({EXTENSION}) is missing from "
                       f"{Path(__file__).parent}: the installation is incomplete. {REBUILD}")
    return Path(spec.origin)


def open_library(path: Path, sources: Path = BLOCKED_KERNELS) -> ctypes.CDLL:
    """Open the library at ``path``, check its ABI and source hash, and declare its functions.

    Raises
    ------
    HierbayesError
        When it cannot be opened, lacks the entry points, has another ABI, or
        (where ``sources`` holds kernel files) was built from other sources.
    """
    try:
        lib = ctypes.CDLL(str(path))
        lib.hb_blocked_abi.restype = c_int64
        lib.hb_blocked_source_sha256.restype = c_char_p
        first = lib.hb_blocked_first
    except (OSError, AttributeError) as err:
        raise HierbayesError(f"hierbayes's factor kernel ({path}) could not be loaded: {err}. {REBUILD}") from err
    if lib.hb_blocked_abi() != ABI:
        raise HierbayesError(f"hierbayes's factor kernel ({path}) has ABI {lib.hb_blocked_abi()}, and "
                       f"hierbayes/linalg/blocked_native.py expects {ABI}: the ctypes declarations "
                       "were not changed with kernels/blocked.h, or the library is stale. " + REBUILD)
    if kernel_files(sources) and lib.hb_blocked_source_sha256().decode() != source_sha256(sources):
        raise HierbayesError(f"hierbayes's factor kernel ({path}) was built from other versions of the "
                       f"files in {sources} (edited since the last build?). " + REBUILD)
    first.argtypes = [c_int64, c_int64, c_int64, *[c_void_p] * 7]
    first.restype = c_int
    return lib


def load() -> ctypes.CDLL:
    """The factor kernel's library, opened and checked once per process."""
    global _lib
    with _lock:
        if _lib is None:
            _lib = open_library(library_path())
    return _lib


def first_blocks(d: np.ndarray, A11: np.ndarray, AD1: np.ndarray,
                 work: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``L11``, ``LD1`` and ``log|L11|^2`` of the first term at a diagonal factor ``T1 = diag(d)``.

    Parameters
    ----------
    d
        The ``p`` diagonal entries of the relative covariance factor.
    A11
        ``(L, p, p)`` per-level blocks of ``Z_1'Z_1``.
    AD1
        ``(m, L, p)`` rows of ``[Lambda_D' Z_rest, X, y]'Z_1``.
    work
        At least ``p`` doubles, allocated once by the caller.

    Returns
    -------
    L11, LD1, ld
        ``(L, p, p)`` lower Cholesky blocks of ``D A11 D + I``, ``(m, L * p)``
        coupling rows ``(AD1 D) L11^-T`` and the sum of ``log|L11_l|^2``.

    Raises
    ------
    numpy.linalg.LinAlgError
        Where a level's block is not numerically positive definite.
    """
    lib = load()
    L, p, _ = A11.shape
    m = AD1.shape[0]
    # the kernel reads C-contiguous doubles (no copy where they already are)
    d, A11, AD1 = (np.ascontiguousarray(a, dtype=float) for a in (d, A11, AD1))
    L11 = np.empty((L, p, p))
    LD1 = np.empty((m, L * p))
    ld = c_double()
    status = lib.hb_blocked_first(L, p, m, d.ctypes.data, A11.ctypes.data, AD1.ctypes.data,
                                  L11.ctypes.data, LD1.ctypes.data, byref(ld), work.ctypes.data)
    if status:
        raise np.linalg.LinAlgError(f"level {status - 1}'s block of the first term is not positive definite")
    return L11, LD1, ld.value
