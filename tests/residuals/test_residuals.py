"""hierbayes.residuals: the residual model, and the design that carries it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import hierbayes as hb
from hierbayes.residuals import IID, ResidualModel
from hierbayes.spec.design import build_design
from hierbayes.spec.formula import parse_formula


def test_iid_with_a_scale():
    r = IID("sigma")
    assert r.is_iid and r.has_scale and r.kind == "iid"
    assert r.parameters == ("sigma",) and r.correlation_parameters == ()
    assert r.varcorr_rows() == [("Residual", None, None)]


def test_iid_without_a_scale():
    r = IID(None)
    assert r.is_iid and not r.has_scale
    assert r.parameters == () and r.varcorr_rows() == []


def test_iid_whitens_nothing():
    a = np.arange(6.0).reshape(3, 2)
    assert IID("sigma").whiten(np.zeros(0), a) is a
    assert IID("sigma").log_det(np.zeros(0), 3) == 0.0


def test_iid_density_is_the_normal_density():
    e = np.random.default_rng(0).normal(0, 2, size=50)
    np.testing.assert_allclose(IID("sigma").log_density(e, 2.0),
                               stats.norm.logpdf(e, 0, 2.0).sum(), rtol=1e-12)


def test_equality():
    assert IID("sigma") == IID("sigma") and IID("sigma") != IID(None)
    assert len({IID("sigma"), IID("sigma")}) == 1
    assert repr(IID("sigma")) == "IID(scale='sigma')"


def test_the_abstraction_needs_whiten_and_log_det():
    class Half(ResidualModel):
        kind = "half"

    with pytest.raises(TypeError, match="abstract"):
        Half("sigma")


@pytest.mark.parametrize(("family", "scale"), [("gaussian", "sigma"), ("bernoulli", None),
                                                ("poisson", None)])
def test_the_design_carries_the_familys_residual_model(family, scale):
    df = hb.datasets.load("sleepstudy").assign(y=lambda d: (d.Reaction > 300).astype(int))
    d = build_design(parse_formula("y ~ Days + (1 | Subject)"), df, family=family)
    assert d.residual == IID(scale) and d.residual.is_iid
    assert (d.varcorr_index()[-1] == ("Residual", None, None)) == (scale is not None)
