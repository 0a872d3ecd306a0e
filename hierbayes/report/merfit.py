"""What lmer and glmer fits report alike: ranef, coef, varcorr, vcov, and their summaries' tables.

:class:`MerReport` is the part of lme4's merMod methods that an LMM and a
GLMM share; :class:`hierbayes.LmerFit` and :class:`hierbayes.GlmerFit` add
their own summaries, tests and predictions. The text helpers lay out the
summaries' common sections (random effects, correlation of fixed effects).

Examples
--------
>>> abbreviate("(Intercept)"), abbreviate("period2")
('(Intr)', 'perid2')
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.report.format import Block, coefficients, obs_line, random_effects_rows
from hierbayes.report.rprint import (
    SIGNIF_LEGEND,
    coefmat_cells,
    named_vector_lines,
    r_format,
    zapsmall,
)


class MerReport:
    """ranef, coef, varcorr, vcov and ngrps of a fit with ``design``, ``estimates`` and ``covariance()``.

    ``estimates`` has ``beta``, ``vcov_beta``, ``b`` and ``cond_var``; the
    residual SD's row of :meth:`varcorr` is ``sigma`` where the design has
    one (lmer), or where :meth:`scale_row` says so (a Gamma glmer).
    """

    def scale_row(self) -> bool:
        """Whether varcorr ends with a ``Residual`` row that the design does not list itself."""
        return False

    def ngrps(self) -> dict[str, int]:
        """Levels of each grouping factor."""
        return self.design.ngrps()

    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed effects."""
        names = self.design.fixef_names
        return pd.DataFrame(self.estimates.vcov_beta, index=names, columns=names)

    def ranef(self, cond_var: bool = True) -> pd.DataFrame:
        """Conditional modes of the group effects, in long form; with their conditional SDs.

        Columns: group (grouping factor), term, level, Estimate and, with
        ``cond_var``, Cond.SD (lme4's condsd, conditional on the fixed effects).
        """
        rows = []
        cv = self.estimates.cond_var
        for k, blk in enumerate(self.design.blocks):
            b = self.estimates.b[k]
            for j, term in enumerate(blk.terms):
                for lv, level in enumerate(blk.levels):
                    row = {"group": blk.factor, "term": term, "level": level, "Estimate": b[lv, j]}
                    if cond_var:
                        row["Cond.SD"] = float(np.sqrt(cv[k][lv, j, j]))
                    rows.append(row)
        return pd.DataFrame(rows)

    def coef(self) -> pd.DataFrame:
        """Fixed plus group effects per level, as lme4's ``coef``, in long form."""
        est = self.estimates
        rows = []
        for factor, (terms, levels, values) in coefficients(self.design, est.beta, est.b).items():
            for j, term in enumerate(terms):
                for k, level in enumerate(levels):
                    rows.append({"group": factor, "term": term, "level": level, "Estimate": values[k, j]})
        return pd.DataFrame(rows)

    def varcorr(self) -> pd.DataFrame:
        """Variance components as ``as.data.frame(VarCorr(m))``: grp, var1, var2, vcov, sdcor."""
        covs = dict(zip([b.group for b in self.design.blocks], self.covariance(), strict=True))
        rows = []
        index = self.design.varcorr_index()
        if self.scale_row():
            index = [*index, ("Residual", None, None)]
        for grp, v1, v2 in index:
            if grp not in covs:
                rows.append({"grp": grp, "var1": None, "var2": None, "vcov": self.sigma**2,
                             "sdcor": self.sigma})
                continue
            terms = self.design.block(grp).terms
            S = covs[grp]
            i = terms.index(v1)
            if v2 is None:
                rows.append({"grp": grp, "var1": v1, "var2": None, "vcov": S[i, i],
                             "sdcor": np.sqrt(S[i, i])})
            else:
                j = terms.index(v2)
                denom = np.sqrt(S[i, i] * S[j, j])
                rows.append({"grp": grp, "var1": v1, "var2": v2, "vcov": S[i, j],
                             "sdcor": S[i, j] / denom if denom > 0 else np.nan})
        out = pd.DataFrame(rows)
        for col in ("var1", "var2"):
            out[col] = pd.Series([r[col] for r in rows], dtype=object)
        return out

    def bootstrap(self, fun: Any = None, n_sims: int = 500, seed: int | None = None,
                  type: str = "parametric", use_u: bool = False, progressbar: bool = True,
                  n_jobs: int | None = 1, executor: Any = None, client: Any = None):
        """A parametric bootstrap of any statistic, as lme4's ``bootMer(FUN = fun)``
        (:func:`hierbayes.report.bootstrap.bootstrap_fit`).

        ``fun`` gets each refit as a fit of this class (``predict``, ``fixef``,
        ``varcorr``, ...) and returns a number, a vector, a dict or a Series;
        None bootstraps every parameter. Returns a
        :class:`~hierbayes.report.bootstrap.BootResult` with the replicates
        (``.t``), the statistic on the data (``.t0``), ``.summary()`` and
        ``.conf_int(level, type="perc" | "norm" | "basic")``. The refits run serially, on
        ``n_jobs`` processes, an ``executor`` or a Dask ``client``, with the same replicates.
        """
        from hierbayes.report.bootstrap import bootstrap_fit

        return bootstrap_fit(self, fun, n_sims, seed, type, use_u, progressbar, n_jobs, executor,
                             client)

    def random_effects_section(self) -> tuple[Block, pd.DataFrame]:
        """The summary's Random effects table (lme4's ``formatVC``, digits 4), with the obs line."""
        return varcorr_block(self.varcorr(), self.design)

    def fixef_correlation_section(self) -> tuple[str, Block] | None:
        """The summary's Correlation of Fixed Effects, or None with one fixed effect."""
        V = self.estimates.vcov_beta
        se = np.sqrt(np.diag(V))
        return fixef_correlation(list(self.design.fixef_names), V / np.outer(se, se))


def varcorr_block(vc: pd.DataFrame, design) -> tuple[Block, pd.DataFrame]:
    """lme4's random-effects table from a varcorr table: Variance and Std.Dev. each formatted
    as one column (4 digits), correlations to 2 decimals; and the same numbers as a DataFrame."""
    rows = random_effects_rows(vc, design)
    variances = r_format([r["vcov"] for _, _, r, _ in rows], 4)
    sds = r_format([r["sdcor"] for _, _, r, _ in rows], 4)
    ncor = max([len(c) for *_, c in rows], default=0)
    cor_cells = [["" for _ in range(ncor)] for _ in rows]
    start = 0
    for k in range(len(rows) + 1):
        # each factor's correlation matrix is formatted as one (R's format(round(x, 2), nsmall = 2))
        if k == len(rows) or (k > start and rows[k][0] != rows[start][0]):
            block = [(i, j, c["sdcor"]) for i in range(start, k) for j, c in enumerate(rows[i][3])]
            if block:
                cells = r_format([1.0, *[round(v, 2) for *_, v in block]], 7, nsmall=2)[1:]
                for (i, j, _), cell in zip(block, cells, strict=True):
                    cor_cells[i][j] = cell
            start = k
    cells, table = [], []
    previous = None
    for k, (grp, name, row, cor_rows) in enumerate(rows):
        cells.append([grp if grp != previous else "", name, variances[k], sds[k], *cor_cells[k]])
        previous = grp
        table.append({"Groups": grp, "Name": name, "Variance": row["vcov"], "Std.Dev.": row["sdcor"],
                      "Corr": ", ".join(f"{c['sdcor']:.2f}" for c in cor_rows)})
    heads = ["Groups", "Name", "Variance", "Std.Dev.", *(["Corr"] + [""] * (ncor - 1) if ncor else [])]
    return Block(heads, cells, notes=[obs_line(design)]), pd.DataFrame(table)


def fixef_correlation(names: list[str], corr: np.ndarray) -> tuple[str, Block] | None:
    """lme4's Correlation of Fixed Effects: 3 decimals formatted together, row names abbreviated
    to 11 characters and column heads to 6."""
    p = len(names)
    if p < 2:
        return None
    lower = [(i, j) for i in range(p) for j in range(i)]
    cells = r_format([1.0, *(round(corr[i, j], 3) for i, j in lower)], 7, nsmall=3)[1:]
    grid = [["" for _ in range(p - 1)] for _ in range(p - 1)]
    for (i, j), cell in zip(lower, cells, strict=True):
        grid[i - 1][j] = cell
    return ("\nCorrelation of Fixed Effects:",
            Block([abbreviate(n) for n in names[:-1]], grid, [abbreviate(n, 11) for n in names[1:]]))


def title_lines(title: str, cls: str | None = None, width: int = 80) -> list[str]:
    """lme4's ``.prt.methTit``: the method title and ``[class]``, wrapped at 80 columns as R's
    ``strwrap`` and ``cat(fill = TRUE)`` wrap them."""
    import textwrap

    if cls is None:
        return [title]
    if len(title) + 5 + len(cls) <= width:
        return [f"{title} ['{cls}']"]
    # R's strwrap breaks at spaces only, never at a hyphen or inside a word
    items = [*textwrap.wrap(title, width - 2, subsequent_indent="  ", break_on_hyphens=False,
                            break_long_words=False), " [", cls, "]"]
    lines, line = [], ""
    for item in items:
        if line and len(line) + len(item) > width:
            lines.append(line)
            line = item
        else:
            line += item
    return [*lines, line]


def aictab_lines(aic: float, bic: float, loglik: float, deviance: float, df_resid: int) -> list[str]:
    """lme4's ``.prt.aictab``: the criteria rounded to one decimal and formatted together."""
    values = r_format([round(v, 1) for v in (aic, bic, loglik, deviance, float(df_resid))])
    values[-1] = r_format([float(df_resid)])[0]
    return named_vector_lines(values, ["AIC", "BIC", "logLik", "deviance", "df.resid"])


def criterion_line(deviance: float) -> str:
    """``REML criterion at convergence: 1743.6`` (R's ``cat`` of the rounded value)."""
    return f"REML criterion at convergence: {r_format([round(deviance, 1)])[0]}"


def resid_lines(values: np.ndarray) -> list[str]:
    """lme4's ``.prt.resids``: the scaled residuals' quantiles (zapped to 5 digits, printed
    with 4)."""
    q = zapsmall(np.quantile(values, [0, 0.25, 0.5, 0.75, 1]), 5)
    return named_vector_lines(r_format(q, 4), ["Min", "1Q", "Median", "3Q", "Max"])


def fixef_block(fx: pd.DataFrame) -> Block:
    """lme4's Fixed effects table (``printCoefmat``, digits 4) with the stars and their legend."""
    has_p = str(fx.columns[-1]).startswith("Pr(")
    cols, cells, legend = coefmat_cells(list(fx.columns), fx.to_numpy(dtype=float), 4, has_p=has_p)
    return Block(cols, cells, [str(n) for n in fx.index], right=True,
                 notes=["---", SIGNIF_LEGEND] if legend else [])


def abbreviate(name: str, width: int = 6) -> str:
    """R's ``abbreviate()`` (``minlength = width``), as lme4 calls it for the correlation table.

    Lower-case vowels go from the right (never a word's first letter), then
    lower-case letters, until the name without its spaces fits; then the
    spaces go. R does not cut a name that still does not fit.

    Examples
    --------
    >>> [abbreviate(n) for n in ["(Intercept)", "period2", "job2 hours", "VarietyVictory:nitro"]]
    ['(Intr)', 'perid2', 'jb2hrs', 'VrtyV:']
    >>> abbreviate("Variety Marvellous", 11), abbreviate("a b c d e f g h")
    ('VartyMrvlls', 'abcdefgh')
    """
    chars = list(name.lstrip())

    def length() -> int:
        return sum(c != " " for c in chars)

    for pattern in ("[aeiou]", "[a-z]"):
        i = len(chars) - 1
        while length() > width and i > 0:
            if re.fullmatch(pattern, chars[i]) and chars[i - 1] != " ":
                del chars[i]
            i -= 1
    if len(chars) > width:
        chars = [c for c in chars if c != " "]
    return "".join(chars)
