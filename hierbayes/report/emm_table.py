"""Marginal means and contrasts as :func:`hierbayes.report.emmeans.emmeans` returns them: :class:`EMMeans`.

An :class:`EMMeans` holds linear functions ``L beta`` of a fit's fixed
effects, labelled by the levels they belong to: the marginal means, or
contrasts of them (:meth:`EMMeans.pairs`, :meth:`EMMeans.contrast`, which
return an :class:`EMMeans` too). Its table (:attr:`EMMeans.frame`) is computed
once: for REML fits with the df method's SEs and df, for GLMMs with z, for
Bayesian fits from the posterior draws of ``beta``
(:meth:`EMMeans.draws`). It prints as emmeans prints: a table per ``by``
group, then what was averaged over, the df method, the level and any
multiplicity adjustment.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.report.emmeans import emmeans
>>> fit = hb.lmer("diameter ~ sample + (1 | plate)", hb.datasets.load("Penicillin"))
>>> print(emmeans(fit, "sample", at={"sample": ["A", "B"]}).pairs())
 contrast estimate    SE  df lower.CL upper.CL t.ratio p.value
 A - B        3.21 0.159 115     2.89     3.52  20.210  <.0001
<BLANKLINE>
Degrees-of-freedom method: kenward-roger
Confidence level used: 0.95
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import SettingsError
from hierbayes.report.emm_contrasts import (
    adjust_p,
    contrast_set,
    critical_values,
    level_names,
    r_string,
)

_SAME = object()
_RESPONSE = {"binomial": "prob", "bernoulli": "prob", "poisson": "rate", "negbinomial": "rate"}


class EMMeans:
    """Marginal means (or contrasts of them) of a fit, as R's ``emmGrid`` summarised.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per mean or contrast: the label columns (the ``specs`` and
        ``by`` factors, or ``contrast`` and ``by``), then ``emmean`` (means) or
        ``estimate`` (contrasts), ``std_error`` (the posterior SD for Bayesian
        fits), ``df`` (not for Bayesian fits), ``conf_low``, ``conf_high`` and, for
        contrasts of frequentist fits, ``t_ratio`` (``z_ratio`` with infinite df)
        and ``p_value``. ``frame.attrs`` holds ``conf_level`` and the methods used.
    L : numpy.ndarray
        The linear functions, ``(rows, fixed effects)``; ``offset`` their offsets.
    notes : list of str
        The lines printed under the table.
    """

    def __init__(self, fit: Any, info: dict, L: np.ndarray, L_full: np.ndarray | None,
                 offset: np.ndarray, labels: pd.DataFrame, primary: list[str], by: list[str],
                 family: dict | None = None) -> None:
        self.fit, self.info = fit, info
        self.L, self.L_full, self.offset = L, L_full, offset
        self.labels = labels.reset_index(drop=True)
        self.primary, self.by = list(primary), list(by)
        self.family = family  # None: means; else how the contrasts were made and are adjusted
        self.notes: list[str] = []
        self.frame = self._table()

    # ------------------------------------------------------------ computing

    @property
    def is_contrast(self) -> bool:
        return self.family is not None

    @property
    def estimable(self) -> np.ndarray:
        """Whether each row is estimable (estimability's ``is.estble`` on the full model matrix)."""
        basis = self.info["basis"]
        if basis is None or self.L_full is None:
            return np.isfinite(self.L).all(axis=1)
        chk = self.L_full @ basis
        ssq = np.sum(self.L_full**2, axis=1)
        ok = np.sum(chk**2, axis=1) < 1e-8 * np.where(ssq < 1e-8, 1.0, ssq)
        return ok & np.isfinite(self.L).all(axis=1)

    def _ratio(self) -> bool:
        """Contrasts on a log or logit link shown as ratios (type='response'), as emmeans."""
        return bool(self.is_contrast and self.info["type"] == "response"
                    and self.family["true_contrasts"]
                    and self.fit.design.family.link.name in ("log", "logit"))

    def _linear(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        fit, L = self.fit, np.nan_to_num(self.L)
        if self.info["kind"] == "lmer":
            if self.info.get("functions") is None:
                from hierbayes.freq.ddf import LinearFunctions

                self.info["functions"] = LinearFunctions(fit, self.info["method"])
            t = self.info["functions"].table(L)
            est, se, df = (t[c].to_numpy() for c in ("estimate", "std_error", "df"))
        else:
            est = L @ fit.estimates.beta
            se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", L, fit.estimates.vcov_beta, L), 0))
            df = np.where(se > 0, np.inf, np.nan)
        bad = ~self.estimable
        est, se, df = (np.where(bad, np.nan, a) for a in (est + self.offset, se, df))
        return est, se, df

    def _beta_draws(self) -> np.ndarray:
        post = self.fit.posterior
        if "fixef" not in post:
            raise SettingsError("This Bayesian model has no fixed effects to average.")
        b = np.asarray(post["fixef"])
        return b.reshape(-1, b.shape[-1])

    def draws(self) -> pd.DataFrame:
        """Posterior draws of every mean or contrast (Bayesian fits): draws x rows, on the table's scale.

        The columns are labelled by the label columns (a MultiIndex for several).
        """
        if self.info["kind"] != "bayes":
            raise SettingsError("draws() is for Bayesian fits; an lmer or glmer fit's means are "
                                "estimates with standard errors (see .frame).")
        d = self._beta_draws() @ np.nan_to_num(self.L).T + self.offset
        d[:, ~self.estimable] = np.nan
        if self.info["type"] == "response" and not self.is_contrast:
            d = self.fit.design.family.inverse_link(d)
        elif self._ratio():
            d = np.exp(d)
        cols = (pd.MultiIndex.from_frame(self.labels.astype(str)) if self.labels.shape[1] > 1
                else pd.Index(self.labels.iloc[:, 0].astype(str), name=self.labels.columns[0]))
        return pd.DataFrame(d, columns=cols)

    def _table(self) -> pd.DataFrame:
        info, level = self.info, self.info["level"]
        name = "estimate" if self.is_contrast else "emmean"
        out = self.labels.copy()
        if info["kind"] == "bayes":
            d = self.draws().to_numpy()
            with np.errstate(invalid="ignore"):
                point = np.median(d, axis=0) if info["point"] == "median" else d.mean(axis=0)
                sd = d.std(axis=0, ddof=1)
            lo, hi = (_hpd(d, level) if info["interval"] == "hpd" else
                      np.quantile(d, [(1 - level) / 2, (1 + level) / 2], axis=0))
            out[name], out["std_error"], out["conf_low"], out["conf_high"] = point, sd, lo, hi
        else:
            out = self._frequentist(out, name, level)
        out.attrs["conf_level"] = level
        out.attrs.update({k: info[k] for k in ("type", "averaged")})
        if info["kind"] == "lmer":
            out.attrs["df_method"] = info["method"]
        if self.is_contrast and info["kind"] != "bayes":
            out.attrs["adjust"] = self.family["adjust_used"]
        self.notes = self._notes()
        return out

    def _frequentist(self, out: pd.DataFrame, name: str, level: float) -> pd.DataFrame:
        from scipy import stats

        est, se, df = self._linear()
        if self.is_contrast:
            fam = self.family
            with np.errstate(invalid="ignore", divide="ignore"):
                t = est / se  # a contrast of zeros (a quadratic of linear means) has no test
            p = adjust_p(t, df, fam["adjust"], fam["size"], fam["n"], fam["pairs"], fam["groups"])
            cv = critical_values(level, df, fam["adjust"], fam["size"], fam["n"], fam["pairs"])
            fam.update(adjust_used=p.adjust, p_message=p.message, ci_message=cv.message)
            q = cv.p
        else:
            with np.errstate(invalid="ignore"):
                q = np.where(np.isinf(df), stats.norm.ppf((1 + level) / 2),
                             stats.t.ppf((1 + level) / 2, np.where(np.isinf(df), 1, df)))
        lo, hi = est - q * se, est + q * se
        if self.info["type"] == "response" and not self.is_contrast:
            link = self.fit.design.family.link
            se = se * np.abs(link.mu_eta(est))
            est, lo, hi = link.linkinv(est), link.linkinv(lo), link.linkinv(hi)
        elif self._ratio():
            est, lo, hi = np.exp(est), np.exp(lo), np.exp(hi)
            se = se * est
        out[name], out["std_error"], out["df"], out["conf_low"], out["conf_high"] = est, se, df, lo, hi
        if self.is_contrast:
            out["z_ratio" if np.all(np.isinf(df[np.isfinite(se)])) else "t_ratio"] = t
            out["p_value"] = p.p
        return out

    # ------------------------------------------------------------ contrasts

    def contrast(self, method: str | dict = "pairwise", adjust: str | None = None,
                 by: Any = _SAME, ref: Any = None) -> EMMeans:
        """Contrasts of the means within each ``by`` group, as emmeans's ``contrast``.

        Parameters
        ----------
        method
            ``"pairwise"`` (``"A - B"``), ``"revpairwise"`` (``"B - A"``),
            ``"trt.vs.ctrl"`` (each level minus the first, or ``ref``), ``"eff"``
            (each level minus the average of all), ``"poly"`` (orthogonal
            polynomials, integer-scaled as emmeans's), or ``{name: coefficients}``.
        adjust
            The p-value and interval adjustment; None takes emmeans's default
            for the method: ``"tukey"`` for pairwise, ``"dunnettx"`` for
            trt.vs.ctrl, ``"fdr"`` for eff, ``"none"`` for poly and custom ones.
            See :mod:`hierbayes.report.emm_contrasts`. Not for Bayesian fits,
            whose contrasts have intervals from their draws and no p-values.
        by
            The families: the means' ``by`` by default; None makes all rows one family.
        ref
            The control level for ``"trt.vs.ctrl"``.
        """
        if adjust is not None and self.info["kind"] == "bayes":
            raise SettingsError("A Bayesian fit's contrasts have posterior intervals and no "
                                "p-values, so there is nothing to adjust: leave adjust= out.")
        by = self.by if by is _SAME else ([] if by is None else [by] if isinstance(by, str) else list(by))
        absent = [b for b in by if b not in self.labels.columns]
        if absent:
            raise SettingsError(f"by= names {absent}; the rows are labelled by "
                                f"{list(self.labels.columns)}.")
        primary = [c for c in self.labels.columns if c not in by]
        if not primary:
            raise SettingsError("by= takes every label; nothing is left to contrast.")
        keys = (list(zip(*(self.labels[b].astype(str) for b in by), strict=True)) if by
                else [()] * len(self.labels))
        groups: dict[tuple, list[int]] = {}
        for i, k in enumerate(keys):
            groups.setdefault(k, []).append(i)
        sizes = {len(g) for g in groups.values()}
        if len(sizes) > 1:
            raise SettingsError("The by groups differ in size, which emmeans does not support either.")
        names, Ls, Lf, offs, rows_by, fam_rows = [], [], [], [], [], []
        for rows in groups.values():
            text = {c: [r_string(self.labels[c].iloc[i]) for i in rows] for c in primary}
            cs = contrast_set(method, level_names(text), ref)
            fam_rows.append(np.arange(len(cs.names)) + len(names))
            names += cs.names
            Ls.append(cs.coef @ self.L[rows])
            offs.append(cs.coef @ self.offset[rows])
            if self.L_full is not None:
                Lf.append(cs.coef @ self.L_full[rows])
            rows_by += [rows[0]] * len(cs.names)
        col = "contrast"
        while col in self.labels.columns:
            col = f"contrast{1 if col == 'contrast' else int(col[8:]) + 1}"
        ratio_names = (self.info["type"] == "response" and cs.true_contrasts
                       and self.fit.design.family.link.name in ("log", "logit"))
        labels = pd.DataFrame({col: [n.replace(" - ", " / ") if ratio_names else n for n in names]})
        for b in by:
            labels[b] = self.labels[b].iloc[rows_by].reset_index(drop=True)
        family = {"method": method, "adjust": adjust or cs.adjust, "pairs": cs.pairs,
                  "size": sizes.pop(), "n": len(cs.names), "groups": fam_rows,
                  "true_contrasts": cs.true_contrasts}
        return EMMeans(self.fit, self.info, np.vstack(Ls), np.vstack(Lf) if Lf else None,
                       np.concatenate(offs), labels, [col], by, family)

    def pairs(self, adjust: str | None = None, reverse: bool = False, by: Any = _SAME) -> EMMeans:
        """All pairwise differences within each ``by`` group (``"A - B"``; ``reverse``: ``"B - A"``).

        ``adjust`` defaults to ``"tukey"``, as emmeans's; see :meth:`contrast`.
        """
        return self.contrast("revpairwise" if reverse else "pairwise", adjust=adjust, by=by)

    # ------------------------------------------------------------ output

    def to_frame(self) -> pd.DataFrame:
        """A copy of :attr:`frame`."""
        out = self.frame.copy()
        out.attrs = dict(self.frame.attrs)
        return out

    def _notes(self) -> list[str]:
        info, fam = self.info, self.family
        design = self.fit.design
        link = design.family.link.name
        notes = []
        if info["averaged"]:
            notes.append(f"Results are averaged over the levels of: {', '.join(info['averaged'])}")
        if info["kind"] == "lmer":
            notes.append(f"Degrees-of-freedom method: {info['method']}")
        scale = "log odds ratio" if self.is_contrast and link == "logit" else link
        if link != "identity":
            if info["type"] == "link":
                notes.append(f"Results are given on the {scale} (not the response) scale.")
            elif self.is_contrast and not self._ratio():
                notes.append(f"Note: contrasts are still on the {link} scale.")
            else:
                notes.append(f"Intervals are back-transformed from the {scale} scale")
        if info["kind"] == "bayes":
            notes += [f"Point estimate displayed: {info['point']}",
                      f"{'HPD' if info['interval'] == 'hpd' else 'Equal-tailed'} interval "
                      f"probability: {info['level']:g}"]
            return notes
        notes.append(f"Confidence level used: {info['level']:g}")
        if fam is not None:
            notes += [m for m in (fam["ci_message"], fam["p_message"]) if m]
        return notes

    def _display(self) -> tuple[list[str], list[list[str]], set[int]]:
        f, kind = self.frame, self.info["kind"]
        name = "estimate" if self.is_contrast else "emmean"
        shown = name
        link = self.fit.design.family.link.name
        if self.info["type"] == "response" and link != "identity":
            if self._ratio():
                shown = "odds.ratio" if link == "logit" else "ratio"
            elif not self.is_contrast:
                shown = _RESPONSE.get(self.fit.design.family.name, "response")
        heads, cols, right = [], [], set()
        for c in self.primary:
            heads.append(c)
            cols.append(_label_column(self.labels[c]))
            if _is_numeric(self.labels[c]):
                right.add(len(heads) - 1)
        ok = self.estimable
        est = _fmt(f[name].to_numpy())
        heads.append(shown)
        cols.append([e if good else "nonEst" for e, good in zip(est, ok, strict=True)])
        if kind == "bayes":
            band = "HPD" if self.info["interval"] == "hpd" else "ETI"
            pairs = [("SD", "std_error"), (f"lower.{band}", "conf_low"), (f"upper.{band}", "conf_high")]
        else:
            known = f["df"].dropna()
            asym = len(known) > 0 and bool(np.isinf(known).all())
            pairs = [("SE", "std_error"), ("df", "df"),
                     ("asymp.LCL" if asym else "lower.CL", "conf_low"),
                     ("asymp.UCL" if asym else "upper.CL", "conf_high")]
            if self.is_contrast:
                stat = "z_ratio" if "z_ratio" in f else "t_ratio"
                pairs.append((stat.replace("_", "."), stat))
        for head, col in pairs:
            heads.append(head)
            cols.append([f"{v:.3f}" if np.isfinite(v) else "NA" for v in f[col]] if
                        head.endswith(".ratio") else _fmt(f[col].to_numpy()))
        if self.is_contrast and kind != "bayes":
            heads.append("p.value")
            cols.append([_pval(p) for p in f["p_value"]])
        right |= set(range(len(self.primary), len(heads)))
        return heads, [list(r) for r in zip(*cols, strict=True)], right

    def __str__(self) -> str:
        heads, rows, right = self._display()
        keys = (list(zip(*(_label_column(self.labels[b]) for b in self.by), strict=True))
                if self.by else [()] * len(rows))
        order: dict[tuple, list[int]] = {}
        for i, k in enumerate(keys):
            order.setdefault(k, []).append(i)
        widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(heads)]

        def line(values: list[str]) -> str:
            return " " + " ".join(v.rjust(w) if j in right else v.ljust(w)
                                  for j, (v, w) in enumerate(zip(values, widths, strict=True))).rstrip()

        out = []
        for key, idx in order.items():
            if self.by:
                out.append(", ".join(f"{b} = {v}" for b, v in zip(self.by, key, strict=True)) + ":")
            out += [line(heads)] + [line(rows[i]) for i in idx] + [""]
        return "\n".join(out + self.notes)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        notes = "<br>".join(html.escape(n) for n in self.notes)
        return f"<div>{self.frame.to_html(index=False)}<p>{notes}</p></div>"


def _hpd(d: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """coda's ``HPDinterval``: the shortest interval holding ``round(n * level)`` gaps of sorted draws."""
    n = d.shape[0]
    s = np.sort(d, axis=0)
    gap = max(1, min(n - 1, round(n * level)))
    width = s[gap:] - s[: n - gap]
    i = np.argmin(np.where(np.isnan(width), np.inf, width), axis=0)
    cols = np.arange(d.shape[1])
    lo, hi = s[i, cols], s[i + gap, cols]
    bad = np.isnan(d).any(axis=0)
    return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)


def _is_numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not isinstance(col.dtype, pd.CategoricalDtype)


def _label_column(col: pd.Series) -> list[str]:
    return _fmt(col.to_numpy(dtype=float)) if _is_numeric(col) else [str(v) for v in col]


def _decimals(x: float, digits: int) -> int:
    mant, exp = f"{abs(x):.{digits - 1}e}".split("e")
    sig = len(mant.replace(".", "").rstrip("0")) or 1
    return max(0, sig - 1 - int(exp))


def _fmt(x: np.ndarray, digits: int = 3) -> list[str]:
    """A column as R's ``format(x, digits = 3)``: a common number of decimals, enough for each."""
    x = np.asarray(x, dtype=float)
    finite = x[np.isfinite(x) & (x != 0)]
    if finite.size and (np.max(np.abs(finite)) >= 1e15 or np.min(np.abs(finite)) < 1e-5):
        return [f"{v:.{digits}g}" if np.isfinite(v) else ("Inf" if v > 0 else "-Inf" if v < 0
                                                          else "NA") for v in x]
    dec = max((_decimals(v, digits) for v in finite), default=0)
    return [f"{v:.{dec}f}" if np.isfinite(v) else "Inf" if v == np.inf else "-Inf" if v == -np.inf
            else "NA" for v in x]


def _pval(p: float) -> str:
    if not np.isfinite(p):
        return "NA"
    return "<.0001" if p < 1e-4 else f"{p:.4f}"
