"""Saving fits: idata.to_netcdf round-trips exactly, fit.save / hb.load_fit rebuild the fit."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb


def quiet_fit(model, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.ConvergenceWarning)
        return model.fit(progressbar=False, **kw)


def assert_same_idata(a, b):
    import xarray as xr

    assert set(a.groups()) == set(b.groups())
    for group in a.groups():
        xr.testing.assert_identical(a[group], b[group])
        for name, var in a[group].data_vars.items():
            np.testing.assert_array_equal(var.to_numpy(), b[group][name].to_numpy(), err_msg=name)
        for name, coord in a[group].coords.items():
            np.testing.assert_array_equal(coord.to_numpy(), b[group][name].to_numpy(), err_msg=name)


def assert_same_fit(fit, back):
    assert str(back.summary()) == str(fit.summary())
    for accessor in ("fixef", "ranef", "varcorr", "coef"):
        pd.testing.assert_frame_equal(getattr(back, accessor)(), getattr(fit, accessor)(),
                                      check_exact=True)
    assert back.info == fit.info
    assert str(back.model.priors) == str(fit.model.priors)
    assert back.model.family == fit.model.family
    assert back.design.data_name == fit.design.data_name
    assert back.design.dropped_rows == fit.design.dropped_rows
    pd.testing.assert_frame_equal(back.design.frame, fit.design.frame, check_exact=True)
    assert_same_idata(fit.idata, back.idata)


def test_idata_to_netcdf_round_trips_exactly(sleep_fit, tmp_path):
    import arviz as az

    path = tmp_path / "idata.nc"
    sleep_fit.idata.to_netcdf(str(path))
    back = az.from_netcdf(str(path))
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data"} <= set(back.groups())
    assert_same_idata(sleep_fit.idata, back)
    attrs = back.posterior.attrs
    assert attrs["hierbayes_marginal"] == 1 and attrs["hierbayes_seed"] == 11
    assert json.loads(attrs["hierbayes_centred"]) == sleep_fit.info.centred
    assert back.sample_stats["diverging"].dtype == bool


def test_sleepstudy_fit_saves_and_loads(sleep_fit, tmp_path):
    sleep_fit.posterior_predictive(seed=3)  # a group added after the fit is saved too
    path = sleep_fit.save(tmp_path / "sleep.nc")
    back = hb.load_fit(path)
    assert isinstance(back, hb.BayesFit)
    assert "posterior_predictive" in back.idata.groups()
    assert_same_fit(sleep_fit, back)
    new = pd.DataFrame({"Days": [3, 9], "Subject": ["308", "new"]})
    pd.testing.assert_frame_equal(back.predict(new, seed=1), sleep_fit.predict(new, seed=1))


def _sleep_variants() -> pd.DataFrame:
    df = hb.datasets.load("sleepstudy").copy()
    df["slow"] = df["Reaction"] > 300                      # bool response
    df["count"] = np.round(df["Reaction"] / 50).astype(np.int32)
    df["week"] = np.where(df["Days"] < 5, "first", "second")  # a string column (pandas str)
    df["subj_obj"] = df["Subject"].astype(str).astype(object)  # an object column of strings
    df["dose"] = pd.Categorical(np.where(df["Days"] % 3 == 0, "lo", "hi"), categories=["lo", "hi"],
                                ordered=True)
    df["Days2"] = 2.0 * df["Days"]                          # aliased: dropped as lme4 drops it
    df.loc[[4, 17], "Days"] = np.nan                        # two rows dropped for missing values
    df.index = [f"r{i}" for i in range(len(df))]            # string row labels
    df.attrs["name"] = "sleep_variants"
    return df


CASES = {
    "gaussian": ("Reaction ~ Days + Days2 + week + (Days | Subject)", "gaussian",
                 {"b": "normal(0, 50)", "cor": "lkj(2)"}),
    "bernoulli": ("slow ~ Days + dose + (1 | subj_obj)", "bernoulli", None),
    "poisson": ("count ~ Days + (1 | Subject)", "poisson", {"sd": "half_normal(1)"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_families_save_and_load(case, tmp_path):
    formula, family, priors = CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.HierbayesWarning)
        model = hb.Model(formula, _sleep_variants(), family=family, priors=priors)
    fit = quiet_fit(model, draws=150, tune=150, chains=2, seed=4)
    back = hb.load_fit(fit.save(tmp_path / f"{case}.nc"))
    assert_same_fit(fit, back)
    assert back.design.dropped_rows == 2 and back.design.data_name == "sleep_variants"


@pytest.mark.parametrize(("data", "formula"), [
    ("nurses", "stress ~ age + sex + (1 | hospital/ward)"),                      # nested
    ("pupils", "achievement ~ sex + (1 | primary_school_id) + (1 | secondary_school_id)"),  # crossed
])
def test_nested_and_crossed_fits_save_and_load(data, formula, tmp_path):
    fit = quiet_fit(hb.Model(formula, hb.datasets.load(data)), draws=150, tune=150, chains=2, seed=2)
    back = hb.load_fit(fit.save(tmp_path / "fit.nc"))
    assert [b.group for b in back.design.blocks] == [b.group for b in fit.design.blocks]
    assert_same_fit(fit, back)


def test_not_a_fit_is_refused_clearly(sleep_fit, tmp_path):
    plain = tmp_path / "plain.nc"
    sleep_fit.idata.to_netcdf(str(plain))
    with pytest.raises(hb.FitFileError, match="holds no hierbayes fit.*fit.save"):
        hb.load_fit(plain)
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not a netCDF file at all")
    with pytest.raises(hb.FitFileError, match="not a netCDF file"):
        hb.load_fit(junk)
    with pytest.raises(hb.FitFileError, match="No file"):
        hb.load_fit(tmp_path / "missing.nc")


def _edit_group_attrs(path, **attrs):
    import h5py

    with h5py.File(path, "r+") as f:
        for key, value in attrs.items():
            f["hierbayes"].attrs[key] = value


def test_newer_format_and_changed_design_are_refused(sleep_fit, tmp_path):
    import h5py

    path = sleep_fit.save(tmp_path / "fit.nc")
    _edit_group_attrs(path, format=np.int64(2))
    with pytest.raises(hb.FitFileError, match="format 2 by a newer hierbayes.*Upgrade"):
        hb.load_fit(path)
    path = sleep_fit.save(tmp_path / "fit2.nc")
    with h5py.File(path, "r") as f:
        meta = json.loads(f["hierbayes"].attrs["meta"])
    meta["design"]["X_sums"][1] += 1.0  # as if the formula now gave another column
    _edit_group_attrs(path, meta=json.dumps(meta))
    with pytest.raises(hb.FitFileError, match="evaluates differently"):
        hb.load_fit(path)


def test_a_fit_that_cannot_be_stored_fails_at_save_and_writes_nothing(sleepstudy, tmp_path):
    df = sleepstudy.assign(when=pd.Timestamp("2024-01-01") + pd.to_timedelta(sleepstudy["Days"], "D"))
    fit = quiet_fit(hb.Model("Reaction ~ Days + (1 | when)", df), draws=50, tune=50, chains=2, seed=1)
    path = tmp_path / "fit.nc"
    path.write_text("an older file")
    with pytest.raises(hb.DataError, match="'when' has dtype datetime64"):
        fit.save(path)
    assert path.read_text() == "an older file"
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]


def test_every_kind_of_column_round_trips(sleepstudy, tmp_path):
    df = sleepstudy.copy()
    df["n64"] = pd.array(df["Days"].to_numpy() % 4, dtype="Int64")      # nullable integer
    df["flag"] = pd.array(df["Days"] > 4, dtype="boolean")               # nullable boolean
    df["half"] = pd.Categorical(df["Days"] * 0.5)                         # float categories
    df["mixed"] = pd.Series([1 if int(s) % 2 else f"s{s}" for s in df["Subject"]], dtype=object)
    df["sstr"] = df["Subject"].astype(str).astype("string")              # pandas NA-string
    df.loc[3, "Reaction"] = np.nan                                        # an integer index after dropping
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.HierbayesWarning)
        model = hb.Model("Reaction ~ n64 + flag + half + (1 | mixed) + (1 | sstr)", df)
    fit = quiet_fit(model, draws=60, tune=60, chains=2, seed=1)
    assert not isinstance(fit.design.frame.index, pd.RangeIndex)
    back = hb.load_fit(fit.save(tmp_path / "kinds.nc"))
    assert back.design.frame.dtypes.to_dict() == fit.design.frame.dtypes.to_dict()
    assert_same_fit(fit, back)
