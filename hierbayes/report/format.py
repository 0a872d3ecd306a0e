"""Text layout shared by the summaries: R-like numbers and aligned tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hierbayes.report.rprint import matrix_lines


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


class Block:
    """A table of a printout: its cells as text, printed as R prints a character matrix.

    ``index=None`` is R's empty row names (a leading space); ``right`` justifies
    cells and headings to the right (printCoefmat) instead of the left
    (lme4's random-effects table). ``notes`` are lines printed under the table
    (``Number of obs``, the ``Signif. codes`` legend), which the HTML view shows too.
    """

    def __init__(self, columns: list[str], rows: list[list[str]], index: list[str] | None = None,
                 right: bool = False, notes: list[str] | None = None) -> None:
        self.columns, self.rows, self.index, self.right = columns, rows, index, right
        self.notes = list(notes or [])

    def lines(self) -> list[str]:
        return [*matrix_lines(self.rows, self.columns, self.index, self.right), *self.notes]

    def html(self) -> str:
        def esc(v: str) -> str:
            return v.strip().replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

        align = "right" if self.right else "left"
        lead = self.index is not None
        head = "".join(f"<th style='text-align:{align}'>{esc(c)}</th>" for c in self.columns)
        body = []
        for i, row in enumerate(self.rows):
            name = f"<th style='text-align:left'>{esc(self.index[i])}</th>" if lead else ""
            cells = "".join(f"<td style='text-align:{align}'>{esc(v)}</td>" for v in row)
            body.append(f"<tr>{name}{cells}</tr>")
        notes = "".join(f"<br>{esc(n)}" for n in self.notes)
        return (f"<table><thead><tr>{'<th></th>' if lead else ''}{head}</tr></thead>"
                f"<tbody>{''.join(body)}</tbody></table>{notes and '<small>' + notes[4:] + '</small>'}")


class Summary:
    """A printed summary made of sections; shows as HTML in notebooks, with the same content.

    Each section is ``(title, parts)``: parts are text lines (``str``) or
    :class:`Block` tables. A title starting with a newline is preceded by a
    blank line, as lme4 prints them.

    Attributes
    ----------
    random, fixed : pandas.DataFrame
        The random-effects and fixed-effects tables, as numbers.
    """

    def __init__(self, header: list[str], sections: list[tuple[str, Any]],
                 random: pd.DataFrame, fixed: pd.DataFrame, footer: list[str]) -> None:
        self.header, self.sections = header, sections
        self.random, self.fixed, self.footer = random, fixed, footer

    @staticmethod
    def _parts(content: Any) -> list[Any]:
        return list(content) if isinstance(content, list) else [content]

    def __str__(self) -> str:
        body = []
        for title, content in self.sections:
            body += [title] if title else []
            for part in self._parts(content):
                body += part.lines() if isinstance(part, Block) else [part]
        return "\n".join([*self.header, *body, *self.footer])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        def pre(text: str) -> str:
            text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            return f"<pre style='margin:0'>{text}</pre>" if text.strip() else ""

        out = [pre("\n".join(self.header).strip("\n"))]
        for title, content in self.sections:
            out.append(f"<p style='margin:0.6em 0 0.2em 0'><b>{title.strip()}</b></p>" if title else "")
            for part in self._parts(content):
                out.append(part.html() if isinstance(part, Block) else pre(part.strip("\n")))
        out.append(pre("\n".join(self.footer)))
        return "<div>" + "".join(out) + "</div>"


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
    groups = "; ".join(f"{k}, {v}" for k, v in design.ngrps().items())
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
