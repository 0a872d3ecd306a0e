"""Contrasts of marginal means and their multiplicity adjustments, as R's emmeans computes them.

:func:`contrast_set` gives the coefficients of emmeans's contrast methods
(``pairwise.emmc``, ``revpairwise.emmc``, ``trt.vs.ctrl.emmc``, ``eff.emmc``,
``poly.emmc``, or a dict of custom coefficients) with their names and the
adjustment emmeans uses by default for each. :func:`adjust_p` and
:func:`critical_values` are emmeans's ``.adj.p.value`` and ``.adj.critval``:

* ``"tukey"``: the studentized range, ``ptukey(sqrt(2) |t|, k, df)`` (k means
  in the family), for pairwise comparisons only (for other contrasts emmeans
  changes it to ``"sidak"``, and so does this);
* ``"dunnettx"``: emmeans's approximation to Dunnett's test, a mixture of the
  Tukey and Sidak distributions (``.pdunnx``); its critical values solve
  ``.pdunnx(x) = level`` exactly, where emmeans stops its root search at a
  tolerance of 5e-4;
* ``"sidak"``, ``"bonferroni"``, ``"none"``;
* R's ``p.adjust`` methods ``"holm"``, ``"hochberg"``, ``"fdr"`` (``"BH"``),
  ``"BY"``: for p-values; their intervals are Bonferroni's, as in emmeans.

A family is the contrasts of one ``by`` group; one contrast alone is not adjusted.

Examples
--------
>>> cs = contrast_set("pairwise", ["A", "B", "C"])
>>> cs.names, cs.coef.tolist(), cs.adjust
(['A - B', 'A - C', 'B - C'], [[1.0, -1.0, 0.0], [1.0, 0.0, -1.0], [0.0, 1.0, -1.0]], 'tukey')
>>> adjust_p([0.5, 3.0], [20, 20], "tukey", 3, 3, True).p.round(4).tolist()
[0.8721, 0.0186]
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from hierbayes.errors import SettingsError

METHODS = ("pairwise", "revpairwise", "trt.vs.ctrl", "eff", "poly")
P_ADJUST = ("holm", "hochberg", "fdr", "BH", "BY", "bonferroni", "none")
ADJUSTMENTS = ("tukey", "dunnettx", "sidak", *P_ADJUST)
_POLY_NAMES = ["linear", "quadratic", "cubic", "quartic"] + [f"degree {d}" for d in range(5, 21)]


@dataclass
class ContrastSet:
    """Coefficients of the contrasts of one family of means.

    Attributes
    ----------
    names
        Each contrast's name, as emmeans names it (``"A - B"``, ``"A effect"``, ``"linear"``).
    coef
        ``(contrasts, means)`` coefficients.
    adjust
        The adjustment emmeans uses by default for the method.
    pairs
        Whether these are pairwise comparisons (emmeans's ``estType = "pairs"``):
        only those may take the Tukey adjustment.
    """

    names: list[str]
    coef: np.ndarray
    adjust: str
    pairs: bool

    @property
    def true_contrasts(self) -> bool:
        """Whether every row sums to zero (emmeans's ``true.con``), so ratios make sense on a log scale."""
        scale = 1e-6 + np.abs(self.coef).max(axis=1)
        return bool(np.all(np.abs(self.coef.sum(axis=1) / scale) < 1e-6))


def _poly(k: int, degree: int) -> np.ndarray:
    """R's ``poly(1:k, degree)`` scaled to integers, as ``poly.emmc``."""
    x = np.arange(1, k + 1, dtype=float)
    V = np.vander(x - x.mean(), degree + 1, increasing=True)
    Q, R = np.linalg.qr(V)
    Z = (Q * np.diag(R))[:, 1:]  # R's poly: each power's part orthogonal to the lower ones
    out = np.empty_like(Z)
    for j in range(degree):
        con = Z[:, j] / np.sqrt(np.sum(Z[:, j] ** 2))
        con = con / np.min(con[con > 0.01])
        z = np.max(np.abs(con - np.round(con)))
        while z > 0.05:
            con = con / z
            z = np.max(np.abs(con - np.round(con)))
        out[:, j] = np.round(con) + 0.0  # no negative zeros
    return out.T


def contrast_set(method: str | dict, levels: list[str], ref: Any = None) -> ContrastSet:
    """The contrasts ``method`` makes of means labelled ``levels`` (emmeans's ``*.emmc``).

    Parameters
    ----------
    method
        ``"pairwise"``, ``"revpairwise"``, ``"trt.vs.ctrl"``, ``"eff"``,
        ``"poly"``, or a dict ``{name: coefficients}`` with one coefficient per mean.
    levels
        The means' labels, as the contrast names show them.
    ref
        For ``"trt.vs.ctrl"``: the control's label (default the first level).
    """
    k = len(levels)
    if isinstance(method, dict):
        if not method:
            raise SettingsError("A dict of custom contrasts needs at least one {name: coefficients}.")
        rows = []
        for name, w in method.items():
            w = np.asarray(w, dtype=float).ravel()
            if w.shape != (k,) or not np.isfinite(w).all():
                raise SettingsError(f"Custom contrast {name!r} needs {k} finite coefficients, one "
                                    f"per mean ({', '.join(levels)}), not {w.size}.")
            rows.append(w)
        return ContrastSet([str(n) for n in method], np.array(rows), "none", False)
    if method not in METHODS:
        raise SettingsError(f"Unknown contrast method {method!r}: use one of {list(METHODS)} or a "
                            "dict {name: coefficients} of custom contrasts.")
    if ref is not None and method != "trt.vs.ctrl":
        raise SettingsError(f"ref= is for method='trt.vs.ctrl', not {method!r}.")
    if k < 2:
        raise SettingsError(f"Contrasts need at least two means in each family; there is {k}.")
    names, rows = [], []

    def add(name: str, plus: int, minus: int) -> None:
        w = np.zeros(k)
        w[plus], w[minus] = 1.0, -1.0
        names.append(name)
        rows.append(w)

    if method == "pairwise":
        for i in range(k - 1):
            for j in range(i + 1, k):
                add(f"{levels[i]} - {levels[j]}", i, j)
        return ContrastSet(names, np.array(rows), "tukey", True)
    if method == "revpairwise":
        for i in range(1, k):
            for j in range(i):
                add(f"{levels[i]} - {levels[j]}", i, j)
        return ContrastSet(names, np.array(rows), "tukey", True)
    if method == "trt.vs.ctrl":
        r = 0
        if ref is not None:
            if str(ref) not in levels:
                raise SettingsError(f"ref={ref!r} is not one of the levels {levels}.")
            r = levels.index(str(ref))
        for i in range(k):
            if i != r:
                add(f"{levels[i]} - {levels[r]}", i, r)
        return ContrastSet(names, np.array(rows), "dunnettx", False)
    if method == "eff":
        coef = np.eye(k) - 1.0 / k
        return ContrastSet([f"{lv} effect" for lv in levels], coef, "fdr", False)
    degree = min(6, k - 1)
    return ContrastSet(_POLY_NAMES[:degree], _poly(k, degree), "none", False)


def r_string(v: Any) -> str:
    """A level as R's ``as.character`` pastes it into a contrast's name (``0.2``, ``8``, ``Victory``)."""
    if isinstance(v, bool | np.bool_):
        return "TRUE" if v else "FALSE"
    if isinstance(v, float | np.floating):
        return str(int(v)) if float(v).is_integer() else format(float(v), ".15g")
    return str(v)


def _is_num(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def level_names(columns: dict[str, list[str]]) -> list[str]:
    """The means' names in contrasts, as emmeans pastes them: each row's levels joined by spaces.

    A variable whose levels all read as numbers gets its name in front
    (``nitro0.2``, emmeans's ``enhance.levels``), and a name holding ``-``, ``+``,
    ``/`` or ``*`` is put in parentheses (emmeans's ``parens``).

    Examples
    --------
    >>> level_names({"Variety": ["Victory", "Marvellous"], "nitro": ["0", "0.2"]})
    ['Victory nitro0', 'Marvellous nitro0.2']
    """
    parts = [[f"{name}{x}" for x in labs] if labs and all(_is_num(x) for x in labs) else list(labs)
             for name, labs in columns.items()]
    names = [" ".join(p) for p in zip(*parts, strict=True)]
    return [f"({n})" if re.search(r"-|\+|/|\*", n) else n for n in names]


# ---------------------------------------------------------------- adjustments


def _zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``, which emmeans applies to the df before ``ptukey``."""
    finite = x[~np.isnan(x)]
    if finite.size == 0:
        return x
    mx = np.max(np.abs(finite))
    if mx > 0:
        digits = max(0, digits - math.ceil(math.log10(mx))) if np.isfinite(mx) else 0
    return np.where(np.isinf(x), x, np.round(x, digits))


def p_adjust(p: np.ndarray, method: str, n: int) -> np.ndarray:
    """R's ``p.adjust(p, method, n)``; NaN stays NaN."""
    p0 = np.array(p, dtype=float)
    ok = ~np.isnan(p0)
    q = p0[ok]
    m = q.size
    if n <= 1 or method == "none" or m == 0:
        return p0
    if method == "bonferroni":
        out = np.minimum(1, n * q)
    elif method == "holm":
        o = np.argsort(q, kind="stable")
        i = np.arange(1, m + 1)
        out = np.empty(m)
        out[o] = np.minimum(1, np.maximum.accumulate((n + 1 - i) * q[o]))
    else:
        o = np.argsort(-q, kind="stable")
        i = np.arange(m, 0, -1)
        factor = {"hochberg": n + 1 - i, "BH": n / i, "fdr": n / i,
                  "BY": np.sum(1 / np.arange(1, n + 1)) * n / i}[method]
        out = np.empty(m)
        out[o] = np.minimum(1, np.minimum.accumulate(factor * q[o]))
    p0[ok] = out
    return p0


def _ptukey_sf(q: np.ndarray, k: float, df: np.ndarray) -> np.ndarray:
    from scipy.stats import studentized_range

    out = np.full(q.shape, np.nan)
    ok = ~(np.isnan(q) | np.isnan(df))
    out[ok] = studentized_range.sf(q[ok], k, df[ok])
    return out


def _pdunnx(x: np.ndarray, k: int, df: np.ndarray) -> np.ndarray:
    """emmeans's ``.pdunnx``: the dunnettx distribution function of ``|t|`` for k tests."""
    from scipy import stats

    twt = (k - 1) / k
    tukey = 1 - _ptukey_sf(np.sqrt(2) * x, (1 + math.sqrt(1 + 8 * k)) / 2, df)
    # pf(x^2, 1, Inf) is pchisq(x^2, 1), which SciPy's F gives as NaN
    sidak = np.where(np.isinf(df), stats.chi2.cdf(x**2, 1), stats.f.cdf(x**2, 1, df)) ** k
    return twt * tukey + (1 - twt) * sidak


@dataclass
class Adjusted:
    """Adjusted p-values or critical values, the adjustment used and emmeans's line about it."""

    p: np.ndarray
    adjust: str
    message: str | None


def _resolve(adjust: str, n_contr: int, pairs: bool, allowed: tuple[str, ...]) -> str:
    if adjust not in ADJUSTMENTS:
        raise SettingsError(f"Unknown adjust={adjust!r}: use one of {list(ADJUSTMENTS)}.")
    if n_contr == 1:
        return "none"
    if adjust == "tukey" and not pairs:
        return "sidak"  # emmeans: Tukey's is only for one set of pairwise comparisons
    return adjust if adjust in allowed else "bonferroni"


def _message(kind: str, adjust: str, fam_size: int, n_contr: int, noun: str) -> str | None:
    code = {"none": 1, "tukey": 2}.get(adjust, 99)
    if code == 1 or (fam_size < 3 and code < 10):
        return None
    extra = (f"for comparing a family of {fam_size} estimates" if adjust == "tukey"
             else f"for {n_contr} {noun}")
    return f"{kind}: {adjust} method {extra}"


def adjust_p(t: Any, df: Any, adjust: str, fam_size: int, n_contr: int, pairs: bool,
             groups: list[np.ndarray] | None = None) -> Adjusted:
    """Two-sided p-values of ``t`` with ``df`` (inf: z), adjusted within each family.

    ``fam_size`` is the number of means in a family, ``n_contr`` the number of
    contrasts, ``groups`` the rows of each family (one family by default).
    """
    from scipy import stats

    t = np.asarray(t, dtype=float)
    df = np.asarray(df, dtype=float)
    adjust = _resolve(adjust, n_contr, pairs, ADJUSTMENTS)
    groups = groups if groups is not None else [np.arange(t.size)]
    raw = 2 * np.where(np.isinf(df), stats.norm.sf(np.abs(t)), stats.t.sf(np.abs(t), df))
    if adjust in P_ADJUST:
        p = np.empty_like(raw)
        for rows in groups:
            p[rows] = p_adjust(raw[rows], adjust, n_contr)
    elif adjust == "sidak":
        p = 1 - (1 - raw) ** n_contr
    elif adjust == "tukey":
        p = _ptukey_sf(np.sqrt(2) * np.abs(t), fam_size, _zapsmall(df))
    else:
        p = 1 - _pdunnx(np.abs(t), n_contr, df)
    return Adjusted(p, adjust, _message("P value adjustment", adjust, fam_size, n_contr, "tests"))


def _qdunnx(level: float, k: int, df: float) -> float:
    from scipy import stats
    from scipy.optimize import brentq

    if k < 1.005:
        return float(stats.t.ppf(1 - 0.5 * (1 - level), df))
    xtuk = _qtukey(level, (1 + math.sqrt(1 + 8 * k)) / 2, df) / math.sqrt(2)
    xsid = math.sqrt(stats.chi2.ppf(level ** (1 / k), 1) if math.isinf(df) else
                     stats.f.ppf(level ** (1 / k), 1, df))
    if abs(xtuk - xsid) < 5e-4:
        return xtuk
    lo, hi = sorted((xtuk, xsid))
    return brentq(lambda x: _pdunnx(np.array([x]), k, np.array([df]))[0] - level, lo, hi,
                  xtol=1e-12, rtol=1e-12)


def _qtukey(level: float, k: float, df: float) -> float:
    from scipy.stats import studentized_range

    return float(studentized_range.ppf(level, k, df))


def critical_values(level: float, df: Any, adjust: str, fam_size: int, n_contr: int,
                    pairs: bool) -> Adjusted:
    """Each row's critical value for a two-sided interval at ``level``, as emmeans's ``.adj.critval``.

    The p-value adjustments of ``p.adjust`` (holm, fdr, ...) have no intervals of
    their own; emmeans gives Bonferroni's intervals then, and so does this.
    """
    from scipy import stats

    df = np.asarray(df, dtype=float)
    adjust = _resolve(adjust, n_contr, pairs, ("tukey", "dunnettx", "sidak", "bonferroni", "none"))
    cv = np.full(df.shape, np.nan)
    cache: dict[float, float] = {}
    for i, d in enumerate(df):
        if np.isnan(d):
            continue
        # the studentized range's quantile costs ~0.1 s; df equal to 10 digits share one
        key = float(f"{d:.10g}")
        if key not in cache:
            cache[key] = (stats.t.ppf(1 - (1 - level) / 2, d) if adjust == "none" else
                        stats.t.ppf(1 - (1 - level ** (1 / n_contr)) / 2, d) if adjust == "sidak" else
                        stats.t.ppf(1 - (1 - level) / n_contr / 2, d) if adjust == "bonferroni" else
                        _qtukey(level, fam_size, d) / math.sqrt(2) if adjust == "tukey" else
                        _qdunnx(level, n_contr, d))
        cv[i] = cache[key]
    return Adjusted(cv, adjust, _message("Conf-level adjustment", adjust, fam_size, n_contr,
                                         "estimates"))
