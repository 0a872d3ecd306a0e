"""A Bayesian fit in one netCDF file: :meth:`BayesFit.save` and :func:`hierbayes.load_fit`.

The file is the fit's InferenceData (every group: posterior, sample stats,
log-likelihood, observed data, and posterior predictive draws if drawn), as
``fit.idata.to_netcdf`` writes it and ``arviz.from_netcdf`` reads it, plus a
group ``hierbayes`` with what the fit needs to rebuild itself: the columns of
the data the formula uses (the design's frame, dtypes and categories kept), the
formula, family, every prior in force, the sampler's settings, and checks of
the design. Loading evaluates the formula on that frame again and refuses
(:class:`~hierbayes.errors.FitFileError`) if the design it gets differs from the
saved one, so a loaded fit is never silently a different model.

Saving writes to a temporary file, loads it back and compares it with the fit
(draws, frame, summary) before moving it into place: a saved fit always loads.
Loading (:func:`read_fit`) gives the parts of a fit (:class:`SavedFit`); the
model class to rebuild is the caller's (:func:`hierbayes.load_fit` rebuilds a
:class:`hierbayes.Model`), and so is the fit class
(:meth:`hierbayes.BayesFit.from_saved`): this module imports neither, and
takes the fit it saves as it comes (a :class:`hierbayes.BayesFit`).

Extensions of ``model.pymc_model`` are code and are not saved: the loaded
fit's draws (including those of added variables) and summary are intact, but
its ``model.pymc_model`` is rebuilt without them (a warning says so).

Examples
--------
>>> import hierbayes as hb
>>> fit.save("sleep_fit.nc")                      # doctest: +SKIP
>>> print(hb.load_fit("sleep_fit.nc").summary())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hierbayes.bayes.posterior import Posterior, SamplingInfo
from hierbayes.bayes.priors import Prior, PriorEntry, PriorTable
from hierbayes.errors import DataError, FitFileError, HierbayesWarning
from hierbayes.families import get_family
from hierbayes.residuals import CorrelationSpec

if TYPE_CHECKING:
    from hierbayes.bayes.model import BayesModel

FORMAT = 1
GROUP = "hierbayes"


# ----- the frame: each column as typed arrays (no pickle: loading must not run code) -----

def _tag(value: Any, column: str) -> list:
    """A value of a mixed object column as ``[type, value]`` JSON."""
    if isinstance(value, bool | np.bool_):
        return ["b", bool(value)]
    if isinstance(value, int | np.integer):
        return ["i", int(value)]
    if isinstance(value, float | np.floating):
        return ["f", float(value)]
    if isinstance(value, str):
        return ["s", value]
    raise DataError(f"The data's column {column!r} holds a value of type {type(value).__name__} "
                    f"({value!r}) that a saved fit cannot store (strings, numbers and booleans "
                    "can). Convert the column before fitting.")


def _untag(item: list) -> Any:
    kind, value = item
    return {"b": bool, "i": int, "f": float, "s": str}[kind](value)


def _encode(values: pd.Series | pd.Index, key: str, column: str) -> dict[str, Any]:
    """Variables ``{name: (dims, array, attrs)}`` that store one column (or index) exactly."""
    dtype = values.dtype
    dim = f"{key}__n"
    attrs: dict[str, Any] = {"dtype": str(dtype)}
    if isinstance(dtype, pd.CategoricalDtype):
        out = _encode(pd.Index(dtype.categories), f"{key}__categories", column)
        codes = values.codes if isinstance(values, pd.CategoricalIndex) else values.cat.codes
        attrs.update(kind="categorical", ordered=int(bool(dtype.ordered)))
        out[key] = ((dim,), np.asarray(codes), attrs)
        return out
    if isinstance(dtype, pd.StringDtype):
        attrs.update(kind="string", storage=str(dtype.storage),
                     na="NA" if dtype.na_value is pd.NA else "nan")
        data = np.array(values.tolist(), dtype=str)
    elif isinstance(dtype, np.dtype) and dtype.kind == "O":
        items = values.tolist()
        if all(type(v) is str for v in items):
            attrs["kind"] = "str_object"
            data = np.array(items, dtype=str)
        else:
            attrs["kind"] = "json_object"
            data = np.array([json.dumps(_tag(v, column)) for v in items], dtype=str)
    elif isinstance(dtype, np.dtype) and dtype.kind == "b":
        attrs["kind"] = "bool"
        data = np.asarray(values, dtype=np.int8)
    elif isinstance(dtype, np.dtype) and dtype.kind in "iuf":
        attrs["kind"] = "numeric"
        data = np.asarray(values)
    elif isinstance(dtype, pd.api.extensions.ExtensionDtype) and \
            getattr(dtype, "numpy_dtype", np.dtype(object)).kind in "iufb":
        # nullable Int64, Float64, boolean: a fitted frame has no missing values
        attrs["kind"] = "masked"
        data = np.asarray(values.to_numpy(dtype=dtype.numpy_dtype))
        if data.dtype == bool:
            data = data.astype(np.int8)
    else:
        raise DataError(f"The data's column {column!r} has dtype {dtype}, which a saved fit "
                        "cannot store (numbers, booleans, strings and categoricals can). "
                        "Convert the column before fitting.")
    return {key: ((dim,), data, attrs)}


def _decode(ds: Any, key: str) -> Any:
    """The array (or pandas array) that :func:`_encode` stored under ``key``."""
    var = ds[key]
    attrs, data = var.attrs, var.to_numpy()
    kind = attrs["kind"]
    if kind == "categorical":
        categories = pd.Index(_decode(ds, f"{key}__categories"))
        return pd.Categorical.from_codes(data.astype(np.int64), categories=categories,
                                         ordered=bool(attrs["ordered"]))
    if kind == "string":
        dtype = pd.StringDtype(storage=attrs["storage"],
                               na_value=pd.NA if attrs["na"] == "NA" else np.nan)
        return pd.array([str(v) for v in data], dtype=dtype)
    if kind == "str_object":
        return np.array([str(v) for v in data], dtype=object)
    if kind == "json_object":
        return np.array([_untag(json.loads(str(v))) for v in data], dtype=object)
    if kind == "bool":
        return data.astype(bool)
    if kind == "masked":
        return pd.array(data.astype(bool) if attrs["dtype"] == "boolean" else data,
                        dtype=attrs["dtype"])
    return data.astype(np.dtype(attrs["dtype"]))


def _json_name(name: Any, what: str) -> Any:
    if name is None or (isinstance(name, str | int) and not isinstance(name, bool)):
        return name
    raise DataError(f"The data's {what} name {name!r} is not a string or an integer, so a saved "
                    "fit cannot store it. Rename it before fitting.")


def encode_frame(frame: pd.DataFrame) -> tuple[dict[str, Any], dict[str, Any]]:
    """The frame as netCDF variables, and the JSON that names its columns and index."""
    variables: dict[str, Any] = {}
    columns = [_json_name(c, "column") for c in frame.columns]
    for k, col in enumerate(frame.columns):
        variables.update(_encode(frame[col], f"column_{k}", str(col)))
    index = frame.index
    if isinstance(index, pd.MultiIndex):
        raise DataError("The data has a MultiIndex, which a saved fit cannot store; "
                        "reset_index() before fitting.")
    spec: dict[str, Any] = {"name": _json_name(index.name, "index")}
    if isinstance(index, pd.RangeIndex):
        spec.update(kind="range", start=int(index.start), stop=int(index.stop), step=int(index.step))
    else:
        spec["kind"] = "values"
        variables.update(_encode(index, "index", "index"))
    return variables, {"columns": columns, "index": spec}


def _dtype(values: Any) -> Any:
    # pandas would infer its string dtype from an object array of strings; keep object
    return object if isinstance(values, np.ndarray) and values.dtype == object else None


def decode_frame(ds: Any, layout: dict[str, Any]) -> pd.DataFrame:
    """The frame that :func:`encode_frame` stored."""
    spec = layout["index"]
    if spec["kind"] == "range":
        index = pd.RangeIndex(spec["start"], spec["stop"], spec["step"], name=spec["name"])
    else:
        values = _decode(ds, "index")
        index = pd.Index(values, name=spec["name"], dtype=_dtype(values))
    data = {}
    for k, c in enumerate(layout["columns"]):
        values = _decode(ds, f"column_{k}")
        data[c] = pd.Series(values, index=index, dtype=_dtype(values))
    return pd.DataFrame(data, index=index, columns=pd.Index(layout["columns"]))


# ----- what the fit needs beside its draws -----

def _design_check(design: Any) -> dict[str, Any]:
    """What the formula gave on the data, to compare with what it gives at loading."""
    return {
        "fixef_names": list(design.fixef_names),
        "n_obs": int(design.n_obs),
        "X_sums": design.X.sum(axis=0).tolist(),
        "X_squares": (design.X**2).sum(axis=0).tolist(),
        "blocks": [{"group": b.group, "factor": b.factor, "terms": list(b.terms),
                    "levels": [str(v) for v in b.levels], "Z_sums": b.Z.sum(axis=0).tolist(),
                    "index_sum": int(b.index.sum())} for b in design.blocks],
    }


def _prior_entries(table: Any) -> list[dict[str, Any]]:
    return [{"class": e.cls, "group": e.group, "coef": e.coef, "dist": e.prior.dist,
             "params": e.prior.params, "source": e.source} for e in table.entries]


#: Columns of the saved frame that hold the fit's ``weights=`` and ``offset=`` arguments.
ROW_ARGUMENTS = {"weights": "(hierbayes weights)", "offset": "(hierbayes offset)"}


def _row_arguments(design: Any) -> dict[str, np.ndarray]:
    """The fit's ``weights=`` and ``offset=`` as they were given, per fitted row (None left out).

    A binomial proportion's ``weights=`` are its trials; the formula's ``offset()``
    terms are rebuilt from the frame's columns, so only ``offset=``'s part is kept.
    """
    from hierbayes.report.predict import offset_argument

    out = {}
    weights = design.weights
    if weights is None and design.trials is not None and not design.response_label.startswith("cbind("):
        weights = design.trials
    if weights is not None:
        out["weights"] = np.asarray(weights, dtype=float)
    offset = offset_argument(design)
    if offset is not None:
        out["offset"] = offset
    return out


def _metadata(fit: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    from hierbayes.version import __version__

    design = fit.design
    frame = design.frame.assign(**{ROW_ARGUMENTS[k]: v for k, v in _row_arguments(design).items()})
    variables, layout = encode_frame(frame)
    meta = {
        "format": FORMAT,
        "hierbayes_version": __version__,
        "formula": design.formula.formula,
        "family": design.family.name,
        "link": design.family.link.name,
        "data_name": design.data_name,
        "dropped_rows": int(design.dropped_rows),
        "dropped_columns": list(design.dropped_columns),
        "frame": layout,
        "priors": _prior_entries(fit.model.priors),
        "info": asdict(fit.info),
        "design": _design_check(design),
        **_structure_arguments(design),
    }
    return variables, meta


def _structure_arguments(design: Any) -> dict[str, Any]:
    """The fit's ``sigma=`` and ``correlation=`` as the file keeps them (none: nothing)."""
    out: dict[str, Any] = {}
    v = getattr(design.residual, "variance", None)
    if v is not None:
        out["sigma"] = v.formula
    c = getattr(design.residual, "correlation", None)
    if c is not None:
        out["correlation"] = {"kind": c.kind, "group": c.group, "time": c.time}
    return out


def _differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    out = []
    for key in ("fixef_names", "n_obs"):
        if saved[key] != now[key]:
            out.append(f"{key}: saved {saved[key]}, now {now[key]}")
    for key in ("X_sums", "X_squares"):
        if len(saved[key]) == len(now[key]) and not np.allclose(saved[key], now[key], rtol=1e-9,
                                                                atol=1e-12):
            out.append(f"the fixed-effect matrix differs ({key})")
    if len(saved["blocks"]) != len(now["blocks"]):
        out.append(f"{len(saved['blocks'])} random-effect blocks saved, {len(now['blocks'])} now")
    for a, b in zip(saved["blocks"], now["blocks"], strict=False):
        for key in ("group", "factor", "terms", "levels", "index_sum"):
            if a[key] != b[key]:
                out.append(f"block {a['group']}: {key} differs")
        if len(a["Z_sums"]) == len(b["Z_sums"]) and not np.allclose(a["Z_sums"], b["Z_sums"],
                                                                    rtol=1e-9, atol=1e-12):
            out.append(f"block {a['group']}: its model matrix differs")
    return out


def _rebuild(meta: dict[str, Any], frame: pd.DataFrame, path: Path, model_class: type[BayesModel]):
    frame.attrs["name"] = meta["data_name"]
    with warnings.catch_warnings():
        # the rank-deficiency warning was given when the fit was made
        warnings.simplefilter("ignore", HierbayesWarning)
        # a file from before links were saved has its family's default link
        family = get_family(meta["family"], link=meta.get("link"))
        given: dict[str, Any] = {k: c for k, c in ROW_ARGUMENTS.items() if c in frame.columns}
        if "sigma" in meta:
            given["sigma"] = meta["sigma"]
        if "correlation" in meta:
            c = meta["correlation"]
            given["correlation"] = CorrelationSpec(c["kind"], c["group"], c["time"])
        model = model_class(meta["formula"], frame, family=family, **given)
    design = model.design
    diffs = _differences(meta["design"], _design_check(design))
    if diffs or design.dropped_columns != meta["dropped_columns"]:
        raise FitFileError(
            f"{path}: the formula {meta['formula']!r} evaluates differently on the saved data in "
            f"this version of hierbayes ({meta['hierbayes_version']} saved it): "
            f"{'; '.join(diffs) or 'other aliased columns'}. Load it with the version that saved "
            "it, or refit the model.")
    entries = [PriorEntry(e["class"], e["group"], e["coef"], Prior(e["dist"], **e["params"]),
                          e["source"]) for e in meta["priors"]]
    keys = [(e.cls, e.group, e.coef) for e in entries]
    if keys != [(e.cls, e.group, e.coef) for e in model.priors.entries]:
        raise FitFileError(f"{path}: the saved priors do not match the model's parameters; "
                           "the file was changed or written by another program.")
    model.priors = PriorTable(entries)
    design.dropped_rows = meta["dropped_rows"]  # the saved frame holds only the rows fitted
    return model


def _read(path: Path) -> tuple[Any, Any, dict[str, Any]]:
    import arviz as az

    if not path.is_file():
        raise FitFileError(f"No file {path}.")
    try:
        with az.rc_context({"data.load": "eager"}), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            idata = az.from_netcdf(str(path))
    except Exception as err:  # h5py and xarray raise many kinds for a file that is not netCDF
        raise FitFileError(f"{path} is not a netCDF file that ArviZ can read ({type(err).__name__}: "
                           f"{err}). Save fits with fit.save(path).") from None
    if GROUP not in idata.groups():
        raise FitFileError(
            f"{path} holds no hierbayes fit (groups: {', '.join(idata.groups()) or 'none'}); an "
            "InferenceData written by idata.to_netcdf lacks the data and settings a fit needs. "
            "Save fits with fit.save(path), or read this one with arviz.from_netcdf.")
    ds = idata[GROUP]
    version = ds.attrs.get("format")
    if not isinstance(version, int | np.integer) or version < 1:
        raise FitFileError(f"{path}: its hierbayes group has no valid format number ({version!r}).")
    if version > FORMAT:
        raise FitFileError(f"{path} was saved in format {int(version)} by a newer hierbayes; this "
                           f"one reads formats up to {FORMAT}. Upgrade hierbayes to load it.")
    try:
        meta = json.loads(ds.attrs["meta"])
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise FitFileError(f"{path}: its hierbayes group has no readable metadata ({err}).") from None
    delattr(idata, GROUP)
    return idata, ds, meta


@dataclass
class SavedFit:
    """What a saved fit is made of: the rebuilt model, the draws, the sampler's record, the InferenceData."""

    model: Any
    posterior: Posterior
    info: SamplingInfo
    idata: Any


def read_fit(path: str | os.PathLike, model_class: type[BayesModel]) -> SavedFit:
    """Read a fit written by :func:`save_fit`, rebuilding its model as a ``model_class``.

    Warns (:class:`~hierbayes.errors.HierbayesWarning`) when the fit was made
    from an extended ``pm.Model``, whose extensions a file does not keep.

    Raises
    ------
    FitFileError
        The file is missing, is not a saved hierbayes fit, comes from a newer
        format, or its formula now evaluates to another design.
    """
    path = Path(path)
    idata, ds, meta = _read(path)
    try:
        frame = decode_frame(ds, meta["frame"])
        model = _rebuild(meta, frame, path, model_class)
        info = SamplingInfo(**meta["info"])
    except FitFileError:
        raise
    except Exception as err:  # a file edited by hand or by another program
        raise FitFileError(f"{path}: the saved fit cannot be rebuilt ({type(err).__name__}: "
                           f"{err}).") from None
    posterior = Posterior.from_idata(idata)
    if info.pymc_changed:
        # stacklevel 3: the caller of hierbayes.load_fit
        warnings.warn(
            f"{path}: the fit was made after model.pymc_model was extended. The draws (also of "
            "added variables) and the summary are as saved, but extensions are code, which a "
            "file does not keep: fit.model.pymc_model is the model without them. Extend it "
            "again before refitting.", HierbayesWarning, stacklevel=3)
    return SavedFit(model, posterior, info, idata)


def _same(fit: Any, back: Any) -> list[str]:
    """How a fit loaded back differs from the one saved (empty when it does not)."""
    out = []
    try:
        pd.testing.assert_frame_equal(back.design.frame, fit.design.frame, check_exact=True,
                                      check_freq=False)
    except AssertionError as err:
        out.append(f"the data differ: {err}")
    for name, values in fit.posterior.variables.items():
        if name not in back.posterior or not np.array_equal(back.posterior[name], values):
            out.append(f"the draws of {name} differ")
    if not out and str(back.summary()) != str(fit.summary()):
        out.append("the summary differs")
    return out


def save_fit(fit: Any, path: str | os.PathLike) -> Path:
    """Write a fit to one netCDF file (see the module docstring); returns the path.

    The file is replaced only once the new one has been read back and found
    equal to the fit.
    """
    import xarray as xr

    path = Path(path)
    variables, meta = _metadata(fit)
    idata = fit.idata
    group = xr.Dataset({k: xr.Variable(*v) for k, v in variables.items()},
                       attrs={"format": FORMAT, "meta": json.dumps(meta)})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        idata.to_netcdf(str(tmp))
        group.to_netcdf(tmp, mode="a", group=GROUP, engine="h5netcdf")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", HierbayesWarning)
            # rebuilt as the fit's own classes, so the check compares like with like
            back = type(fit).from_saved(read_fit(tmp, type(fit.model)))
        problems = _same(fit, back)
        if problems:
            raise FitFileError(f"The fit could not be saved so that it loads back unchanged: "
                               f"{'; '.join(problems)}.")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
