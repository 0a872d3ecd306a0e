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
    ("bernoulli", "bernoulli"), ("binomial", "bernoulli"), ("logistic", "bernoulli"),
    ("POISSON", "poisson"),
])
def test_names_and_aliases(given, name):
    assert get_family(given) is FAMILIES[name]


def test_a_family_object_is_returned_as_is():
    assert get_family(FAMILIES["poisson"]) is FAMILIES["poisson"]


def test_unknown_family_message():
    with pytest.raises(DataError) as err:
        get_family("gamma")
    assert str(err.value) == (
        "Unknown family 'gamma'. Choose one of: gaussian, bernoulli, poisson ('binomial' means "
        "bernoulli with a 0/1 response).")


def test_a_family_must_be_named_by_a_string():
    with pytest.raises(DataError, match=r"family must be a name such as 'gaussian', not 3\."):
        get_family(3)


def test_default_family_first_then_by_name():
    assert list(FAMILIES) == ["gaussian", "bernoulli", "poisson"]
    assert families.ALIASES == {"normal": "gaussian", "binomial": "bernoulli",
                                "logistic": "bernoulli"}


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
    assert list(found) == ["gaussian", "bernoulli", "poisson", "toy"]
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
