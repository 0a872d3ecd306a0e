"""The compiled log density: equal to PyMC's, its gradient exact, centred and marginal forms consistent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.bayes.native import cpc_cholesky
from hierbayes.bayes.pack import pack


def _pymc_point(packed, theta):
    point = {}
    for name, (off, shape) in packed.layout.items():
        v = theta[off:off + (int(np.prod(shape)) if shape else 1)].reshape(shape)
        if name.startswith("eff_"):
            point["z_" + name[4:]] = v
        elif name.startswith("sd_") or name == "sigma":
            point[name + "_log__"] = v
        else:
            point[name] = v
    return point


def _pymc_grad_in_our_order(model, packed, flat):
    """PyTensor's gradient (value-variable order) rearranged into our layout."""
    parts, o = {}, 0
    for v in model.pymc_model.value_vars:
        size = int(np.prod(model.pymc_model.initial_point()[v.name].shape)) or 1
        parts[v.name] = flat[o:o + size]
        o += size
    out = np.zeros(packed.dim)
    for name, (off, shape) in packed.layout.items():
        key = ("z_" + name[4:]) if name.startswith("eff_") else (
            name + "_log__" if name.startswith("sd_") or name == "sigma" else name)
        out[off:off + (int(np.prod(shape)) if shape else 1)] = parts[key]
    return out


@pytest.fixture(scope="module")
def extra_data(sleepstudy):
    rng = np.random.default_rng(3)
    df = sleepstudy.copy()
    df["x2"] = rng.normal(size=len(df))
    df["g2"] = rng.integers(0, 6, len(df)).astype(str)
    df["g3"] = rng.integers(0, 4, len(df)).astype(str)
    df["hit"] = (df["Reaction"] > df["Reaction"].median()).astype(int)
    df["count"] = rng.poisson(np.exp(1 + 0.1 * df["Days"]))
    return df


CASES = [
    ("Reaction ~ Days + (Days | Subject)", "gaussian", None),
    ("Reaction ~ Days + (Days || Subject) + (1 | g2)", "gaussian",
     {"sd": "exponential(0.1)", "sigma": "gamma(2, 0.1)", "b": "student_t(3, 0, 10)"}),
    ("Reaction ~ Days + (Days + x2 | Subject)", "gaussian",
     {"sd": "half_cauchy(10)", "sigma": "lognormal(3, 1)", "b": "cauchy(0, 10)", "cor": "lkj(3)"}),
    ("hit ~ Days + (1 | Subject) + (1 | g2:g3)", "bernoulli", {"sd": "half_normal(2)"}),
    ("count ~ Days + (Days | Subject)", "poisson", {"sd": "inv_gamma(3, 2)"}),
]


@pytest.mark.parametrize(("formula", "family", "priors"), CASES)
def test_log_density_and_gradient_equal_pymc(extra_data, formula, family, priors):
    model = hb.Model(formula, extra_data, family=family, priors=priors)
    packed = pack(model.design, model.priors, collapse=False)
    logp = model.pymc_model.compile_logp()
    dlogp = model.pymc_model.compile_dlogp()
    rng = np.random.default_rng(0)
    diffs, scale = [], 1.0
    for seed in range(3):
        theta = packed.initial_point(seed) + rng.normal(0, 0.3, packed.dim)
        lp, grad = packed.logp_grad(theta)
        point = _pymc_point(packed, theta)
        diffs.append(lp - float(logp(point)))
        scale = max(scale, abs(lp))
        expected = _pymc_grad_in_our_order(model, packed, dlogp(point))
        np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
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


def _dense_marginal_loglik(design, priors, packed, theta):
    """log N(y | X beta, sigma^2 I + Z Sigma Z') by dense linear algebra."""
    X = pack(design, priors).data.X
    lay = packed.layout
    sigma = np.exp(theta[lay["sigma"][0]])
    V = sigma**2 * np.eye(design.n_obs)
    for blk in design.blocks:
        o, (K,) = lay[f"sd_{blk.group}"]
        L = np.eye(K)
        if blk.correlated:
            oc, (m,) = lay[f"cpc_{blk.group}"]
            L = cpc_cholesky(theta[oc:oc + m], K)
        T = np.exp(theta[o:o + K])[:, None] * L
        Zf = np.zeros((design.n_obs, blk.n_levels * K))
        for i, lev in enumerate(blk.index):
            Zf[i, lev * K:(lev + 1) * K] = blk.Z[i]
        V += Zf @ np.kron(np.eye(blk.n_levels), T @ T.T) @ Zf.T
    r = design.y - X @ theta[:X.shape[1]]
    return -0.5 * np.linalg.slogdet(V)[1] - 0.5 * r @ np.linalg.solve(V, r)


@pytest.mark.parametrize("formula", [
    "Reaction ~ Days + (Days | Subject)",
    "Reaction ~ Days + (1 | Subject) + (1 | g2)",
    "Reaction ~ Days + (Days | Subject) + (x2 | g2) + (1 | g3)",
    "Reaction ~ Days + (Days || Subject) + (1 | g2)",
])
def test_marginal_density_is_the_integrated_likelihood(extra_data, formula):
    model = hb.Model(formula, extra_data)
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
        resid = model.design.y - full.data.X @ theta[:full.data.X.shape[1]]
        prior_part = full.logp_grad(theta_full)[0] - (
            -model.design.n_obs * np.log(sigma) - 0.5 * resid @ resid / sigma**2)
        lp, grad = marg.logp_grad(theta)
        gaps.append(lp - _dense_marginal_loglik(model.design, model.priors, marg, theta) - prior_part)
        np.testing.assert_allclose(grad, _fd_grad(marg, theta), rtol=2e-6, atol=2e-5)
    assert np.ptp(gaps) < 1e-8


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
        diffs.append(lp_c - (float(logp(_pymc_point(nc, theta))) - log_det))
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
        point = _pymc_point(packed, theta)
        if abs(intercept) < 100:
            expected = _pymc_grad_in_our_order(model, packed, dlogp(point))
            np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
        else:
            np.testing.assert_allclose(grad, _fd_grad(packed, theta), rtol=1e-6, atol=1e-4)
        diffs.append(lp - float(logp(point)))
        scale = max(scale, abs(lp))
    assert np.all(np.isfinite(diffs)) and np.ptp(diffs) < 1e-10 * scale
