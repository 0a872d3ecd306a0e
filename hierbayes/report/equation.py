r"""The model as a LaTeX equation, as equatiomatic's ``extract_eq`` writes lme4 models.

:func:`equation` reads a design (columns, random-effect blocks, family, residual
structure) and writes equatiomatic's notation: a line for the response, one per grouping
level (``j, k, ...``, ``j[i]`` indexing) with its covariance matrix and group-level
predictors. ``docs/equations.md`` has the rules.

Examples
--------
>>> import hierbayes as hb
>>> model = hb.Model("gpa ~ occasion + (1 | student)", hb.datasets.load("gpa"))
>>> print(equation(model))
\begin{aligned}
  \operatorname{gpa}_{i} &\sim N \left(\alpha_{j[i]} + \beta_{1}(\operatorname{occasion}), \sigma^2 \right) \\
    \alpha_{j} &\sim N \left(\mu_{\alpha_{j}}, \sigma^2_{\alpha_{j}} \right)
    \text{, for student j = 1,} \dots \text{,J}
\end{aligned}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.bayes.model import BayesModel
from hierbayes.errors import DataError, SettingsError
from hierbayes.freq.glmermod import GlmerMod
from hierbayes.freq.mermod import MerMod
from hierbayes.spec.design import Design, RandomBlock
from hierbayes.spec.parts import formulaic_key, r_name
from hierbayes.spec.rexpr import label, parse

__all__ = ["Equation", "equation", "escape_tex"]

_LETTERS = "jklmnopqrstuvwxyz"
_MATH = {"_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}",
         " ": r"\ ", "~": r"\sim ", "\\": r"\backslash ", "^": r"\hat{}"}
_TEXT = {**_MATH, "~": r"\~{}", "^": r"\^{}", "\\": r"\textbackslash{}"}
_POWER = re.compile(r"\^(\d+(?:\.\d+)?|[A-Za-z.][\w.]*)")
_FUNCS = re.compile(r"(?<![\w.\\])(log|exp)\(")
_LINKS = {"logit": r"\log\left[\frac{\hat{P}}{1 - \hat{P}} \right]",
          "probit": r"\Phi^{-1}\left(\hat{P}\right)",
          "cloglog": r"\log\left[-\log\left(1 - \hat{P}\right) \right]"}
_FAMILIES = {("gaussian", "identity"), ("poisson", "log"), ("negbinomial", "log"), ("gamma", "log")}
_PRIOR_NAMES = {"normal": "Normal", "student_t": r"Student\ t", "cauchy": "Cauchy", "lkj": "LKJ",
                "exponential": "Exponential", "gamma": "Gamma", "inv_gamma": r"Inverse\ Gamma",
                "lognormal": "LogNormal", "uniform": "Uniform"}


@dataclass(frozen=True, repr=False)
class Equation:
    """A model as LaTeX: ``.latex`` (also ``str()``), an ``aligned`` environment; Jupyter shows it."""

    latex: str

    def __str__(self) -> str:
        return self.latex

    __repr__ = __str__

    def _repr_latex_(self) -> str:
        return f"$$\n{self.latex}\n$$"

    _repr_markdown_ = _repr_latex_


def escape_tex(text: str, math: bool = True) -> str:
    r"""``text`` with TeX's specials escaped for math mode (a power as a superscript) or ``\text``.

    >>> escape_tex("prop_low"), escape_tex("I(age^2)"), escape_tex("a b&c", math=False)
    ('prop\\_low', 'I(age^{2})', 'a\\ b\\&c')
    """
    table = _MATH if math else _TEXT
    out: list[str] = []
    i = 0
    while i < len(text):
        m = _POWER.match(text, i) if math and text[i] == "^" else None
        if m:
            out.append("^{" + escape_tex(m.group(1)) + "}")
            i = m.end()
            continue
        out.append(table.get(text[i], text[i]))
        i += 1
    return "".join(out)


def _var(text: str) -> str:
    """A variable's label upright, as equatiomatic writes it (``log`` and ``exp`` as functions)."""
    return r"\operatorname{" + _FUNCS.sub(r"\\\1(", escape_tex(text.replace("`", ""))) + "}"


def _num(x: float, digits: int) -> str:
    # rounded, trailing zeros dropped, as R prints round(x, digits)
    s = f"{round(float(x), digits):.{digits}f}"
    s = s.rstrip("0").rstrip(".") if "." in s else s
    return "0" if s in ("-0", "") else s


def _signs(text: str) -> str:
    return text.replace("+ -", "- ")  # equatiomatic's fix_coef_signs


@dataclass(frozen=True)
class _Column:
    """A model-matrix column: R's name and its (variable, level) pieces, multiplied."""

    name: str
    pieces: tuple[tuple[str, str], ...]

    @property
    def key(self) -> frozenset:
        return frozenset(self.pieces)

    def tex(self, pieces: Any = None) -> str:
        # interactions in R's sorted order, as equatiomatic's order_interaction puts them
        chosen = sorted(pieces or self.pieces, key=lambda p: (p[0] + p[1]).lower())
        return r" \times ".join(_var(v) + (f"_{{{_var(s)}}}" if s else "") for v, s in chosen)


def _split(col: str, exprs: list[str]) -> tuple[tuple[str, str], ...]:
    """formulaic's column name (``occasion:sex[T.male]``) as its factors' (variable, level)."""
    pieces, pos = [], 0
    for k, e in enumerate(exprs):
        if not col.startswith(e, pos):
            raise DataError(f"Cannot read the model-matrix column {col!r} as {exprs}; "
                            "equations are not yet supported for it.")
        end = pos + len(e)
        if end < len(col) and col[end] == "[":
            end = (len(col) - 1 if k == len(exprs) - 1 else col.find("]:" + exprs[k + 1], end)) + 1
        pieces.append((e, r_name(col[pos:end])[len(e):]))
        pos = end + 1
    return tuple(pieces)


def _columns(spec: Any, keep: list[str] | None = None) -> list[_Column]:
    out = []
    for ts in spec.structure:
        exprs = [str(f.expr) for f in ts.term.factors]
        for col in ts.columns:
            if keep is None or col in keep:
                out.append(_Column(r_name(col), () if col == "Intercept" else _split(col, exprs)))
    return out


@dataclass
class _Effect:
    """A coefficient that varies by a level: its column, block, symbol, group-level predictors."""

    col: _Column
    block: RandomBlock
    pos: int
    fixed: int | None
    base: str  # "\alpha", "\beta_{1", "u_{2"
    moved: list[tuple[int, tuple]] = field(default_factory=list)  # (fixed index, pieces)

    def sym(self, letter: str) -> str:
        return self.base + "_{" + letter + "}" if self.base == r"\alpha" else self.base + letter + "}"


@dataclass
class _Level:
    name: str
    letter: str
    blocks: list[RandomBlock]
    effects: list[_Effect] = field(default_factory=list)

    def find(self, key: frozenset) -> _Effect | None:
        return next((e for e in self.effects if e.col.key == key), None)


class _Structure:
    """Where every coefficient of a design goes in the equation."""

    def __init__(self, design: Design) -> None:
        self.design = design
        self.fixed = _columns(design.x_spec, design.x_columns)
        fixed_at = {c.key: j for j, c in enumerate(self.fixed)}
        self.levels = self._levels(design)
        pure: dict[frozenset, int] = {}  # effects without a fixed part: u_0 (intercept), u_1, ...
        for lev in self.levels:
            for b in lev.blocks:
                for pos, col in enumerate(_columns(b.spec)):
                    if lev.find(col.key) is not None:
                        raise DataError(f"The column {col.name} varies twice by {lev.name}; "
                                        "equations are not yet supported for such a model.")
                    j = fixed_at.get(col.key)
                    if j is None and col.key not in pure:
                        pure[col.key] = 1 + sum(1 for k in pure if k) if col.pieces else 0
                    lev.effects.append(_Effect(col, b, pos, j, ""))
            lev.effects.sort(key=lambda e: (bool(e.col.pieces), e.fixed is None,
                                            e.fixed if e.fixed is not None else pure[e.col.key]))
        varying, self.place = {e.col.key for lev in self.levels for e in lev.effects}, {}
        # a coefficient that varies by a level stays on the first line, as a beta
        movable = [j for j, c in enumerate(self.fixed) if c.pieces and c.key not in varying]
        const = self._constant() if movable else {}
        for j in movable:
            self._move(j, self.fixed[j], const)
        kept = [j for j, c in enumerate(self.fixed) if c.pieces and j not in self.place]
        self.beta = {j: m for m, j in enumerate(kept, 1)}  # beta_1, ... on the first line
        for lev in self.levels:
            for e in lev.effects:
                e.base = (r"\alpha" if not e.col.pieces and e.fixed is not None
                          else r"\beta_{" + str(self.beta[e.fixed]) if e.fixed is not None
                          else "u_{" + str(pure[e.col.key]))
        self.pure = sorted(pure, key=pure.get)

    @staticmethod
    def _levels(design: Design) -> list[_Level]:
        by_factor: dict[str, list[RandomBlock]] = {}
        for b in design.blocks:
            if b.term.structure not in ("us", "diag", "cs", "ar1"):
                raise DataError(f"Equations are not yet supported for {b.term.structure}() terms.")
            by_factor.setdefault(b.factor, []).append(b)
        groups: list[tuple[str, list[RandomBlock]]] = []
        for factor, blocks in by_factor.items():
            # equatiomatic collapses a factor's terms into one level unless two have intercepts
            if sum("(Intercept)" in b.terms for b in blocks) <= 1:
                groups.append((factor if len(blocks) > 1 else blocks[0].group, blocks))
            else:
                groups += [(b.group, [b]) for b in blocks]
        groups.sort(key=lambda g: design.blocks.index(g[1][0]))
        if len(groups) > len(_LETTERS):
            raise DataError(f"The model has {len(groups)} grouping levels; equations are not yet "
                            f"supported for more than {len(_LETTERS)} (subscripts j to z).")
        return [_Level(n, _LETTERS[k], bs) for k, (n, bs) in enumerate(groups)]

    def _constant(self) -> dict[str, set[str]]:
        """Each fixed-part variable's levels (by name) within whose groups it is constant."""
        d = self.design
        if d.frame is None or d.model_frame is None or not self.levels:
            return {}
        labels = {formulaic_key(v): v for v in d.x_variables}
        wanted = sorted({v for c in self.fixed for v, _ in c.pieces if v in labels})
        values = d.model_frame.evaluate(d.frame, [labels[v] for v in wanted], fit=False)
        out: dict[str, set[str]] = {}
        for v in wanted:
            a = np.asarray(values[labels[v]]).reshape(len(d.frame), -1)
            cols = [np.round(a[:, k].astype(float), 8) if a.dtype.kind in "fiub"
                    else pd.factorize(pd.Series(a[:, k]).astype(str))[0] for k in range(a.shape[1])]
            code = np.unique(np.column_stack(cols), axis=0, return_inverse=True)[1].reshape(-1)
            # constant within a level's groups: as many (group, value) pairs as groups
            out[v] = {lev.name for lev in self.levels if len(np.unique(np.column_stack(
                [lev.blocks[0].index, code]), axis=0)) == len(np.unique(lev.blocks[0].index))}
        return out

    def _move(self, j: int, col: _Column, const: dict[str, set[str]]) -> None:
        """A group-level predictor to the line of the coarsest level it is constant within.

        The pieces constant within the level predict its intercept (``\\gamma^{\\alpha}``)
        or, multiplied by a column with a random slope there, that slope
        (``\\gamma^{\\beta_{1}}``); a column that fits neither stays on the first line.
        """
        for lev in sorted(self.levels, key=lambda lv: lv.blocks[0].n_levels):
            z = tuple(p for p in col.pieces if lev.name in const.get(p[0], ()))
            s = frozenset(p for p in col.pieces if p not in z)
            target = lev.find(s) if z else None
            if target is not None and target.fixed is not None:
                target.moved.append((j, z))
                self.place[j] = target
                return

    def where(self, key: frozenset) -> list[_Level]:
        return [lev for lev in self.levels if lev.find(key) is not None]

    def l1_sym(self, key: frozenset, base: str) -> str:
        subs = ",".join(f"{lev.letter}[i]" for lev in self.where(key))
        return base + (f"_{{{subs}}}" if subs else "") if base == r"\alpha" else base + subs + "}"

    def coef_sym(self, j: int) -> str:
        """The symbol a fixed coefficient has in the equation (for its prior)."""
        if j in self.place:
            return _gamma(self.place[j], [m for m, _ in self.place[j].moved].index(j) + 1)
        col = self.fixed[j]
        levels = self.where(col.key)
        if not levels:
            return r"\alpha" if not col.pieces else rf"\beta_{{{self.beta[j]}}}"
        effects = [(lev, lev.find(col.key)) for lev in levels]
        return " + ".join(_gamma(e, 0) if e.moved else rf"\mu_{{{e.sym(lev.letter)}}}"
                          for lev, e in effects)


def _gamma(e: _Effect, k: int) -> str:
    return rf"\gamma_{{{k}}}^{{\alpha}}" if e.base == r"\alpha" else rf"\gamma^{{{e.base}}}}}_{{{k}}}"


@dataclass
class _Estimates:
    fixef: dict[str, float]
    sd: dict[tuple, float]  # (grp, term) and (grp, {term1, term2}) from varcorr
    sigma: float | None
    dispersion: float | None
    residual: pd.Series


def _estimates(obj: Any, design: Design, point: str) -> _Estimates | None:
    """The fit's estimates (posterior means or medians for a Bayesian fit), None for a model."""
    fam = design.family
    if isinstance(obj, MerMod | GlmerMod):
        vc, fixef = obj.varcorr(), obj.fixef()
        params = obj.residual_params() if hasattr(obj, "residual_params") else pd.Series(dtype=float)
        # lme4's Gamma dispersion is sigma^2 = 1 / shape
        disp = (1.0 / obj.sigma**2 if fam.name == "gamma"
                else obj.dispersion if isinstance(obj, GlmerMod) else None)
    elif hasattr(obj, "posterior") and isinstance(getattr(obj, "model", None), BayesModel):
        vc, fixef, disp = obj.varcorr(point=point), obj.fixef(point=point), None
        params = obj.residual_params(point=point)
        if fam.dispersion and not fam.residual_sd and fam.dispersion in obj.posterior:
            draws = np.asarray(obj.posterior[fam.dispersion], dtype=float)
            disp = float(np.median(draws) if point == "median" else np.mean(draws))
    else:
        return None
    sd = {(g, None if pd.isna(v1) else v1 if pd.isna(v2) else frozenset((v1, v2))): float(x)
          for g, v1, v2, x in zip(vc["grp"], vc["var1"], vc["var2"], vc["sdcor"], strict=True)}
    sigma = sd.get((design.residual.group, None)) if fam.residual_sd else None
    return _Estimates(dict(zip(fixef.index, fixef["Estimate"], strict=True)), sd, sigma, disp, params)


def _l1_terms(st: _Structure, est: _Estimates | None, digits: int) -> list[str]:
    """The first line's terms: the fixed columns not moved to a level, effects without one."""
    terms = []
    for j, col in enumerate(st.fixed):
        if j not in st.place:
            sym = st.l1_sym(col.key, r"\alpha" if not col.pieces else r"\beta_{" + str(st.beta[j]))
            x = f"({col.tex()})" if col.pieces else ""
            terms.append(f"{_num(est.fixef[col.name], digits)}_{{{sym}}}{x}" if est else sym + x)
    pure = [st.where(key)[0].find(key) for key in st.pure]
    return ([st.l1_sym(e.col.key, e.base) for e in pure if not e.col.pieces] + terms
            + [f"{st.l1_sym(e.col.key, e.base)}({e.col.tex()})" for e in pure if e.col.pieces])


def _offsets(d: Design) -> list[str]:
    """The offset's terms: ``offset(log(x))`` as equatiomatic writes it, ``offset=`` by name."""
    out = []
    for lab in d.offset_terms:
        node = parse(lab)
        node = node.args[0] if node.kind == "call" and node.value == "offset" else node
        fn = node.kind == "call" and node.value in ("log", "exp") and len(node.args) == 1
        out.append(rf"\{node.value}({_var(label(node.args[0]))})" if fn else _var(label(node)))
    extra = d.offset is not None and not d.offset_terms
    if d.offset is not None and d.offset_terms and d.frame is not None and d.model_frame is not None:
        values = d.model_frame.evaluate(d.frame, d.offset_terms, fit=False)
        extra = not np.allclose(sum(np.asarray(values[lab], dtype=float).reshape(-1)
                                    for lab in d.offset_terms), d.offset)
    # offset= gives values, not an expression
    return out + ([r"\operatorname{offset}_{i}"] if extra else [])


def _response(st: _Structure, est: _Estimates | None, digits: int, mean: str, separate: bool) -> str:
    """The first line (and the link's), as equatiomatic's ``create_l1`` for lmerMod and glmerMod."""
    d = st.design
    fam, link = d.family.name, d.family.link.name
    lhs = _var(d.response_label) + "_{i}"
    if fam == "gaussian":
        res = d.residual
        var = (r"\sigma^2_{i}" if getattr(res, "variance", None) is not None
               else f"{_num(est.sigma, digits)}^2" if est and est.sigma is not None else r"\sigma^2")
        var += " / w_{i}" if d.weights is not None else ""
        if separate:
            return rf"{lhs} &\sim N \left(\mu, {var} \right) \\" + f"\n    \\mu &={mean}"
        return rf"{lhs} &\sim N \left({mean}, {var} \right)"
    if fam in ("binomial", "bernoulli"):
        node, prob, n = parse(d.response_label), r"\operatorname{prob}", "1"
        if d.trials is not None and node.kind == "call" and node.value == "cbind":
            s, f = (_var(label(a)) for a in node.args[:2])
            lhs, n = f"{s}_{{i}}", f"{s}_{{i}} + {f}_{{i}}"
        elif d.trials is not None:
            lhs, n = "w_{i}" + lhs, "w_{i}"  # a proportion with its trials as weights=
        elif d.frame is not None and d.model_frame is not None:  # success as glm reads it
            v = d.model_frame.series(d.frame, d.response_label, fit=False)
            ok = r"\operatorname{TRUE}" if pd.api.types.is_bool_dtype(v) else "1"
            if not pd.api.types.is_numeric_dtype(v):
                ok = _var(str((v.cat.categories if isinstance(v.dtype, pd.CategoricalDtype)
                               else sorted(v.unique()))[1]))
            prob += f"_{{{_var(d.response_label)} = {ok}}}"
        return (rf"{lhs} &\sim \operatorname{{Binomial}}(n = {n}, {prob} = \widehat{{P}}) \\"
                + f"\n    {_LINKS[link]} &={mean}")
    shape = _num(est.dispersion, digits) if est and est.dispersion is not None else None
    k, nu = shape or r"\theta", shape or r"\nu"
    dist, linked = {"poisson": (r"\operatorname{Poisson}(\lambda_i)", r"\log(\lambda_i)"),
                    "negbinomial": (r"\operatorname{NegBinomial}(\mu = \lambda_i, \operatorname{shape} = "
                                    + k + ")", r"\log(\lambda_i)"),
                    "gamma": (rf"\operatorname{{Gamma}}(\operatorname{{shape}} = {nu}, "
                              rf"\operatorname{{rate}} = {nu} / \mu_i)", r"\log(\mu_i)")}[fam]
    return rf"{lhs} &\sim {dist} \\" + f"\n    {linked} &={mean}"


def _mean(st: _Structure, e: _Effect, letter: str, est: _Estimates | None, digits: int) -> str:
    """An effect's mean: its group-level predictors (gammas), mu, or 0."""
    if est is not None:
        terms = [f"{_num(est.fixef[st.fixed[j].name], digits)}_{{{_gamma(e, k)}}}"
                 f"({st.fixed[j].tex(z)})" for k, (j, z) in enumerate(e.moved, 1)]
        return _signs(" + ".join(terms)) if terms else "0"
    if e.moved:
        return " + ".join([_gamma(e, 0)] + [f"{_gamma(e, k)}({st.fixed[j].tex(z)})"
                                            for k, (j, z) in enumerate(e.moved, 1)])
    return r"\mu_{" + e.sym(letter) + "}" if e.fixed is not None else "0"


def _cov(lev: _Level, est: _Estimates | None, digits: int) -> list[list[str]]:
    """A level's covariance matrix, by each block's structure; zero between blocks."""
    if sum(b.term.structure in ("cs", "ar1") and b.n_terms > 1 for b in lev.blocks) > 1:
        raise DataError(f"{lev.name} has two or more cs() or ar1() terms; equations are not yet "
                        "supported for more than one on a grouping factor.")
    L, E = lev.letter, lev.effects
    M = [["0"] * len(E) for _ in E]
    for a, ea in enumerate(E):
        for c, ec in enumerate(E):
            b, sa, sc = ea.block, ea.sym(L), ec.sym(L)
            kind = b.term.structure if b.n_terms > 1 else "us"
            if b is not ec.block or (a != c and kind == "diag"):
                continue
            if est is not None:
                ta, tc = b.terms[ea.pos], b.terms[ec.pos]
                sd_a, sd_c = _num(est.sd[b.group, ta], digits), _num(est.sd[b.group, tc], digits)
                r = _num(est.sd[b.group, frozenset((ta, tc))], digits) if a != c else ""
                M[a][c] = f"{sd_a}^2" if a == c else rf"{r} \times {sd_a} \times {sd_c}"
            elif a == c:
                M[a][c] = rf"\sigma^2_{{{L}}}" if kind == "ar1" else rf"\sigma^2_{{{sa}}}"
            else:
                k = abs(ea.pos - ec.pos)
                M[a][c] = {"us": rf"\rho_{{{sa}{sc}}}", "cs": rf"\rho_{{{L}}}\sigma_{{{sa}}}\sigma_{{{sc}}}",
                           "ar1": rf"\sigma^2_{{{L}}}\rho_{{{L}}}" + (f"^{{{k}}}" if k > 1 else "")}[kind]
    return M


def _array(rows: list[str], cols: int = 0) -> str:
    """equatiomatic's ``create_onecol_array`` (``cols`` 0) and ``convert_matrix``."""
    if cols:
        body = " \\\\\n".join("        " + r for r in rows)
        return (f"    \\left(\n      \\begin{{array}}{{{'c' * cols}}}\n{body}\n"
                "      \\end{array}\n    \\right)")
    body = " \\\\\n".join("          &" + r for r in rows)
    return ("    \\left(\n      \\begin{array}{c}\n        \\begin{aligned}\n" + body
            + "\n        \\end{aligned}\n      \\end{array}\n    \\right)")


def _level_line(st: _Structure, lev: _Level, est: _Estimates | None, digits: int) -> str:
    L = lev.letter
    lhs = [e.sym(L) for e in lev.effects]
    means = [_mean(st, e, L, est, digits) for e in lev.effects]
    M = _cov(lev, est, digits)
    text = (f"\n    \\text{{, for {escape_tex(lev.name, math=False)} {L} = 1,}} \\dots "
            f"\\text{{,{L.upper()}}}")
    if len(lhs) == 1:
        return f"\n    {lhs[0]} &\\sim N \\left({means[0]}, {M[0][0]} \\right){text}"
    return (f"\n{_array(lhs)}\n      &\\sim N \\left(\n{_array(means)},\n"
            f"{_array([' & '.join(r) for r in M], len(M))}\n    \\right){text}")


def _residual_lines(st: _Structure, est: _Estimates | None, digits: int) -> list[str]:
    """``sigma=``'s SD model and ``correlation=``'s AR(1) as lines under the first."""
    res = st.design.residual
    variance, corr = getattr(res, "variance", None), getattr(res, "correlation", None)
    if not res.is_iid and variance is None and corr is None:
        raise DataError(f"Equations are not yet supported for the residual model {res!r}.")
    out, sigma = [], r"\sigma" if est is None or est.sigma is None else _num(est.sigma, digits)
    if variance is not None and variance.is_varident:
        S = len(variance.levels)
        deltas = (r"\delta_{1} = 1" if est is None else rf"(\delta_{{1}}, \dots, \delta_{{{S}}}) = ("
                  + ", ".join(_num(est.residual[lv], digits) for lv in variance.levels) + ")")
        out.append(f"\n    \\sigma_{{i}} &= {sigma}\\,\\delta_{{s[i]}}\\text{{, for "
                   f"{escape_tex(variance.factor, math=False)} s = 1,}} \\dots \\text{{,S; }} {deltas}")
    elif variance is not None:
        cols = ([c for c in _columns(variance.spec) if c.pieces] if variance.spec is not None
                else [_Column(n, ((n, ""),)) for n in variance.names])
        terms = [(f"{_num(est.residual[n], digits)}_{{\\delta_{{{m}}}}}" if est is not None
                  else f"\\delta_{{{m}}}") + f"({c.tex()})"
                 for m, (n, c) in enumerate(zip(variance.names, cols, strict=True), 1)]
        out.append(f"\n    \\sigma_{{i}} &= {sigma} \\exp\\left({_signs(' + '.join(terms))}\\right)")
    if corr is not None:
        phi = r"\phi" if est is None else _num(est.residual["phi"], digits)
        phi, t = f"({phi})" if phi.startswith("-") else phi, _var(corr.time) if corr.time else "t"
        note = "" if corr.time else r"\text{, } t_{i} \text{ the row's place in its series}"
        out.append(f"\n    \\operatorname{{cor}}\\left(\\epsilon_{{i}}, \\epsilon_{{i'}}\\right) &= "
                   f"{phi}^{{\\left|{t}_{{i}} - {t}_{{i'}}\\right|}}\\text{{, for rows }} i \\neq i' "
                   f"\\text{{ of one {escape_tex(str(corr.group), math=False)}}}{note}")
    return out


def _prior_tex(prior: Any) -> str:
    if prior.dist == "flat":
        return r"\propto 1"
    values = [f"{v:.4g}" for v in prior.params.values()]
    half = prior.dist.startswith("half_")
    if half:  # a half-distribution is brms's location-0 one, as its prior_summary prints it
        values.insert(len(values) - 1, "0")
    return (rf"\sim \operatorname{{{_PRIOR_NAMES[prior.dist.removeprefix('half_')]}}}"
            + ("^{+}" if half else "")
            + f"({', '.join(values)})")


def _prior_lines(st: _Structure, table: Any) -> list[str]:
    """A line per prior in force (brms's ``prior_summary``), on the equation's symbols."""
    d, out = st.design, []
    for entry in table.entries:
        cls, note = entry.cls, ""
        if cls in ("Intercept", "b"):
            sym = st.coef_sym(0 if cls == "Intercept" else d.fixef_names.index(entry.coef))
            if cls == "Intercept" and d.X.shape[1] > 1:
                note = r"\text{, the intercept at the predictors' means}"
        elif cls in ("sd", "cor"):
            lev = next(lv for lv in st.levels if any(e.block.group == entry.group for e in lv.effects))
            effects, L = [e for e in lev.effects if e.block.group == entry.group], lev.letter
            if cls == "sd" and effects[0].block.term.structure == "ar1" and len(effects) > 1:
                if entry.coef != effects[0].block.terms[0]:
                    continue  # an ar1() term's SDs are one parameter
                sym = rf"\sigma_{{{L}}}"
            elif cls == "sd":
                sym = rf"\sigma_{{{next(e for e in effects if e.block.terms[e.pos] == entry.coef).sym(L)}}}"
            elif entry.prior.dist == "lkj":
                sym = r"\operatorname{cor}\left(" + ", ".join(e.sym(L) for e in effects) + r"\right)"
            else:
                sym = rf"\rho_{{{L}}}"
        elif cls == "b_sigma":
            k = d.residual.variance.names.index(entry.coef)
            sym = (rf"\log\left(\delta_{{{k + 2}}}\right)" if d.residual.variance.is_varident
                   else rf"\delta_{{{k + 1}}}")
        elif cls in ("sigma", "shape", "ar"):
            sym = {"sigma": r"\sigma", "ar": r"\phi",
                   "shape": r"\theta" if d.family.name == "negbinomial" else r"\nu"}[cls]
        else:
            raise DataError(f"Equations are not yet supported for priors of class {cls!r}.")
        out.append(f"\n    {sym} &{_prior_tex(entry.prior)}{note}")
    return out


def equation(fit_or_model: Any, *, use_coefs: bool = False, digits: int = 2, priors: bool = False,
             mean_separate: bool | None = None, point: str = "mean") -> Equation:
    r"""The model as LaTeX, in equatiomatic's notation for lme4 models (``extract_eq``).

    Parameters
    ----------
    fit_or_model
        An ``LmerFit``, ``GlmerFit`` or ``BayesFit``, a ``hb.Model`` (unfitted), or a design.
    use_coefs
        Write a fit's estimates in place of the symbols (fixed effects, SDs,
        correlations, residual SD and structure), as equatiomatic's ``use_coefs``.
    digits
        Decimals of the estimates (equatiomatic's ``coef_digits``).
    priors
        Add a line per prior in force (Bayesian models and fits).
    mean_separate
        Write the mean on its own line (``\mu = ...``); None: when it has over three terms.
    point
        ``"mean"`` or ``"median"``: a Bayesian fit's estimates.

    Raises
    ------
    SettingsError
        For an object that is no fit or model, ``use_coefs`` without a fit,
        ``priors`` without a Bayesian model, a bad ``digits``, ``point`` or ``mean_separate``.
    DataError
        For what equations do not cover yet: other families or links, over 17
        grouping levels, two ``cs()``/``ar1()`` terms on one factor.

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.lmer("gpa ~ occasion + (1 | student)", hb.datasets.load("gpa"))
    >>> print(equation(fit, use_coefs=True).latex.splitlines()[1])
      \operatorname{gpa}_{i} &\sim N \left(2.6_{\alpha_{j[i]}} + 0.11_{\beta_{1}}(\operatorname{occasion}), 0.24^2 \right) \\
    """
    obj = fit_or_model
    design = obj if isinstance(obj, Design) else getattr(obj, "design", None)
    if not isinstance(design, Design):
        raise SettingsError(f"equation() takes a fit (hb.lmer, hb.glmer, Model.fit) or a hb.Model, "
                            f"not {type(obj).__name__}.")
    if isinstance(digits, bool) or not isinstance(digits, int | np.integer) or digits < 0:
        raise SettingsError(f"digits must be a whole number >= 0, not {digits!r}.")
    if point not in ("mean", "median"):
        raise SettingsError(f"point must be 'mean' or 'median', not {point!r}.")
    if mean_separate not in (None, True, False):
        raise SettingsError(f"mean_separate must be True, False or None, not {mean_separate!r}.")
    bayes = obj if isinstance(obj, BayesModel) else getattr(obj, "model", None)
    if priors and not isinstance(bayes, BayesModel):
        raise SettingsError("priors=True lists a Bayesian model's priors; this is a "
                            f"{type(obj).__name__}, which has none. Use a hb.Model or its fit.")
    fam, link = design.family.name, design.family.link.name
    if (fam, link) not in _FAMILIES and not (fam in ("binomial", "bernoulli") and link in _LINKS):
        raise DataError(f"Equations are not yet supported for the {fam} family with the {link} "
                        "link; they are for the gaussian, binomial, bernoulli, poisson, negbinomial "
                        "and gamma families and their links in hierbayes.")
    est = _estimates(obj, design, point) if use_coefs else None
    if use_coefs and est is None:
        raise SettingsError(f"use_coefs=True writes a fit's estimates; a {type(obj).__name__} has "
                            "none. Fit it first (model.fit(), hb.lmer, hb.glmer).")
    st, digits = _Structure(design), int(digits)
    terms = _l1_terms(st, est, digits)
    separate = len(terms) > 3 if mean_separate is None else mean_separate
    mean = _signs(" + ".join(_offsets(design) + terms)) or "0"
    lines = [_response(st, est, digits, mean, separate), *_residual_lines(st, est, digits)]
    lines += [_level_line(st, lev, est, digits) for lev in st.levels]
    if priors:
        lines += _prior_lines(st, bayes.priors)
    return Equation("\\begin{aligned}\n  " + " \\\\".join(lines) + "\n\\end{aligned}")
