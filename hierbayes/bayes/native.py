"""hierbayes's compiled kernels (``_ckernels.c``), loaded and called through ctypes.

The kernels are one C file with no Python headers. ``pip install`` builds it
(``setup.py``) as the extension ``hierbayes._ckernels``, a shared library
beside this module (``_ckernels.cpython-*.so``); :func:`load` finds it through
the import system and opens it with ctypes. Nothing is compiled or cached at
run time, so a fit needs no C compiler and loads the kernels in milliseconds.
Nothing is compiled per model either: a model is a :class:`Model` record of
pointers to the arrays that :func:`hierbayes.bayes.pack.pack` lays out.

At load the library is checked against this module: its ``Model`` record must
have the layout of the ctypes mirror below, and, where ``_ckernels.c`` sits
beside it (a checkout), it must have been built from that file. A missing or
mismatched library raises :class:`~hierbayes.errors.SamplerError` saying how to
rebuild it; the fit never moves to another sampler on its own.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.bayes.pack import pack
>>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> p = pack(m.design, m.priors)
>>> lp, grad = p.logp_grad(p.start)
>>> grad.shape == (p.dim,)
True
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import threading
from ctypes import POINTER, c_char_p, c_double, c_int, c_int64, c_uint64, c_void_p
from pathlib import Path

import numpy as np

from hierbayes.errors import SamplerError

EXTENSION = f"{__package__}._ckernels"
SOURCE = Path(__file__).with_name("_ckernels.c")
REINSTALL = (
    "Reinstall hierbayes so that pip builds them (this needs a C compiler): "
    "`pip install --force-reinstall --no-deps hierbayes`, or in a checkout "
    "`make clean-venv demo`, `pip install -e .` or `python setup.py build_ext --inplace`."
)

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


def library_path() -> Path:
    """The installed kernels' shared library.

    Raises
    ------
    SamplerError
        When the package was installed without it.
    """
    spec = importlib.util.find_spec(EXTENSION)
    if spec is None or spec.origin is None:
        raise SamplerError(
            f"hierbayes's compiled kernels ({EXTENSION}, built from _ckernels.c when the "
            f"package is installed) are missing from {Path(__file__).parent}: the "
            f"installation is incomplete. {REINSTALL}"
        )
    return Path(spec.origin)


def check_library(lib: ctypes.CDLL, path: Path, source: Path | None = None) -> None:
    """Refuse a library whose ``Model`` layout, or source, is not this module's.

    Raises
    ------
    SamplerError
        When the C ``Model`` record differs from :class:`Model` in size, field
        count or any field's offset (the ctypes mirror was not kept in step
        with ``_ckernels.c``), or when ``source`` (default :data:`SOURCE`)
        exists and is not the file the library was built from.
    """
    try:
        lib.hb_model_size.restype = c_int64
        lib.hb_model_fields.restype = c_int64
        lib.hb_source_sha256.restype = c_char_p
        lib.hb_model_offsets.argtypes = [c_void_p]
    except AttributeError as err:  # a library from before these checks, or not ours
        raise SamplerError(
            f"{path} does not export this version's layout checks ({err}). {REINSTALL}"
        ) from err
    size, fields = lib.hb_model_size(), lib.hb_model_fields()
    mine = [getattr(Model, name).offset for name, _ in Model._fields_]
    theirs: list[int] = []
    if fields == len(mine):
        out = np.zeros(fields, dtype=np.int64)
        lib.hb_model_offsets(out.ctypes.data)
        theirs = out.tolist()
    if size != ctypes.sizeof(Model) or theirs != mine:
        moved = [name for (name, _), a, b in zip(Model._fields_, theirs, mine, strict=False) if a != b]
        raise SamplerError(
            f"hierbayes's kernels ({path.name}) lay out their Model record in {size} bytes "
            f"over {fields} fields, and hierbayes.bayes.native.Model in {ctypes.sizeof(Model)} bytes "
            f"over {len(mine)}" + (f" (first different offset: field '{moved[0]}')" if moved else "")
            + ": the ctypes mirror in native.py was not changed with _ckernels.c. Make them "
            "agree field by field."
        )
    source = SOURCE if source is None else source
    if source.exists():
        built = lib.hb_source_sha256().decode()
        if built != hashlib.sha256(source.read_bytes()).hexdigest():
            raise SamplerError(
                f"hierbayes's kernels ({path}) were built from another version of "
                f"{source.name} than the one beside them (edited since the last build?). "
                "Rebuild them in the checkout: `make test`, `pip install -e .` or "
                "`python setup.py build_ext --inplace`."
            )


def load() -> ctypes.CDLL:
    """The kernels' shared library, opened and checked once per process.

    Raises
    ------
    SamplerError
        When the library is missing or does not match this module (see
        :func:`library_path` and :func:`check_library`).
    """
    global _lib
    with _lock:
        if _lib is None:
            path = library_path()
            try:
                lib = ctypes.CDLL(str(path))
            except OSError as err:
                raise SamplerError(
                    f"hierbayes's compiled kernels ({path}) could not be loaded: {err}. {REINSTALL}"
                ) from err
            check_library(lib, path)
            M = POINTER(Model)
            lib.hb_logp.argtypes = [M, c_void_p, c_void_p]
            lib.hb_logp.restype = c_double
            lib.hb_run_chain.argtypes = [M, c_void_p, c_uint64, c_int64, c_int64, c_double, c_int64,
                                         c_void_p, c_void_p, c_void_p, c_void_p, c_int64, c_void_p,
                                         c_void_p]
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
                  chain: int, stop: np.ndarray) -> float:
        """Warm up and sample one chain into ``draws`` (n, dim), ``stats`` (n, 7) and ``metric``.

        ``stop`` is a one-element int32 array that the chain reads at every
        leapfrog step: setting it (from another thread) ends the chain there,
        and this call then raises KeyboardInterrupt.
        """
        q0 = np.ascontiguousarray(q0, dtype=np.float64)
        if stop.dtype != np.int32 or not stop.flags.c_contiguous:
            raise TypeError("stop must be a contiguous int32 array")
        step = np.zeros(1)
        rc = load().hb_run_chain(self.ref, _ptr(q0), seed, tune, draws.shape[0], target_accept,
                                 max_depth, _ptr(draws), _ptr(stats), _ptr(metric), _ptr(progress),
                                 chain, _ptr(step), _ptr(stop))
        if rc == 2:
            raise KeyboardInterrupt(f"chain {chain} stopped")
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
