"""A reference NUTS transition in plain Python, written from Stan's source, for the compiled one to match.

Transcribed from ``stan/mcmc/hmc/nuts/base_nuts.hpp`` (``transition`` and
``build_tree``, Stan 2.26 and later) and ``base_hmc.hpp`` (``init_stepsize``)
for a diagonal metric, with none of the compiled sampler's code. The random
numbers are hierbayes's (xoshiro256** seeded by splitmix64, normals by
Marsaglia's polar method, ``kernels/rng.c``), re-implemented here, so that one
seed gives both implementations the same stream: where they consume it in the
same order and do the same arithmetic, every state, tree depth and energy
agrees to the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

MASK = (1 << 64) - 1
MAX_DELTA_H = 1000.0


class Rng:
    """xoshiro256** seeded by splitmix64, as ``kernels/rng.c``."""

    def __init__(self, seed: int) -> None:
        x = seed
        self.s = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & MASK
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
            self.s.append(z ^ (z >> 31))
        self.spare: float | None = None

    @staticmethod
    def _rotl(x: int, k: int) -> int:
        return ((x << k) | (x >> (64 - k))) & MASK

    def next(self) -> int:
        s = self.s
        result = (self._rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def uniform(self) -> float:
        return (self.next() >> 11) * 2.0**-53

    def normal(self) -> float:
        if self.spare is not None:
            out, self.spare = self.spare, None
            return out
        while True:
            u = 2.0 * self.uniform() - 1.0
            v = 2.0 * self.uniform() - 1.0
            s = u * u + v * v
            if 0.0 < s < 1.0:
                break
        f = math.sqrt(-2.0 * math.log(s) / s)
        self.spare = v * f
        return u * f


class Point:
    """Stan's ps_point: position, momentum, gradient of the log density, log density."""

    def __init__(self, q, p, g, lp) -> None:
        self.q, self.p, self.g, self.lp = list(q), list(p), list(g), lp

    def copy(self) -> Point:
        return Point(self.q, self.p, self.g, self.lp)


def _dot(a, b) -> float:
    acc = 0.0
    for x, y in zip(a, b, strict=True):
        acc += x * y
    return acc


def _log_sum_exp(a: float, b: float) -> float:
    # stan::math::log_sum_exp
    if a == -math.inf:
        return b
    if a == math.inf and b == math.inf:
        return math.inf
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


class StanNuts:
    """``base_nuts`` with a diagonal metric over a Python log density."""

    def __init__(self, logp_grad: Callable, m_inv, eps: float, max_depth: int, rng: Rng) -> None:
        self.logp_grad = logp_grad
        self.m_inv = list(m_inv)
        self.eps = eps
        self.max_depth = max_depth
        self.rng = rng

    # the diagonal Hamiltonian
    def tau(self, p) -> float:
        acc = 0.0
        for pi, mi in zip(p, self.m_inv, strict=True):
            acc += pi * pi * mi
        return 0.5 * acc

    def H(self, z: Point) -> float:
        h = -z.lp + self.tau(z.p)
        return math.inf if math.isnan(h) else h

    def dtau_dp(self, p) -> list[float]:
        return [mi * pi for mi, pi in zip(self.m_inv, p, strict=True)]

    def sample_p(self, z: Point) -> None:
        z.p = [self.rng.normal() / math.sqrt(mi) for mi in self.m_inv]

    def evolve(self, z: Point, eps: float) -> None:
        # expl_leapfrog, in the compiled kernel's order of operations
        n = len(z.q)
        for i in range(n):
            z.p[i] += 0.5 * eps * z.g[i]
            z.q[i] += eps * self.m_inv[i] * z.p[i]
        lp, g = self.logp_grad(np.array(z.q))
        z.lp, z.g = float(lp), [float(v) for v in g]
        for i in range(n):
            z.p[i] += 0.5 * eps * z.g[i]

    @staticmethod
    def criterion(ps_minus, ps_plus, rho) -> bool:
        return _dot(ps_plus, rho) > 0 and _dot(ps_minus, rho) > 0

    def build_tree(self, depth: int, box: dict, sign: float):
        """Returns (valid, z_propose, ps_beg, ps_end, rho, p_beg, p_end, log_sum_weight) of a new subtree."""
        if depth == 0:
            self.evolve(self.z, sign * self.eps)
            self.n_leapfrog += 1
            h = self.H(self.z)
            if h - self.H0 > MAX_DELTA_H:
                self.divergent = True
            lsw = _log_sum_exp(-math.inf, self.H0 - h)
            self.sum_metro += 1.0 if self.H0 - h > 0 else math.exp(self.H0 - h)
            ps = self.dtau_dp(self.z.p)
            p = list(self.z.p)
            return not self.divergent, self.z.copy(), ps, ps, p, p, p, lsw
        valid, z_prop, ps_beg, ps_init_end, rho_init, p_beg, p_init_end, lsw_init = \
            self.build_tree(depth - 1, box, sign)
        if not valid:
            return False, z_prop, None, None, None, None, None, None
        valid, z_final, ps_final_beg, ps_end, rho_final, p_final_beg, p_end, lsw_final = \
            self.build_tree(depth - 1, box, sign)
        if not valid:
            return False, z_prop, None, None, None, None, None, None
        lsw_subtree = _log_sum_exp(lsw_init, lsw_final)
        if lsw_final > lsw_subtree:
            z_prop = z_final
        else:
            if self.rng.uniform() < math.exp(lsw_final - lsw_subtree):
                z_prop = z_final
        rho_subtree = [a + b for a, b in zip(rho_init, rho_final, strict=True)]
        persist = self.criterion(ps_beg, ps_end, rho_subtree)
        ext = [a + b for a, b in zip(rho_init, p_final_beg, strict=True)]
        persist &= self.criterion(ps_beg, ps_final_beg, ext)
        ext = [a + b for a, b in zip(rho_final, p_init_end, strict=True)]
        persist &= self.criterion(ps_init_end, ps_end, ext)
        return persist, z_prop, ps_beg, ps_end, rho_subtree, p_beg, p_end, lsw_subtree

    def transition(self, q, lp, g) -> dict:
        self.z = Point(q, [0.0] * len(q), g, lp)
        self.sample_p(self.z)
        z_fwd, z_bck, z_sample = self.z.copy(), self.z.copy(), self.z.copy()
        p0 = list(self.z.p)
        ps0 = self.dtau_dp(p0)
        p_fwd_fwd, ps_fwd_fwd, p_fwd_bck, ps_fwd_bck = p0, ps0, p0, ps0
        p_bck_fwd, ps_bck_fwd, p_bck_bck, ps_bck_bck = p0, ps0, p0, ps0
        rho = list(p0)
        log_sum_weight = 0.0
        self.H0 = self.H(self.z)
        self.n_leapfrog, self.sum_metro, self.divergent = 0, 0.0, False
        depth = 0
        while depth < self.max_depth:
            if self.rng.uniform() > 0.5:
                self.z = z_fwd.copy()
                rho_bck = rho
                p_bck_fwd, ps_bck_fwd = p_fwd_fwd, ps_fwd_fwd
                valid, z_propose, ps_fwd_bck_n, ps_fwd_fwd_n, rho_fwd, p_fwd_bck_n, p_fwd_fwd_n, lsw_sub = \
                    self.build_tree(depth, {}, 1.0)
                if valid:
                    ps_fwd_bck, ps_fwd_fwd, p_fwd_bck, p_fwd_fwd = ps_fwd_bck_n, ps_fwd_fwd_n, p_fwd_bck_n, \
                        p_fwd_fwd_n
                z_fwd = self.z.copy()
            else:
                self.z = z_bck.copy()
                rho_fwd = rho
                p_fwd_bck, ps_fwd_bck = p_bck_bck, ps_bck_bck
                valid, z_propose, ps_bck_fwd_n, ps_bck_bck_n, rho_bck, p_bck_fwd_n, p_bck_bck_n, lsw_sub = \
                    self.build_tree(depth, {}, -1.0)
                if valid:
                    ps_bck_fwd, ps_bck_bck, p_bck_fwd, p_bck_bck = ps_bck_fwd_n, ps_bck_bck_n, p_bck_fwd_n, \
                        p_bck_bck_n
                z_bck = self.z.copy()
            if not valid:
                break
            depth += 1
            if lsw_sub > log_sum_weight:
                z_sample = z_propose
            elif self.rng.uniform() < math.exp(lsw_sub - log_sum_weight):
                z_sample = z_propose
            log_sum_weight = _log_sum_exp(log_sum_weight, lsw_sub)
            rho = [a + b for a, b in zip(rho_bck, rho_fwd, strict=True)]
            persist = self.criterion(ps_bck_bck, ps_fwd_fwd, rho)
            ext = [a + b for a, b in zip(rho_bck, p_fwd_bck, strict=True)]
            persist &= self.criterion(ps_bck_bck, ps_fwd_bck, ext)
            ext = [a + b for a, b in zip(rho_fwd, p_bck_fwd, strict=True)]
            persist &= self.criterion(ps_bck_fwd, ps_fwd_fwd, ext)
            if not persist:
                break
        return {"q": list(z_sample.q), "g": list(z_sample.g), "lp": z_sample.lp,
                "acceptance_rate": self.sum_metro / self.n_leapfrog, "n_steps": self.n_leapfrog,
                "tree_depth": depth, "diverging": self.divergent, "energy": self.H(z_sample)}


def transitions(logp_grad: Callable, q0, seed: int, n: int, eps: float, m_inv, max_depth: int = 10):
    """``n`` reference transitions from ``q0``: a list of their results (dicts)."""
    nuts = StanNuts(logp_grad, m_inv, eps, max_depth, Rng(seed))
    lp, g = logp_grad(np.array(q0, dtype=float))
    q, lp, g = [float(v) for v in q0], float(lp), [float(v) for v in g]
    out = []
    for _ in range(n):
        t = nuts.transition(q, lp, g)
        q, lp, g = t["q"], t["lp"], t["g"]
        out.append(t)
    return out


def init_stepsize(logp_grad: Callable, q0, seed: int, m_inv, eps: float = 1.0) -> float:
    """``base_hmc::init_stepsize`` from ``eps`` (ValueError where Stan throws)."""
    nuts = StanNuts(logp_grad, m_inv, eps, 1, Rng(seed))
    lp, g = logp_grad(np.array(q0, dtype=float))
    z_init = Point(q0, [0.0] * len(q0), [float(v) for v in g], float(lp))

    def probe() -> float:
        z = z_init.copy()
        nuts.sample_p(z)
        H0 = nuts.H(z)
        nuts.evolve(z, nuts.eps)
        return H0 - nuts.H(z)

    if nuts.eps == 0 or nuts.eps > 1e7 or math.isnan(nuts.eps):
        return nuts.eps
    direction = 1 if probe() > math.log(0.8) else -1
    while True:
        delta_H = probe()
        if direction == 1 and not delta_H > math.log(0.8):
            break
        if direction == -1 and not delta_H < math.log(0.8):
            break
        nuts.eps = 2.0 * nuts.eps if direction == 1 else 0.5 * nuts.eps
        if nuts.eps > 1e7:
            raise ValueError("Posterior is improper. Please check your model.")
        if nuts.eps == 0:
            raise ValueError("No acceptably small step size could be found.")
    return nuts.eps
