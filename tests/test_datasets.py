"""Shipped datasets: all present, R's level order, and fresh copies every load."""

from __future__ import annotations

import pandas as pd
import pytest

import hierbayes as hb
from tests.conftest import SHARED


def test_ships_every_reference_dataset():
    shipped = set(hb.datasets.names())
    expected = {p.name.removesuffix(".csv") for p in (SHARED / "data").glob("*.csv")}
    assert expected <= shipped


@pytest.mark.parametrize("name", ["sleepstudy", "gpa", "nurses", "pupils", "speed_dating", "biomass"])
def test_same_values_as_shared_csv(name):
    ours = hb.datasets.load(name)
    raw = pd.read_csv(SHARED / "data" / f"{name}.csv")
    assert ours.shape == raw.shape
    for col in raw.columns:
        assert ours[col].astype(str).tolist() == raw[col].astype(str).tolist(), col


def test_reference_levels_as_in_r():
    assert list(hb.datasets.load("nurses")["sex"].cat.categories) == ["Male", "Female"]
    assert list(hb.datasets.load("pupils")["ses"].cat.categories)[0] == "lowest"
    assert list(hb.datasets.load("gpa")["sex"].cat.categories) == ["female", "male"]


def test_loads_are_independent_and_named():
    a = hb.datasets.load("sleepstudy")
    a.loc[0, "Reaction"] = -1
    assert hb.datasets.load("sleepstudy").loc[0, "Reaction"] != -1
    assert a.attrs["name"] == "sleepstudy"
    with pytest.raises(hb.DataError, match="No dataset named 'nope'"):
        hb.datasets.load("nope")
