"""Reading and writing energy maps and reference data in the formats of docs/formats.md.

- Energy maps: `.npy` (values only) or `.npz` (array `field` plus optional metadata arrays
  `spacing`, `boundary`, `boundary_value`, `units`).
- Reference data: HDF5, dataset `field` (or a named one) with attributes `spacing`, `boundary`,
  `boundary_value`, `units`, and optionally a dataset `time`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from idf.client.fields import BOUNDARIES, FieldMeta

FIELD_DATASET = "field"


class FormatError(ValueError):
    """A file that is missing, unreadable or does not hold a usable field."""


def _check_array(array: np.ndarray, source: str, max_ndim: int) -> np.ndarray:
    if array.dtype.kind not in "fiu":
        raise FormatError(f"{source}: values must be numeric, got dtype {array.dtype}")
    if array.ndim == 0 or array.size == 0:
        raise FormatError(
            f"{source}: needs a non-empty array with at least one axis, got shape {array.shape}"
        )
    if array.ndim > max_ndim:
        raise FormatError(f"{source}: at most {max_ndim} axes, got shape {array.shape}")
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
    return array


def _meta(
    spacing: object, boundary: object, boundary_value: object, units: object, ndim: int, source: str
) -> FieldMeta:
    sp = (
        tuple(float(s) for s in np.atleast_1d(np.asarray(spacing, dtype=np.float64)))
        if spacing is not None
        else (1.0,) * ndim
    )
    if len(sp) == 1 and ndim > 1:
        sp = sp * ndim
    if len(sp) != ndim or not all(s > 0 and np.isfinite(s) for s in sp):
        raise FormatError(f"{source}: spacing needs {ndim} positive values, got {list(sp)}")
    b = str(np.asarray(boundary).item()) if boundary is not None else "periodic"
    if b not in BOUNDARIES:
        raise FormatError(f"{source}: boundary must be one of {sorted(BOUNDARIES)}, got {b!r}")
    bv = float(np.asarray(boundary_value).item()) if boundary_value is not None else 0.0
    u = str(np.asarray(units).item()) if units is not None else ""
    return FieldMeta(spacing=sp, boundary=b, boundary_value=bv, units=u)


def load_energy_map(path: str | Path, *, max_ndim: int = 3) -> tuple[np.ndarray, FieldMeta]:
    """Load a `.npy` or `.npz` energy map: (values as float32/float64, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise FormatError(f"{path}: not a readable .npy/.npz file ({e})") from None
    if isinstance(loaded, np.ndarray):
        array = _check_array(loaded, str(path), max_ndim)
        return array, _meta(None, None, None, None, array.ndim, str(path))
    with loaded:
        if FIELD_DATASET not in loaded.files:
            raise FormatError(
                f"{path}: an .npz energy map needs an array named 'field', has {loaded.files}"
            )
        array = _check_array(loaded[FIELD_DATASET], str(path), max_ndim)

        def get(k: str) -> object:
            return loaded[k] if k in loaded.files else None

        meta = _meta(
            get("spacing"),
            get("boundary"),
            get("boundary_value"),
            get("units"),
            array.ndim,
            str(path),
        )
    return array, meta


def save_energy_map(path: str | Path, array: np.ndarray, meta: FieldMeta | None = None) -> None:
    """Write `.npy` (values only) or, for `.npz`, values with metadata."""
    path = Path(path)
    if path.suffix == ".npz":
        meta = meta or FieldMeta(spacing=(1.0,) * np.ndim(array))
        np.savez(
            path,
            field=array,
            spacing=np.asarray(meta.spacing or (1.0,) * np.ndim(array)),
            boundary=np.asarray(meta.boundary),
            boundary_value=np.asarray(meta.boundary_value),
            units=np.asarray(meta.units),
        )
    else:
        np.save(path, array)


def load_reference_h5(
    path: str | Path, dataset: str = FIELD_DATASET
) -> tuple[np.ndarray, FieldMeta, np.ndarray | None]:
    """Read reference data from HDF5: (values, metadata from the dataset's attributes, times)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            if dataset not in f:
                raise FormatError(f"{path}: no dataset {dataset!r}; has {sorted(f.keys())}")
            node = f[dataset]
            array = np.asarray(node[()])
            attrs = node.attrs
            time = np.asarray(f["time"][()]) if "time" in f else None

            def pick(k: str) -> object:
                return attrs[k] if k in attrs else None

            array = _check_array(array, f"{path}:{dataset}", max_ndim=4)
            ndim = array.ndim - (1 if time is not None and array.ndim > 1 else 0)
            meta = _meta(
                pick("spacing"),
                pick("boundary"),
                pick("boundary_value"),
                pick("units"),
                ndim,
                str(path),
            )
    except OSError as e:
        raise FormatError(f"{path}: not a readable HDF5 file ({e})") from None
    return array, meta, time


def save_reference_h5(
    path: str | Path, array: np.ndarray, meta: FieldMeta, time: np.ndarray | None = None
) -> None:
    """Write reference data in the layout `load_reference_h5` reads."""
    import h5py

    with h5py.File(path, "w") as f:
        node = f.create_dataset(FIELD_DATASET, data=array)
        node.attrs["spacing"] = np.asarray(meta.spacing, dtype=np.float64)
        node.attrs["boundary"] = meta.boundary
        node.attrs["boundary_value"] = meta.boundary_value
        node.attrs["units"] = meta.units
        if time is not None:
            f.create_dataset("time", data=np.asarray(time, dtype=np.float64))
