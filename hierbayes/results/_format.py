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
