"""Priors: brms-style specification, data-scaled defaults, and what is in force.

Classes of parameters, as in brms:

``Intercept``
    The intercept of the model with *centred* fixed-effect columns (brms's
    ``Intercept``); the reported ``(Intercept)`` is recovered from it.
``b``
    The other fixed effects; ``b[Days]`` names one.
``sd``
    Group-level standard deviations; ``sd[Subject]`` every SD of a grouping
    factor, ``sd[Subject, Days]`` one.
``cor``
    LKJ prior on the correlations of a block of two or more terms;
    ``cor[Subject]`` one block.
``sigma``
    The residual SD (gaussian family).
``shape``
    The shape of the negative binomial (``Var(y) = mu + mu^2 / shape``) and of
    the gamma family (brms's ``shape``).
``b_sigma``
    The coefficients of a ``sigma=`` formula, log SD ratios (brms's class
    ``b`` of ``dpar = sigma``); ``b_sigma[occas1]`` names one.
``ar``
    ``phi`` of ``correlation=hb.ar1(...)`` or ``hb.car1(...)`` (brms's ``ar``):
    a ``uniform`` within (-1, 1), or (0, 1) for CAR(1).

A term with glmmTMB's ``cs()`` or ``ar1()`` has one correlation, whose prior
(class ``cor``) is a ``uniform`` within its range.

A prior is a string in brms's notation (``"normal(0, 50)"``,
``"student_t(3, 0, 50)"``, ``"lkj(2)"``, ``"flat"``) or a :class:`Prior`. On
``sd``, ``sigma`` and ``shape`` a location-zero ``normal``, ``student_t`` or
``cauchy`` means its half-distribution, as in brms. ``flat`` (improper, density
1: brms's default on ``b``) is allowed on ``b`` only.

Default priors scale with the data (the rule is written out in
``docs/priors.md``): with ``s = sd(y)`` for gaussian models and ``s = 1`` on
the link scale otherwise, ``Intercept ~ normal(mean(y), 2.5 s)``,
``b_j ~ normal(0, 2.5 s / sd(x_j))``, ``sd_j ~ half_student_t(3, s / sd(z_j))``
(``sd(z_j) = 1`` for an intercept), ``sigma ~ half_student_t(3, s)``,
``cor ~ lkj(1)``; ``shape ~ gamma(0.01, 0.01)`` (brms's default);
``b_sigma_j ~ normal(0, 2.5 / sd(v_j))`` (the ``b`` rule on the log scale),
``ar ~ uniform(-1, 1)`` (brms's; ``uniform(0, 1)`` for CAR(1)) and a
structured term's correlation uniform over its range.

Examples
--------
>>> from hierbayes.bayes.priors import Prior
>>> p = Prior.parse("student_t(3, 0, 50)")
>>> str(p), str(p.half())
('student_t(3, 0, 50)', 'half_student_t(3, 50)')
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import PriorError
from hierbayes.families.base import sample_sd
from hierbayes.spec.design import Design

# key: (PyMC class, parameter names, parameters that must be > 0, support)
_DISTS: dict[str, tuple[str, tuple[str, ...], frozenset[str], str]] = {
    "normal": ("Normal", ("mu", "sigma"), frozenset({"sigma"}), "real"),
    "student_t": ("StudentT", ("nu", "mu", "sigma"), frozenset({"nu", "sigma"}), "real"),
    "cauchy": ("Cauchy", ("alpha", "beta"), frozenset({"beta"}), "real"),
    "half_normal": ("HalfNormal", ("sigma",), frozenset({"sigma"}), "positive"),
    "half_student_t": ("HalfStudentT", ("nu", "sigma"), frozenset({"nu", "sigma"}), "positive"),
    "half_cauchy": ("HalfCauchy", ("beta",), frozenset({"beta"}), "positive"),
    "exponential": ("Exponential", ("lam",), frozenset({"lam"}), "positive"),
    "gamma": ("Gamma", ("alpha", "beta"), frozenset({"alpha", "beta"}), "positive"),
    "inv_gamma": ("InverseGamma", ("alpha", "beta"), frozenset({"alpha", "beta"}), "positive"),
    "lognormal": ("LogNormal", ("mu", "sigma"), frozenset({"sigma"}), "positive"),
    "uniform": ("Uniform", ("lower", "upper"), frozenset(), "interval"),
    "lkj": ("LKJ", ("eta",), frozenset({"eta"}), "correlation"),
    "flat": ("Flat", (), frozenset(), "real"),
}
_ALIASES = {
    "gaussian": "normal",
    "studentt": "student_t",
    "t": "student_t",
    "halfnormal": "half_normal",
    "halfstudentt": "half_student_t",
    "halft": "half_student_t",
    "halfcauchy": "half_cauchy",
    "invgamma": "inv_gamma",
    "inversegamma": "inv_gamma",
    "lkjcorr": "lkj",
}
CLASSES = ("Intercept", "b", "sd", "cor", "sigma", "shape", "b_sigma", "ar")
#: The classes of one positive parameter each: the families' dispersions.
_DISPERSIONS = ("sigma", "shape")


def _canonical(name: str) -> str | None:
    key = name.lower()
    if key in _DISTS:
        return key
    squashed = key.replace("_", "")
    if squashed in _ALIASES:
        return _ALIASES[squashed]
    for k in _DISTS:
        if k.replace("_", "") == squashed:
            return k
    return None


def _fmt(x: float) -> str:
    return f"{x:.4g}"


@dataclass(frozen=True, init=False)
class Prior:
    """A prior distribution: a family name and its parameters.

    Parameters
    ----------
    dist
        ``normal``, ``student_t``, ``cauchy``, ``half_normal``,
        ``half_student_t``, ``half_cauchy``, ``exponential``, ``gamma``,
        ``inv_gamma``, ``lognormal``, ``uniform``, ``lkj`` or ``flat`` (PyMC's
        names such as ``"HalfNormal"`` work too).
    *args, **kwargs
        Parameters in the order above (brms's) or by PyMC's names.

    Examples
    --------
    >>> Prior("normal", 0, 10)
    Prior('normal(0, 10)')
    >>> Prior("HalfNormal", sigma=2.5).params
    {'sigma': 2.5}
    """

    dist: str
    _params: tuple[tuple[str, float], ...]

    def __init__(self, dist: str, *args: float, **kwargs: float) -> None:
        if not isinstance(dist, str):
            raise PriorError(f"A prior's distribution must be named by a string, not {dist!r}.")
        key = _canonical(dist)
        if key is None:
            raise PriorError(
                f"Unknown prior distribution '{dist}'. Known: {', '.join(_DISTS)}."
            )
        pm_name, names, positive, _ = _DISTS[key]
        if len(args) > len(names):
            raise PriorError(
                f"{key} takes {len(names)} parameter(s) ({', '.join(names)}), "
                f"but {len(args)} were given."
            )
        values: dict[str, Any] = dict(zip(names, args, strict=False))
        for k, v in kwargs.items():
            if k not in names:
                raise PriorError(
                    f"{key} has no parameter '{k}'; its parameters are {', '.join(names)}."
                )
            if k in values:
                raise PriorError(f"{key}: parameter '{k}' given twice.")
            values[k] = v
        missing = [n for n in names if n not in values]
        if missing:
            raise PriorError(
                f"{key} needs {', '.join(names)}; missing {', '.join(missing)}. "
                f"Example: {key}({', '.join('1' for _ in names)})."
            )
        params = []
        for n in names:
            v = values[n]
            if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
                raise PriorError(f"{key}: parameter '{n}' must be a number, not {v!r}.")
            v = float(v)
            if not math.isfinite(v):
                raise PriorError(f"{key}: parameter '{n}' must be finite, not {v}.")
            if n in positive and v <= 0:
                raise PriorError(f"{key}: parameter '{n}' must be positive, not {v:g}.")
            params.append((n, v))
        if key == "uniform" and params[0][1] >= params[1][1]:
            raise PriorError(f"uniform: lower ({params[0][1]:g}) must be below upper ({params[1][1]:g}).")
        object.__setattr__(self, "dist", key)
        object.__setattr__(self, "_params", tuple(params))

    @property
    def params(self) -> dict[str, float]:
        """Parameters by PyMC's names."""
        return dict(self._params)

    @property
    def pymc_name(self) -> str:
        """The PyMC distribution class this prior becomes."""
        return _DISTS[self.dist][0]

    @property
    def support(self) -> str:
        """``"real"``, ``"positive"``, ``"interval"`` or ``"correlation"``."""
        return _DISTS[self.dist][3]

    def __str__(self) -> str:
        if not self._params:
            return self.dist  # brms prints "(flat)"; "flat" reads back (Prior.parse)
        return f"{self.dist}({', '.join(_fmt(v) for _, v in self._params)})"

    def __repr__(self) -> str:
        return f"Prior('{self}')"

    @classmethod
    def parse(cls, spec: Prior | str) -> Prior:
        """Read a prior from brms notation (``"normal(0, 10)"``) or pass a Prior through.

        Examples
        --------
        >>> Prior.parse("lkj(2)").params
        {'eta': 2.0}
        >>> Prior.parse("flat")
        Prior('flat')
        """
        if isinstance(spec, Prior):
            return spec
        if not isinstance(spec, str):
            raise PriorError(
                f"A prior must be a distribution such as 'normal(0, 10)' or "
                f"hb.Prior('normal', 0, 10), not {spec!r} ({type(spec).__name__})."
            )
        try:
            node = ast.parse(spec.strip(), mode="eval").body
        except SyntaxError:
            node = None
        if isinstance(node, ast.Name) and not _DISTS.get(_canonical(node.id) or "", ("", (0,)))[1]:
            return cls(node.id)  # a distribution without parameters: "flat"
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            raise PriorError(
                f"Cannot read the prior '{spec}'. Write a distribution call such as "
                "'normal(0, 10)', 'student_t(3, 0, 2.5)' or 'lkj(2)'."
            )

        def number(arg: ast.AST) -> float:
            try:
                value = ast.literal_eval(arg)
            except (ValueError, TypeError, SyntaxError, RecursionError):
                raise PriorError(
                    f"In the prior '{spec}', '{ast.unparse(arg)}' is not a number."
                ) from None
            return value

        return cls(
            node.func.id,
            *[number(a) for a in node.args],
            **{k.arg: number(k.value) for k in node.keywords if k.arg},
        )

    def half(self) -> Prior:
        """The prior for a positive parameter (SDs): half-distribution of a location-0 prior."""
        p = self.params
        if self.support == "positive":
            return self
        if self.support == "interval" and p["lower"] >= 0:
            return self
        if self.dist in ("normal", "student_t", "cauchy"):
            loc = p["alpha"] if self.dist == "cauchy" else p["mu"]
            if loc != 0:
                raise PriorError(
                    f"The prior {self} is for a standard deviation, which must be positive: "
                    "give it location 0 (it then means the half-distribution) or use a "
                    "positive distribution such as exponential or half_normal."
                )
            if self.dist == "normal":
                return Prior("half_normal", p["sigma"])
            if self.dist == "student_t":
                return Prior("half_student_t", p["nu"], p["sigma"])
            return Prior("half_cauchy", p["beta"])
        raise PriorError(
            f"The prior {self} cannot be a prior on a standard deviation: it is not positive. "
            "Use e.g. half_normal(1), student_t(3, 0, 1) or exponential(1)."
        )

    def typical(self) -> float:
        """A central value of a positive prior, used to start the sampler."""
        p = self.params
        if self.dist in ("half_normal", "half_student_t"):
            return p["sigma"]
        if self.dist == "half_cauchy":
            return p["beta"]
        if self.dist == "exponential":
            return 1 / p["lam"]
        if self.dist == "gamma":
            return p["alpha"] / p["beta"]
        if self.dist == "inv_gamma":
            return p["beta"] / (p["alpha"] + 1)
        if self.dist == "lognormal":
            return math.exp(p["mu"])
        if self.dist == "uniform":
            return (p["lower"] + p["upper"]) / 2
        return 1.0


@dataclass(frozen=True)
class PriorEntry:
    """One prior in force: its class, group, coefficient, distribution and origin."""

    cls: str
    group: str | None
    coef: str | None
    prior: Prior
    source: str  # "default" or "user"


class PriorTable:
    """Every prior in force, as brms's ``prior_summary``; prints as a table.

    Examples
    --------
    >>> import hierbayes as hb
    >>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"),
    ...              priors={"b": "normal(0, 50)"})
    >>> m.priors.get("b", coef="Days")
    Prior('normal(0, 50)')
    """

    def __init__(self, entries: list[PriorEntry]) -> None:
        self.entries = entries

    def get(self, cls: str, group: str | None = None, coef: str | None = None) -> Prior:
        """The prior on one parameter."""
        for e in self.entries:
            if e.cls == cls and e.group == group and e.coef == coef:
                return e.prior
        raise KeyError((cls, group, coef))

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame with columns prior, class, group, coef and source."""
        return pd.DataFrame(
            [
                {
                    "prior": str(e.prior),
                    "class": e.cls,
                    "group": e.group or "",
                    "coef": e.coef or "",
                    "source": e.source,
                }
                for e in self.entries
            ]
        )

    def __str__(self) -> str:
        return self.to_frame().to_string(index=False)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return self.to_frame().to_html(index=False)


_KEY = re.compile(r"^\s*(\w+)\s*(?:\[(.*)\])?\s*$")


def default_priors(design: Design) -> list[PriorEntry]:
    """The data-scaled default priors for a design (see the module docstring).

    The family gives the scale ``s``, the intercept's location and the
    dispersion's prior (:class:`hierbayes.families.base.Family`).
    """
    fam = design.family
    y = design.y
    s = fam.prior_scale(y) or 1.0
    out: list[PriorEntry] = []
    if design.intercept:
        loc = fam.intercept_location(y, design.trials)
        out.append(PriorEntry("Intercept", None, None, Prior("normal", loc, 2.5 * s), "default"))
    for j, name in enumerate(design.fixef_names):
        if name == "(Intercept)":
            continue
        sx = sample_sd(design.X[:, j])
        out.append(PriorEntry("b", None, name, Prior("normal", 0, 2.5 * s / (sx or 1.0)), "default"))
    for b in design.blocks:
        for j, term in enumerate(b.terms):
            sz = sample_sd(b.Z[:, j])
            out.append(
                PriorEntry("sd", b.group, term, Prior("half_student_t", 3, s / (sz or 1.0)), "default")
            )
        if b.correlated and b.term.structure == "us":
            out.append(PriorEntry("cor", b.group, None, Prior("lkj", 1), "default"))
        elif b.term.structure in ("cs", "ar1") and b.n_terms > 1:
            low = -1.0 / (b.n_terms - 1) if b.term.structure == "cs" else -1.0
            out.append(PriorEntry("cor", b.group, None, Prior("uniform", low, 1), "default"))
    dispersion = fam.dispersion_prior(s)
    if fam.dispersion and dispersion is not None:
        dist, params = dispersion
        out.append(PriorEntry(fam.dispersion, None, None, Prior(dist, *params), "default"))
    return out + _structure_priors(design)


def _structure_priors(design: Design) -> list[PriorEntry]:
    """Defaults for a residual structure: log-SD coefficients and phi."""
    res = design.residual
    out: list[PriorEntry] = []
    variance = getattr(res, "variance", None)
    if variance is not None:
        for j, name in enumerate(variance.names):
            sv = sample_sd(variance.V[:, j]) or 1.0
            out.append(PriorEntry("b_sigma", None, name, Prior("normal", 0, 2.5 / sv), "default"))
    correlation = getattr(res, "correlation", None)
    if correlation is not None:
        low = -1 if correlation.kind == "ar1" else 0
        out.append(PriorEntry("ar", None, None, Prior("uniform", low, 1), "default"))
    return out


def _check_range(key: str, entry: PriorEntry, prior: Prior) -> None:
    """A structured correlation's or phi's prior must be a uniform inside the default's range."""
    low, high = entry.prior.params["lower"], entry.prior.params["upper"]
    if prior.dist != "uniform" or not (low <= prior.params["lower"] < prior.params["upper"] <= high):
        what = "phi" if entry.cls == "ar" else f"the correlation of the {entry.group} term"
        raise PriorError(f"Prior for '{key}': {what} takes uniform(a, b) with {low:g} <= a < b <= "
                         f"{high:g}, not {prior}.")


def _matches(entry: PriorEntry, cls: str, inside: str | None, design: Design) -> tuple[bool, int]:
    """Whether a user key applies to an entry, and how specific it is (higher wins)."""
    if entry.cls != cls:
        return False, 0
    if inside is None:
        return True, 0
    if cls in ("b", "b_sigma"):
        return entry.coef == inside, 2
    group, _, coef = (part.strip() for part in inside.partition(","))
    block = design.block(entry.group) if entry.group else None
    in_group = block is not None and group in (block.group, block.factor)
    if cls == "cor" or not coef:
        return in_group, 1
    return in_group and entry.coef == coef, 2


def resolve_priors(design: Design, user: dict[str, Any] | None = None) -> PriorTable:
    """Combine the defaults with the user's priors, checking every user key.

    Parameters
    ----------
    design
        The model's design.
    user
        Keys such as ``"b"``, ``"b[Days]"``, ``"sd"``, ``"sd[Subject]"``,
        ``"sd[Subject, Days]"``, ``"cor"``, ``"cor[Subject]"``, ``"Intercept"``,
        ``"sigma"``, ``"shape"``; values are brms-style strings or :class:`Prior`.

    Raises
    ------
    PriorError
        For an unknown key, a key naming no parameter of the model, or a
        value that is not a distribution fit for its class.
    """
    entries = default_priors(design)
    if not user:
        return PriorTable(entries)
    if not isinstance(user, dict):
        raise PriorError(
            "priors must be a dict such as {'b': 'normal(0, 10)', 'sd': 'exponential(1)'}, "
            f"not {type(user).__name__}."
        )
    chosen: dict[int, tuple[int, Prior]] = {}
    for key, value in user.items():
        m = _KEY.match(str(key))
        if not m or m.group(1) not in CLASSES:
            raise PriorError(
                f"Unknown prior key '{key}'. Use a class ({', '.join(CLASSES)}), optionally "
                "narrowed: 'b[Days]', 'sd[Subject]', 'sd[Subject, Days]', 'cor[Subject]'."
            )
        cls, inside = m.group(1), m.group(2)
        inside = inside.strip() if inside is not None else None
        if cls in ("Intercept", "ar", *_DISPERSIONS) and inside:
            raise PriorError(f"The class '{cls}' has a single parameter; write '{cls}', not '{key}'.")
        if cls == "b" and inside == "(Intercept)":
            raise PriorError(
                "The intercept's prior has its own class: use the key 'Intercept' (it applies to "
                "the intercept of centred predictors, as in brms)."
            )
        try:
            prior = Prior.parse(value)
        except PriorError as err:
            raise PriorError(f"Prior for '{key}': {err}") from None
        if cls == "cor" and prior.dist not in ("lkj", "uniform"):
            raise PriorError(f"Prior for '{key}': correlations take lkj(eta), not {prior}.")
        if cls != "cor" and prior.dist == "lkj":
            raise PriorError(f"Prior for '{key}': lkj is for correlations ('cor'), not '{cls}'.")
        if prior.dist == "flat" and cls not in ("b", "b_sigma"):
            raise PriorError(f"Prior for '{key}': flat (improper) is allowed on fixed effects ('b') "
                             f"only, as brms's default there; give '{cls}' a proper prior.")
        if cls in ("sd", *_DISPERSIONS):
            try:
                prior = prior.half()
            except PriorError as err:
                raise PriorError(f"Prior for '{key}': {err}") from None
        hits = 0
        for i, e in enumerate(entries):
            ok, rank = _matches(e, cls, inside, design)
            if ok:
                if e.prior.dist == "uniform":  # phi, a structured term's correlation
                    _check_range(key, e, prior)
                elif cls == "cor" and prior.dist != "lkj":
                    raise PriorError(f"Prior for '{key}': correlations take lkj(eta), not {prior}.")
                hits += 1
                if i not in chosen or chosen[i][0] <= rank:
                    chosen[i] = (rank, prior)
        if not hits:
            raise PriorError(_no_match_message(key, cls, inside, entries))
    for i, (_, prior) in chosen.items():
        e = entries[i]
        entries[i] = PriorEntry(e.cls, e.group, e.coef, prior, "user")
    return PriorTable(entries)


def _no_match_message(key: str, cls: str, inside: str | None, entries: list[PriorEntry]) -> str:
    same = [e for e in entries if e.cls == cls]
    if not same:
        reason = {
            "Intercept": "the model has no intercept",
            "sigma": "the family has no residual SD",
            "shape": "the family has no shape parameter (the negative binomial and gamma have one)",
            "cor": "no random-effect block has two or more terms",
            "b": "the model has no fixed effects besides the intercept",
            "sd": "the model has no random effects",
            "b_sigma": "the model has no sigma= formula",
            "ar": "the model has no correlation= structure",
        }[cls]
        return f"The prior '{key}' applies to nothing: {reason}."
    if cls in ("b", "b_sigma"):
        options = ", ".join(f"'{cls}[{e.coef}]'" for e in same)
    else:
        options = ", ".join(
            sorted({f"'{cls}[{e.group}]'" for e in same} | {f"'{cls}[{e.group}, {e.coef}]'" for e in same if e.coef})
        )
    return f"The prior '{key}' names no parameter of this model ({inside!r} not found). Options: {options}."
