"""Example datasets, with R's factor levels so that fits name coefficients as lme4 does.

Examples
--------
>>> import hierbayes as hb
>>> df = hb.datasets.load("sleepstudy")
>>> df.shape
(180, 3)
>>> hb.datasets.names()[:3]
['biomass', 'cbpp', 'Dyestuff']
"""

from __future__ import annotations

import gzip
from importlib import resources

import pandas as pd

from hierbayes.errors import DataError

# Factor columns and their level order, as in R (treatment contrasts take the
# first level as reference). Columns not named here keep pandas' reading;
# ID-like numeric columns become categoricals of their sorted values.
_FACTORS: dict[str, dict[str, list[str] | None]] = {
    "sleepstudy": {"Subject": None},
    "gpa": {"student": None, "sex": ["female", "male"]},
    "nurses": {
        "hospital": None,
        "ward": None,
        "sex": ["Male", "Female"],
        "treatment": ["Ctrl", "Training"],
        "hospsize": ["small", "medium", "large"],
    },
    "pupils": {
        "sex": ["male", "female"],
        "ses": ["lowest", "2", "3", "4", "5", "highest"],
    },
    "InstEval": {"s": None, "d": None, "dept": None, "service": None},
    "cbpp": {"herd": None, "period": None},
    "grouseticks": {"INDEX": None, "BROOD": None, "LOCATION": None, "YEAR": None},
    "speed_dating": {"iid": None},
}

_DESCRIPTIONS = {
    "sleepstudy": "Reaction times (ms) of 18 subjects over 10 days of sleep deprivation (lme4).",
    "Dyestuff": "Yield of dyestuff from 6 batches, 5 preparations each (lme4).",
    "Penicillin": "Penicillin potency: 6 samples on 24 plates, crossed (lme4).",
    "Pastes": "Paste strength: 10 batches, 3 casks each, nested (lme4).",
    "InstEval": "Lecture evaluations at ETH Zurich: 73,421 ratings, crossed (lme4).",
    "cbpp": "Contagious bovine pleuropneumonia incidence by herd and period (lme4).",
    "grouseticks": "Ticks on red grouse chicks by brood, location and year (lme4).",
    "gpa": "Grade point average of 200 students on 6 occasions (Mixed Models with R).",
    "nurses": "Stress of 1000 nurses in 100 wards of 25 hospitals (Mixed Models with R).",
    "pupils": "Achievement of 1000 pupils in crossed primary and secondary schools (Hox).",
    "speed_dating": "Speed-dating decisions, 7707 rows with missing values (Mixed Models with R).",
    "biomass": "Simulated biomass of 5 plants at each of 20 sites, slopes on Temp vary by Site.",
}


def names() -> list[str]:
    """Names of the shipped datasets, sorted case-insensitively."""
    files = resources.files(__name__).joinpath("data").iterdir()
    found = [f.name.removesuffix(".csv.gz") for f in files if f.name.endswith(".csv.gz")]
    return sorted(found, key=str.lower)


def describe(name: str) -> str:
    """One line on what a dataset holds and where it comes from."""
    return _DESCRIPTIONS[_resolve(name)]


def _resolve(name: str) -> str:
    available = names()
    if name in available:
        return name
    lowered = {n.lower(): n for n in available}
    if name.lower() in lowered:
        return lowered[name.lower()]
    raise DataError(f"No dataset named '{name}'. Available: {', '.join(available)}.")


def _as_factor(col: pd.Series, levels: list[str] | None) -> pd.Categorical:
    if levels is not None:
        values = col.astype("string")
        unknown = set(values.dropna()) - set(levels)
        if unknown:  # the shipped files and this table must agree
            raise AssertionError(f"levels {sorted(unknown)} missing from the level table")
        return pd.Categorical(values, categories=levels)
    cats = sorted(col.dropna().unique())
    return pd.Categorical(col, categories=cats)


def load(name: str) -> pd.DataFrame:
    """Load a shipped dataset as a new DataFrame.

    Factor columns are pandas categoricals whose first level is R's reference
    level, so that coefficients come out named as in lme4 (``sexFemale``).
    ``df.attrs["name"]`` holds the dataset's name, which summaries print.

    Parameters
    ----------
    name
        One of :func:`names` (case-insensitive).

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> nurses = load("nurses")
    >>> list(nurses["hospsize"].cat.categories)
    ['small', 'medium', 'large']
    """
    key = _resolve(name)
    path = resources.files(__name__).joinpath("data", f"{key}.csv.gz")
    with path.open("rb") as raw, gzip.open(raw, "rt") as fh:
        df = pd.read_csv(fh, na_values=["NA"], keep_default_na=False)
    for col, levels in _FACTORS.get(key, {}).items():
        df[col] = _as_factor(df[col], levels)
    df.attrs["name"] = key
    return df


__all__ = ["describe", "load", "names"]
