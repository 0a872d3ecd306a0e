"""Serial correlation of the errors within groups: AR(1) on integer times, CAR(1) on continuous ones.

Both are nlme's: the errors of one group at times ``t_i`` and ``t_j`` have
correlation ``phi^|t_i - t_j|``. nlme's ``corAR1`` asks for integer times
(with gaps it becomes ``corARMA(p = 1)``, whose correlation at lag ``k`` is
``phi^k`` again), ``phi`` in (-1, 1); ``corCAR1`` takes any times, ``phi`` in
[0, 1). Such a process is Markov, so the inverse Cholesky factor of each
group's correlation matrix, rows in time order, is bidiagonal:

    u_first = e_first,    u_i = (e_i - r_i e_prev(i)) / sqrt(1 - r_i^2),    r_i = phi^(t_i - t_prev(i))

and ``log|C| = sum_i log(1 - r_i^2)``. :class:`SerialCorrelation` holds, per
row, the previous row of its group in time and the lag to it, so that both
are one vectorised step for any ``phi``; rows need not be sorted.

:func:`ar1` and :func:`car1` are what users write (``hb.ar1(group="student",
time="occasion")``); the design evaluates them on the data
(:mod:`hierbayes.spec.residual_design`).

Examples
--------
>>> import numpy as np
>>> c = SerialCorrelation("ar1", "g", "t", codes=np.array([0, 0, 0]), times=np.array([2.0, 0.0, 1.0]))
>>> c.prev.tolist(), c.lag.tolist()
([2, -1, 1], [1.0, 0.0, 1.0])
>>> bool(np.isclose(c.log_det(0.5), 2 * np.log(0.75)))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("ar1", "car1")
NLME_NAMES = {"ar1": "AR(1)", "car1": "Continuous AR(1)"}


@dataclass(frozen=True)
class CorrelationSpec:
    """A residual correlation structure as the user asks for it, before it meets the data.

    Attributes
    ----------
    kind
        ``"ar1"`` (nlme's corAR1: integer times) or ``"car1"`` (corCAR1: any times).
    group
        The column whose levels are the independent series; None: the
        formula's (innermost) grouping factor, as nlme takes it.
    time
        The column of times; None: each row's position within its group, in
        data order (nlme's ``corAR1(form = ~ 1 | g)``).
    """

    kind: str
    group: str | None = None
    time: str | None = None

    def __post_init__(self) -> None:
        from hierbayes.errors import DataError

        if self.kind not in KINDS:
            raise DataError(f"The correlation structure must be one of {KINDS}, not {self.kind!r}.")
        for what in ("group", "time"):
            value = getattr(self, what)
            if value is not None and not isinstance(value, str):
                raise DataError(f"{self.kind}()'s {what}= must be a column name (a string), "
                                f"not {type(value).__name__}.")

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in (("group", self.group), ("time", self.time)) if v)
        return f"{self.kind}({args})"


def ar1(group: str | None = None, time: str | None = None) -> CorrelationSpec:
    """AR(1) errors within each group, on integer times: nlme's ``corAR1(form = ~ time | group)``.

    Parameters
    ----------
    group
        Column of the series (None: the formula's grouping factor).
    time
        Column of integer times (None: the rows' order within each group).
        Gaps are allowed: rows ``k`` steps apart have correlation ``phi^k``.

    Examples
    --------
    >>> import hierbayes as hb
    >>> hb.ar1(group="student", time="occasion")
    CorrelationSpec(kind='ar1', group='student', time='occasion')
    """
    return CorrelationSpec("ar1", group, time)


def car1(group: str | None = None, time: str | None = None) -> CorrelationSpec:
    """Continuous-time AR(1) errors within each group: nlme's ``corCAR1(form = ~ time | group)``.

    Rows at times ``s`` and ``t`` have correlation ``phi^|s - t|``, ``phi`` in [0, 1).

    Examples
    --------
    >>> import hierbayes as hb
    >>> str(hb.car1(group="Rat", time="Time"))
    "car1(group='Rat', time='Time')"
    """
    return CorrelationSpec("car1", group, time)


class SerialCorrelation:
    """AR(1) or CAR(1) correlation of the rows' errors, evaluated on the fitted rows.

    Parameters
    ----------
    kind
        ``"ar1"`` or ``"car1"``.
    group, time
        The column names (``time`` None: positions within groups).
    codes
        ``(n,)`` integer group of each row.
    times
        ``(n,)`` time of each row; unique within a group.
    group_levels
        The group codes' labels (for messages and reports).

    Attributes
    ----------
    prev
        ``(n,)`` the row just before each row in its group's time order, -1 for a first row.
    lag
        ``(n,)`` the time since that row (0 for a first row).
    order
        The rows sorted by group, then time.
    """

    def __init__(self, kind: str, group: str | None, time: str | None, codes: np.ndarray,
                 times: np.ndarray, group_levels: list[str] | None = None) -> None:
        self.kind = kind
        self.group = group
        self.time = time
        self.codes = np.asarray(codes, dtype=np.int64)
        self.times = np.asarray(times, dtype=float)
        self.group_levels = group_levels
        order = np.lexsort((self.times, self.codes))
        self.order = order
        prev = np.full(len(order), -1, dtype=np.int64)
        same = self.codes[order[1:]] == self.codes[order[:-1]]
        prev[order[1:][same]] = order[:-1][same]
        self.prev = prev
        has = prev >= 0
        lag = np.zeros(len(order))
        lag[has] = self.times[has] - self.times[prev[has]]
        self.lag = lag
        self._has = has

    @property
    def n_groups(self) -> int:
        return int(self.codes.max()) + 1 if self.codes.size else 0

    @property
    def label(self) -> str:
        """nlme's name of the structure (``"AR(1)"``, ``"Continuous AR(1)"``)."""
        return NLME_NAMES[self.kind]

    @property
    def formula(self) -> str:
        """nlme's ``form`` of the structure: ``~ occasion | student``."""
        return f"~ {self.time or 1} | {self.group}"

    def phi(self, z: float) -> float:
        """``phi`` from its unconstrained value: ``tanh`` (AR(1)) or the logistic (CAR(1))."""
        return float(np.tanh(z)) if self.kind == "ar1" else float(1.0 / (1.0 + np.exp(-z)))

    def unconstrained(self, phi: float) -> float:
        """The inverse of :meth:`phi`."""
        return float(np.arctanh(phi)) if self.kind == "ar1" else float(np.log(phi / (1.0 - phi)))

    @property
    def z0(self) -> float:
        """Where fits start: ``phi = 0`` for AR(1), nlme's 0.2 for CAR(1)."""
        return 0.0 if self.kind == "ar1" else self.unconstrained(0.2)

    def r(self, phi: float | np.ndarray) -> np.ndarray:
        """Each row's correlation with the previous row of its group (0 for a first row).

        ``(n,)`` for one ``phi``; ``(S, n)`` for ``S`` draws of it.
        """
        phi = np.asarray(phi, dtype=float)
        out = np.zeros((*phi.shape, len(self.lag)))
        out[..., self._has] = np.power(phi[..., None], self.lag[self._has])
        return out

    @property
    def next(self) -> np.ndarray:
        """``(n,)`` the row just after each row in its group's time order, -1 for a last row."""
        nxt = np.full(len(self.prev), -1, dtype=np.int64)
        nxt[self.prev[self._has]] = np.flatnonzero(self._has)
        return nxt

    def whiten(self, phi: float, a: np.ndarray) -> np.ndarray:
        """``C^-1/2 a`` in time order within groups (the bidiagonal inverse factor), on axis 0."""
        r = self.r(phi)
        s = np.sqrt(1.0 - r**2)
        if a.ndim == 1:
            return (a - r * a[self.prev]) / s
        return (a - r[:, None] * a[self.prev]) / s[:, None]

    def color(self, phi: float, z: np.ndarray) -> np.ndarray:
        """``C^1/2 z``, the inverse of :meth:`whiten`: correlated errors from independent ones.

        ``e_i = r_i e_prev(i) + sqrt(1 - r_i^2) z_i``, run along each group's time order
        (all groups at once, one step per position); ``z`` is ``(n,)`` or ``(n, k)``.
        """
        r = self.r(phi)
        s = np.sqrt(1.0 - r**2)
        if z.ndim > 1:
            r, s = r[:, None], s[:, None]
        e = np.array(z, dtype=float) * s
        for rows in self._steps():
            e[rows] += r[rows] * e[self.prev[rows]]
        return e

    def color_draws(self, phi: np.ndarray, z: np.ndarray) -> np.ndarray:
        """:meth:`color` for ``S`` draws at once: ``phi`` ``(S,)``, ``z`` ``(S, n)``."""
        r = self.r(phi)
        e = np.array(z, dtype=float) * np.sqrt(1.0 - r**2)
        for rows in self._steps():
            e[:, rows] += r[:, rows] * e[:, self.prev[rows]]
        return e

    def _steps(self) -> list[np.ndarray]:
        """The rows at each position after the first within their groups, position by position."""
        if not hasattr(self, "_step_rows"):
            rank = np.zeros(len(self.prev), dtype=np.int64)
            for i in self.order:
                if self.prev[i] >= 0:
                    rank[i] = rank[self.prev[i]] + 1
            self._step_rows = [np.flatnonzero(rank == k) for k in range(1, int(rank.max(initial=0)) + 1)]
        return self._step_rows

    def log_det(self, phi: float) -> float:
        """``log |C(phi)|`` over all groups."""
        return float(np.sum(np.log1p(-self.r(phi)[self._has] ** 2)))

    def matrix(self, phi: float, rows: np.ndarray) -> np.ndarray:
        """The correlation matrix of the given rows (``phi^|t_i - t_j|`` within a group, 0 across)."""
        t = self.times[rows]
        same = self.codes[rows][:, None] == self.codes[rows][None, :]
        return np.where(same, np.power(phi, np.abs(t[:, None] - t[None, :])), 0.0)
