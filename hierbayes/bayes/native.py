"""hierbayes's compiled kernels (``kernels/*.c``), loaded, checked and called through ctypes.

This module is the kernels' Python side. The kernels are C files with no
Python headers (``hierbayes/bayes/kernels``: a header ``hb.h`` and one file per
concern). ``pip install`` compiles them (``setup.py``; in a checkout also
``tools/build_kernels.py``) into the extension ``hierbayes.bayes._ckernels``, a
shared library beside this module (``_ckernels.cpython-*.so``); :func:`load`
finds it through the import system and opens it with ctypes. Nothing is
compiled or cached at run time, so a fit needs no C compiler and loads the
kernels in milliseconds. Nothing is compiled per model either: a model is a
:class:`Model` record of pointers into the arrays of a :class:`FullArrays` or
:class:`MarginalArrays`, which :func:`hierbayes.bayes.pack.pack` lays out.

At load the library is checked against this module (:func:`check_library`):
its ``Model`` record must have the layout of the ctypes mirror below (size,
field names and offsets), every code it shares with Python must have the value
:mod:`hierbayes.bayes.codes` gives it, and, where the kernel sources sit
beside it (a checkout), it must have been built from them. A missing or mismatched library raises
:class:`~hierbayes.errors.SamplerError` saying how to rebuild it; the fit
never moves to another sampler on its own.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.bayes.pack import pack
>>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> p = pack(m.design, m.priors)
>>> lp, grad = p.logp_grad(p.start)
>>> grad.shape == (p.dim,)
True
>>> cpc_cholesky(np.zeros((2, 1)), 2).shape
(2, 2, 2)
"""

from __future__ import annotations

import ctypes
import importlib.util
import threading
import weakref
from ctypes import POINTER, byref, c_char_p, c_double, c_int, c_int64, c_size_t, c_uint64, c_void_p
from pathlib import Path
from typing import Any

import numpy as np

from hierbayes.bayes import codes
from hierbayes.bayes.arrays import FullArrays, MarginalArrays
from hierbayes.errors import SamplerError
from hierbayes.kernel_sources import KERNELS, kernel_files, source_sha256

EXTENSION = f"{__package__}._ckernels"
REINSTALL = (
    "Reinstall hierbayes so that pip builds them (this needs a C compiler): "
    "`pip install --force-reinstall --no-deps hierbayes`, or in a checkout "
    "`make clean-venv demo`, `pip install -e .` or `python tools/build_kernels.py`."
)

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


class Model(ctypes.Structure):
    """The C ``Model`` record: sizes and pointers into the packed arrays (``kernels/hb.h``)."""

    _fields_ = [
        ("mode", c_int64), ("dim", c_int64),
        ("n", c_int64), ("p", c_int64), ("G", c_int64), ("npri", c_int64),
        ("family", c_int64), ("link", c_int64), ("disp_at", c_int64), ("collapsed", c_int64),
        ("Xt", c_void_p), ("y", c_void_p), ("offset", c_void_p), ("trials", c_void_p), ("wts", c_void_p),
        ("nyd", c_int64), ("yd", c_void_p), ("ydn", c_void_p), ("ylogsum", c_double),
        ("nv", c_int64), ("gam_at", c_int64), ("phi_at", c_int64), ("phi_lo", c_double),
        ("phi_hi", c_double), ("Vt", c_void_p), ("rlag", c_void_p), ("rprev", c_void_p),
        ("idxT", c_void_p), ("ZvT", c_void_p), ("ccnt", c_void_p),
        ("cseg", c_void_p), ("blk", c_void_p),
        ("blk_par", c_void_p), ("pri_i", c_void_p), ("pri_f", c_void_p), ("pmap", c_void_p),
        ("xcol", c_void_p), ("xlev", c_void_p),
        ("mp", c_int64), ("q", c_int64), ("q1", c_int64), ("q2", c_int64), ("mG", c_int64),
        ("mnpri", c_int64), ("mn", c_int64), ("mosig", c_int64),
        ("XtX", c_void_p), ("Xty", c_void_p), ("yty", c_double), ("ZtX", c_void_p),
        ("Zty", c_void_p), ("G11", c_void_p), ("G21", c_void_p), ("G22", c_void_p),
        ("mblk", c_void_p), ("mblk_par", c_void_p), ("mpri_i", c_void_p), ("mpri_f", c_void_p),
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
            f"hierbayes's compiled kernels ({EXTENSION}, built from kernels/*.c when the "
            f"package is installed) are missing from {Path(__file__).parent}: the "
            f"installation is incomplete. {REINSTALL}"
        )
    return Path(spec.origin)


def _check_record(lib: ctypes.CDLL, path: Path) -> None:
    size, fields = lib.hb_model_size(), lib.hb_model_fields()
    names = [name for name, _ in Model._fields_]
    mine = [getattr(Model, name).offset for name in names]
    theirs: list[int] = []
    their_names: list[str] = []
    if fields == len(mine):
        out = np.zeros(fields, dtype=np.int64)
        lib.hb_model_offsets(out.ctypes.data)
        theirs = out.tolist()
        their_names = [lib.hb_model_field_name(i).decode() for i in range(fields)]
    if size != ctypes.sizeof(Model) or theirs != mine or their_names != names:
        moved = [name for name, a, b in zip(names, theirs, mine, strict=False) if a != b]
        renamed = [(a, b) for a, b in zip(names, their_names, strict=False) if a != b]
        where = (f" (first different offset: field '{moved[0]}')" if moved else
                 f" (field '{renamed[0][0]}' is '{renamed[0][1]}' in the kernels)" if renamed else "")
        raise SamplerError(
            f"hierbayes's kernels ({path.name}) lay out their Model record in {size} bytes "
            f"over {fields} fields, and hierbayes.bayes.native.Model in {ctypes.sizeof(Model)} bytes "
            f"over {len(mine)}{where}: the ctypes mirror in native.py was not changed with "
            "kernels/hb.h. Make them agree field by field."
        )


def library_constants(lib: ctypes.CDLL) -> dict[str, int]:
    """The codes the library shares with Python, by their names in ``kernels/hb.h``."""
    return {lib.hb_constant_name(i).decode(): int(lib.hb_constant_value(i))
            for i in range(lib.hb_constant_count())}


def _check_constants(lib: ctypes.CDLL, path: Path) -> None:
    theirs, mine = library_constants(lib), codes.KERNEL_CONSTANTS
    for name in sorted(set(theirs) | set(mine)):
        if theirs.get(name) != mine.get(name):
            c_side = "not defined" if name not in theirs else f"{theirs[name]}"
            py_side = "not defined" if name not in mine else f"{mine[name]}"
            raise SamplerError(
                f"hierbayes's kernels ({path.name}) and hierbayes/bayes/codes.py disagree on the "
                f"constant {name}: {c_side} in the kernels (kernels/hb.h), {py_side} in "
                "codes.KERNEL_CONSTANTS. Make them agree, then rebuild the kernels."
            )


def check_library(lib: ctypes.CDLL, path: Path, sources: Path | None = None) -> None:
    """Refuse a library whose ``Model`` layout, shared constants or sources are not this module's.

    Raises
    ------
    SamplerError
        When the C ``Model`` record differs from :class:`Model` in size, field
        count, any field's offset or name (the ctypes mirror was not kept in step
        with ``kernels/hb.h``); when a code the library exports differs from
        :data:`hierbayes.bayes.codes.KERNEL_CONSTANTS` in name or value (the
        message names it); or when the folder ``sources`` (default
        ``kernels/`` beside this module) holds kernel files whose hash is not
        the one the library was built from.
    """
    try:
        lib.hb_model_size.restype = c_int64
        lib.hb_model_fields.restype = c_int64
        lib.hb_source_sha256.restype = c_char_p
        lib.hb_model_offsets.argtypes = [c_void_p]
        lib.hb_model_field_name.argtypes = [c_int64]
        lib.hb_model_field_name.restype = c_char_p
        lib.hb_constant_count.restype = c_int64
        lib.hb_constant_name.argtypes = [c_int64]
        lib.hb_constant_name.restype = c_char_p
        lib.hb_constant_value.argtypes = [c_int64]
        lib.hb_constant_value.restype = c_int64
    except AttributeError as err:  # a library from before these checks, or not ours
        raise SamplerError(
            f"{path} does not export this version's layout checks ({err}). {REINSTALL}"
        ) from err
    _check_record(lib, path)
    _check_constants(lib, path)
    sources = KERNELS if sources is None else sources
    if kernel_files(sources):
        built = lib.hb_source_sha256().decode()
        if built != source_sha256(sources):
            raise SamplerError(
                f"hierbayes's kernels ({path}) were built from other versions of the kernel "
                f"files than those in {sources} (edited since the last build?). Rebuild them "
                "in the checkout: `make test`, `pip install -e .` or `python tools/build_kernels.py`."
            )


def open_library(path: Path, sources: Path | None = None) -> ctypes.CDLL:
    """Open a build of the kernels at ``path``, check it (:func:`check_library`) and declare its entry points.

    :func:`load` opens the installed one; tests open others (the same sources
    built with other flags) to compare their draws.
    """
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as err:
        raise SamplerError(
            f"hierbayes's compiled kernels ({path}) could not be loaded: {err}. {REINSTALL}"
        ) from err
    check_library(lib, path, sources)
    M = POINTER(Model)
    lib.hb_model_check.argtypes = [M]
    lib.hb_model_check.restype = c_int
    lib.hb_work_new.argtypes = [M, POINTER(c_int)]
    lib.hb_work_new.restype = c_void_p
    lib.hb_work_free.argtypes = [c_void_p]
    lib.hb_work_free.restype = None
    lib.hb_logp.argtypes = [M, c_void_p, c_void_p, c_void_p]
    lib.hb_logp.restype = c_double
    chain = [c_void_p, c_uint64, c_int64, c_int64, c_double, c_int64, c_int64, c_void_p,
             c_void_p, c_void_p, c_void_p, c_int64, c_void_p, c_void_p]
    lib.hb_run_chain.argtypes = [M, *chain]
    lib.hb_run_chain.restype = c_int
    target = [c_void_p, c_void_p, c_int64]  # the function, its context, the dimension
    lib.hb_run_target.argtypes = [*target, *chain]
    lib.hb_run_target.restype = c_int
    lib.hb_transitions.argtypes = [*target, c_void_p, c_uint64, c_int64, c_double, c_void_p,
                                   c_int64, c_void_p, c_void_p]
    lib.hb_transitions.restype = c_int
    lib.hb_init_stepsize.argtypes = [*target, c_void_p, c_uint64, c_void_p, c_void_p]
    lib.hb_init_stepsize.restype = c_int
    for name in ("hb_draw_effects", "hb_draw_collapsed"):
        fn = getattr(lib, name)
        fn.argtypes = [M, c_void_p, c_int64, c_uint64, c_void_p]
        fn.restype = c_int
    lib.hb_cpc_cholesky.argtypes = [c_void_p, c_int64, c_int64, c_void_p]
    lib.hb_cpc_cholesky.restype = c_int
    lib.hb_windows.argtypes = [c_int64, c_void_p, c_int64]
    lib.hb_windows.restype = c_int64
    lib.hb_pool_new.argtypes = [M, c_int64, POINTER(c_int)]
    lib.hb_pool_new.restype = c_void_p
    lib.hb_pool_free.argtypes = [c_void_p]
    lib.hb_pool_free.restype = None
    lib.hb_nutpie_logp.argtypes = [c_size_t, c_void_p, c_void_p, c_void_p, c_void_p]
    lib.hb_nutpie_logp.restype = c_int
    lib.hb_nutpie_expand.argtypes = [c_size_t, c_size_t, c_void_p, c_void_p, c_void_p]
    lib.hb_nutpie_expand.restype = c_int
    return lib


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
            _lib = open_library(library_path())
    return _lib


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


_FAILURES = {
    codes.NO_MEMORY: "ran out of memory",
    codes.BAD_FAMILY: "were given a response family code they have no log-likelihood for",
    codes.BAD_LINK: "were given a link that the response family's kernel does not compute",
    codes.BAD_PRIOR: "were given a prior code they do not know",
    codes.BAD_MODE: "were given a Model record that is neither full nor marginal",
    codes.BAD_MODEL: "were given a Model record they cannot evaluate",
    codes.IMPROPER: ("found no step size with a leapfrog acceptance below 0.8 up to 1e7: the posterior "
                     "looks improper. Check that every parameter has a proper prior and that the "
                     "data inform the model"),
    codes.NO_STEP_SIZE: ("halved the step size to 0 without a leapfrog step of acceptance 0.8: the log "
                         "density is not finite or not continuous near the start. Check the priors, "
                         "the data's scale, and any initial values you gave"),
    codes.METRIC_OVERFLOW: ("estimated a metric that is not finite in warm-up (numerical overflow): a "
                            "parameter ran off to infinity. Give it a tighter prior"),
    codes.TARGET_FAILED: "were stopped by an error in the log density they sample",
}


def raise_for(status: int, doing: str) -> None:
    """Raise for a kernel's non-zero status (MemoryError when memory ran out)."""
    if status == codes.OK:
        return
    why = _FAILURES.get(status, f"failed with status {status}")
    message = f"hierbayes's kernels {why} ({doing})"
    if status == codes.NO_MEMORY:
        raise MemoryError(message)
    raise SamplerError(message)


def run_chain(target: Any, q0: np.ndarray, seed: int, tune: int, draws: np.ndarray, stats: np.ndarray,
              metric: np.ndarray, target_accept: float, max_depth: int, progress: np.ndarray, chain: int,
              stop: np.ndarray, curvature: bool = True, lib: ctypes.CDLL | None = None) -> float:
    """Warm up and sample one chain into ``draws`` (n, dim), ``stats`` (n, 7) and ``metric``; the step size.

    ``target`` is a Model record (``NativeModel.ref``) or a ``(function
    pointer, context pointer, dim)`` triple of a log density in nutpie's
    calling convention (:mod:`hierbayes.bayes.target`). ``stats`` has the
    columns ``codes.STAT_*``. ``stop`` is a one-element int32 array that the
    chain reads at every leapfrog step: setting it (from another thread) ends
    the chain there, and this call then raises KeyboardInterrupt.
    ``curvature`` starts the metric from the density's curvature (ours,
    ``kernels/chain.c``) rather than 1 (Stan's). ``lib`` is another build of
    the kernels (:func:`open_library`), the installed one by default.
    """
    q0 = np.ascontiguousarray(q0, dtype=np.float64)
    if stop.dtype != np.int32 or not stop.flags.c_contiguous:
        raise TypeError("stop must be a contiguous int32 array")
    if stats.shape[-1] != codes.STAT_N:
        raise ValueError(f"stats needs {codes.STAT_N} columns, not {stats.shape[-1]}")
    step = np.zeros(1)
    args = (_ptr(q0), seed, tune, draws.shape[0], target_accept, max_depth, int(bool(curvature)),
            _ptr(draws), _ptr(stats), _ptr(metric), _ptr(progress), chain, _ptr(step), _ptr(stop))
    lib = load() if lib is None else lib
    if isinstance(target, tuple):
        rc = lib.hb_run_target(*target, *args)
    else:
        rc = lib.hb_run_chain(target, *args)
    if rc == codes.STOPPED:
        raise KeyboardInterrupt(f"chain {chain} stopped")
    if rc == codes.NO_MEMORY:
        raise MemoryError("hierbayes's sampler ran out of memory")
    raise_for(rc, f"chain {chain}")
    return float(step[0])


def warmup_windows(n_tune: int) -> list[tuple[int, int]]:
    """The warm-up iterations ``[start, end)`` over which the sampler estimates its metric.

    Stan's schedule, from the kernels (``hb_windows`` in ``kernels/nuts.c``):
    75 fast iterations, slow windows doubling from 25, 50 fast iterations at
    the end (15%, 75% and 10% of shorter warm-ups); none below 20.

    Examples
    --------
    >>> warmup_windows(1000)
    [(75, 100), (100, 150), (150, 250), (250, 450), (450, 950)]
    """
    out = np.zeros(2 * 64, dtype=np.int64)
    n = load().hb_windows(int(n_tune), _ptr(out), 64)
    return [(int(a), int(b)) for a, b in out[: 2 * n].reshape(-1, 2)]


def cpc_cholesky(y: np.ndarray, n: int) -> np.ndarray:
    """Cholesky factors of correlation matrices from unconstrained partial correlations, batched.

    ``y`` has shape ``(..., n (n - 1) / 2)``; the result ``(..., n, n)``. This
    is the kernels' transform (``kernels/lkj.c``), the one the sampler uses;
    :func:`hierbayes.bayes.lkj.cpc_to_cholesky` is the PyMC model's.
    """
    y = np.asarray(y, dtype=np.float64)
    m = n * (n - 1) // 2
    if n < 1 or y.shape[-1:] != (m,):
        raise ValueError(f"{n} x {n} correlations take {m} partial correlations, not {y.shape[-1:]}")
    lead = y.shape[:-1]
    flat = np.ascontiguousarray(y.reshape(int(np.prod(lead)), m))
    out = np.empty((flat.shape[0], n, n))
    raise_for(load().hb_cpc_cholesky(_ptr(flat), flat.shape[0], n, _ptr(out)), "cpc_cholesky")
    return out.reshape(*lead, n, n)


class NativeModel:
    """A :class:`Model` record over packed arrays, which it keeps alive.

    Raises
    ------
    SamplerError
        When the kernels refuse the record (``hb_model_check``): a family or
        prior code they do not know.
    """

    def __init__(self, arrays: FullArrays | MarginalArrays, dim: int) -> None:
        m = Model()
        m.dim = dim
        keep = []

        def arr(a, dtype) -> int:
            a = np.ascontiguousarray(a, dtype=dtype)
            keep.append(a)
            return _ptr(a)

        if isinstance(arrays, MarginalArrays):
            a = arrays
            blk = a.blocks
            if blk.shape[0] == 0:
                raise ValueError("the marginal kernel needs at least one group term")
            m.mode = codes.MODE_MARGINAL
            m.mp, m.q = a.XtX.shape[0], a.Zty.shape[0]
            m.q1 = int(blk[0, codes.M_K] * blk[0, codes.M_L])
            m.q2 = m.q - m.q1
            m.mG, m.mnpri, m.mn, m.mosig = blk.shape[0], a.prior_index.shape[0], a.n_obs, a.sigma_at
            m.yty = float(a.yty)
            m.XtX, m.Xty, m.ZtX, m.Zty = (arr(x, np.float64) for x in (a.XtX, a.Xty, a.ZtX, a.Zty))
            m.G11, m.G21, m.G22 = (arr(x, np.float64) for x in (a.G11, a.G21, a.G22))
            m.mblk, m.mblk_par = arr(blk, np.int64), arr(a.block_par, np.float64)
            m.mpri_i, m.mpri_f = arr(a.prior_index, np.int64), arr(a.prior_params, np.float64)
        else:
            a = arrays
            X, y, idx, Zv, blk = a.X, a.y, a.index, a.Z, a.blocks
            m.mode = codes.MODE_FULL
            m.n, m.p = X.shape
            m.G, m.npri = blk.shape[0], a.prior_index.shape[0]
            m.family, m.link, m.disp_at, m.collapsed = a.family, a.link, a.disp_at, a.collapsed
            rows = {"offset": a.offset, "trials": a.trials, "wts": a.weights}
            cg = a.collapsed
            if cg >= 0:
                # rows sorted by the collapsed block's level, so its level sums run over
                # contiguous rows (the likelihood does not depend on the rows' order)
                order = np.argsort(idx[:, cg], kind="stable")
                X, y, idx, Zv = X[order], y[order], idx[order], Zv[order]
                rows = {k: None if v is None else v[order] for k, v in rows.items()}
                counts = np.bincount(idx[:, cg], minlength=int(blk[cg, codes.B_L]))
            else:
                counts = np.zeros(1, dtype=np.int64)
            for name, values in rows.items():  # NULL: none
                setattr(m, name, None if values is None else arr(values, np.float64))
            m.nyd = a.distinct.shape[0]
            m.yd, m.ydn = arr(np.append(a.distinct, 0.0), np.float64), arr(np.append(a.distinct_counts, 0.0),
                                                                           np.float64)
            m.ylogsum = float(a.log_y_sum)
            rs = a.residual
            m.nv, m.gam_at, m.phi_at = rs.nv, rs.gamma_at, rs.phi_at
            m.phi_lo, m.phi_hi = rs.phi_lo, rs.phi_hi
            m.Vt = arr(rs.V.T, np.float64) if rs.nv else None
            m.rlag = arr(rs.lag, np.float64) if rs.phi_at >= 0 else None
            m.rprev = arr(rs.prev, np.int64) if rs.phi_at >= 0 else None
            m.ccnt = arr(counts, np.float64)
            m.cseg = arr(np.concatenate(([0], np.cumsum(counts))), np.int64)
            # column-major copies: the kernel's row loops run a column at a time
            m.Xt, m.y, m.ZvT = arr(X.T, np.float64), arr(y, np.float64), arr(Zv.T, np.float64)
            m.idxT, m.pmap = arr(idx.T, np.int32), arr(a.parent_map, np.int32)
            # never empty: the kernel offsets into them for every block
            m.xcol = arr(np.append(a.carried_columns, 0), np.int64)
            m.xlev = arr(np.append(a.carried_values, 0.0), np.float64)
            m.blk, m.blk_par = arr(blk, np.int64), arr(a.block_par, np.float64)
            m.pri_i, m.pri_f = arr(a.prior_index, np.int64), arr(a.prior_params, np.float64)
        self.record = m
        self.ref = ctypes.byref(m)
        self._keep = keep
        self.dim = dim
        lib = load()
        raise_for(lib.hb_model_check(self.ref), "checking the packed model")
        self._logp = lib.hb_logp
        # logp_grad's work buffers: allocated at its first call, freed with this object
        self._work: int | None = None
        self._work_lock = threading.Lock()

    def _new_work(self) -> int:
        lib = load()
        status = c_int(codes.OK)
        work = lib.hb_work_new(self.ref, byref(status))
        raise_for(status.value, "allocating work for logp_grad")
        weakref.finalize(self, lib.hb_work_free, work)
        return work

    def logp_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log density and gradient at ``theta`` (calls from several threads take turns)."""
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        grad = np.zeros(self.dim)
        with self._work_lock:
            if self._work is None:
                self._work = self._new_work()
            lp = self._logp(self.ref, self._work, _ptr(theta), _ptr(grad))
        return float(lp), grad

    def run_chain(self, q0: np.ndarray, seed: int, tune: int, draws: np.ndarray, stats: np.ndarray,
                  metric: np.ndarray, target_accept: float, max_depth: int, progress: np.ndarray,
                  chain: int, stop: np.ndarray, curvature: bool = True) -> float:
        """Warm up and sample one chain of this model (:func:`run_chain`)."""
        return run_chain(self.ref, q0, seed, tune, draws, stats, metric, target_accept, max_depth,
                         progress, chain, stop, curvature)

    def _draw(self, name: str, thetas: np.ndarray, width: int, seed: int) -> np.ndarray:
        thetas = np.ascontiguousarray(thetas, dtype=np.float64)
        out = np.empty((thetas.shape[0], width))
        rc = getattr(load(), name)(self.ref, _ptr(thetas), thetas.shape[0], seed, _ptr(out))
        if rc == codes.NO_MEMORY:
            raise MemoryError("hierbayes ran out of memory drawing group effects")
        raise_for(rc, name)
        return out

    def draw_effects(self, thetas: np.ndarray, seed: int) -> np.ndarray:
        """Group effects drawn from their conditional posterior, one row per row of ``thetas``."""
        return self._draw("hb_draw_effects", thetas, self.record.q, seed)

    def draw_collapsed(self, thetas: np.ndarray, levels: int, seed: int) -> np.ndarray:
        """The collapsed block's effects drawn from their conditional posterior."""
        return self._draw("hb_draw_collapsed", thetas, levels, seed)


class WorkPool:
    """Work buffers for ``n`` threads evaluating one model at once, behind nutpie's signatures.

    nutpie calls :attr:`logp_address` (``hb_nutpie_logp`` in
    ``kernels/nutpie.c``) from every chain's thread with :attr:`address` as its
    user data; each call claims one of the ``n`` buffers without a lock.
    The pool keeps ``model`` alive and is freed with this object.

    Raises
    ------
    MemoryError
        When the buffers cannot be allocated.
    """

    def __init__(self, model: NativeModel, n: int) -> None:
        lib = load()
        status = c_int(codes.OK)
        address = lib.hb_pool_new(model.ref, int(n), byref(status))
        raise_for(status.value, f"allocating work for {n} threads")
        weakref.finalize(self, lib.hb_pool_free, address)
        self.address: int = address
        self.model = model
        self.dim = model.dim
        self.logp_address: int = ctypes.cast(lib.hb_nutpie_logp, c_void_p).value
        self.expand_address: int = ctypes.cast(lib.hb_nutpie_expand, c_void_p).value

    def logp_grad(self, theta: np.ndarray, dim: int | None = None) -> tuple[int, float, np.ndarray]:
        """nutpie's call at ``theta``: its return code (0, >0 not finite, <0 wrong ``dim``), lp, gradient."""
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        grad = np.zeros(self.dim)
        lp = c_double(np.nan)
        code = load().hb_nutpie_logp(self.dim if dim is None else dim, _ptr(theta), _ptr(grad),
                                     ctypes.addressof(lp), self.address)
        return int(code), lp.value, grad
