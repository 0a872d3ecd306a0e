"""Tests of hypotheses about a Bayesian fit's parameters from its draws, as brms's ``hypothesis``.

A hypothesis such as ``"Days > 5"``, ``"Days = 10"`` or ``"(Intercept) + 7 * Days > 300"``
has two sides made of parameter names, numbers, ``+ - * /`` and parentheses, joined by
one of ``<``, ``>``, ``=``. It is evaluated on each draw as ``lhs - rhs`` and summarised
as brms 2.18's ``eval_hypothesis`` does:

* ``estimate``, ``est_error``: posterior mean (median with ``point="median"``) and SD;
* ``conf_low``, ``conf_high``: quantiles ``alpha`` and ``1 - alpha`` for ``<`` and ``>``
  (a ``1 - 2 alpha`` interval, whose lower bound exceeds 0 exactly when
  ``P(lhs > rhs) > 1 - alpha``), ``alpha / 2`` and ``1 - alpha / 2`` for ``=``;
* ``evid_ratio``: ``P(H) / P(not H)`` from the draws for ``<`` and ``>``; for ``=`` the
  Savage-Dickey ratio, the posterior over the prior density of ``lhs - rhs`` at 0
  (Gaussian kernel estimates with R's ``bw.nrd0``, as brms's ``density_ratio``), the prior
  drawn from the model's PyMC graph (:meth:`hierbayes.Model.prior_predictive`); NA where
  the prior has no draws (a flat prior, the group-level scopes), as brms;
* ``post_prob``: ``evid_ratio / (1 + evid_ratio)`` (1 when infinite); ``star``: ``*`` when
  ``post_prob > 1 - alpha`` (``<``, ``>``) or when the interval excludes 0 (``=``).

Names are the fixed effects (``design.fixef_names``; ``Intercept`` reads as
``(Intercept)``, interactions as ``Days:SexM``, any name in backticks), the SDs and
correlations as lme4's ``confint(oldNames = FALSE)`` names them
(``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``) and the dispersion
(``sigma``, ``shape``). ``scope="ranef"`` or ``"coef"`` with ``group=`` tests once per
level of a grouping factor, on its group effects or coefficients, as brms's ``scope``.

The text is untrusted: the small parser here reads it and it is evaluated on arrays,
never by ``eval``; anything else (calls, ``^``, strings) is refused with a
:class:`~hierbayes.errors.DataError` that marks the offending text.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError, SettingsError, caret

_PLAIN = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*(?::[A-Za-z0-9_.]+)*")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:")
_SIGNS = "<>="
_ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
_REFUSED = {"^": "powers ('^') are not supported", "'": "strings are not supported",
            '"': "strings are not supported", "[": "subscripts ('[') are not supported",
            "$": "'$' is not supported", ",": "',' is not supported (pass several hypotheses as a list)",
            "|": "'|' is only part of a group-level name such as `sd_(Intercept)|Subject`"}


@dataclass(frozen=True)
class _Token:
    kind: str  # "num", "name", "op" (+ - * / ( )), "cmp" (< > =), "end"
    text: str
    start: int
    end: int


def _fail(text: str, start: int, end: int | None, message: str) -> DataError:
    return DataError(f"Hypothesis {text!r}, position {start}: {message}.\n{caret(text, start, end)}")


def _tokens(text: str, names: list[str]) -> list[_Token]:
    """Split ``text`` into tokens; the parameters' names that are not plain words (``(Intercept)``,
    ``sd_(Intercept)|Subject``) are matched whole, longest first."""
    odd = sorted((n for n in names if not _PLAIN.fullmatch(n)), key=len, reverse=True)
    out: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        hit = next((m for m in odd if text.startswith(m, i)
                    and not (m[-1] in _WORD and i + len(m) < n and text[i + len(m)] in _WORD)), None)
        if hit is not None:
            out.append(_Token("name", hit, i, i + len(hit)))
            i += len(hit)
            continue
        if ch == "`":
            close = text.find("`", i + 1)
            if close < 0:
                raise _fail(text, i, n, "a backtick opens a name that is never closed")
            out.append(_Token("name", text[i + 1:close], i, close + 1))
            i = close + 1
            continue
        m = _NUMBER.match(text, i) if (ch.isdigit() or ch == ".") else None
        if m and not (m.end() < n and (text[m.end()].isalpha() or text[m.end()] == "_")):
            out.append(_Token("num", m.group(), i, m.end()))
            i = m.end()
            continue
        m = _PLAIN.match(text, i)
        if m and not ch.isdigit():
            after = text[m.end():].lstrip()
            if after.startswith("("):  # refused before anything else in it is read
                raise _fail(text, i, m.end() + 1,
                            f"function calls are not supported ('{m.group()}(...)'); a hypothesis "
                            "takes parameter names, numbers, + - * / and parentheses (a parameter "
                            "whose name has other characters goes in backticks)")
            out.append(_Token("name", m.group(), i, m.end()))
            i = m.end()
            continue
        if m or ch.isdigit():
            raise _fail(text, i, None, "a number runs into a name; write '7 * Days', not '7Days'")
        two = text[i:i + 2]
        if two in ("<=", ">=", "==", "!="):
            raise _fail(text, i, i + 2, f"'{two}' is not supported; compare with one of <, >, =")
        if ch in "+-*/()":
            out.append(_Token("op", ch, i, i + 1))
        elif ch in _SIGNS:
            out.append(_Token("cmp", ch, i, i + 1))
        else:
            why = _REFUSED.get(ch, f"'{ch}' is not supported")
            raise _fail(text, i, None, f"{why}; a hypothesis takes parameter names, numbers, "
                                       "+ - * /, parentheses and one of <, >, =")
        i += 1
    out.append(_Token("end", "", n, n))
    return out


class _Parser:
    """Recursive descent over ``side (< | > | =) side``, where a side is sums of products of
    signed numbers, names and parenthesised sides. Nodes are tuples: ``("num", value)``,
    ``("name", parameter)``, ``("neg", node)``, ``(op, left, right)``."""

    def __init__(self, text: str, names: list[str], aliases: dict[str, str]) -> None:
        self.text, self.names, self.aliases = text, names, aliases
        self.toks = _tokens(text, names + list(aliases))
        self.pos = 0
        self.used: list[str] = []

    def peek(self) -> _Token:
        return self.toks[self.pos]

    def take(self) -> _Token:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def hypothesis(self) -> tuple[Any, str, Any, tuple[int, int], tuple[int, int]]:
        start = self.peek().start
        lhs = self.side()
        sign = self.take()
        if sign.kind != "cmp":
            if sign.kind == "end":
                raise _fail(self.text, sign.start, None,
                            "a hypothesis needs one comparison (<, > or =), as in 'Days > 5'")
            raise self.unexpected(sign)
        mid = self.peek().start
        rhs = self.side()
        end = self.peek()
        if end.kind == "cmp":
            raise _fail(self.text, end.start, end.end,
                        "a second comparison; a hypothesis has exactly one of <, >, =")
        if end.kind != "end":
            raise self.unexpected(end)
        return lhs, sign.text, rhs, (start, sign.start), (mid, end.start)

    def unexpected(self, tok: _Token) -> DataError:
        what = "')' closes no parenthesis" if tok.text == ")" else f"unexpected '{tok.text}'"
        return _fail(self.text, tok.start, tok.end, what)

    def side(self) -> Any:
        node = self.product()
        while self.peek().text in ("+", "-") and self.peek().kind == "op":
            op = self.take().text
            node = (op, node, self.product())
        return node

    def product(self) -> Any:
        node = self.unary()
        while self.peek().text in ("*", "/") and self.peek().kind == "op":
            op = self.take()
            right = self.unary()
            if op.text == "/" and right == ("num", 0.0):
                raise _fail(self.text, op.start, None, "division by zero")
            node = (op.text, node, right)
        return node

    def unary(self) -> Any:
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("+", "-"):
            self.take()
            inner = self.unary()
            return ("neg", inner) if tok.text == "-" else inner
        return self.atom()

    def atom(self) -> Any:
        tok = self.take()
        if tok.kind == "num":
            return ("num", float(tok.text))
        if tok.kind == "name":
            name = tok.text if tok.text in self.names else self.aliases.get(tok.text)
            if name is None:
                raise _fail(self.text, tok.start, tok.end,
                            f"no parameter '{tok.text}'; the parameters are {self.names} "
                            "(write a name with other characters in backticks)")
            if name not in self.used:
                self.used.append(name)
            return ("name", name)
        if tok.kind == "op" and tok.text == "(":
            node = self.side()
            close = self.take()
            if close.text != ")":
                where = f"before '{close.text}'" if close.text else "by the end"
                raise _fail(self.text, tok.start, None, f"this parenthesis is not closed {where}")
            return node
        if tok.kind == "end":
            raise _fail(self.text, tok.start, None, "the hypothesis ends where a value is expected")
        if tok.text == ")":
            raise _fail(self.text, tok.start, None, "')' closes no parenthesis")
        raise _fail(self.text, tok.start, tok.end, f"'{tok.text}' where a value is expected")


def _evaluate(node: Any, draws: dict[str, np.ndarray]) -> np.ndarray | float:
    if node[0] == "num":
        return node[1]
    if node[0] == "name":
        return draws[node[1]]
    if node[0] == "neg":
        return -_evaluate(node[1], draws)
    return _ARITHMETIC[node[0]](_evaluate(node[1], draws), _evaluate(node[2], draws))


@dataclass(frozen=True)
class ParsedHypothesis:
    """One hypothesis read: its sides' syntax trees, the comparison and brms's label."""

    text: str
    lhs: Any
    sign: str
    rhs: Any
    label: str
    parameters: list[str]

    def draws(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """``lhs - rhs`` per draw, from each parameter's draws."""
        diff = _evaluate(self.lhs, values) - _evaluate(self.rhs, values)
        return np.asarray(diff, dtype=float)  # an array: every hypothesis names a parameter


def parse_hypothesis(text: str, names: list[str], aliases: dict[str, str] | None = None,
                     label: str | None = None) -> ParsedHypothesis:
    """Read one hypothesis about the parameters ``names`` (``aliases`` maps other spellings).

    Examples
    --------
    >>> h = parse_hypothesis("Intercept + 7 * Days > 300", ["(Intercept)", "Days"],
    ...                      {"Intercept": "(Intercept)"})
    >>> h.label, h.sign, h.parameters
    ('(Intercept+7*Days)-(300) > 0', '>', ['(Intercept)', 'Days'])
    """
    if not isinstance(text, str) or not text.strip():
        raise SettingsError(f"A hypothesis must be non-empty text such as 'Days > 5', not {text!r}.")
    parser = _Parser(text, list(names), dict(aliases or {}))
    lhs, sign, rhs, (l0, l1), (r0, r1) = parser.hypothesis()
    if not parser.used:
        raise DataError(f"Hypothesis {text!r} names no parameter; the parameters are {list(names)}.")
    # brms's label: each side's text without spaces, "(lhs)-(rhs) sign 0", "-(rhs)" left out for 0
    left = "".join(text[t.start:t.end] for t in parser.toks if l0 <= t.start < l1)
    right = "".join(text[t.start:t.end] for t in parser.toks if r0 <= t.start < r1)
    shown = f"({left})" + (f"-({right})" if right != "0" else "")
    return ParsedHypothesis(text, lhs, sign, rhs, label or f"{shown} {sign} 0", parser.used)


def _flat(post: Any, name: str) -> np.ndarray:
    """A variable's draws with chains and draws merged into the first axis."""
    values = np.asarray(post[name], dtype=float)
    return values.reshape(-1, *values.shape[2:])


def parameter_draws(fit: Any, post: Any = None) -> dict[str, np.ndarray]:
    """Flat draws of every parameter a standard-scope hypothesis may name, by name.

    Fixed effects by ``design.fixef_names``, group-level SDs and correlations by lme4's
    ``oldNames = FALSE`` names, then the family's dispersion. ``post`` is another set of
    draws with the same variables (the prior's).

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy")).fit(
    ...     draws=300, tune=300, chains=2, seed=1, progressbar=False, check=False)
    >>> list(parameter_draws(fit))  # doctest: +NORMALIZE_WHITESPACE
    ['(Intercept)', 'Days', 'sd_(Intercept)|Subject', 'cor_Days.(Intercept)|Subject',
     'sd_Days|Subject', 'sigma']
    """
    from hierbayes.freq.params import varcomp_names
    from hierbayes.spec.naming import correlation_position

    post = fit.posterior if post is None else post
    d = fit.design
    out: dict[str, np.ndarray] = {}
    if "fixef" in post:
        fixef = _flat(post, "fixef")
        out.update({n: fixef[:, i] for i, n in enumerate(d.fixef_names)})
    names = iter(varcomp_names(d, sigma=False))
    for b in d.blocks:
        kind = b.term.structure
        sd = _flat(post, f"sd_{b.group}")
        for j in range(b.n_terms):
            for i in range(j, b.n_terms):
                name = next(names)
                if i == j and (kind != "ar1" or i == 0):  # ar1's SDs are one parameter
                    out[name] = sd[:, i]
                elif i != j and kind == "us" and b.correlated:
                    out[name] = _flat(post, f"cor_{b.group}")[:, correlation_position(b.n_terms, i, j)]
    disp = d.family.dispersion
    if disp is not None and disp in post:
        out[disp] = _flat(post, disp)
    return out


def _group_draws(fit: Any, scope: str, group: str | None) -> tuple[str, list[str], list[str], np.ndarray]:
    """``(factor, terms, levels, draws (S, levels, terms))`` of one grouping factor's group
    effects (``ranef``) or coefficients (``coef``)."""
    from hierbayes.report.format import coefficients

    d = fit.design
    factors = list(d.ngrps())
    if not factors:
        raise DataError(f"scope={scope!r} tests hypotheses per level of a grouping factor; this "
                        "model has none. Use scope='standard'.")
    if group is None:
        raise SettingsError(f"scope={scope!r} needs group=, one of the grouping factors {factors}.")
    blocks = [(k, b) for k, b in enumerate(d.blocks) if group in (b.factor, b.group)]
    if not blocks:
        raise DataError(f"No grouping factor '{group}'. Factors: {factors}.")
    factor = blocks[0][1].factor
    ranef = [_flat(fit.posterior, f"r_{b.group}") for b in d.blocks]
    if scope == "coef":
        fixef = _flat(fit.posterior, "fixef") if "fixef" in fit.posterior \
            else np.zeros((len(ranef[0]), 0))
        terms, levels, values = coefficients(d, fixef, ranef)[factor]
        return factor, list(terms), list(levels), values
    terms = [t for _, b in blocks for t in b.terms]
    if len(set(terms)) < len(terms):
        raise DataError(f"Two terms on '{factor}' share a name ({terms}); test them with "
                        "scope='coef' or name the blocks apart.")
    values = np.concatenate([ranef[k] for k, _ in blocks], axis=-1)
    return factor, terms, list(blocks[0][1].levels), values


def _alpha(prob: Any, alpha: Any) -> float:
    if alpha is None:
        if isinstance(prob, bool) or not isinstance(prob, int | float) or not 0.5 < prob < 1:
            raise SettingsError(f"prob must be a number between 0.5 and 1 (e.g. 0.95), not {prob!r}.")
        return 1.0 - float(prob)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 0.5:
        raise SettingsError(f"alpha must be a number between 0 and 0.5 (e.g. 0.05), not {alpha!r}.")
    if prob != 0.95 and not math.isclose(prob, 1 - alpha):
        raise SettingsError(f"prob={prob!r} and alpha={alpha!r} disagree; give one of them "
                            "(alpha = 1 - prob).")
    return float(alpha)


def _hypothesis_texts(hypotheses: Any) -> list[tuple[str, str | None]]:
    """``(text, name)`` pairs; parse_hypothesis refuses what is not text."""
    items = ([(hypotheses, None)] if isinstance(hypotheses, str) else
             [(v, str(k)) for k, v in hypotheses.items()] if isinstance(hypotheses, dict) else
             [(h, None) for h in hypotheses] if isinstance(hypotheses, list | tuple) else [])
    if not items:
        raise SettingsError("hypotheses must be a string such as 'Days > 5', a non-empty list of "
                            f"them, or a dict of names to them, not {hypotheses!r}.")
    return items


def bandwidth_nrd0(x: np.ndarray) -> float:
    """R's ``bw.nrd0``: Silverman's rule of thumb, ``0.9 min(sd, IQR / 1.34) n^(-1/5)``.

    Examples
    --------
    >>> round(bandwidth_nrd0(np.arange(10.0)), 4)
    1.7193
    """
    hi = float(np.std(x, ddof=1))
    q75, q25 = np.quantile(x, [0.75, 0.25])
    lo = min(hi, (q75 - q25) / 1.34)
    if not lo > 0:
        lo = hi or abs(float(x[0])) or 1.0
    return 0.9 * lo * len(x) ** -0.2


def kde_at(x: np.ndarray, point: float = 0.0) -> float:
    """The Gaussian kernel density estimate of draws ``x`` at ``point`` (R's ``density`` with its
    default bandwidth, evaluated exactly rather than on a binned grid)."""
    bw = bandwidth_nrd0(x)
    z = (point - x) / bw
    return float(np.mean(np.exp(-0.5 * z * z)) / (bw * math.sqrt(2 * math.pi)))


def _summarise(h: np.ndarray, prior: np.ndarray | None, sign: str, alpha: float,
               point: str) -> dict[str, Any]:
    est = float(np.median(h) if point == "median" else np.mean(h))
    err = float(np.std(h, ddof=1))  # the SD with either point, as every Bayesian table here
    probs = [alpha / 2, 1 - alpha / 2] if sign == "=" else [alpha, 1 - alpha]
    lo, hi = (float(q) for q in np.quantile(h, probs))
    if sign == "=":
        er = float("nan") if prior is None else kde_at(h) / kde_at(prior)
    else:
        k = int(np.sum(h > 0) if sign == ">" else np.sum(h < 0))
        er = k / (len(h) - k) if k < len(h) else math.inf
    pp = 1.0 if math.isinf(er) else er / (1 + er)
    star = (lo > 0 or hi < 0) if sign == "=" else pp > 1 - alpha
    return {"estimate": est, "est_error": err, "conf_low": lo, "conf_high": hi,
            "evid_ratio": er, "post_prob": pp, "star": "*" if star else ""}


def _prior_values(fit: Any, n: int, seed: int | None) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """Prior draws of the parameters (from the PyMC graph), or None and why not."""
    flat = sorted({e.cls for e in fit.model.priors.entries if e.prior.dist == "flat"})
    if flat:
        return None, (f"evid_ratio of point hypotheses is NA: the prior on {', '.join(flat)} is flat "
                      "(improper) and has no draws for the Savage-Dickey ratio; set a proper prior.")
    import arviz as az

    from hierbayes.bayes.posterior import Posterior

    idata = fit.model.prior_predictive(draws=n, seed=seed)
    return parameter_draws(fit, Posterior.from_idata(az.InferenceData(posterior=idata.prior))), None


def _limit_chars(x: str, chars: int = 20, suffix: int = 4) -> str:
    """brms's ``limit_chars``: a long hypothesis cut to ``chars`` characters, keeping " > 0"."""
    head, tail = x[:len(x) - suffix], x[len(x) - suffix:]
    return (head if len(head) <= chars else head[:chars - 3] + "...") + tail


def _r_cells(values: pd.Series) -> list[str]:
    """A numeric column rounded to 2 decimals and printed as R prints a data frame's column."""
    x = [round(float(v), 2) if math.isfinite(v) else float(v) for v in values]
    need = [0 if v == int(v) else 1 if round(v, 1) == v else 2 for v in x if math.isfinite(v)]
    dec = max(need, default=0)
    return [f"{v:.{dec}f}" if math.isfinite(v) else "NA" if math.isnan(v) else
            ("Inf" if v > 0 else "-Inf") for v in x]


@dataclass
class Hypotheses:
    """The tests of :func:`hypothesis`: the table, each hypothesis's draws, and brms's printout.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per hypothesis (and level, with ``group`` and ``level`` first, for a
        group-level scope): ``hypothesis``, ``estimate``, ``est_error``, ``conf_low``,
        ``conf_high``, ``evid_ratio``, ``post_prob``, ``star``. ``attrs["conf_level"]`` is
        ``1 - alpha`` (``=`` rows), ``attrs["conf_level_one_sided"]`` ``1 - 2 alpha`` (``<``, ``>``).
    draws, prior_draws : pandas.DataFrame
        ``lhs - rhs`` per posterior (prior) draw, a column per row of ``frame`` (``H1``, ...);
        NaN where the prior has none (one-sided hypotheses need none).
    notes : list of str
        Why an evidence ratio is NA, printed under the table.
    """

    frame: pd.DataFrame
    draws: pd.DataFrame
    prior_draws: pd.DataFrame
    alpha: float
    label: str = "b"
    notes: list[str] = field(default_factory=list)

    def _table(self) -> tuple[list[str], list[list[str]]]:
        f = self.frame
        heads = ["Hypothesis", "Estimate", "Est.Error", "CI.Lower", "CI.Upper", "Evid.Ratio",
                 "Post.Prob", "Star"]
        cols = [[_limit_chars(h) for h in f["hypothesis"]]]
        cols += [_r_cells(f[c]) for c in ("estimate", "est_error", "conf_low", "conf_high",
                                          "evid_ratio", "post_prob")]
        cols.append(list(f["star"]))
        if "level" in f.columns:
            heads.insert(0, "Group")
            cols.insert(0, [str(v) for v in f["level"]])
        return heads, [list(r) for r in zip(*cols, strict=True)]

    def __str__(self) -> str:
        heads, rows = self._table()
        index = [str(i + 1) for i in range(len(rows))]
        widths = [max(len(h), *(len(r[k]) for r in rows)) for k, h in enumerate(heads)]
        iw = max(len(i) for i in index)
        lines = [f"Hypothesis Tests for class {self.label}:" if self.label else "Hypothesis Tests:",
                 " " * iw + " " + " ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
        lines += [i.ljust(iw) + " " + " ".join(c.rjust(w) for c, w in zip(r, widths, strict=True))
                  for i, r in zip(index, rows, strict=True)]
        one, two = (1 - 2 * self.alpha) * 100, (1 - self.alpha) * 100
        lines += ["---",
                  f"'CI': {one:g}%-CI for one-sided and {two:g}%-CI for two-sided hypotheses.",
                  f"'*': For one-sided hypotheses, the posterior probability exceeds {two:g}%;",
                  f"for two-sided hypotheses, the value tested against lies outside the {two:g}%-CI.",
                  "Posterior probabilities of point hypotheses assume equal prior probabilities.",
                  *self.notes]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        import html

        heads, rows = self._table()
        cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        text = str(self).split("\n")
        return (f"<div><b>{html.escape(text[0])}</b><table><thead><tr>"
                + "".join(f"<th>{html.escape(h)}</th>" for h in heads) + f"</tr></thead><tbody>{cells}"
                f"</tbody></table><pre style='margin:0'>{html.escape(chr(10).join(text[len(rows) + 2:]))}"
                "</pre></div>")


def hypothesis(fit: Any, hypotheses: str | list[str] | dict[str, str], prob: float = 0.95,
               alpha: float | None = None, scope: str = "standard", group: str | None = None,
               point: str = "mean", seed: int | None = None) -> Hypotheses:
    """Test hypotheses about a Bayesian fit's parameters from its draws, as brms's ``hypothesis``.

    Parameters
    ----------
    fit
        A :class:`hierbayes.BayesFit`.
    hypotheses
        ``"Days > 5"``, a list of such strings, or a dict of names (shown instead of brms's
        label) to them. Each is ``side (< | > | =) side``, the sides made of parameter names,
        numbers, ``+ - * /`` and parentheses.
    prob, alpha
        The intervals' mass: ``alpha = 1 - prob`` (brms's ``alpha``, 0.05 by default); give one.
    scope
        ``"standard"`` (fixed effects, SDs, correlations, the dispersion), or ``"ranef"`` /
        ``"coef"``: once per level of ``group``, on its group effects or coefficients, named
        by their terms (``"Days > 10"``).
    group
        The grouping factor of a ``ranef`` or ``coef`` scope.
    point
        ``"mean"`` or ``"median"``: the estimate (est_error is the posterior SD either way,
        where brms's ``robust = TRUE`` gives the MAD).
    seed
        Seed of the prior draws that point hypotheses' evidence ratios need.

    Returns
    -------
    Hypotheses
        ``.frame`` the table (see the module docstring for each column); prints as brms.

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy")).fit(
    ...     draws=300, tune=300, chains=2, seed=1, progressbar=False, check=False)
    >>> print(hypothesis(fit, "Days > 5"))  # doctest: +ELLIPSIS
    Hypothesis Tests for class b:
          Hypothesis Estimate Est.Error CI.Lower CI.Upper Evid.Ratio Post.Prob Star
    1 (Days)-(5) > 0 ...
    """
    from hierbayes.report.fitted import is_bayes

    if not is_bayes(fit):
        raise SettingsError("hypothesis needs a Bayesian fit (hierbayes.Model(...).fit()).")
    alpha = _alpha(prob, alpha)
    if scope not in ("standard", "ranef", "coef"):
        raise SettingsError(f"scope must be 'standard', 'ranef' or 'coef', not {scope!r}.")
    if point not in ("mean", "median"):
        raise SettingsError(f"point must be 'mean' or 'median', not {point!r}.")
    standard = scope == "standard"
    if standard and group is not None:
        raise SettingsError("group= is for scope='ranef' or 'coef'; leave it out for 'standard'.")
    texts = _hypothesis_texts(hypotheses)
    if standard:
        factor, units = None, [(None, parameter_draws(fit))]
    else:
        factor, terms, levels, arr = _group_draws(fit, scope, group)
        units = [(lv, {t: arr[:, k, j] for j, t in enumerate(terms)}) for k, lv in enumerate(levels)]
    names = list(units[0][1])
    aliases = {"Intercept": "(Intercept)"} if "(Intercept)" in names and "Intercept" not in names else {}
    parsed = [parse_hypothesis(t, names, aliases, name) for t, name in texts]  # all before any work
    notes: list[str] = []
    prior = None
    if any(p.sign == "=" for p in parsed):
        if standard:
            prior, why = _prior_values(fit, len(units[0][1][names[0]]), seed)
        else:
            why = f"evid_ratio of point hypotheses is NA: scope={scope!r} has no prior draws (as brms)."
        notes += [why] if why else []
    rows, draws, prior_cols = [], {}, {}
    for level, vals in units:
        for p in parsed:
            key = f"H{len(rows) + 1}"
            draws[key] = h = p.draws(vals)
            ph = p.draws(prior) if prior is not None and p.sign == "=" else None
            prior_cols[key] = np.full(len(h), np.nan) if ph is None else ph
            where = {} if standard else {"group": factor, "level": level}
            rows.append({**where, "hypothesis": p.label, **_summarise(h, ph, p.sign, alpha, point)})
    frame = pd.DataFrame(rows)
    frame.attrs.update(conf_level=1 - alpha, conf_level_one_sided=1 - 2 * alpha, alpha=alpha)
    only_b = standard and {n for p in parsed for n in p.parameters} <= set(fit.design.fixef_names)
    return Hypotheses(frame, pd.DataFrame(draws), pd.DataFrame(prior_cols), alpha,
                      "b" if only_b else "", notes)
