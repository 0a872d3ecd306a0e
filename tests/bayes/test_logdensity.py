"""The compiled log density: equal to PyMC's, its gradient exact, centred and marginal forms consistent."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy.special import gammaln

import hierbayes as hb
from hierbayes.bayes import codes
from hierbayes.bayes.native import NativeModel, cpc_cholesky
from hierbayes.bayes.pack import collapsed_block, kernel_of, pack
from hierbayes.bayes.posterior import linear_predictor

# the parameters sampled on the log scale besides the SDs: the families' dispersions
DISPERSIONS = ("sigma", "shape")


def pymc_name(name: str) -> str:
    """The PyMC value variable of one entry of the packed layout."""
    if name.startswith("eff_"):
        return "z_" + name[4:]
    if name.startswith(("sd_", "sdar_")) or name in DISPERSIONS:
        return name + "_log__"
    # phi, a cs/ar1 term's rho: PyMC's interval transform of its uniform prior is the kernel's logit
    return name + "_interval__" if name == "phi" or name.startswith("rho_") else name


def pymc_point(packed, theta):
    """The PyMC point of a packed model's unconstrained vector."""
    return {pymc_name(name): theta[off:off + (int(np.prod(shape)) if shape else 1)].reshape(shape)
            for name, (off, shape) in packed.layout.items()}


def pymc_grad_in_our_order(model, packed, flat):
    """PyTensor's gradient (value-variable order) rearranged into our layout."""
    parts, o = {}, 0
    for v in model.pymc_model.value_vars:
        size = int(np.prod(model.pymc_model.initial_point()[v.name].shape)) or 1
        parts[v.name] = flat[o:o + size]
        o += size
    out = np.zeros(packed.dim)
    for name, (off, shape) in packed.layout.items():
        out[off:off + (int(np.prod(shape)) if shape else 1)] = parts[pymc_name(name)]
    return out


def assert_equals_pymc(model, packed, points: int, noise: float, seed: int) -> None:
    """The packed density at jittered points: PyMC's up to a constant, its gradient PyTensor's."""
    logp = model.pymc_model.compile_logp()
    dlogp = model.pymc_model.compile_dlogp()
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(points):
        theta = packed.initial_point(start) + rng.normal(0, noise, packed.dim)
        lp, grad = packed.logp_grad(theta)
        point = pymc_point(packed, theta)
        diffs.append(lp - float(logp(point)))
        expected = pymc_grad_in_our_order(model, packed, dlogp(point))
        np.testing.assert_allclose(grad, expected, rtol=1e-8, atol=1e-8 * np.abs(expected).max())
    # equal up to the constants the kernel leaves out
    assert np.ptp(diffs) < 1e-9 * abs(lp)


@pytest.fixture(scope="module")
def extra_data(sleepstudy):
    rng = np.random.default_rng(3)
    df = sleepstudy.copy()
    df["x2"] = rng.normal(size=len(df))
    df["g2"] = rng.integers(0, 6, len(df)).astype(str)
    df["g3"] = rng.integers(0, 4, len(df)).astype(str)
    df["hit"] = (df["Reaction"] > df["Reaction"].median()).astype(int)
    df["count"] = rng.poisson(np.exp(1 + 0.1 * df["Days"]))
    # the GLMM families' responses and the rows' trials, exposures and weights
    df["n"] = rng.integers(1, 12, len(df))
    df["k"] = rng.binomial(df["n"], 1 / (1 + np.exp(1 - 0.2 * df["Days"])))
    df["prop"] = df["k"] / df["n"]
    df["expo"] = rng.uniform(0.5, 3.0, len(df))
    df["logexpo"] = np.log(df["expo"])
    df["count2"] = rng.poisson(df["expo"] * np.exp(0.5 + 0.1 * df["Days"]))
    mu = np.exp(1.0 + 0.1 * df["Days"])
    df["nb"] = rng.poisson(rng.gamma(2.0, mu / 2.0))
    df["pos"] = rng.gamma(3.0, mu / 3.0)
    df["w"] = rng.uniform(0.5, 2.0, len(df))
    # large counts with gaps of more than 32 between distinct values (the negative binomial
    # kernel's lgamma steps), and one response far from the rest
    df["nbbig"] = rng.poisson(rng.gamma(20.0, 5.0 * mu.to_numpy()))
    df.loc[df.index[0], "nbbig"] = 2000
    return df


# brms's default priors, as they can be set exactly (b flat, the centred intercept student_t)
BRMS_DEFAULTS = {"b": "flat", "Intercept": "student_t(3, 0, 2.5)", "sd": "student_t(3, 0, 2.5)"}

CASES = [
    # (formula, family, link, priors, weights, offset)
    ("Reaction ~ Days + (Days | Subject)", "gaussian", None, None, None, None),
    ("Reaction ~ Days + (Days || Subject) + (1 | g2)", "gaussian", None,
     {"sd": "exponential(0.1)", "sigma": "gamma(2, 0.1)", "b": "student_t(3, 0, 10)"}, None, None),
    ("Reaction ~ Days + (Days + x2 | Subject)", "gaussian", None,
     {"sd": "half_cauchy(10)", "sigma": "lognormal(3, 1)", "b": "cauchy(0, 10)", "cor": "lkj(3)"}, None, None),
    ("hit ~ Days + (1 | Subject) + (1 | g2:g3)", "bernoulli", None, {"sd": "half_normal(2)"}, None, None),
    ("count ~ Days + (Days | Subject)", "poisson", None, {"sd": "inv_gamma(3, 2)"}, None, None),
    # binomial with trials: cbind() with each link (a random slope; crossed blocks), a proportion
    ("cbind(k, n - k) ~ Days + (Days | Subject)", "binomial", "logit", {"sd": "half_normal(2)"}, None, None),
    ("cbind(k, n - k) ~ Days + x2 + (1 | Subject) + (1 | g2)", "binomial", "probit", None, None, None),
    ("cbind(k, n - k) ~ Days + (1 | Subject)", "binomial", "cloglog", {"sd": "exponential(1)"}, None, None),
    ("prop ~ Days + (1 | Subject) + (1 | g3)", "binomial", "logit", None, "n", None),
    # 0/1 responses: a probit link, and brms's defaults (b flat) on the Bernoulli kernel
    ("hit ~ Days + (1 | Subject) + (1 | g2:g3)", "bernoulli", "probit", None, None, None),
    ("hit ~ Days + x2 + (1 | Subject)", "binomial", "logit", BRMS_DEFAULTS, None, None),
    # Poisson with an offset: in the formula, and as offset= (a column); crossed; a slope
    ("count2 ~ Days + offset(log(expo)) + (1 | Subject) + (1 | g2)", "poisson", None, None, None, None),
    ("count2 ~ Days + (Days | Subject)", "poisson", None, None, None, "logexpo"),
    ("nb ~ Days + (1 | Subject) + (1 | g2)", "negbinomial", None, None, None, None),
    ("nb ~ Days + x2 + (Days | Subject)", "negbinomial", None, {"shape": "gamma(2, 0.5)"}, None, "logexpo"),
    ("nbbig ~ Days + (1 | Subject)", "negbinomial", None, None, None, None),
    ("pos ~ Days + x2 + (Days | Subject)", "gamma", "log", None, None, None),
    ("pos ~ Days + (1 | Subject) + (1 | g2)", "gamma", "log", {"shape": "exponential(0.5)"}, None, None),
    # Gaussian with prior weights, and with offsets
    ("Reaction ~ Days + (Days | Subject)", "gaussian", None, None, "w", None),
    ("Reaction ~ Days + offset(x2) + (1 | Subject) + (1 | g2)", "gaussian", None, None, "w", "x2"),
]


def _model(data, formula, family, link, priors, weights, offset):
    fam = hb.get_family(family, link=link)
    return hb.Model(formula, data, family=fam, priors=priors, weights=weights, offset=offset)


@pytest.mark.parametrize(("formula", "family", "link", "priors", "weights", "offset"), CASES)
def test_log_density_and_gradient_equal_pymc(extra_data, formula, family, link, priors, weights, offset):
    model = _model(extra_data, formula, family, link, priors, weights, offset)
    packed = pack(model.design, model.priors, collapse=False)
    logp = model.pymc_model.compile_logp()
    dlogp = model.pymc_model.compile_dlogp()
    rng = np.random.default_rng(0)
    # PyMC's Binomial forms p and 1 - p: with the probit and cloglog links they lose digits
    # once |eta| passes 3 (cloglog's 1 - p is exp(-e^eta), 2e-9 at eta = 3), so those cases
    # are compared nearer the start; far out the kernel is checked against SciPy instead
    # (test_binomial_links_stay_exact_far_out)
    jitter, noise = (0.5, 0.15) if link in ("probit", "cloglog") else (1.0, 0.3)
    diffs, scale = [], 1.0
    for seed in range(8):
        theta = packed.initial_point(seed, jitter=jitter) + rng.normal(0, noise, packed.dim)
        lp, grad = packed.logp_grad(theta)
        assert np.isfinite(lp) and np.all(np.isfinite(grad))
        point = pymc_point(packed, theta)
        reference = float(logp(point))
        if not np.isfinite(reference):
            # PyMC's Binomial takes log(1 - p) of p = sigmoid(eta), which rounds to 1 where
            # eta passes 37; only where the rows' eta is that far out
            eta = linear_predictor(model.design, packed.constrain(theta[None, None]))
            assert family == "binomial" and np.abs(eta).max() > 30
            continue
        diffs.append(lp - reference)
        scale = max(scale, abs(lp))
        expected = pymc_grad_in_our_order(model, packed, dlogp(point))
        np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
    assert len(diffs) >= 6
    # equal up to the normalising constants we leave out (and rounding of sums over rows)
    assert np.ptp(diffs) < 1e-10 * scale


def _fd_grad(packed, theta, h=1e-6):
    out = np.zeros(packed.dim)
    for k in range(packed.dim):
        e = np.zeros(packed.dim)
        e[k] = h
        out[k] = (packed.logp_grad(theta + e)[0] - packed.logp_grad(theta - e)[0]) / (2 * h)
    return out


def test_centred_form_is_the_same_density_in_other_coordinates(sleep_model):
    d, pri = sleep_model.design, sleep_model.priors
    nc, c = pack(d, pri, centred=[False]), pack(d, pri, centred=[True])
    rng = np.random.default_rng(1)
    theta = nc.initial_point(2) + rng.normal(0, 0.3, nc.dim)
    post = nc.constrain(theta[None, None, :])
    theta_c = theta.copy()
    off, (L, K) = nc.layout["eff_Subject"]
    # the centred block carries the intercept in its level means: a_j = Intercept + r_j
    assert c.absorb == (0, 0)
    a = post["r_Subject"][0, 0].copy()
    a[:, 0] += theta[c.layout["Intercept"][0]]
    theta_c[off:off + L * K] = a.ravel()
    # r = T z: the centred density is the non-centred one less L log|T|
    sd = post["sd_Subject"].ravel()
    Lc = cpc_cholesky(theta[nc.layout["cpc_Subject"][0]:][:1], 2)
    log_det_T = np.sum(np.log(sd * np.diag(Lc)))
    assert c.logp_grad(theta_c)[0] == pytest.approx(nc.logp_grad(theta)[0] - L * log_det_T, abs=1e-8)
    grad = c.logp_grad(theta_c)[1]
    np.testing.assert_allclose(grad, _fd_grad(c, theta_c), rtol=1e-5, atol=1e-5)
    # and back: constrain() recovers the same group effects
    np.testing.assert_allclose(c.constrain(theta_c[None, None, :])["r_Subject"], post["r_Subject"],
                               rtol=1e-10, atol=1e-10)


def _weights_and_offset(design):
    w = np.ones(design.n_obs) if design.weights is None else design.weights
    return w, np.zeros(design.n_obs) if design.offset is None else design.offset


def _dense_marginal_loglik(design, priors, packed, theta):
    """log N(y | offset + X beta, sigma^2 W^-1 + Z Sigma Z') by dense linear algebra."""
    X = pack(design, priors).data.X
    w, offset = _weights_and_offset(design)
    lay = packed.layout
    sigma = np.exp(theta[lay["sigma"][0]])
    V = sigma**2 * np.diag(1 / w)
    for blk in design.blocks:
        o, (K,) = lay[f"sd_{blk.group}"]
        L = np.eye(K)
        if blk.lkj:
            oc, (m,) = lay[f"cpc_{blk.group}"]
            L = cpc_cholesky(theta[oc:oc + m], K)
        T = np.exp(theta[o:o + K])[:, None] * L
        Zf = np.zeros((design.n_obs, blk.n_levels * K))
        for i, lev in enumerate(blk.index):
            Zf[i, lev * K:(lev + 1) * K] = blk.Z[i]
        V += Zf @ np.kron(np.eye(blk.n_levels), T @ T.T) @ Zf.T
    r = design.y - offset - X @ theta[:X.shape[1]]
    return -0.5 * np.linalg.slogdet(V)[1] - 0.5 * r @ np.linalg.solve(V, r)


@pytest.mark.parametrize("formula", [
    "Reaction ~ Days + (Days | Subject)",
    "Reaction ~ Days + (1 | Subject) + (1 | g2)",
    "Reaction ~ Days + (Days | Subject) + (x2 | g2) + (1 | g3)",
    "Reaction ~ Days + (Days || Subject) + (1 | g2)",
    "Reaction ~ Days + diag(Days | Subject) + (x2 | g2)",
])
@pytest.mark.parametrize("weighted", [False, True])
def test_marginal_density_is_the_integrated_likelihood(extra_data, formula, weighted):
    # with prior weights and an offset, the kernel reads rows scaled by sqrt(w), less the offset
    kw = {"weights": "w", "offset": "x2"} if weighted else {}
    model = hb.Model(formula, extra_data, **kw)
    w, offset = _weights_and_offset(model.design)
    marg = pack(model.design, model.priors, marginal=True)
    full = pack(model.design, model.priors, collapse=False)
    rng = np.random.default_rng(5)
    gaps = []
    for seed in range(3):
        theta = marg.initial_point(seed) + rng.normal(0, 0.3, marg.dim)
        # priors and LKJ terms: the full density at z = 0 less its Gaussian likelihood there
        theta_full = np.zeros(full.dim)
        for name, (off, shape) in marg.layout.items():
            size = int(np.prod(shape)) if shape else 1
            theta_full[full.layout[name][0]:full.layout[name][0] + size] = theta[off:off + size]
        sigma = np.exp(theta[marg.layout["sigma"][0]])
        resid = model.design.y - offset - full.data.X @ theta[:full.data.X.shape[1]]
        prior_part = full.logp_grad(theta_full)[0] - (
            -model.design.n_obs * np.log(sigma) - 0.5 * resid @ (w * resid) / sigma**2)
        lp, grad = marg.logp_grad(theta)
        gaps.append(lp - _dense_marginal_loglik(model.design, model.priors, marg, theta) - prior_part)
        np.testing.assert_allclose(grad, _fd_grad(marg, theta), rtol=2e-6, atol=2e-5)
    assert np.ptp(gaps) < 1e-8


def test_amalgamated_terms_are_one_diagonal_block(sleep_model):
    # (1 | Subject) + (0 + Days | Subject) is diag(Days | Subject) term by term: the marginal
    # kernel factors both as one block, and the exact draws split back into the two terms
    data = sleep_model.design.frame
    split = hb.Model("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", data)
    diag = hb.Model("Reaction ~ Days + diag(Days | Subject)", data)
    ps, pd_ = pack(split.design, split.priors, marginal=True), pack(diag.design, diag.priors, marginal=True)
    assert ps.groups == [[0, 1]] and ps.dim == pd_.dim
    theta = ps.initial_point(3)
    assert ps.logp_grad(theta)[0] == pytest.approx(pd_.logp_grad(theta)[0], rel=1e-12)
    a, b = ps.constrain(theta[None, None], seed=4), pd_.constrain(theta[None, None], seed=4)
    np.testing.assert_array_equal(a["r_Subject"][..., 0], b["r_Subject"][..., 0])
    np.testing.assert_array_equal(a["r_Subject.1"][..., 0], b["r_Subject"][..., 1])


def test_marginal_effect_draws_follow_their_conditional(extra_data):
    model = hb.Model("Reaction ~ Days + (Days | Subject) + (1 | g2)", extra_data)
    marg = pack(model.design, model.priors, marginal=True)
    theta = marg.initial_point(3)
    n = 6000
    post = marg.constrain(np.tile(theta, (1, n, 1)), seed=4)
    # exact conditional of the effects: b | y ~ N(S Z'V^-1 r, S - S Z'V^-1 Z S)
    d = model.design
    lay = marg.layout
    sigma = np.exp(theta[lay["sigma"][0]])
    Zs, Ss = [], []
    for blk in d.blocks:
        o, (K,) = lay[f"sd_{blk.group}"]
        L = cpc_cholesky(theta[lay[f"cpc_{blk.group}"][0]:][:1], 2) if blk.correlated else np.eye(K)
        T = np.exp(theta[o:o + K])[:, None] * L
        Zf = np.zeros((d.n_obs, blk.n_levels * K))
        for i, lev in enumerate(blk.index):
            Zf[i, lev * K:(lev + 1) * K] = blk.Z[i]
        Zs.append(Zf)
        Ss.append(np.kron(np.eye(blk.n_levels), T @ T.T))
    Z = np.hstack(Zs)
    S = np.zeros((Z.shape[1], Z.shape[1]))
    o = 0
    for s in Ss:
        S[o:o + len(s), o:o + len(s)] = s
        o += len(s)
    V = sigma**2 * np.eye(d.n_obs) + Z @ S @ Z.T
    X = marg.data.XtX.shape[0]
    Xc = pack(d, model.priors).data.X
    r = d.y - Xc @ theta[:X]
    mean = S @ Z.T @ np.linalg.solve(V, r)
    cov = S - S @ Z.T @ np.linalg.solve(V, Z @ S)
    draws = np.concatenate([post[f"r_{b.group}"].reshape(n, -1) for b in d.blocks], axis=1)
    sd = np.sqrt(np.diag(cov))
    z = (draws.mean(axis=0) - mean) / (sd / np.sqrt(n))
    assert np.abs(z).max() < 4.5, np.abs(z).max()
    np.testing.assert_allclose(draws.std(axis=0), sd, rtol=0.06)


def test_unsupported_priors_are_named():
    df = pd.DataFrame({"y": np.arange(12.0), "g": list("abc") * 4})
    model = hb.Model("y ~ 1 + (1 | g)", df, priors={"sd": "uniform(0, 10)"})
    assert "uniform" in model.own_sampler_obstacle()


def test_nested_centred_blocks_carry_their_parents():
    # teachers nested in schools, crossed with pupils' cohorts; all centred
    rng = np.random.default_rng(7)
    n = 400
    teacher = rng.integers(0, 12, n)
    school = teacher // 3
    cohort = rng.integers(0, 5, n)
    y = 10 + rng.normal(size=4)[school] + rng.normal(size=12)[teacher] + rng.normal(size=5)[cohort] \
        + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "school": school.astype(str), "teacher": teacher.astype(str),
                       "cohort": cohort.astype(str)})
    model = hb.Model("y ~ 1 + (1 | school) + (1 | teacher) + (1 | cohort)", df)
    nc = pack(model.design, model.priors, collapse=False)
    c = pack(model.design, model.priors, centred=[True] * 3, collapse=False)
    names = [b.group for b in model.design.blocks]
    parent_of = {names[g]: names[h] for g, (h, _) in enumerate(c.parents) if h >= 0}
    assert parent_of == {"teacher": "school"}
    assert names[c.absorb[0]] == "school"  # the centred block with the fewest levels takes the intercept
    rng = np.random.default_rng(8)
    theta = nc.initial_point(1) + rng.normal(0, 0.3, nc.dim)
    post = nc.constrain(theta[None, None, :])
    theta_c = theta.copy()
    mu = theta[nc.layout["Intercept"][0]]
    school_r = post["r_school"][0, 0, :, 0]
    cohort_r = post["r_cohort"][0, 0, :, 0]
    a_school = mu + school_r
    a = {"cohort": cohort_r, "school": a_school,
         "teacher": post["r_teacher"][0, 0, :, 0] + a_school[c.parents[names.index("teacher")][1]]}
    log_det = 0.0
    for b in model.design.blocks:
        off, (L, _) = nc.layout[f"eff_{b.group}"]
        theta_c[off:off + L] = a[b.group]
        log_det += L * np.log(post[f"sd_{b.group}"][0, 0, 0])
    assert c.logp_grad(theta_c)[0] == pytest.approx(nc.logp_grad(theta)[0] - log_det, abs=1e-8)
    np.testing.assert_allclose(c.logp_grad(theta_c)[1], _fd_grad(c, theta_c), rtol=1e-5, atol=1e-5)
    back = c.constrain(theta_c[None, None, :])
    for b in model.design.blocks:
        np.testing.assert_allclose(back[f"r_{b.group}"], post[f"r_{b.group}"], atol=1e-10)


def _same_density_up_to_a_constant(col, marg, rng) -> None:
    """The collapsed and marginal forms agree in gradient, and in value up to one constant."""
    gaps = []
    for seed in range(3):
        theta = marg.initial_point(seed) + rng.normal(0, 0.3, marg.dim)
        (lp1, g1), (lp2, g2) = col.logp_grad(theta), marg.logp_grad(theta)
        gaps.append(lp1 - lp2)
        np.testing.assert_allclose(g1, g2, rtol=1e-9, atol=1e-9)
    assert np.ptp(gaps) < 1e-8


def test_collapsed_intercept_block_is_the_marginal_likelihood(sleep_model, extra_data):
    # one random-intercept factor integrated out row by row equals the blocked marginal
    model = hb.Model("Reaction ~ Days + (1 | Subject)", extra_data)
    col = pack(model.design, model.priors)
    marg = pack(model.design, model.priors, marginal=True)
    assert col.collapsed == 0 and col.dim == marg.dim
    _same_density_up_to_a_constant(col, marg, rng=np.random.default_rng(9))
    # the effects drawn afterwards follow the same conditional as the marginal form's
    theta = marg.initial_point(4)
    a = col.constrain(np.tile(theta, (1, 4000, 1)), seed=1)["r_Subject"].reshape(4000, -1)
    b = marg.constrain(np.tile(theta, (1, 4000, 1)), seed=2)["r_Subject"].reshape(4000, -1)
    se = np.sqrt(a.var(axis=0) / 4000 + b.var(axis=0) / 4000)
    assert np.abs((a.mean(axis=0) - b.mean(axis=0)) / se).max() < 4.5
    np.testing.assert_allclose(a.std(axis=0), b.std(axis=0), rtol=0.1)


def test_collapsed_block_with_unequal_level_sizes(extra_data):
    # the kernel takes D_j's log and reciprocal once per distinct level size: with
    # sizes that differ and repeat, the value and gradient must still be the marginal's
    data = extra_data.sample(frac=0.6, random_state=4)
    sizes = data.groupby("Subject", observed=True).size()
    assert sizes.nunique() > 2 and sizes.duplicated().any()
    model = hb.Model("Reaction ~ Days + (1 | Subject)", data)
    col = pack(model.design, model.priors)
    marg = pack(model.design, model.priors, marginal=True)
    assert col.collapsed == 0
    _same_density_up_to_a_constant(col, marg, rng=np.random.default_rng(5))


def test_collapsed_block_beside_others_has_an_exact_gradient(extra_data):
    model = hb.Model("Reaction ~ Days + (1 | Subject) + (Days | g2) + (1 | g3)", extra_data)
    packed = pack(model.design, model.priors, centred=[False, True, False])
    assert [b.group for b in model.design.blocks][packed.collapsed] == "Subject"
    theta = packed.initial_point(2) + np.random.default_rng(3).normal(0, 0.3, packed.dim)
    np.testing.assert_allclose(packed.logp_grad(theta)[1], _fd_grad(packed, theta), rtol=1e-5, atol=1e-5)


def _slopes_data(sd_int: float, sd_x: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(20), 10)
    x = rng.normal(size=g.size)
    u = rng.normal(0, sd_int, 20)[g] + rng.normal(0, sd_x, 20)[g] * x
    return pd.DataFrame({"y": 1 + 0.5 * x + u + rng.normal(0, 1, g.size), "x": x, "g": g})


@pytest.mark.parametrize("sd_int, sd_x, centred", [
    (2.0, 2.0, True),    # both terms well informed by each group's 10 rows
    (2.0, 0.05, False),  # the slope's SD is tiny: centring would put a funnel on it
    (0.05, 2.0, False),
    (0.05, 0.05, False),
])
def test_a_block_is_centred_only_when_every_term_is_informed(sd_int, sd_x, centred):
    from hierbayes.bayes.policy import choose_centring

    design = hb.Model("y ~ x + (x | g)", _slopes_data(sd_int, sd_x)).design
    assert choose_centring(design) == [centred]
    # an intercept-only block follows its intercept alone
    assert choose_centring(hb.Model("y ~ x + (1 | g)", _slopes_data(sd_int, sd_x)).design) == [sd_int > 1]


def _to_centred(nc, c, theta):
    """A non-centred point in the centred packing's coordinates, and log|d(centred)/d(non-centred)|.

    Per centred block, the level values are ``a_j = mu_j + r_j`` with ``r = T z`` and ``mu_j``
    what the packing's level means carry: the intercept, a nested parent's level value and
    the carried fixed effects. Only ``r = T z`` has a Jacobian (``L log|T|`` per block).
    """
    post = nc.constrain(theta[None, None, :])
    out = theta.copy()
    values: dict[int, np.ndarray] = {}
    log_det = 0.0
    # parents before their children: a child's level values carry its parent's
    for g in sorted(range(len(c.blocks)), key=lambda g: c.blocks[g].n_levels):
        if not c.centred[g]:
            continue
        blk = c.blocks[g]
        a = post[f"r_{blk.group}"][0, 0].copy()
        if c.absorb[0] == g:
            a[:, c.absorb[1]] += theta[c.layout["Intercept"][0]]
        carried = c.carried[g]
        if carried.columns:
            a[:, carried.term] += carried.values @ theta[carried.columns]
        h, mapping = c.parents[g]
        if h >= 0:
            a[:, 0] += values[h][mapping, 0]
        values[g] = a
        off, _ = c.layout[f"eff_{blk.group}"]
        out[off:off + a.size] = a.ravel()
        # T = diag(sd) L with L L' the correlation matrix
        L = np.linalg.cholesky(post[f"cor_{blk.group}"][0, 0]) if blk.correlated else np.eye(blk.n_terms)
        log_det += blk.n_levels * np.sum(np.log(post[f"sd_{blk.group}"][0, 0] * np.diag(L)))
    return out, log_det


@pytest.fixture(scope="module")
def level_data(extra_data):
    """extra_data with predictors constant within Subject (w) and within g2 (v)."""
    df = extra_data.copy()
    rng = np.random.default_rng(11)
    subjects = sorted(df["Subject"].unique())
    w = dict(zip(subjects, rng.integers(0, 2, len(subjects)).astype(float), strict=True))
    df["w"] = df["Subject"].map(w).astype(float)
    df["v"] = df["g2"].map({g: float(i) ** 1.5 for i, g in enumerate(sorted(df["g2"].unique()))})
    df["sex"] = np.where(df["w"] > 0, "male", "female")
    return df


CARRIED_CASES = [
    # (formula, family, centred, priors, columns each block's level means carry)
    ("hit ~ Days + sex + x2 + (1 | Subject)", "bernoulli", [True], {"sd": "half_normal(2)"},
     [["sexmale"]]),
    ("count ~ Days + w + x2 + (Days | Subject)", "poisson", [True], {"sd": "inv_gamma(3, 2)"},
     [["w"]]),
    # g2 (6 levels) takes the intercept; Subject carries w without it
    ("Reaction ~ Days + w + v + (1 | Subject) + (1 | g2)", "gaussian", [True, True],
     {"sd": "exponential(0.1)", "b": "student_t(3, 0, 10)"}, [["w"], ["v"]]),
    # a block with a slope: its intercept term carries w; correlated, LKJ(3)
    ("Reaction ~ Days + w + (Days | Subject)", "gaussian", [True], {"cor": "lkj(3)"}, [["w"]]),
    # v is constant within g2, which is not centred: nothing carries it; the slope's own
    # block has no intercept term to carry anything
    ("Reaction ~ Days + w + v + (Days || Subject) + (1 | g2)", "gaussian", [True, True, False], None,
     [["w"], [], []]),
]


def _agrees_with_pymc(model, nc, c, rng):
    """The carried form ``c`` is the non-centred ``nc``'s density (PyMC's) in other coordinates."""
    logp = model.pymc_model.compile_logp()
    diffs, scale = [], 1.0
    for seed in range(8):
        theta = nc.initial_point(seed) + rng.normal(0, 0.5, nc.dim)
        theta_c, log_det = _to_centred(nc, c, theta)
        lp_c, _ = c.logp_grad(theta_c)
        # the centred density is PyMC's less the Jacobian of r = T z, up to a constant
        diffs.append(lp_c - (float(logp(pymc_point(nc, theta))) - log_det))
        scale = max(scale, abs(lp_c))
        back = c.constrain(theta_c[None, None, :])
        post = nc.constrain(theta[None, None, :])
        for b in model.design.blocks:
            np.testing.assert_allclose(back[f"r_{b.group}"], post[f"r_{b.group}"], atol=1e-9)
    assert np.ptp(diffs) < 1e-10 * scale
    # the gradient, nearer the start (far out, the counts' exp makes differences useless)
    for seed in range(3):
        theta_c, _ = _to_centred(nc, c, nc.initial_point(seed, jitter=0.5) + rng.normal(0, 0.1, nc.dim))
        np.testing.assert_allclose(c.logp_grad(theta_c)[1], _fd_grad(c, theta_c), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("formula", "family", "centred", "priors", "carried"), CARRIED_CASES)
def test_level_means_carrying_fixed_effects_are_pymcs_density_shifted(level_data, formula, family,
                                                                       centred, priors, carried):
    model = hb.Model(formula, level_data, family=family, priors=priors)
    nc = pack(model.design, model.priors, collapse=False)
    c = pack(model.design, model.priors, centred=centred, collapse=False)
    names = model.design.fixef_names
    got = [[names[j] for j in cr.columns] for cr in c.carried]
    assert got == carried
    assert c.dim == nc.dim
    _agrees_with_pymc(model, nc, c, np.random.default_rng(2))


def test_nested_blocks_carry_the_predictors_of_their_own_level():
    # teachers within schools, crossed with cohorts; a predictor at each level
    rng = np.random.default_rng(12)
    n = 500
    teacher = rng.integers(0, 15, n)
    school = teacher // 3
    cohort = rng.integers(0, 6, n)
    df = pd.DataFrame({
        "school": school.astype(str), "teacher": teacher.astype(str), "cohort": cohort.astype(str),
        "size": rng.normal(size=5)[school],          # constant within school (and so teacher)
        "years": rng.gamma(3.0, size=15)[teacher],   # constant within teacher only
        "late": rng.normal(size=6)[cohort],          # constant within cohort
        "x": rng.normal(size=n),
    })
    df["y"] = 2 + 0.5 * df["size"] - 0.3 * df["years"] + df["late"] + df["x"] + rng.normal(size=n)
    model = hb.Model("y ~ size + years + late + x + (1 | school) + (1 | teacher) + (1 | cohort)", df)
    nc = pack(model.design, model.priors, collapse=False)
    c = pack(model.design, model.priors, centred=[True] * 3, collapse=False)
    names = [b.group for b in model.design.blocks]
    fix = model.design.fixef_names
    assert {names[g]: [fix[j] for j in cr.columns] for g, cr in enumerate(c.carried)} == {
        "school": ["size"], "teacher": ["years"], "cohort": ["late"]}
    assert {names[g]: names[h] for g, (h, _) in enumerate(c.parents) if h >= 0} == {"teacher": "school"}
    _agrees_with_pymc(model, nc, c, np.random.default_rng(13))


def test_only_centred_blocks_with_rows_left_carry_fixed_effects(level_data):
    # Subject is integrated out row by row (collapsed), so w stays in the rows; g2 carries v
    model = hb.Model("Reaction ~ Days + w + v + (1 | Subject) + (1 | g2)", level_data)
    packed = pack(model.design, model.priors, centred=[True, True])
    names = model.design.fixef_names
    assert packed.collapsed == 0
    assert [[names[j] for j in cr.columns] for cr in packed.carried] == [[], ["v"]]
    theta = packed.initial_point(3) + np.random.default_rng(4).normal(0, 0.3, packed.dim)
    np.testing.assert_allclose(packed.logp_grad(theta)[1], _fd_grad(packed, theta), rtol=1e-5, atol=1e-5)
    # a column that varies within some level is never carried
    assert pack(model.design, model.priors, centred=[False, True]).carried[1].columns == [names.index("v")]
    varied = level_data.assign(v=level_data["v"] + 1e-9 * (level_data["Days"] == 3))
    m2 = hb.Model("Reaction ~ Days + w + v + (1 | Subject) + (1 | g2)", varied)
    assert pack(m2.design, m2.priors, centred=[False, True]).carried[1].columns == []



def _glmm_data(family: str, levels: int, per: int, sd: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(levels), per)
    w = rng.integers(0, 2, levels)[g]
    x = rng.normal(size=g.size)
    eta = (-0.3 if family == "bernoulli" else 0.5) + 0.5 * w + 0.4 * x + rng.normal(0, sd, levels)[g]
    y = rng.binomial(1, 1 / (1 + np.exp(-eta))) if family == "bernoulli" else rng.poisson(np.exp(eta))
    return pd.DataFrame({"y": y, "w": w.astype(float), "x": x, "g": g.astype(str)})


@pytest.mark.parametrize(("family", "levels", "per", "sd", "centred"), [
    # n_j V sd^2 (rows per level x Fisher information per row x the effects' variance):
    ("bernoulli", 100, 4, 0.3, False),   # about 0.09
    ("bernoulli", 50, 40, 1.5, True),    # about 20
    ("poisson", 100, 3, 0.2, False),     # about 0.25
    ("poisson", 50, 10, 0.7, True),      # about 13
])
def test_glmm_blocks_are_centred_by_the_information_in_their_rows(family, levels, per, sd, centred):
    # on data simulated the same way (seed 0), the other form had 40x, 29x, 24x and 14x
    # fewer ESS-bulk per 1,000 gradients (median of 3 seeds; docs/sampling.md)
    from hierbayes.bayes.policy import choose_centring

    design = hb.Model("y ~ w + x + (1 | g)", _glmm_data(family, levels, per, sd, 1), family=family).design
    assert choose_centring(design) == [centred]
    # and not by a hair: the moment guess of the ratio is a factor of 2 or more from 1
    assert choose_centring(design, threshold=0.5 if centred else 2.0) == [centred]


def test_bernoulli_rows_stay_exact_far_out_on_the_logit_scale(extra_data):
    # log(1 + e^eta) and inverse_logit(eta) share one exp(-|eta|): no overflow at |eta| of
    # hundreds, and PyTensor's value wherever the rows' eta lies (its gradient is nan at
    # eta = -700, so there the gradient is checked against differences)
    model = hb.Model("hit ~ Days + (1 | Subject)", extra_data, family="bernoulli")
    packed = pack(model.design, model.priors)
    logp, dlogp = model.pymc_model.compile_logp(), model.pymc_model.compile_dlogp()
    at = packed.layout["Intercept"][0]
    diffs, scale = [], 1.0
    for intercept in (-700.0, -30.0, -1.0, 0.0, 0.5, 30.0, 700.0):
        theta = packed.initial_point(1)
        theta[at] = intercept
        lp, grad = packed.logp_grad(theta)
        point = pymc_point(packed, theta)
        if abs(intercept) < 100:
            expected = pymc_grad_in_our_order(model, packed, dlogp(point))
            np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
        else:
            np.testing.assert_allclose(grad, _fd_grad(packed, theta), rtol=1e-6, atol=1e-4)
        diffs.append(lp - float(logp(point)))
        scale = max(scale, abs(lp))
    assert np.all(np.isfinite(diffs)) and np.ptp(diffs) < 1e-10 * scale


def test_collapsed_block_reads_the_offset_and_weights_turn_it_off(extra_data):
    # the collapsed block sums residuals of eta = offset + X beta (+ other blocks): with an
    # offset it still equals the marginal form (which takes the offset from y)
    model = hb.Model("Reaction ~ Days + (1 | Subject)", extra_data, offset="x2")
    col, marg = pack(model.design, model.priors), pack(model.design, model.priors, marginal=True)
    assert col.collapsed == 0
    _same_density_up_to_a_constant(col, marg, rng=np.random.default_rng(6))
    # the per-level closed form assumes equal weights: with weights no block is collapsed,
    # without a word when chosen automatically, and an explicit request is an error
    weighted = hb.Model("Reaction ~ Days + (1 | Subject)", extra_data, weights="w", offset="x2")
    assert collapsed_block(weighted.design) == -1
    assert pack(weighted.design, weighted.priors).collapsed == -1
    with pytest.raises(ValueError, match="prior weights has no collapsed"):
        pack(weighted.design, weighted.priors, collapse=True)
    full = pack(weighted.design, weighted.priors)
    marg = pack(weighted.design, weighted.priors, marginal=True)
    assert weighted.use_marginal() and full.dim > marg.dim


def _without_rows(data):
    """The same record with no rows: what is left is the priors (and the group effects' own)."""
    none = slice(0, 0)
    cut = {k: getattr(data, k)[none] for k in ("X", "y", "index", "Z")}
    cut.update({k: getattr(data, k)[none] for k in ("offset", "trials", "weights")
                if getattr(data, k) is not None})
    return dataclasses.replace(data, **cut, distinct=np.zeros(0), distinct_counts=np.zeros(0),
                               log_y_sum=0.0)


def _left_out(design) -> float:
    """The constant the kernels leave out of the rows' log-likelihood, as their files document it."""
    fam, y = design.family.name, design.y
    if fam == "gaussian":
        w, _ = _weights_and_offset(design)
        return -0.5 * design.n_obs * np.log(2 * np.pi) + 0.5 * np.log(w).sum()
    if fam in ("binomial", "bernoulli"):
        n = np.ones_like(y) if design.trials is None else design.trials
        return float(np.sum(gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)))
    if fam in ("poisson", "negbinomial"):
        return -float(np.sum(gammaln(y + 1)))
    assert fam == "gamma"
    return -float(np.sum(np.log(y)))


def _rows_part(packed, theta):
    """The rows' share of the compiled density at theta: the density less that without rows."""
    return packed.logp_grad(theta)[0] - NativeModel(_without_rows(packed.data), packed.dim).logp_grad(theta)[0]


def _family_loglik(model, packed, theta):
    """The family's pointwise log-likelihood (every constant) summed at theta's linear predictor."""
    post = packed.constrain(theta[None, None])
    eta = linear_predictor(model.design, post)[0, 0]
    d, fam = model.design, model.family
    disp = post[fam.dispersion].reshape(1) if fam.dispersion else None
    return float(fam.loglik(d.y, eta[None], disp, trials=d.trials, weights=d.weights).sum())


@pytest.mark.parametrize(("formula", "family", "link", "priors", "weights", "offset"), CASES)
def test_kernels_leave_out_only_the_responses_own_constant(extra_data, formula, family, link, priors,
                                                           weights, offset):
    # the rows' part of the compiled density is the family's log-likelihood (LOO's, with every
    # normalising constant) less a constant of the data alone: the binomial coefficient,
    # log y!, the gamma's log y, the Gaussian's 2 pi and the weights' 0.5 log w
    model = _model(extra_data, formula, family, link, priors, weights, offset)
    packed = pack(model.design, model.priors, collapse=False)
    rng = np.random.default_rng(1)
    for seed in range(4):
        theta = packed.initial_point(seed) + rng.normal(0, 0.3, packed.dim)
        expected = _family_loglik(model, packed, theta) - _left_out(model.design)
        assert _rows_part(packed, theta) == pytest.approx(expected, rel=1e-11, abs=1e-9)


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_binomial_links_stay_exact_far_out(extra_data, link):
    # log p and log(1 - p) without forming p: the value is SciPy's (log_ndtr for the probit)
    # wherever the rows' eta lies, the gradient the differences' (PyMC's graph loses digits there)
    model = hb.Model("cbind(k, n - k) ~ Days + (1 | Subject)", extra_data,
                     family=hb.get_family("binomial", link=link))
    packed = pack(model.design, model.priors)
    at = packed.layout["Intercept"][0]
    # cloglog's log(1 - p) = -e^eta: past eta = 30 the rows' sum nears overflow
    top = 30.0 if link == "cloglog" else 700.0
    for intercept in (-700.0, -40.0, -25.0, -8.0, 0.0, 0.5, 8.0, 25.0, 40.0, top):
        theta = packed.initial_point(1)
        theta[at] = min(intercept, top)
        lp, grad = packed.logp_grad(theta)
        assert np.isfinite(lp) and np.all(np.isfinite(grad))
        expected = _family_loglik(model, packed, theta) - _left_out(model.design)
        assert _rows_part(packed, theta) == pytest.approx(expected, rel=1e-12, abs=1e-9)
        # the density reaches -1e8 at eta = -700 (probit): a step of 1e-4 keeps the differences'
        # rounding (1e8 eps / h) below the tolerance, and their third derivative is small there
        np.testing.assert_allclose(grad, _fd_grad(packed, theta, h=1e-4), rtol=1e-6, atol=1e-4)


def test_a_binomial_with_one_trial_and_the_logit_link_is_the_bernoulli_kernel(extra_data):
    # family="binomial" on a 0/1 response runs the Bernoulli's kernel; the binomial kernel with
    # trials NULL computes the very same numbers (to the last bit)
    a = hb.Model("hit ~ Days + x2 + (1 | Subject)", extra_data, family="binomial")
    b = hb.Model("hit ~ Days + x2 + (1 | Subject)", extra_data, family="bernoulli")
    pa, pb = pack(a.design, a.priors), pack(b.design, b.priors)
    assert kernel_of(a.design) == kernel_of(b.design) == "bernoulli"
    assert pa.data.family == pb.data.family == codes.FAMILY_CODES["bernoulli"]
    binomial = NativeModel(dataclasses.replace(pa.data, family=codes.FAMILY_CODES["binomial"]), pa.dim)
    rng = np.random.default_rng(2)
    for seed in range(5):
        theta = pa.initial_point(seed) + rng.normal(0, 1.0, pa.dim)
        lp, grad = pa.logp_grad(theta)
        assert pb.logp_grad(theta)[0] == lp
        lp2, grad2 = binomial.logp_grad(theta)
        assert lp2 == lp and np.array_equal(grad2, grad)
    # and so the same draws
    fa = a.fit(draws=30, tune=30, chains=1, seed=3, progressbar=False, check=False)
    fb = b.fit(draws=30, tune=30, chains=1, seed=3, progressbar=False, check=False)
    np.testing.assert_array_equal(fa.posterior["fixef"], fb.posterior["fixef"])
