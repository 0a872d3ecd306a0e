"""Denominator degrees of freedom for t tests of fixed effects: Satterthwaite and Kenward-Roger.

Both approximate the distribution of ``t = L beta_hat / sqrt(L C L')`` by a t
distribution whose df measure how well the data pin down the variance
components that ``C = vcov(beta)`` depends on.

* **Satterthwaite**, as lmerTest: ``df = 2 (L C L')^2 / (g' A g)``. ``C`` is a
  function of ``varpar = (theta, sigma)``. ``g`` is the gradient of
  ``L C(varpar) L'``, and ``A = 2 H^-1`` is the asymptotic covariance of
  ``varpar``, from the Hessian ``H`` of the deviance (REML criterion, sigma not
  profiled). Both derivatives are numerical, by Richardson extrapolation with
  numDeriv's step rules, which lmerTest uses.
* **Kenward-Roger**, as pbkrtest's ``vcovAdj`` and ``Lb_ddf``: in the
  covariance parameters (variances and covariances of each term, and the
  residual variance), on which ``V = sum_i s_i G_i`` is linear, with the
  expected information. It also adjusts ``C`` for the small-sample bias of
  plugging in estimated variance components (``Phi_A``). It works with
  ``n x n`` matrices, so it is limited to data sets of moderate size.

:class:`LinearFunctions` (with :func:`satterthwaite_df` and
:func:`kenward_roger_df`) gives both for any linear function ``L beta``, as
emmeans needs them; for the unit vectors it gives the tables above.

Examples
--------
>>> import hierbayes as hb
>>> from hierbayes.freq.ddf import satterthwaite
>>> fit = hb.lmer("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
>>> [round(d, 2) for d in satterthwaite(fit)["df"]]
[22.81, 161.0]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.linalg import solve_triangular

from hierbayes.errors import DataError

if TYPE_CHECKING:
    from hierbayes.freq.mermod import MerMod

KR_MAX_ROWS = 5000


def _steps(x: np.ndarray, d: float, eps: float, zero_tol: float) -> np.ndarray:
    return np.abs(d * x) + eps * (np.abs(x) < zero_tol)


def _richardson(values: list, r: int) -> Any:
    """numDeriv's extrapolation of estimates made with steps h, h/2, h/4, ..."""
    a = list(values)
    for m in range(1, r):
        a = [(a[k + 1] * 4**m - a[k]) / (4**m - 1) for k in range(r - m)]
    return a[0]


def hessian(f, x: np.ndarray, d: float = 0.1, eps: float = 1e-4, r: int = 4) -> np.ndarray:
    """Hessian by central differences with Richardson extrapolation (numDeriv's ``genD``).

    The defaults are numDeriv's ``hessian``: first steps of 10% of each coordinate,
    halved three times and extrapolated. lmerTest's df come from exactly this
    Hessian, so the same steps reproduce them to about 1e-7.
    """
    x = np.asarray(x, dtype=float)
    n = len(x)
    f0 = f(x)
    h0 = _steps(x, d, eps, np.sqrt(np.finfo(float).eps / 7e-7))
    diag = np.empty(n)
    H = np.empty((n, n))
    for i in range(n):
        est, h = [], h0.copy()
        for _ in range(r):
            e = np.zeros(n)
            e[i] = h[i]
            est.append((f(x + e) - 2 * f0 + f(x - e)) / h[i] ** 2)
            h = h / 2
        diag[i] = H[i, i] = _richardson(est, r)
    for i in range(n):
        for j in range(i):
            est, h = [], h0.copy()
            for _ in range(r):
                e = np.zeros(n)
                e[i], e[j] = h[i], h[j]
                est.append((f(x + e) - 2 * f0 + f(x - e) - diag[i] * h[i] ** 2 - diag[j] * h[j] ** 2)
                           / (2 * h[i] * h[j]))
                h = h / 2
            H[i, j] = H[j, i] = _richardson(est, r)
    return H


def jacobian(f, x: np.ndarray, d: float = 1e-4, eps: float = 1e-4, r: int = 4) -> list[np.ndarray]:
    """Derivatives of an array-valued ``f`` along each coordinate (Richardson, as numDeriv)."""
    x = np.asarray(x, dtype=float)
    h0 = _steps(x, d, eps, np.sqrt(np.finfo(float).eps / 7e-7))
    out = []
    for i in range(len(x)):
        est, h = [], h0.copy()
        for _ in range(r):
            e = np.zeros(len(x))
            e[i] = h[i]
            est.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h[i]))
            h = h / 2
        out.append(_richardson(est, r))
    return out


def _vcov_beta(fit: MerMod, theta: np.ndarray, sigma: float) -> np.ndarray:
    dev = fit.deviance_function
    f = dev.factor(theta)
    q, p = dev.q_rest, dev.p
    inv = solve_triangular(f.LDD[q : q + p, q : q + p], np.eye(p), lower=True)
    return sigma**2 * inv.T @ inv


def _check(fit: MerMod, method: str) -> None:
    if not fit.reml and method == "kenward-roger":
        raise DataError("Kenward-Roger's method is for REML fits; refit with reml=True.")
    d = fit.design
    if method == "kenward-roger" and (not d.residual.is_iid
                                      or any(b.term.structure != "us" for b in d.blocks)):
        # its covariance is linear in lme4's variances; these structures' is not
        raise DataError("Kenward-Roger's method is not supported yet for residual or covariance "
                        "structures; use ddf='satterthwaite'.")
    if fit.design.X.shape[1] == 0:
        raise DataError("The model has no fixed effects to test.")


def _table(fit: MerMod, se: np.ndarray, df: np.ndarray) -> pd.DataFrame:
    beta = fit.estimates.beta
    t = beta / se
    return pd.DataFrame({"Estimate": beta, "Std. Error": se, "df": df, "t value": t,
                         "Pr(>|t|)": 2 * stats.t.sf(np.abs(t), df)},
                        index=fit.design.fixef_names)


def _satterthwaite_parts(fit: MerMod) -> tuple[np.ndarray, list[np.ndarray]]:
    """``A = 2 H^-1`` in ``varpar = (theta, sigma)``, and the derivatives of ``vcov(beta)`` in it."""
    dev = fit.deviance_function
    varpar = np.append(fit.theta, fit.sigma)

    def deviance(vp: np.ndarray) -> float:
        return dev.objective(dev.factor(vp[:-1]), sigma2=vp[-1] ** 2)

    H = hessian(deviance, varpar)
    try:
        A = 2 * np.linalg.inv(H)
        if np.any(np.linalg.eigvalsh(H) <= 0):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        # lmerTest falls back to a pseudo-inverse (with a warning) at boundary fits.
        A = 2 * np.linalg.pinv(H)
    jac = jacobian(lambda vp: _vcov_beta(fit, vp[:-1], vp[-1]), varpar)
    return A, jac


def satterthwaite(fit: MerMod) -> pd.DataFrame:
    """Fixed effects with Satterthwaite's df and p-values, as lmerTest's ``summary``.

    Returns
    -------
    pandas.DataFrame
        Estimate, Std. Error, df, t value, Pr(>|t|), one row per fixed effect.
    """
    _check(fit, "satterthwaite")
    A, jac = _satterthwaite_parts(fit)
    C = fit.estimates.vcov_beta
    p = C.shape[0]
    df = np.empty(p)
    for k in range(p):
        g = np.array([J[k, k] for J in jac])
        df[k] = 2 * C[k, k] ** 2 / (g @ A @ g)
    return _table(fit, np.sqrt(np.diag(C)), df)


def _covariance_parameters(fit: MerMod) -> tuple[list[np.ndarray], np.ndarray]:
    """pbkrtest's G matrices (dV / d s_i) and the parameters s (covariances, then sigma^2)."""
    d = fit.design
    n = d.n_obs
    G, s = [], []
    for blk, S in zip(d.blocks, fit.covariance(), strict=True):
        same = blk.index[:, None] == blk.index[None, :]
        for a in range(blk.n_terms):
            for b in range(a, blk.n_terms):
                za, zb = blk.Z[:, a], blk.Z[:, b]
                M = np.outer(za, zb)
                if a != b:
                    M = M + M.T
                G.append(same * M)
                s.append(S[a, b])
    G.append(np.eye(n))
    s.append(fit.sigma**2)
    return G, np.array(s)


def _kenward_roger_parts(fit: MerMod) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray]:
    """pbkrtest's ``vcovAdj``: ``Phi`` (= vcov(beta)), the adjusted ``Phi_A``, the ``P_i`` and ``W``."""
    n = fit.design.n_obs
    if n > KR_MAX_ROWS:
        raise DataError(f"Kenward-Roger's method works with {n} x {n} matrices here, too large "
                        f"(limit {KR_MAX_ROWS} rows). Use ddf='satterthwaite', which scales.")
    X = fit.design.X
    G, s = _covariance_parameters(fit)
    V = sum(si * Gi for si, Gi in zip(s, G, strict=True))
    Vinv = np.linalg.inv(V)
    Vinv = (Vinv + Vinv.T) / 2
    Phi = np.linalg.inv(X.T @ Vinv @ X)
    TT = Vinv @ X
    HH = [Gi @ Vinv for Gi in G]
    OO = [H @ X for H in HH]
    k = len(G)
    P = [-(o.T @ TT) for o in OO]
    P = [(m + m.T) / 2 for m in P]
    Q = {(i, j): OO[i].T @ Vinv @ OO[j] for i in range(k) for j in range(i, k)}
    IE2 = np.empty((k, k))
    for i in range(k):
        PhiPi = Phi @ P[i]
        for j in range(i, k):
            ktrace = np.sum(HH[i].T * HH[j])
            IE2[i, j] = IE2[j, i] = (ktrace - 2 * np.sum(Phi * Q[i, j])
                                     + np.sum(PhiPi * (P[j] @ Phi)))
    W = 2 * (np.linalg.inv(IE2) if np.min(np.abs(np.linalg.eigvalsh(IE2))) > 1e-10
             else np.linalg.pinv(IE2))
    U = np.zeros_like(Phi)
    for i in range(k):
        for j in range(i + 1, k):
            U += W[i, j] * (Q[i, j] - P[i] @ Phi @ P[j])
    U = U + U.T
    for i in range(k):
        U += W[i, i] * (Q[i, i] - P[i] @ Phi @ P[i])
    PhiA = Phi + 2 * Phi @ U @ Phi
    return Phi, PhiA, P, W


def _kr_df(L: np.ndarray, Phi: np.ndarray, P: list[np.ndarray], W: np.ndarray) -> float:
    # pbkrtest's Lb_ddf for one contrast reduces to df = 2 / A2
    g = np.array([L @ Phi @ Pi @ Phi @ L for Pi in P]) / (L @ Phi @ L)
    A2 = g @ W @ g
    return 2.0 / A2


def kenward_roger(fit: MerMod) -> pd.DataFrame:
    """Fixed effects with Kenward-Roger's df, adjusted SEs and p-values (pbkrtest, lmerTest).

    Returns
    -------
    pandas.DataFrame
        Estimate, Std. Error (from the adjusted covariance ``Phi_A``), df,
        t value, Pr(>|t|).
    """
    _check(fit, "kenward-roger")
    Phi, PhiA, P, W = _kenward_roger_parts(fit)
    p = Phi.shape[0]
    df = np.empty(p)
    for c in range(p):
        L = np.zeros(p)
        L[c] = 1.0
        df[c] = _kr_df(L, Phi, P, W)
    return _table(fit, np.sqrt(np.diag(PhiA)), df)


def z_table(fit: MerMod) -> pd.DataFrame:
    """Fixed effects with p-values from treating t as a standard normal z."""
    _check(fit, "z")
    beta = fit.estimates.beta
    se = np.sqrt(np.diag(fit.estimates.vcov_beta))
    z = beta / se
    return pd.DataFrame({"Estimate": beta, "Std. Error": se, "z value": z,
                         "Pr(>|z|)": 2 * stats.norm.sf(np.abs(z))}, index=fit.design.fixef_names)


METHODS = {"satterthwaite": satterthwaite, "kenward-roger": kenward_roger, "z": z_table}


def method_key(ddf: str) -> str:
    """A ``ddf`` name as :data:`METHODS` has it (``"KR"``, ``"Kenward_Roger"`` -> ``"kenward-roger"``)."""
    key = str(ddf).lower().replace("_", "-").replace(" ", "-")
    key = {"kr": "kenward-roger", "kenwardroger": "kenward-roger", "normal": "z"}.get(key, key)
    if key not in METHODS:
        raise ValueError(f"ddf must be one of {list(METHODS)}, not {ddf!r}.")
    return key


def fixef_tests(fit: MerMod, ddf: str) -> pd.DataFrame:
    """The fixed-effect table for a ``ddf`` method (``"satterthwaite"``, ``"kenward-roger"``, ``"z"``)."""
    return METHODS[method_key(ddf)](fit)


class LinearFunctions:
    """Estimates, SEs and df of linear functions ``L beta`` of a REML fit's fixed effects.

    What ``emmeans`` needs of an lmer fit: every row of ``L`` is one
    function, with its estimate, SE and df by ``method``:

    * ``"kenward-roger"``: the SE from pbkrtest's adjusted covariance ``Phi_A``
      and the df of ``pbkrtest::Lb_ddf(L, vcov, Phi_A)``, as emmeans's default
      for lmer fits;
    * ``"satterthwaite"``: the SE from ``vcov`` and ``df = 2 (L C L')^2 /
      (g' A g)``, as ``lmerTest::calcSatterth`` (emmeans's ``lmer.df =
      "satterthwaite"``);
    * ``"asymptotic"``: the SE from ``vcov`` and infinite df (z).

    The parts each method needs (the Hessian, pbkrtest's matrices) are computed
    once, on the first call, and reused for every ``L`` after.

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.lmer("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
    >>> lf = LinearFunctions(fit, "satterthwaite")
    >>> lf.table([[1, 0], [0, 1], [1, 4.5]])["df"].round(2).tolist()
    [22.81, 161.0, 17.0]
    """

    METHODS = ("kenward-roger", "satterthwaite", "asymptotic")

    def __init__(self, fit: MerMod, method: str = "kenward-roger") -> None:
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {list(self.METHODS)}, not {method!r}.")
        _check(fit, {"asymptotic": "z"}.get(method, method))
        self.fit = fit
        self.method = method
        self._parts: tuple | None = None

    def parts(self) -> tuple:
        if self._parts is None:
            self._parts = (_kenward_roger_parts(self.fit) if self.method == "kenward-roger" else
                           _satterthwaite_parts(self.fit) if self.method == "satterthwaite" else ())
        return self._parts

    def table(self, L: Any) -> pd.DataFrame:
        """Columns estimate, std_error, df: one row per row of ``L`` (functions x fixed effects).

        A row of zeros has estimate and SE 0 and df NaN.
        """
        L = np.atleast_2d(np.asarray(L, dtype=float))
        p = self.fit.design.X.shape[1]
        if L.shape[1] != p:
            raise DataError(f"L has {L.shape[1]} columns; the model has {p} fixed effects.")
        C = self.fit.estimates.vcov_beta
        est = L @ self.fit.estimates.beta
        df = np.full(len(L), np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.method == "kenward-roger":
                Phi, PhiA, P, W = self.parts()
                C = PhiA
                df = np.array([_kr_df(row, Phi, P, W) for row in L])
            elif self.method == "satterthwaite":
                A, jac = self.parts()
                var = np.einsum("ij,jk,ik->i", L, C, L)
                g = np.stack([np.einsum("ij,jk,ik->i", L, J, L) for J in jac], axis=1)
                df = 2 * var**2 / np.einsum("ij,jk,ik->i", g, A, g)
        var = np.einsum("ij,jk,ik->i", L, C, L)
        df = np.where(var > 0, df, np.nan)
        return pd.DataFrame({"estimate": est, "std_error": np.sqrt(np.maximum(var, 0)), "df": df})


def satterthwaite_df(fit: MerMod, L: Any) -> pd.DataFrame:
    """Estimate, SE and Satterthwaite df of each row of ``L beta`` (lmerTest's ``calcSatterth``).

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.lmer("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
    >>> satterthwaite_df(fit, [[1, 4.5]]).round(3).values.tolist()
    [[298.508, 9.05, 17.0]]
    """
    return LinearFunctions(fit, "satterthwaite").table(L)


def kenward_roger_df(fit: MerMod, L: Any) -> pd.DataFrame:
    """Estimate, adjusted SE and Kenward-Roger df of each row of ``L beta`` (pbkrtest's ``Lb_ddf``).

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.lmer("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
    >>> kenward_roger_df(fit, [[1, 4.5]]).round(3).values.tolist()
    [[298.508, 9.05, 17.0]]
    """
    return LinearFunctions(fit, "kenward-roger").table(L)
