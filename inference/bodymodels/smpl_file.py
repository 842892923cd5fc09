"""Loading a user's SMPL model file safely (numpy only, no torch, no chumpy, no scipy).

Official SMPL ``.pkl`` files are Python 2 pickles holding numpy arrays, a
``scipy.sparse.csc_matrix`` (the joint regressor) and chumpy objects, and
chumpy does not import on Python 3.11. A plain ``pickle.load`` of a user file
can run any code, so we unpickle with an allow-list: numpy's array
reconstruction, and stand-ins for chumpy arrays and scipy sparse matrices that
only keep their numbers. Anything else is refused before it is created.
``.npz`` model files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ReconError

SHAPES = {
    "v_template": (6890, 3),
    "shapedirs": (6890, 3, None),
    "posedirs": (6890, 3, 207),
    "J_regressor": (24, 6890),
    "weights": (6890, 24),
    "kintree_table": (2, 24),
    "f": (13776, 3),
}
MAX_FILE_BYTES = 1_500_000_000


class _ArrayStandIn:
    """Stand-in for chumpy.ch.Ch (and its subclasses): keeps the array in ``x``."""

    def __init__(self, *args, **kwargs) -> None:
        self.state = {}

    def __setstate__(self, state) -> None:
        self.state = state if isinstance(state, dict) else {"x": state}

    def to_array(self) -> np.ndarray:
        x = self.state.get("x")
        if x is None:
            raise ValueError("a chumpy object without data")
        return np.asarray(x)


class _SparseStandIn:
    """Stand-in for scipy.sparse csc/csr matrices: rebuilt densely from their arrays."""

    def __init__(self, *args, **kwargs) -> None:
        self.state = {}

    def __setstate__(self, state) -> None:
        self.state = state

    def to_array(self) -> np.ndarray:
        s = self.state
        shape = tuple(s.get("_shape") or s.get("shape"))
        data, indices, indptr = (np.asarray(s[k]) for k in ("data", "indices", "indptr"))
        fmt = s.get("format", "csc")
        out = np.zeros(shape, dtype=np.float64)
        major = shape[1] if fmt == "csc" else shape[0]
        for j in range(major):
            lo, hi = indptr[j], indptr[j + 1]
            if fmt == "csc":
                out[indices[lo:hi], j] = data[lo:hi]
            else:
                out[j, indices[lo:hi]] = data[lo:hi]
        return out


_NUMPY = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
_REBUILD = {("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"), ("__builtin__", "object"),
            ("builtins", "object")}  # fmt: skip


class _Forbidden(pickle.UnpicklingError):
    """A global outside the allow-list: refused before anything is created."""


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY:
            import numpy.core.multiarray as ma

            return {"_reconstruct": ma._reconstruct, "scalar": ma.scalar, "ndarray": np.ndarray, "dtype": np.dtype}[
                name
            ]
        if (module, name) == ("_codecs", "encode"):  # bytes in protocol-2 pickles written by Python 3
            import _codecs

            return _codecs.encode
        if (module, name) in _REBUILD:
            import copyreg

            return copyreg._reconstructor if name == "_reconstructor" else object
        if module.startswith("chumpy"):
            return _ArrayStandIn
        if module.startswith("scipy.sparse") and name in ("csc_matrix", "csr_matrix"):
            return _SparseStandIn
        raise _Forbidden(f"{module}.{name}")


def _plain(value):
    if isinstance(value, (_ArrayStandIn, _SparseStandIn)):
        return value.to_array()
    return value


@dataclass
class SMPLData:
    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    kintree_table: np.ndarray
    f: np.ndarray
    gender: str


def gender_from_name(path: Path) -> str:
    """SMPL_FEMALE.pkl, basicmodel_f_lbs_...: female; ..._MALE / basicModel_m: male; else neutral."""
    name = path.name.lower()
    if "female" in name or name.startswith("basicmodel_f"):
        return "female"
    if "male" in name or name.startswith("basicmodel_m"):
        return "male"
    return "neutral"


def load_smpl_file(path: str | os.PathLike, gender: str | None = None) -> SMPLData:
    """Read and check a SMPL model file (.pkl or .npz); raise ReconError saying what is wrong."""
    p = Path(path)
    where = "Set the SMPL model file (from smpl.is.tue.mpg.de) with --smpl-model or in the add-on preferences."
    if not p.is_file():
        raise ReconError("smpl_model_missing", f"SMPL model file {p} not found. {where}")
    size = p.stat().st_size
    if size == 0 or size > MAX_FILE_BYTES:
        raise ReconError(
            "smpl_model_bad", f"{p.name} is {'empty' if size == 0 else 'too large'}; it is not a SMPL model file."
        )
    raw = p.read_bytes()
    try:
        if raw[:4] == b"PK\x03\x04":  # .npz (zip)
            with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        else:
            data = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except _Forbidden as exc:
        raise ReconError(
            "smpl_model_refused",
            f"{p.name} names {exc}, which a SMPL model file never holds; refused without running it. "
            "Use the official file.",
        ) from None
    except Exception as exc:  # noqa: BLE001 - any decoding failure means a corrupt file
        raise ReconError(
            "smpl_model_bad", f"{p.name} could not be read as a SMPL model ({type(exc).__name__})."
        ) from None
    if not isinstance(data, dict):
        raise ReconError("smpl_model_bad", f"{p.name} does not hold a SMPL model (no dictionary of arrays).")
    arrays = {}
    for key, shape in SHAPES.items():
        if key not in data:
            raise ReconError("smpl_model_bad", f"{p.name} lacks '{key}'; it is not a SMPL model file.")
        try:
            a = np.asarray(_plain(data[key]))
        except Exception:  # noqa: BLE001
            raise ReconError("smpl_model_bad", f"{p.name}: '{key}' could not be read.") from None
        if a.ndim != len(shape) or any(s is not None and a.shape[i] != s for i, s in enumerate(shape)):
            raise ReconError(
                "smpl_model_bad",
                f"{p.name}: '{key}' has shape {a.shape}, a SMPL model has {tuple(s or 'n' for s in shape)}.",
            )
        arrays[key] = a
    if arrays["shapedirs"].shape[2] < 10:
        raise ReconError("smpl_model_bad", f"{p.name} has fewer than 10 shape components.")
    g = gender or str(data.get("gender", "")) or gender_from_name(p)
    return SMPLData(
        v_template=arrays["v_template"].astype(np.float32),
        shapedirs=arrays["shapedirs"][:, :, :10].astype(np.float32),
        posedirs=arrays["posedirs"].astype(np.float32),
        J_regressor=arrays["J_regressor"].astype(np.float32),
        weights=arrays["weights"].astype(np.float32),
        kintree_table=arrays["kintree_table"].astype(np.int64),
        f=arrays["f"].astype(np.int64),
        gender=g if g in ("neutral", "female", "male") else "neutral",
    )
