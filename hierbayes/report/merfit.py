"""What lmer and glmer fits report alike: ranef, coef, varcorr, vcov, and their summaries' tables.

:class:`MerReport` is the part of lme4's merMod methods that an LMM and a
GLMM share; :class:`hierbayes.LmerFit` and :class:`hierbayes.GlmerFit` add
their own summaries, tests and predictions. The text helpers lay out the
summaries' common sections (random effects, correlation of fixed effects).

Examples
--------
>>> pvalue(1e-20), pvalue(0.00012345), abbreviate("(Intercept)"), abbreviate("period2")
('< 2e-16', '0.000123', '(Intr)', 'perid2')
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from hierbayes.report.format import aligned, coefficients, num, obs_line, random_effects_rows


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

    def random_effects_section(self) -> tuple[str, pd.DataFrame]:
        """The summary's Random effects table (text and DataFrame), with the obs line."""
        vc = self.varcorr()
        cells, table = [], []
        for grp, name, row, cor_rows in random_effects_rows(vc, self.design):
            cors = " ".join(f"{c['sdcor']:.2f}" for c in cor_rows)
            cells.append([grp, name, num(row["vcov"]), num(row["sdcor"]), cors])
            table.append({"Groups": grp, "Name": name, "Variance": row["vcov"],
                          "Std.Dev.": row["sdcor"], "Corr": cors})
        lines = aligned(["Groups", "Name", "Variance", "Std.Dev.", "Corr"], cells, {2, 3})
        lines.append(obs_line(self.design))
        return "\n".join(lines), pd.DataFrame(table)

    def fixef_correlation_section(self) -> tuple[str, str] | None:
        """The summary's Correlation of Fixed Effects, or None with one fixed effect."""
        names = list(self.design.fixef_names)
        if len(names) < 2:
            return None
        V = self.estimates.vcov_beta
        se = np.sqrt(np.diag(V))
        corr = V / np.outer(se, se)
        short = [abbreviate(n) for n in names]
        rows = [[names[i], *[f"{corr[i, j]:.3f}" for j in range(i)]] for i in range(1, len(names))]
        heads = ["", *short[:-1]]
        rows = [r + [""] * (len(heads) - len(r)) for r in rows]
        return "\nCorrelation of Fixed Effects:", "\n".join(aligned(heads, rows, set(range(1, len(heads)))))


def pvalue(p: float) -> str:
    """R's format.pval: three significant digits, and '< 2e-16' below machine precision."""
    return "< 2e-16" if p < 2.2e-16 else f"{p:.3g}"


def stars(p: float) -> str:
    """R's significance stars (``symnum``): ``***`` below 0.001, ``**`` 0.01, ``*`` 0.05, ``.`` 0.1."""
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "." if p < 0.1 else ""


SIGNIF_CODES = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


def abbreviate(name: str, width: int = 6) -> str:
    """R's ``abbreviate()`` for the correlation table's column heads, as lme4 calls it.

    Lower-case vowels go from the end (never the first letter) until the name
    fits, then lower-case letters, then it is cut: ``(Intercept)`` is
    ``(Intr)``, ``period2`` is ``perid2``.
    """
    if len(name) <= width:
        return name
    chars = list(name)
    for pattern in ("[aeiou]", "[a-z]"):
        i = len(chars) - 1
        while len(chars) > width and i > 0:
            if re.fullmatch(pattern, chars[i]) and chars[i - 1] != " ":
                del chars[i]
            i -= 1
        if len(chars) <= width:
            break
    return "".join(chars[:width])
