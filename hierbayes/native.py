"""hierbayes's compiled kernels (``_ckernels.c``): build, cache, and call through ctypes.

The kernels are one C file with no Python headers. On first use it is
compiled with the system's C compiler (``$CC``, else ``cc`` or ``gcc``), which
takes a second or two, and the shared library is kept in a cache keyed by the
source's hash and the compiler flags, so every later process, formula and
data set loads it in milliseconds. Nothing is compiled per model: a model is
a :class:`Model` record of pointers to the arrays that
:func:`hierbayes.logdensity.pack` lays out.

The cache lives in ``hierbayes/__pycache__`` when that folder is writable,
else in ``$HIERBAYES_CACHE_DIR``, ``$XDG_CACHE_HOME/hierbayes`` or
``~/.cache/hierbayes``; ``$HIERBAYES_CACHE_DIR`` wins when set.
:func:`cache_dir` says which, :func:`clear_cache` empties it.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.logdensity import pack
>>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> p = pack(m.design, m.priors)
>>> lp, grad = p.logp_grad(p.start)
>>> grad.shape == (p.dim,)
True
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from ctypes import POINTER, c_double, c_int, c_int64, c_uint64, c_void_p
from pathlib import Path

import numpy as np

from .errors import SamplerError

SOURCE = Path(__file__).with_name("_ckernels.c")
# IEEE semantics kept (no -ffast-math): the sampler tests for infinities and NaNs.
FLAGS = ["-O3", "-std=gnu99", "-fPIC", "-shared"]
NATIVE = ["-march=native"]
# the row loop keeps one record per block on the stack (Rows in _ckernels.c)
MAX_BLOCKS = 16

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


class Model(ctypes.Structure):
    """The C ``Model`` record: sizes and pointers into the packed arrays (see ``_ckernels.c``)."""

    _fields_ = [
        ("mode", c_int64), ("dim", c_int64),
        ("n", c_int64), ("p", c_int64), ("G", c_int64), ("npri", c_int64),
        ("Xt", c_void_p), ("y", c_void_p), ("idxT", c_void_p), ("ZvT", c_void_p), ("ccnt", c_void_p),
        ("cseg", c_void_p), ("blk", c_void_p),
        ("blk_eta", c_void_p), ("pri_i", c_void_p), ("pri_f", c_void_p), ("misc", c_void_p),
        ("pmap", c_void_p),
        ("mp", c_int64), ("q", c_int64), ("q1", c_int64), ("q2", c_int64), ("mG", c_int64),
        ("mnpri", c_int64), ("mn", c_int64), ("mosig", c_int64),
        ("XtX", c_void_p), ("Xty", c_void_p), ("yty", c_double), ("ZtX", c_void_p),
        ("Zty", c_void_p), ("G11", c_void_p), ("G21", c_void_p), ("G22", c_void_p),
        ("mblk", c_void_p), ("mblk_eta", c_void_p), ("mpri_i", c_void_p), ("mpri_f", c_void_p),
    ]


def cache_dir() -> Path:
    """The folder that holds the compiled kernels (created if missing)."""
    env = os.environ.get("HIERBAYES_CACHE_DIR")
    if env:
        folder = Path(env)
    else:
        folder = Path(__file__).parent / "__pycache__"
        try:
            folder.mkdir(exist_ok=True)
            writable = os.access(folder, os.W_OK)
        except OSError:
            writable = False
        if not writable:
            base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
            folder = Path(base) / "hierbayes"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def clear_cache() -> int:
    """Delete the compiled kernels; return how many files went. The next fit compiles them again."""
    removed = 0
    for f in cache_dir().glob("_ckernels-*.so"):
        f.unlink()
        removed += 1
    return removed


def available() -> bool:
    """Whether a C compiler is there to build (or find in the cache) the kernels."""
    try:
        _compiler()
    except SamplerError:
        return False
    return True


def _compiler() -> str:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc.split()[0]):
            return cc
    raise SamplerError(
        "hierbayes's sampler is compiled from C on first use, and no C compiler was found "
        "(tried $CC, cc, gcc, clang). Install gcc, or fit with sampler='nutpie' or 'pymc'."
    )


def _build(cc: str, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    errors = ""
    # -march=native first; a compiler that lacks it gets the portable flags
    for extra in (NATIVE, []):
        cmd = [*cc.split(), *FLAGS, *extra, str(SOURCE), "-o", tmp, "-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode == 0:
            os.replace(tmp, target)  # atomic: processes building at once do not clash
            return
        errors = proc.stderr
    Path(tmp).unlink(missing_ok=True)
    raise SamplerError(f"Compiling hierbayes's kernels with {cc} failed:\n{errors[-2000:]}")


def library_path(cc: str) -> Path:
    """Where the shared library for this source, compiler ``cc`` and machine lives in the cache."""
    key = hashlib.sha256()
    key.update(SOURCE.read_bytes())
    key.update(" ".join([cc, *FLAGS, *NATIVE, platform.machine(), platform.system()]).encode())
    return cache_dir() / f"_ckernels-{key.hexdigest()[:16]}.so"


def load() -> ctypes.CDLL:
    """The kernels' shared library, compiled first if the cache has none."""
    global _lib
    with _lock:
        if _lib is None:
            cc = _compiler()
            path = library_path(cc)
            if not path.exists():
                _build(cc, path)
            lib = ctypes.CDLL(str(path))
            M = POINTER(Model)
            lib.hb_logp.argtypes = [M, c_void_p, c_void_p]
            lib.hb_logp.restype = c_double
            lib.hb_run_chain.argtypes = [M, c_void_p, c_uint64, c_int64, c_int64, c_double, c_int64,
                                         c_void_p, c_void_p, c_void_p, c_void_p, c_int64, c_void_p]
            lib.hb_run_chain.restype = c_int
            for name in ("hb_draw_effects", "hb_draw_collapsed"):
                fn = getattr(lib, name)
                fn.argtypes = [M, c_void_p, c_int64, c_uint64, c_void_p]
                fn.restype = c_int
            _lib = lib
    return _lib


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


class NativeModel:
    """A :class:`Model` record over packed arrays, which it keeps alive."""

    def __init__(self, marginal: bool, data: tuple, dim: int) -> None:
        m = Model()
        m.mode = 1 if marginal else 0
        m.dim = dim
        keep = []

        def arr(a, dtype) -> int:
            a = np.ascontiguousarray(a, dtype=dtype)
            keep.append(a)
            return _ptr(a)

        if marginal:
            XtX, Xty, yty, ZtX, Zty, G11, G21, G22, blk, etas, pri_i, pri_f, misc = data
            if blk.shape[0] == 0:
                raise ValueError("the marginal kernel needs at least one group term")
            m.mp, m.q = XtX.shape[0], Zty.shape[0]
            m.q1 = int(blk[0, 0] * blk[0, 1])
            m.q2 = m.q - m.q1
            m.mG, m.mnpri, m.mn, m.mosig = blk.shape[0], pri_i.shape[0], int(misc[0]), int(misc[1])
            m.yty = float(yty)
            m.XtX, m.Xty, m.ZtX, m.Zty = (arr(a, np.float64) for a in (XtX, Xty, ZtX, Zty))
            m.G11, m.G21, m.G22 = (arr(a, np.float64) for a in (G11, G21, G22))
            m.mblk, m.mblk_eta = arr(blk, np.int64), arr(etas, np.float64)
            m.mpri_i, m.mpri_f = arr(pri_i, np.int64), arr(pri_f, np.float64)
        else:
            X, y, idx, Zv, blk, etas, pri_i, pri_f, misc, pmap = data
            if blk.shape[0] > MAX_BLOCKS:
                raise ValueError(f"at most {MAX_BLOCKS} group terms are supported, not {blk.shape[0]}")
            m.n, m.p = X.shape
            m.G, m.npri = blk.shape[0], pri_i.shape[0]
            cg = int(misc[2])
            if cg >= 0:
                # rows sorted by the collapsed block's level, so its level sums run over
                # contiguous rows (the likelihood does not depend on the rows' order)
                order = np.argsort(idx[:, cg], kind="stable")
                X, y, idx, Zv = X[order], y[order], idx[order], Zv[order]
                counts = np.bincount(idx[:, cg], minlength=int(blk[cg, 1]))
            else:
                counts = np.zeros(1, dtype=np.int64)
            m.ccnt = arr(counts, np.float64)
            m.cseg = arr(np.concatenate(([0], np.cumsum(counts))), np.int64)
            # column-major copies: the kernel's row loops run a column at a time
            m.Xt, m.y, m.ZvT = arr(X.T, np.float64), arr(y, np.float64), arr(Zv.T, np.float64)
            m.idxT, m.pmap = arr(idx.T, np.int32), arr(pmap, np.int32)
            m.blk, m.blk_eta = arr(blk, np.int64), arr(etas, np.float64)
            m.pri_i, m.pri_f, m.misc = arr(pri_i, np.int64), arr(pri_f, np.float64), arr(misc, np.int64)
        self.record = m
        self.ref = ctypes.byref(m)
        self._keep = keep
        self.dim = dim

    def logp_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        grad = np.zeros(self.dim)
        lp = load().hb_logp(self.ref, _ptr(theta), _ptr(grad))
        return float(lp), grad

    def run_chain(self, q0: np.ndarray, seed: int, tune: int, draws: np.ndarray, stats: np.ndarray,
                  metric: np.ndarray, target_accept: float, max_depth: int, progress: np.ndarray,
                  chain: int) -> float:
        """Warm up and sample one chain into ``draws`` (n, dim), ``stats`` (n, 7) and ``metric``."""
        q0 = np.ascontiguousarray(q0, dtype=np.float64)
        step = np.zeros(1)
        rc = load().hb_run_chain(self.ref, _ptr(q0), seed, tune, draws.shape[0], target_accept,
                                 max_depth, _ptr(draws), _ptr(stats), _ptr(metric), _ptr(progress),
                                 chain, _ptr(step))
        if rc:
            raise MemoryError("hierbayes's sampler ran out of memory")
        return float(step[0])

    def _draw(self, name: str, thetas: np.ndarray, width: int, seed: int) -> np.ndarray:
        thetas = np.ascontiguousarray(thetas, dtype=np.float64)
        out = np.empty((thetas.shape[0], width))
        if getattr(load(), name)(self.ref, _ptr(thetas), thetas.shape[0], seed, _ptr(out)):
            raise MemoryError("hierbayes ran out of memory drawing group effects")
        return out

    def draw_effects(self, thetas: np.ndarray, seed: int) -> np.ndarray:
        """Group effects drawn from their conditional posterior, one row per row of ``thetas``."""
        return self._draw("hb_draw_effects", thetas, self.record.q, seed)

    def draw_collapsed(self, thetas: np.ndarray, levels: int, seed: int) -> np.ndarray:
        """The collapsed block's effects drawn from their conditional posterior."""
        return self._draw("hb_draw_collapsed", thetas, levels, seed)
