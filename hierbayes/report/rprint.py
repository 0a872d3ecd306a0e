"""R's printing rules, so printouts read digit for digit as lme4 and lmerTest print them.

R formats a numeric column *together* (``format(x, digits = 4)``): every value
gets the decimals the value needing most of them takes to show ``digits``
significant digits, so ``251.405`` and ``1.546`` line up as a column, where
rounding each cell alone would print ``251.4`` beside ``1.546``. The
functions here follow R 4.2's ``formatReal``, ``format.pval``,
``printCoefmat`` (the coefficient tables and ``print.anova``), ``zapsmall``
and ``print.default`` of character matrices and named vectors, which is
all lme4's ``print.summary.merMod`` uses.

Examples
--------
>>> r_format([251.405105, 6.824597, 10.467286, 1.545790], digits=4)
['251.405', '  6.825', ' 10.467', '  1.546']
>>> format_pval([1e-20, 3.26e-06], digits=3)
['< 2e-16', '3.26e-06']
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

EPS = float(np.finfo(float).eps)
SIGNIF_LEGEND = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


def _scientific(x: float, digits: int) -> tuple[int, int]:
    """``(exponent, significant digits needed)`` of ``x`` shown with ``digits`` digits, as R's
    ``scientific()``: trailing zeros of the rounded mantissa do not count."""
    if x == 0:
        return 0, 1
    mantissa, exponent = f"{abs(x):.{digits - 1}e}".split("e")
    return int(exponent), max(1, len(mantissa.replace(".", "").rstrip("0")))


def r_format(values: Sequence[float], digits: int = 7, nsmall: int = 0, na: str = "NA") -> list[str]:
    """R's ``format(x, digits=, nsmall=)`` of a numeric vector: one notation, one width.

    Fixed notation unless scientific is narrower (R's ``scipen = 0``); in
    fixed notation every value has the decimals that the value needing most
    takes to show ``digits`` significant digits (at least ``nsmall``).
    Non-finite values print as ``na`` (``NA``), ``Inf``, ``-Inf`` or ``NaN``.

    Examples
    --------
    >>> r_format([612.100158, 35.071714, 654.940008], digits=4)
    ['612.10', ' 35.07', '654.94']
    >>> r_format([1.47e-09], digits=3), r_format([0.0010683, 0.000474, 0.000182], digits=3)
    (['1.47e-09'], ['0.001068', '0.000474', '0.000182'])
    >>> r_format([4.0, float("nan")])
    [' 4', 'NA']
    """
    x = [float(v) for v in values]
    finite = [v for v in x if math.isfinite(v)]
    if not finite:
        cells = [_nonfinite(v, na) for v in x]
    else:
        neg = any(v < 0 for v in finite)
        mxsl, rgt, mxe, mne, mxns = 1, 0, -400, 400, 1
        for v in finite:
            kp, nsig = _scientific(v, digits)
            mxsl = max(mxsl, (v < 0) + (kp + 1 if kp >= 0 else 1))
            rgt = max(rgt, nsig - kp - 1)
            mxe, mne, mxns = max(mxe, kp), min(mne, kp), max(mxns, nsig)
        e = 2 if mxe >= 100 or mne <= -100 else 1
        width_fixed = mxsl + rgt + (rgt != 0)
        d = mxns - 1
        width_sci = neg + (d > 0) + d + 4 + e
        if width_fixed <= width_sci:
            rgt = max(rgt, nsmall)
            cells = [f"{v:.{rgt}f}" if math.isfinite(v) else _nonfinite(v, na) for v in x]
        else:
            cells = [f"{v:.{d}e}" if math.isfinite(v) else _nonfinite(v, na) for v in x]
    width = max(len(c) for c in cells)
    return [c.rjust(width) for c in cells]


def _nonfinite(v: float, na: str) -> str:
    return na if math.isnan(v) else ("Inf" if v > 0 else "-Inf")


def zapsmall(values: Sequence[float], digits: int) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest value, so
    ``1e-17`` beside ``3.2`` prints as ``0``.

    R 4.2 rounds to ``digits - log10(max)`` places, a fraction that ``round``
    takes to the nearest whole number (not up, as ``ceiling`` would).

    Examples
    --------
    >>> zapsmall([1814.85047041, 1783.09708559], 5).tolist()
    [1814.85, 1783.1]
    """
    x = np.asarray(values, dtype=float)
    finite = x[np.isfinite(x)]
    mx = float(np.max(np.abs(finite))) if finite.size else 0.0
    places = max(0, math.floor(digits - math.log10(mx) + 0.5)) if mx > 0 else digits
    return np.round(x, places)


def format_pval(pv: Sequence[float], digits: int = 3, eps: float = EPS) -> list[str]:
    """R's ``format.pval``: ``< 2e-16`` below ``eps``, fixed notation down to 1e-4 (when
    ``digits > 1``), scientific below, each group formatted together.

    Examples
    --------
    >>> format_pval([1.47e-09, 0.0010683, 0.000474, 0.000182], digits=3)
    ['1.47e-09', '0.001068', '0.000474', '0.000182']
    >>> format_pval([7.0718e-10], digits=4)
    ['7.072e-10']
    """
    pv = [float(p) for p in pv]
    out = [""] * len(pv)
    small = [i for i, p in enumerate(pv) if p < eps]
    rest = [i for i, p in enumerate(pv) if p >= eps]
    if rest:
        expo = {i: math.floor(math.log10(pv[i])) if pv[i] > 0 else -50 for i in rest}
        fix = [i for i in rest if expo[i] >= -3 or (expo[i] == -4 and digits > 1)]
        sci = [i for i in rest if i not in fix]
        for group in (fix, sci):
            if group:
                for i, cell in zip(group, r_format([pv[i] for i in group], digits), strict=True):
                    out[i] = cell.strip()
    if small:
        d = max(1, digits - 2)
        sep = " "
        if rest:
            nc = max(len(out[i]) for i in rest)
            if d > 1 and d + 6 > nc:
                d = max(1, nc - 7)
            sep = "" if d == 1 and nc <= 6 else " "
        else:
            sep = "" if d == 1 else " "
        for i in small:
            out[i] = f"<{sep}{r_format([eps], d)[0].strip()}"
    return out


def signif_stars(p: float) -> str:
    """R's ``symnum`` codes: ``***`` below 0.001, ``**`` 0.01, ``*`` 0.05, ``.`` 0.1, else blank."""
    if not math.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "." if p < 0.1 else " "


def matrix_lines(cells: Sequence[Sequence[str]], columns: Sequence[str],
                 index: Sequence[str] | None = None, right: bool = False) -> list[str]:
    """R's ``print.default`` of a character matrix (``quote = FALSE``): row names
    left-justified, cells and their headings left- (``right=False``) or
    right-justified, one space between columns. ``index=None`` is R's empty row
    names, which print as a leading space."""
    rows = [list(r) for r in cells]
    names = list(index) if index is not None else [""] * len(rows)
    name_w = max([len(n) for n in names], default=0)
    widths = [max([len(columns[k]), *(len(r[k]) for r in rows)]) for k in range(len(columns))]

    def cell(v: str, w: int) -> str:
        return v.rjust(w) if right else v.ljust(w)

    out = [" ".join([" " * name_w, *(cell(c, w) for c, w in zip(columns, widths, strict=True))])]
    for n, r in zip(names, rows, strict=True):
        out.append(" ".join([n.ljust(name_w), *(cell(v, w) for v, w in zip(r, widths, strict=True))]))
    return [line.rstrip() for line in out]


def named_vector_lines(cells: Sequence[str], names: Sequence[str]) -> list[str]:
    """R's print of a named vector: names over values, each right-justified to one width.

    Examples
    --------
    >>> named_vector_lines(r_format([-3.9536, -0.4634, 0.0231, 0.4634, 5.1793], 4),
    ...                    ["Min", "1Q", "Median", "3Q", "Max"])
    ['    Min      1Q  Median      3Q     Max', '-3.9536 -0.4634  0.0231  0.4634  5.1793']
    """
    w = max(len(s) for s in [*cells, *names])
    return [" ".join(n.rjust(w) for n in names).rstrip(), " ".join(c.rjust(w) for c in cells).rstrip()]


def coefmat_cells(columns: Sequence[str], values: np.ndarray, digits: int = 4,
                  cs_ind: Sequence[int] | None = None, tst_ind: Sequence[int] = (),
                  zap_ind: Sequence[int] = (), has_p: bool = False, stars: bool = True,
                  na_print: str = "NA") -> tuple[list[str], list[list[str]], bool]:
    """R's ``printCoefmat`` cells: ``(column heads, cells, whether the stars legend is due)``.

    ``values`` is rows x columns; the last column is the p-value when
    ``has_p``. Estimates and standard errors (``cs_ind``, by default every
    column before the test statistic) are rounded to the decimals the smaller
    of them needs and formatted together; the statistic (``tst_ind``) to
    ``digits - 1`` decimals; other columns each alone; p-values as
    :func:`format_pval`; the stars column is added when a p-value is below 0.1.
    """
    xm = np.array(values, dtype=float)
    nr, nc = xm.shape
    cols = list(columns)
    dig_tst = max(1, min(5, digits - 1))
    if cs_ind is None:
        k = nc - has_p - (len(tst_ind) if tst_ind else 1)
        cs_ind = list(range(k))
        if not tst_ind:
            tst_ind = [k] if k < nc - has_p else []
    for i in zap_ind:
        xm[:, i] = zapsmall(xm[:, i], digits)
    cf = [["" for _ in range(nc)] for _ in range(nr)]
    if cs_ind:
        block = xm[:, cs_ind]
        acs = np.abs(block[np.isfinite(block)])
        acs = acs[acs != 0]
        if acs.size or np.isfinite(block).any():
            digmin = 1 + (np.floor(np.log10([acs.min(), acs.max()])) if acs.size else np.zeros(2))
            places = int(max(1, *(digits - digmin)))
            cells = r_format(np.round(block, places).ravel(order="F"), digits, na=na_print)
            for j, c in enumerate(cs_ind):
                for i in range(nr):
                    cf[i][c] = cells[j * nr + i]
    for c in tst_ind:
        for i, cell in enumerate(r_format(np.round(xm[:, c], dig_tst), digits, na=na_print)):
            cf[i][c] = cell
    others = [c for c in range(nc) if c not in cs_ind and c not in tst_ind and not (has_p and c == nc - 1)]
    for c in others:
        for i, cell in enumerate(r_format(xm[:, c], digits, na=na_print)):
            cf[i][c] = cell
    # a value that rounds to 0 but is not 0 gets one digit fewer, in its own notation
    for c in [*cs_ind, *others]:
        for i in range(nr):
            v = xm[i, c]
            if np.isfinite(v) and v != 0 and float(cf[i][c]) == 0:
                cf[i][c] = r_format([v], max(1, digits - 1))[0]
    for i in range(nr):
        for c in range(nc):
            if np.isnan(xm[i, c]):
                cf[i][c] = na_print
    legend = False
    if has_p:
        p = xm[:, nc - 1]
        ok = np.isfinite(p)
        if ok.any():
            for i, cell in zip(np.flatnonzero(ok), format_pval(p[ok], dig_tst), strict=True):
                cf[i][nc - 1] = cell
            if stars and (p[ok] < 0.1).any():
                codes = [signif_stars(v) if np.isfinite(v) else "" for v in p]
                w = max(len(s) for s in codes)
                for i in range(nr):
                    cf[i].append(codes[i].ljust(w))
                cols.append("")
                legend = True
    return cols, cf, legend


def coefmat_lines(index: Sequence[str], columns: Sequence[str], values: np.ndarray,
                  **kwargs) -> list[str]:
    """:func:`coefmat_cells` printed as R prints them, with the ``Signif. codes`` legend.

    Examples
    --------
    >>> print("\\n".join(coefmat_lines(["(Intercept)", "Days"], ["Estimate", "Std. Error", "t value"],
    ...                  [[251.405105, 6.824597, 36.838090], [10.467286, 1.545790, 6.771481]],
    ...                  )))
                Estimate Std. Error t value
    (Intercept)  251.405      6.825  36.838
    Days          10.467      1.546   6.771
    """
    cols, cells, legend = coefmat_cells(columns, np.asarray(values, dtype=float), **kwargs)
    lines = matrix_lines(cells, cols, index, right=True)
    if legend:
        lines += ["---", SIGNIF_LEGEND]
    return lines
