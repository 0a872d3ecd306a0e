"""Rows to predict: the fitted design replayed on new data, and the draws made from them.

Predictions reuse formulaic's frozen specs from fitting (:attr:`Design.x_spec`
and each block's ``spec``), so new data get the same contrasts, the same
reference levels and the same stateful transforms (``center(x)`` keeps the
fitted mean). A categorical level the fit never saw raises an error rather
than becoming a silent row of zeros. Grouping factors are matched by their
level labels; an unseen level either raises or is marked new, and the fits
decide what a new level gets: the population prediction (REML, as lme4's
``allow.new.levels = TRUE``) or draws from the fitted population distribution
(Bayesian, as brms's ``sample_new_levels = "gaussian"``).

Offsets enter the linear predictor: the formula's ``offset()`` terms are
evaluated on the new rows, and a model fitted with ``offset=`` needs the new
rows' offset given. Draws of new responses take each row's binomial trials
(the fitted rows', or ``cbind()``'s columns in the new data) and, for the
fitted rows, their prior weights.

Examples
--------
>>> import pandas as pd
>>> import hierbayes as hb
>>> from hierbayes.report.predict import prediction_rows
>>> fit = hb.lmer("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> rows = prediction_rows(fit.design, pd.DataFrame({"Days": [0, 9], "Subject": ["308", "new"]}))
>>> rows.X.tolist(), rows.index[0].tolist(), rows.new_levels[0]
([[1.0, 0.0], [1.0, 9.0]], [0, -1], ['new'])
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.errors import DataError, FormulaError
from hierbayes.linalg.linpred import linear_predictor
from hierbayes.spec.design import Design, model_matrix_from
from hierbayes.spec.formula import parse_formula
from hierbayes.spec.modelframe import NAME_CONSTANTS, level_label
from hierbayes.spec.naming import correlation_matrix


@dataclass
class PredictionRows:
    """The model's matrices for the rows to predict.

    Attributes
    ----------
    X
        Fixed-effect matrix (rows x fixed effects).
    Z
        Per random-effect block, the term's matrix (rows x terms).
    index
        Per block, each row's fitted level, or -1 for a new level or a block
        that ``re_form`` leaves out.
    new_index
        Per block, each row's position in ``new_levels``, or -1.
    new_levels
        Per block, the labels of levels the fit never saw, in order of appearance.
    included
        Per block, whether ``re_form`` keeps it.
    labels
        The rows' index labels (the new data's index, or the fitted rows').
    offset
        The rows' offset (None: none).
    trials
        The rows' binomial trials (None: one each, or unknown for new rows of a
        model with trials: :func:`check_trials`).
    weights
        The rows' prior weights (the fitted rows'; None for new rows: one each).
    fitted
        Whether these are the fitted rows themselves (a residual structure's
        series then correlate the rows' new errors).
    sigma_columns
        The columns of a ``sigma=`` formula at these rows (None: none, or
        ``newdata`` lacks their variables).
    """

    X: np.ndarray
    Z: list[np.ndarray]
    index: list[np.ndarray]
    new_index: list[np.ndarray]
    new_levels: list[list[str]]
    included: list[bool]
    labels: pd.Index
    offset: np.ndarray | None = None
    trials: np.ndarray | None = None
    weights: np.ndarray | None = None
    fitted: bool = False
    sigma_columns: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return self.X.shape[0]


def _no_random(re_form: Any) -> bool:
    if re_form is None:
        return False
    if isinstance(re_form, float) and np.isnan(re_form):
        return True
    return isinstance(re_form, str) and re_form.replace(" ", "") in ("~0", "NA", "0")


def blocks_in(design: Design, re_form: Any) -> list[bool]:
    """Which random-effect blocks a ``re_form`` keeps, as lme4's ``re.form``.

    ``None`` keeps all; ``"~0"`` (or ``"NA"``, lme4's ``re.form = NA``) none;
    a formula such as ``"~ (1 | Subject)"`` keeps the bars it names, each of
    which must be a bar of the model.

    Examples
    --------
    >>> import hierbayes as hb
    >>> d = hb.Model("y ~ 1 + (1 | a) + (1 | b)",
    ...              pd.DataFrame({"y": range(8), "a": [1, 2] * 4, "b": [1, 1, 2, 2] * 2})).design
    >>> blocks_in(d, "~ (1 | b)"), blocks_in(d, "~0"), blocks_in(d, None)
    ([False, True], [False, False], [True, True])
    """
    if re_form is None:
        return [True] * len(design.blocks)
    if _no_random(re_form):
        return [False] * len(design.blocks)
    if not isinstance(re_form, str):
        raise FormulaError(f"re_form must be None, '~0' or a formula string such as "
                           f"'~ (1 | Subject)', not {re_form!r}.")
    text = re_form.strip()
    if not text.startswith("~"):
        raise FormulaError(f"re_form '{re_form}' must start with '~', as in '~ (1 | Subject)'.")
    parsed = parse_formula("y " + text)
    if not parsed.random:
        raise FormulaError(f"re_form '{re_form}' names no random-effect bar; write '~0' for "
                           "predictions without group effects.")
    keep = [False] * len(design.blocks)
    for term in parsed.random:
        matches = [i for i, b in enumerate(design.blocks)
                   if b.term.group == term.group and _same_expr(b.term.expr, term.expr)]
        if not matches:
            bars = ", ".join(str(b.term) for b in design.blocks)
            raise FormulaError(f"re_form's term {term} is not a random-effect term of the model. "
                               f"The model's terms are: {bars}.")
        for i in matches:
            keep[i] = True
    return keep


def _same_expr(a: str, b: str) -> bool:
    def norm(s: str) -> frozenset[str]:
        parts = {p.strip() for p in s.replace(" ", "").split("+")}
        if "0" not in parts and "-1" not in parts:
            parts.add("1")
        return frozenset(parts)

    return norm(a) == norm(b)


def _needed(design: Design, included: list[bool]) -> list[str]:
    labels = list(design.x_variables)
    groups: list[str] = []
    for blk, keep in zip(design.blocks, included, strict=True):
        if keep:
            labels += [v for v in blk.variables if v not in labels]
            groups += list(blk.term.group)
    columns = design.model_frame.columns(labels) + groups
    return sorted(set(columns) - (set(NAME_CONSTANTS) - set(design.frame.columns)))


def replay(design: Design, spec: Any, frame: pd.DataFrame, labels: list[str], where: str):
    """A frozen formulaic spec on new rows, over the model frame replayed with the fit's state.

    The replay refuses levels the fit never saw (a silent row of zeros otherwise).
    """
    from formulaic.errors import DataMismatchWarning

    context = design.model_frame.evaluate(frame, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataMismatchWarning)
        try:
            return model_matrix_from(spec, context, len(frame), where)
        except DataMismatchWarning as err:
            raise DataError(f"newdata has values the fitted data did not have in the {where}: "
                            f"{err}") from None


def _labels(frame: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    parts = [frame[c].map(level_label).astype(str).to_numpy() for c in columns]
    out = parts[0]
    for p in parts[1:]:
        out = np.char.add(np.char.add(out, ":"), p)
    return out


def formula_offset(design: Design, frame: pd.DataFrame) -> np.ndarray | None:
    """The formula's ``offset()`` terms summed on ``frame``'s rows (None without any)."""
    if not design.offset_terms:
        return None
    values = design.model_frame.evaluate(frame, design.offset_terms)
    total = None
    for lab in design.offset_terms:
        v = np.asarray(values[lab], dtype=float).reshape(-1)
        total = v.copy() if total is None else total + v
    return total


def offset_argument(design: Design) -> np.ndarray | None:
    """The fitted rows' offset from ``offset=`` (beyond the formula's terms), or None without one.

    The design keeps their sum; the terms are summed again on the fitted rows in
    the order the design added them, so that without ``offset=`` the
    difference is exactly zero.
    """
    if design.offset is None:
        return None
    terms = formula_offset(design, design.frame)
    part = design.offset if terms is None else design.offset - terms
    return part if np.any(part != 0) else None


def _new_offset(design: Design, frame: pd.DataFrame, newdata: pd.DataFrame, offset: Any) -> np.ndarray | None:
    total = formula_offset(design, frame)
    if offset is None:
        if offset_argument(design) is not None:
            raise DataError("This model was fitted with offset=, so predictions for new rows need "
                            "their offset: pass offset= (a column of newdata, or one value per "
                            "row). The formula's offset() terms are evaluated on newdata itself.")
        return total
    if isinstance(offset, str):
        if offset not in newdata.columns:
            raise DataError(f"offset={offset!r} names no column of newdata.")
        given = newdata[offset].to_numpy(dtype=float)
    else:
        given = np.asarray(offset, dtype=float)
        if given.shape != (len(newdata),):
            raise DataError(f"offset= needs one value per row of newdata ({len(newdata)}), not an "
                            f"array of shape {given.shape}.")
    if not np.isfinite(given).all():
        raise DataError("offset= has missing or infinite values for newdata.")
    return given if total is None else total + given


def _new_trials(design: Design, newdata: pd.DataFrame) -> np.ndarray | None:
    """New rows' trials from ``cbind()``'s columns, where the model has trials and newdata has them."""
    label = design.response_label
    if design.trials is None or not label.startswith("cbind("):
        return None
    columns = design.model_frame.columns([label])
    if any(c not in newdata.columns for c in columns):
        return None
    counts = np.asarray(design.model_frame.evaluate(newdata.loc[:, columns], [label])[label], dtype=float)
    return counts[:, 0] + counts[:, 1]


def check_trials(design: Design, rows: PredictionRows) -> None:
    """Refuse (:class:`DataError`) to draw new binomial responses for rows whose trials are unknown."""
    if design.trials is not None and rows.trials is None:
        how = (f"give newdata the columns of {design.response_label}" if
               design.response_label.startswith("cbind(") else
               "refit with cbind(successes, failures) and give newdata those columns")
        raise DataError("New responses of a binomial model with trials need each new row's trials: "
                        f"{how}. Predictions of the mean (kind='mean') need none.")


def prediction_rows(design: Design, newdata: pd.DataFrame | None = None, re_form: Any = None,
                    allow_new_levels: bool = True, offset: Any = None) -> PredictionRows:
    """The design's matrices for ``newdata`` (or the fitted rows when it is None).

    Parameters
    ----------
    design
        The fitted design.
    newdata
        Rows to predict; it needs the columns the fixed part and the kept
        random-effect terms use (not the response). It is never modified.
    re_form
        Which group effects to include: None (all), ``"~0"`` (none) or a
        formula naming some of the model's bars.
    allow_new_levels
        Whether a level of a grouping factor that the fit never saw is
        allowed (marked new) or raises :class:`DataError`.
    offset
        The new rows' offset beyond the formula's ``offset()`` terms (a column of
        ``newdata`` or one value per row); needed when the model was fitted with
        ``offset=``, refused for the fitted rows.
    """
    included = blocks_in(design, re_form)
    if newdata is None:
        if offset is not None:
            raise DataError("offset= is for newdata; the fitted rows have their own.")
        return PredictionRows(
            X=design.X, Z=[b.Z for b in design.blocks],
            index=[b.index if keep else np.full(design.n_obs, -1)
                   for b, keep in zip(design.blocks, included, strict=True)],
            new_index=[np.full(design.n_obs, -1) for _ in design.blocks],
            new_levels=[[] for _ in design.blocks], included=included, labels=design.rows,
            offset=design.offset, trials=design.trials, weights=design.weights, fitted=True,
            sigma_columns=None if getattr(design.residual, "variance", None) is None
            else design.residual.variance.V)
    if not isinstance(newdata, pd.DataFrame):
        raise DataError(f"newdata must be a pandas DataFrame, not {type(newdata).__name__}.")
    if len(newdata) == 0:
        raise DataError("newdata has no rows.")
    needed = sorted(set(_needed(design, included)) | set(design.model_frame.columns(design.offset_terms)))
    absent = [c for c in needed if c not in newdata.columns]
    for_offset = [c for c in design.model_frame.columns(design.offset_terms) if c in absent]
    if for_offset:
        raise DataError(f"newdata lacks column(s) {for_offset} that the formula's offset "
                        f"{', '.join(design.offset_terms)} needs: add them (an exposure of each new row).")
    if absent:
        raise DataError(f"newdata lacks column(s) {absent} that the prediction needs (it needs "
                        f"{needed}). Add them, or leave out group effects with re_form='~0' "
                        "if only grouping factors are missing.")
    frame = newdata.loc[:, needed].copy()
    missing = frame.isna().sum()
    if missing.any():
        detail = ", ".join(f"{c} ({int(k)})" for c, k in missing.items() if k)
        raise DataError(f"newdata has missing values in columns the prediction uses: {detail}. "
                        "Drop or fill those rows first.")

    mm = replay(design, design.x_spec, frame, design.x_variables, "fixed part")
    X = mm.loc[:, design.x_columns].to_numpy(dtype=float)
    n = len(frame)
    Z, index, new_index, new_levels = [], [], [], []
    for blk, keep in zip(design.blocks, included, strict=True):
        if not keep:
            Z.append(np.zeros((n, blk.n_terms)))
            index.append(np.full(n, -1))
            new_index.append(np.full(n, -1))
            new_levels.append([])
            continue
        Z.append(replay(design, blk.spec, frame, blk.variables,
                         f"term {blk.term.source}").to_numpy(dtype=float))
        labels = _labels(frame, blk.term.group)
        lookup = {lv: i for i, lv in enumerate(blk.levels)}
        idx = np.array([lookup.get(lv, -1) for lv in labels], dtype=np.int64)
        unseen = list(dict.fromkeys(labels[idx < 0]))
        if unseen and not allow_new_levels:
            raise DataError(
                f"newdata has {len(unseen)} level(s) of '{blk.factor}' that the fit never saw "
                f"({unseen[:5]}). Pass allow_new_levels=True to predict them from the "
                "population distribution, or re_form='~0' for population-level predictions.")
        pos = {lv: i for i, lv in enumerate(unseen)}
        index.append(idx)
        new_index.append(np.array([pos.get(lv, -1) if i < 0 else -1 for lv, i in zip(labels, idx, strict=True)],
                                  dtype=np.int64))
        new_levels.append(unseen)
    return PredictionRows(X=X, Z=Z, index=index, new_index=new_index, new_levels=new_levels,
                          included=included, labels=newdata.index,
                          offset=_new_offset(design, frame, newdata, offset),
                          trials=_new_trials(design, newdata),
                          sigma_columns=sigma_columns(design, newdata, required=False))


def sigma_columns(design: Design, newdata: pd.DataFrame, required: bool = True) -> np.ndarray | None:
    """The ``sigma=`` formula's columns (intercept dropped) at ``newdata``'s rows, replayed.

    None where the design has no sigma formula, or (``required`` False) where
    ``newdata`` lacks a column it needs; with ``required`` that raises.
    """
    v = getattr(design.residual, "variance", None)
    if v is None:
        return None
    columns = design.model_frame.columns(v.variables)
    missing = [c for c in columns if c not in newdata.columns]
    if missing:
        if not required:
            return None
        raise DataError(f"newdata lacks {', '.join(missing)}, which the sigma= formula {v.formula} "
                        "needs for each row's residual SD.")
    mm = replay(design, v.spec, newdata.loc[:, columns], v.variables, "sigma= formula")
    return mm.to_numpy(dtype=float)[:, [j for j, c in enumerate(mm.columns) if c != "Intercept"]]


def eta_point(rows: PredictionRows, beta: np.ndarray, b: list[np.ndarray]) -> np.ndarray:
    """Linear predictor at one set of estimates (the rows' offset included); rows at a new level
    get no group effect.

    Parameters
    ----------
    rows
        From :func:`prediction_rows`.
    beta
        Fixed effects, ``(p,)``.
    b
        Per block, fitted levels' group effects, ``(levels, terms)``.
    """
    eta = linear_predictor(rows.X, beta, list(zip(rows.Z, rows.index, b, strict=True)))
    return eta if rows.offset is None else eta + rows.offset


def eta_draws(rows: PredictionRows, beta: np.ndarray, b: list[np.ndarray],
              b_new: list[np.ndarray | None]) -> np.ndarray:
    """Linear predictor for each of S draws.

    Parameters
    ----------
    rows
        From :func:`prediction_rows`.
    beta
        Fixed effects, ``(S, p)``.
    b
        Per block, fitted levels' group effects, ``(S, levels, terms)``.
    b_new
        Per block, new levels' group effects, ``(S, new levels, terms)``, or None.

    Returns
    -------
    numpy.ndarray
        ``(S, rows)``, the rows' offset included.
    """
    effects = []
    for Z, idx, nidx, bk, bn in zip(rows.Z, rows.index, rows.new_index, b, b_new, strict=True):
        # a row is at a fitted level or at a new one: each its own term, gathered by its index
        effects += [(Z, idx, bk), (Z, nidx, bn)]
    eta = linear_predictor(rows.X, beta, effects)
    return eta if rows.offset is None else eta + rows.offset


def new_level_effects(rng: np.random.Generator, n_new: int, cov_chol: np.ndarray) -> np.ndarray:
    """Group effects of new levels: N(0, L L') per draw, with ``cov_chol`` ``(S, q, q)``."""
    S, q = cov_chol.shape[0], cov_chol.shape[1]
    z = rng.standard_normal((S, n_new, q))
    return np.einsum("sij,snj->sni", cov_chol, z)


KINDS = ("link", "mean", "response")


def group_covariance_chol(posterior: Any, block: Any) -> np.ndarray:
    """Per draw, the Cholesky factor of a block's group-effect covariance, ``(S, q, q)``."""
    sd = np.asarray(posterior[f"sd_{block.group}"]).reshape(-1, block.n_terms)
    if block.correlated:
        q = block.n_terms
        pairs = np.asarray(posterior[f"cor_{block.group}"])
        cor = correlation_matrix(pairs.reshape(-1, pairs.shape[-1]), q)
        # LKJ draws can sit numerically on the boundary; a tiny ridge keeps Cholesky defined.
        chol = np.linalg.cholesky(cor + 1e-12 * np.eye(q))
        return sd[:, :, None] * chol
    return sd[:, :, None]


def _chunk(rows: PredictionRows, sl: slice) -> PredictionRows:
    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[sl]

    return PredictionRows(X=rows.X[sl], Z=[z[sl] for z in rows.Z], index=[i[sl] for i in rows.index],
                          new_index=[i[sl] for i in rows.new_index], new_levels=rows.new_levels,
                          included=rows.included, labels=rows.labels[sl], offset=cut(rows.offset),
                          trials=cut(rows.trials), weights=cut(rows.weights), fitted=False,
                          sigma_columns=cut(rows.sigma_columns))


def iter_posterior_draws(fit: Any, rows: PredictionRows, kind: str = "mean",
                         seed: int | np.random.Generator | None = None,
                         max_values: int = 20_000_000):
    """Posterior draws of predictions for a Bayesian fit, in blocks of rows.

    Yields ``(slice, draws)`` with draws ``(chains * draws, rows in the slice)``,
    each block at most ``max_values`` numbers, so that predicting a large
    data set does not hold every draw of every row at once.

    ``kind`` is ``"link"`` (the linear predictor), ``"mean"`` (the mean
    through the inverse link: a binomial's probability, as glmer's
    ``type = "response"``) or ``"response"`` (new observations, brms's
    ``posterior_predict``: successes out of the rows' trials for a binomial,
    with the family's dispersion and the rows' prior weights). New levels get group effects drawn from the fitted
    population distribution, one draw per level and posterior draw, shared by
    the level's rows in every block (brms's ``sample_new_levels = "gaussian"``).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}.")
    design = fit.design
    if kind == "response":
        check_trials(design, rows)
    post = fit.posterior
    rng = np.random.default_rng(seed)
    S = post.n_chains * post.n_draws
    beta = (np.asarray(post["fixef"]).reshape(S, -1) if "fixef" in post
            else np.zeros((S, design.X.shape[1])))
    b, b_new = [], []
    for blk, levels in zip(design.blocks, rows.new_levels, strict=True):
        b.append(np.asarray(post[f"r_{blk.group}"]).reshape(S, blk.n_levels, blk.n_terms))
        b_new.append(new_level_effects(rng, len(levels), group_covariance_chol(post, blk))
                     if levels else None)
    fam = design.family
    dispersion = np.asarray(post[fam.dispersion]).reshape(S) if fam.dispersion else None
    res = design.residual if not design.residual.is_iid else None
    step = max(1, max_values // S)
    if res is not None and kind == "response" and rows.fitted:
        step = rows.n_rows  # the fitted rows' series: their new errors are drawn together
    for start in range(0, rows.n_rows, step):
        sl = slice(start, min(start + step, rows.n_rows))
        part = _chunk(rows, sl) if step < rows.n_rows else rows
        eta = eta_draws(part, beta, b, b_new)
        if kind == "link":
            yield sl, eta
            continue
        if res is not None and kind == "response":
            yield sl, eta + structured_errors(res, post, part, S, rng)
            continue
        mean = fam.inverse_link(eta)
        yield sl, (mean if kind == "mean" else
                   fam.draw(rng, mean, dispersion, trials=part.trials, weights=part.weights))


def structured_errors(res: Any, post: Any, rows: PredictionRows, S: int,
                      rng: np.random.Generator) -> np.ndarray:
    """``(S, rows)`` new errors under a residual structure, one per posterior draw.

    The fitted rows get their series' correlation (and their own SDs); new
    rows, whose place in a series is unknown, independent errors with each
    row's SD ``sigma exp(v' gamma)`` (its marginal SD under any correlation).
    """
    sigma = np.asarray(post["sigma"]).reshape(S)
    gamma = np.asarray(post["b_sigma"]).reshape(S, -1) if "b_sigma" in post else None
    phi = np.asarray(post["phi"]).reshape(S) if "phi" in post else None
    if rows.fitted:
        return res.draw_errors(rng, sigma, gamma, phi)
    if gamma is not None and rows.sigma_columns is None:
        raise DataError(f"newdata lacks the variables of the sigma= formula {res.variance.formula}, "
                        "which new responses need for each row's residual SD.")
    V = rows.sigma_columns if gamma is not None else np.zeros((rows.n_rows, 0))
    return res.draw_sd(sigma, gamma, V) * rng.standard_normal((S, rows.n_rows))


def posterior_draws(fit: Any, newdata: pd.DataFrame | None = None, re_form: Any = None,
                    kind: str = "mean", allow_new_levels: bool = True,
                    seed: int | np.random.Generator | None = None,
                    offset: Any = None) -> tuple[np.ndarray, pd.Index]:
    """All posterior draws of predictions, ``(chains * draws, rows)``, and the rows' labels.

    See :func:`iter_posterior_draws` for ``kind`` and new levels, :func:`prediction_rows` for ``offset``.
    """
    rows = prediction_rows(fit.design, newdata, re_form, allow_new_levels, offset)
    S = fit.posterior.n_chains * fit.posterior.n_draws
    out = np.empty((S, rows.n_rows))
    for sl, draws in iter_posterior_draws(fit, rows, kind, seed):
        out[:, sl] = draws
    return out, rows.labels


STATISTICS = {
    "mean": lambda x: x.mean(axis=-1),
    "sd": lambda x: x.std(axis=-1, ddof=1) if x.shape[-1] > 1 else np.full(x.shape[:-1], np.nan),
    "min": lambda x: x.min(axis=-1),
    "max": lambda x: x.max(axis=-1),
}


def ppc_pvalues(y: np.ndarray, y_rep: np.ndarray, groups: dict[str, tuple[np.ndarray, list[str]]],
                statistics: tuple[str, ...] = ("mean", "sd", "min", "max")) -> pd.DataFrame:
    """Posterior predictive p-values ``P(T(y_rep) >= T(y))``, overall and per group level.

    Ties count half (the mid-p value), so discrete statistics (a bernoulli
    mean, a poisson min) do not pile up at 1.

    Parameters
    ----------
    y
        Observed response, ``(n,)``.
    y_rep
        Replicated responses, ``(S, n)``.
    groups
        Grouping factor name -> (each row's level index, level labels).
    statistics
        Names from :data:`STATISTICS`.

    Returns
    -------
    pandas.DataFrame
        Columns statistic, group (``"(all)"`` for the whole data), level,
        observed, p.
    """
    unknown = [s for s in statistics if s not in STATISTICS]
    if unknown:
        raise ValueError(f"Unknown statistics {unknown}; choose from {list(STATISTICS)}.")
    rows = []

    def add(stat: str, group: str, level: str, t_obs: float, t_rep: np.ndarray) -> None:
        p = (np.mean(t_rep > t_obs) + 0.5 * np.mean(t_rep == t_obs)) if np.isfinite(t_obs) else np.nan
        rows.append({"statistic": stat, "group": group, "level": level, "observed": t_obs, "p": p})

    for stat in statistics:
        add(stat, "(all)", "", float(STATISTICS[stat](y)), STATISTICS[stat](y_rep))
    for name, (index, levels) in groups.items():
        order = np.argsort(index, kind="stable")
        bounds = np.searchsorted(index[order], np.arange(len(levels) + 1))
        for k, level in enumerate(levels):
            sel = order[bounds[k] : bounds[k + 1]]
            if len(sel) == 0:
                continue
            for stat in statistics:
                add(stat, name, level, float(STATISTICS[stat](y[sel])), STATISTICS[stat](y_rep[:, sel]))
    return pd.DataFrame(rows)
