"""hierbayes.families' registry: names, aliases, messages, and discovery of family modules."""

from __future__ import annotations

import sys
import textwrap

import pytest

import hierbayes.families as families
from hierbayes.errors import DataError
from hierbayes.families import FAMILIES, get_family


@pytest.mark.parametrize(("given", "name"), [
    ("gaussian", "gaussian"), ("normal", "gaussian"), ("Gaussian", "gaussian"),
    ("bernoulli", "bernoulli"), ("binomial", "binomial"), ("logistic", "bernoulli"),
    ("POISSON", "poisson"), ("nbinom2", "negbinomial"), ("negative_binomial", "negbinomial"),
])
def test_names_and_aliases(given, name):
    assert get_family(given) is FAMILIES[name]


def test_a_family_object_is_returned_as_is():
    assert get_family(FAMILIES["poisson"]) is FAMILIES["poisson"]


def test_unknown_family_message():
    with pytest.raises(DataError) as err:
        get_family("beta")
    assert str(err.value) == (
        "Unknown family 'beta'. Choose one of: gaussian, bernoulli, binomial, gamma, negbinomial, "
        "poisson.")


def test_links():
    fam = get_family("binomial", link="probit")
    assert str(fam) == "binomial (probit link)" and fam is get_family("binomial", "probit")
    assert fam != FAMILIES["binomial"] and fam == FAMILIES["binomial"].with_link("probit")
    assert get_family(fam) is fam and get_family(FAMILIES["binomial"], "probit") is fam
    with pytest.raises(DataError, match=r"The poisson family does not support the 'identity' "
                                        r"link here; it has: log\."):
        get_family("poisson", link="identity")


def test_gamma_needs_its_link_said():
    # R's and brms's Gamma() default to the inverse link: a silent log link would be another model
    with pytest.raises(DataError, match=r"The gamma family needs its link said.*inverse link"):
        get_family("gamma")
    assert str(get_family("gamma", link="log")) == "gamma (log link)"


def test_a_family_must_be_named_by_a_string():
    with pytest.raises(DataError, match=r"family must be a name such as 'gaussian', not 3\."):
        get_family(3)


def test_default_family_first_then_by_name():
    assert list(FAMILIES) == ["gaussian", "bernoulli", "binomial", "gamma", "negbinomial",
                              "poisson"]
    assert families.ALIASES == {"normal": "gaussian", "logistic": "bernoulli",
                                "negative_binomial": "negbinomial", "nbinom2": "negbinomial",
                                "negbin": "negbinomial"}


TOY = '''
    import numpy as np

    from hierbayes.families.gaussian import Gaussian


    class Toy(Gaussian):
        name = "toy"
        aliases = ("plaything",)
        kernel = "gaussian"


    FAMILY = Toy()
'''


def test_a_family_module_added_to_the_package_is_found(tmp_path, monkeypatch):
    (tmp_path / "toy.py").write_text(textwrap.dedent(TOY))
    (tmp_path / "helpers.py").write_text("X = 1\n")  # a module without FAMILY is skipped
    monkeypatch.setattr(families, "__path__", [*families.__path__, str(tmp_path)])
    for name in ("hierbayes.families.toy", "hierbayes.families.helpers"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    found = families.discover()
    assert list(found) == ["gaussian", "bernoulli", "binomial", "gamma", "negbinomial",
                           "poisson", "toy"]
    monkeypatch.setattr(families, "FAMILIES", found)
    monkeypatch.setattr(families, "ALIASES", families.aliases_of(found))
    assert get_family("plaything").name == "toy"
    assert str(get_family("toy")) == "toy (identity link)"
    monkeypatch.delitem(sys.modules, "hierbayes.families.toy")
    monkeypatch.delitem(sys.modules, "hierbayes.families.helpers")


def test_two_modules_with_one_name_are_refused(tmp_path, monkeypatch):
    (tmp_path / "zz_normal.py").write_text(
        "from hierbayes.families.gaussian import Gaussian\nFAMILY = Gaussian()\n")
    monkeypatch.setattr(families, "__path__", [*families.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "hierbayes.families.zz_normal", raising=False)
    with pytest.raises(RuntimeError, match="Two family modules define the family 'gaussian'"):
        families.discover()
    monkeypatch.delitem(sys.modules, "hierbayes.families.zz_normal")
