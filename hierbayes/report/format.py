"""Text layout shared by the summaries: R-like numbers and aligned tables."""

from __future__ import annotations

import numpy as np
import pandas as pd


def num(x: float, digits: int = 4) -> str:
    """Significant digits without exponent clutter, as R prints summaries.

    Examples
    --------
    >>> num(251.40510), num(0.000012345), num(float("nan"))
    ('251.4', '1.234e-05', 'NA')
    """
    if not np.isfinite(x):
        return "NA"
    if x != 0 and (abs(x) >= 1e6 or abs(x) < 1e-4):
        return f"{x:.{digits - 1}e}"
    return np.format_float_positional(x, precision=digits, unique=False, fractional=False, trim="-")


def fixed(x: float, decimals: int) -> str:
    """``x`` with a fixed number of decimals, ``NA`` (as R prints it) when not finite.

    Examples
    --------
    >>> fixed(1.00712, 3), fixed(float("nan"), 0)
    ('1.007', 'NA')
    """
    return f"{x:.{decimals}f}" if np.isfinite(x) else "NA"


def aligned(heads: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """Lines of a table with a leading space, columns padded; ``right`` columns right-aligned.

    A first-column value equal to the row above is blanked, as lmer prints Groups.
    """
    widths = [max(len(heads[k]), *(len(r[k]) for r in rows)) if rows else len(heads[k])
              for k in range(len(heads))]

    def line(values: list[str]) -> str:
        cells = [v.rjust(w) if k in right else v.ljust(w)
                 for k, (v, w) in enumerate(zip(values, widths, strict=True))]
        return " " + " ".join(cells).rstrip()

    out, previous = [line(heads)], None
    for r in rows:
        shown = r[0] if r[0] != previous else ""
        previous = r[0]
        out.append(line([shown, *r[1:]]))
    return out


class Summary:
    """A printed summary made of sections; shows as HTML in notebooks.

    Attributes
    ----------
    random, fixed : pandas.DataFrame
        The random-effects and fixed-effects tables.
    """

    def __init__(self, header: list[str], sections: list[tuple[str, str]],
                 random: pd.DataFrame, fixed: pd.DataFrame, footer: list[str]) -> None:
        self.header, self.sections = header, sections
        self.random, self.fixed, self.footer = random, fixed, footer

    def __str__(self) -> str:
        body = []
        for title, text in self.sections:
            body += ([title] if title else []) + [text]
        return "\n".join([*self.header, *body, *self.footer])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head = "<br>".join(self.header)
        return (
            f"<div><p style='font-family:monospace'>{head}</p><b>Random effects</b>"
            f"{self.random.to_html(index=False, float_format=num)}<b>Fixed effects</b>"
            f"{self.fixed.to_html(float_format=num)}<p>{'<br>'.join(self.footer)}</p></div>"
        )


def random_effects_rows(vc: pd.DataFrame, design) -> list[tuple[str, str, pd.Series, list[pd.Series]]]:
    """lmer's Random effects rows: ``(group, term, sd_row, correlation rows with earlier terms)``.

    ``vc`` is a varcorr table (grp, var1, var2, ...); None (or NaN) marks the
    Residual's missing names.
    """
    out = []
    for _, row in vc[vc["var2"].map(lambda v: not isinstance(v, str))].iterrows():
        grp = row["grp"]
        name = row["var1"] if isinstance(row["var1"], str) else ""
        cors = []
        if grp != "Residual":
            terms = design.block(grp).terms
            cors = [vc[(vc["grp"] == grp) & (vc["var1"] == terms[j]) & (vc["var2"] == name)].iloc[0]
                    for j in range(terms.index(name))]
        out.append((grp, name, row, cors))
    return out


def obs_line(design) -> str:
    """lmer's ``Number of obs: 180, groups:  Subject, 18``."""
    groups = ", ".join(f"{k}, {v}" for k, v in design.ngrps().items())
    return f"Number of obs: {design.n_obs}{', groups:  ' + groups if groups else ''}"


def coefficients(design, fixef: np.ndarray, ranef: list[np.ndarray]) -> dict[str, tuple]:
    """Fixed plus group effects per grouping factor, as lme4's ``coef``.

    ``fixef`` is ``(..., p)`` and ``ranef`` one ``(..., levels, terms)`` array per
    random-effect block, with the same leading shape (none for point
    estimates, draws for posterior or simulated ones). Every block on a factor
    adds its effects (``(Days || Subject)`` has two). Returns, per factor,
    ``(terms, levels, array of shape (..., levels, len(terms)))``.
    """
    names = list(design.fixef_names)
    lead = np.shape(fixef)[:-1]
    out = {}
    for factor in design.ngrps():
        blocks = [(k, b) for k, b in enumerate(design.blocks) if b.factor == factor]
        terms = names + [t for _, b in blocks for t in b.terms if t not in names]
        levels = blocks[0][1].levels
        values = np.zeros((*lead, len(levels), len(terms)))
        for j, t in enumerate(terms):
            if t in names:
                values[..., j] += fixef[..., names.index(t), None]
            for k, b in blocks:
                if t in b.terms:
                    values[..., j] += ranef[k][..., b.terms.index(t)]
        out[factor] = (terms, levels, values)
    return out


def check_intercept_only(design, hint: str = "") -> None:
    """Raise unless every random-effect term is an intercept alone (what an ICC needs)."""
    from hierbayes.errors import DataError

    bad = [b.term.source for b in design.blocks if b.terms != ["(Intercept)"]]
    if bad:
        raise DataError(
            f"The ICC is defined for random-intercept terms only; {', '.join(bad)} vary more "
            f"than the intercept, so the correlation depends on the covariates. {hint}".rstrip())
