"""hierbayes's NUTS on any log density: a Python function as a target of the compiled sampler.

The compiled sampler (``kernels/nuts.c``, ``kernels/chain.c``) samples a
*target*: a log density in nutpie's calling convention (a C function that
returns 0 and writes the density and its gradient) with a context pointer. A
hierbayes model is one (``hb_model_logp``); :class:`PythonTarget` makes
another from a Python function, so that the sampler can be run on densities
whose answers are known exactly (``tests/bayes/test_known_targets.py``) and
compared step by step with a reference written from Stan's code
(``tests/bayes/stan_reference.py``). Every call crosses into Python and takes
the GIL, so a Python target is for small test densities, not for speed.

Examples
--------
>>> import numpy as np
>>> from hierbayes.bayes.target import PythonTarget, sample_target
>>> target = PythonTarget(lambda x: (-0.5 * float(x @ x), -x), dim=2)
>>> run = sample_target(target, np.zeros((2, 2)), draws=200, tune=200, seed=1)
>>> run.draws.shape, bool(abs(run.draws.mean()) < 0.2)
((2, 200, 2), True)
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from ctypes import POINTER, c_double, c_int64, c_uint64, c_void_p

import numpy as np

from hierbayes.bayes import codes, native
from hierbayes.bayes.nuts import STAT_NAMES, NutsRun
from hierbayes.errors import SamplerError

#: The C type of a target's log density: ``int64 f(uint64 dim, const double *x, double *grad,
#: double *logp, void *ctx)``, nutpie's.
LOGP_FN = ctypes.CFUNCTYPE(c_int64, c_uint64, POINTER(c_double), POINTER(c_double), POINTER(c_double),
                           c_void_p)


class PythonTarget:
    """A log density written in Python, as a target of the compiled sampler.

    Parameters
    ----------
    logp_grad
        Maps a point (a float array of length ``dim``) to its log density
        and gradient. An exception stops the sampler, which then re-raises it.
    dim
        The number of parameters.

    Examples
    --------
    >>> t = PythonTarget(lambda x: (-0.5 * float(x @ x), -x), dim=3)
    >>> t.dim
    3
    """

    def __init__(self, logp_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], dim: int) -> None:
        self.logp_grad = logp_grad
        self.dim = int(dim)
        self.error: BaseException | None = None

        def call(n, x, grad, logp, ctx):  # noqa: ARG001 - nutpie's signature
            try:
                lp, g = logp_grad(np.ctypeslib.as_array(x, shape=(n,)).copy())
                np.ctypeslib.as_array(grad, shape=(n,))[:] = g
                logp[0] = float(lp)
                return 0
            except BaseException as err:  # handed back to the caller once the chain returns
                self.error = err
                return 1

        self._fn = LOGP_FN(call)  # kept alive as long as the target
        self.triple = (ctypes.cast(self._fn, c_void_p).value, None, self.dim)

    def check(self, rc: int, doing: str) -> None:
        """Raise the target's own exception, or the kernel's error, for a non-zero status."""
        if rc == codes.TARGET_FAILED and self.error is not None:
            err, self.error = self.error, None
            raise err
        native.raise_for(rc, doing)


def _contiguous(x: np.ndarray, dim: int, name: str) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.shape != (dim,):
        raise SamplerError(f"{name} must have shape ({dim},), not {x.shape}.")
    return x


def transitions(target: PythonTarget, q0: np.ndarray, seed: int, n: int, step_size: float,
                inv_metric: np.ndarray, max_treedepth: int = 10) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``n`` NUTS transitions from ``q0`` with a fixed step size and inverse metric (no adaptation).

    Returns the states (n, dim) and the per-transition statistics by name
    (:data:`hierbayes.bayes.nuts.STAT_NAMES`).

    Examples
    --------
    >>> t = PythonTarget(lambda x: (-0.5 * float(x @ x), -x), dim=2)
    >>> q, stats = transitions(t, np.zeros(2), seed=3, n=5, step_size=0.5, inv_metric=np.ones(2))
    >>> q.shape, stats["tree_depth"].shape
    ((5, 2), (5,))
    """
    dim = target.dim
    q0 = _contiguous(q0, dim, "q0")
    m_inv = _contiguous(inv_metric, dim, "inv_metric")
    draws = np.empty((n, dim))
    stats = np.empty((n, codes.STAT_N))
    rc = native.load().hb_transitions(*target.triple, q0.ctypes.data, seed, n, float(step_size),
                                      m_inv.ctypes.data, max_treedepth, draws.ctypes.data,
                                      stats.ctypes.data)
    target.check(rc, "transitions")
    return draws, {name: stats[:, i] for i, name in enumerate(STAT_NAMES)}


def init_stepsize(target: PythonTarget, q0: np.ndarray, seed: int, inv_metric: np.ndarray,
                  step_size: float = 1.0) -> float:
    """Stan's initial step-size search (``base_hmc::init_stepsize``) from ``step_size`` at ``q0``.

    Examples
    --------
    >>> t = PythonTarget(lambda x: (-0.5 * float(x @ x), -x), dim=2)
    >>> eps = init_stepsize(t, np.zeros(2), seed=1, inv_metric=np.ones(2))
    >>> eps in (0.5, 1.0, 2.0, 4.0)
    True
    """
    q0 = _contiguous(q0, target.dim, "q0")
    m_inv = _contiguous(inv_metric, target.dim, "inv_metric")
    eps = np.array([float(step_size)])
    rc = native.load().hb_init_stepsize(*target.triple, q0.ctypes.data, seed, m_inv.ctypes.data,
                                        eps.ctypes.data)
    target.check(rc, "the step-size search")
    return float(eps[0])


def sample_target(target: PythonTarget, inits: np.ndarray, draws: int = 1000, tune: int = 1000,
                  seed: int = 0, target_accept: float = 0.8, max_treedepth: int = 10,
                  curvature: bool = False) -> NutsRun:
    """Warm up and sample one chain per row of ``inits`` (chains, dim), one after another.

    Returns a :class:`hierbayes.bayes.nuts.NutsRun` (no compile time: nothing is compiled).

    Chain ``c`` is seeded with ``seed + c``. ``curvature=False`` (the default
    here) is Stan's warm-up exactly; ``True`` adds hierbayes's curvature-based
    first metric, as model fits do (docs/sampling.md).
    """
    inits = np.atleast_2d(np.asarray(inits, dtype=np.float64))
    chains, dim = inits.shape
    if dim != target.dim:
        raise SamplerError(f"inits must have {target.dim} columns, not {dim}.")
    out = np.empty((chains, draws, dim))
    stats = np.empty((chains, draws, codes.STAT_N))
    metric = np.empty((chains, dim))
    step = np.empty(chains)
    progress = np.zeros(chains, dtype=np.int64)
    stop = np.zeros(1, dtype=np.int32)
    t0 = time.perf_counter()
    for c in range(chains):
        try:
            step[c] = native.run_chain(target.triple, inits[c], seed + c, tune, out[c], stats[c], metric[c],
                                       target_accept, max_treedepth, progress, c, stop, curvature)
        except SamplerError:
            if target.error is not None:
                err, target.error = target.error, None
                raise err from None
            raise
    return NutsRun(out, {name: stats[:, :, i] for i, name in enumerate(STAT_NAMES)}, metric, step,
                   compile_seconds=0.0, sampling_seconds=time.perf_counter() - t0)
