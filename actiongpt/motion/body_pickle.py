"""Reading an SMPL-H ``.pkl`` body model without trusting it (and without chumpy).

``pickle.load`` runs whatever callables a file names, so a downloaded ``.pkl`` could run any command. This
unpickler resolves only the globals that numpy arrays need (``_reconstruct``, ``ndarray``, ``dtype``,
``scalar``, ``_frombuffer``, plus ``_codecs.encode`` to latin1, ``set``, ``frozenset`` and
``copyreg._reconstructor`` with base ``object``); every other global is refused before anything is called.
Objects of chumpy classes (``chumpy.ch.Ch``, ``chumpy.reordering.*``, ...) and scipy sparse matrices are not
built from their classes: they become inert records of the state the pickle holds, from which
:func:`plain_value` takes a chumpy object's array (its ``x``) and rebuilds a sparse matrix from its index
arrays. MPI's files pickle chumpy objects through the default object protocol (``copy_reg._reconstructor``
or ``NEWOBJ``, then ``BUILD`` with the ``__dict__`` minus caches), which is what lets their arrays be read
this way.
"""

from __future__ import annotations

import copyreg
import importlib
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np


class _Recorded:
    """An object the pickle asked for by a chumpy or scipy.sparse class: keeps the pickled state only."""

    global_name = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Recorded:
        obj = object.__new__(cls)
        obj.args = args
        obj.state = None
        return obj

    def __setstate__(self, state: Any) -> None:
        self.state = state


_RECORDED: dict[str, type[_Recorded]] = {}


def _recorded_class(module: str, name: str) -> type[_Recorded]:
    key = f"{module}.{name}"
    if key not in _RECORDED:
        _RECORDED[key] = type(name, (_Recorded,), {"global_name": key})
    return _RECORDED[key]


def _numpy_core(module: str, name: str) -> Any:
    """numpy's own function from ``numpy._core`` (numpy 2) or ``numpy.core`` (files written by numpy 1)."""
    sub = module.split(".", 2)[2]
    for base in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{base}.{sub}"), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {module}.{name}")


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` restricted to what old pickles of plain classes use (base ``object``)."""
    if base is not object or not (isinstance(cls, type) and issubclass(cls, _Recorded)):
        raise pickle.UnpicklingError(f"refused: copyreg._reconstructor({cls!r}, {base!r})")
    return copyreg._reconstructor(cls, base, state)


_NUMPY_CORE = {
    (f"numpy.{core}.{mod}", name)
    for core in ("core", "_core")
    for mod, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))
}


def _encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes with protocol 2 (latin1), no other codec."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refused: _codecs.encode with encoding {encoding!r}")
    return str(text).encode("latin1")


# Python 2 names too: a find_class override does not get pickle's own renaming of old module names.
_SAFE = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _encode,
    **{(m, n): v for m in ("builtins", "__builtin__") for n, v in (("set", set), ("frozenset", frozenset))},
    ("builtins", "object"): object,
    ("__builtin__", "object"): object,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("copy_reg", "_reconstructor"): _reconstructor,
}


class BodyUnpickler(pickle.Unpickler):
    """Resolves only the globals listed in the module docstring; anything else raises before it runs."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE:
            return _SAFE[(module, name)]
        if (module, name) in _NUMPY_CORE:
            return _numpy_core(module, name)
        if module == "chumpy" or module.startswith("chumpy."):
            return _recorded_class(module, name)
        if module.startswith("scipy.sparse") and name.endswith(("_matrix", "_array")):
            return _recorded_class(module, name)
        raise pickle.UnpicklingError(
            f"refused to load global {module}.{name}: a body model holds only numpy arrays, scipy sparse "
            "matrices and chumpy arrays (this file may run code when unpickled)"
        )


def load_body_pickle(path: str | Path) -> Any:
    """The object pickled in ``path``, read with :class:`BodyUnpickler` (``latin1``: Python 2 files)."""
    data = Path(path).read_bytes()
    return BodyUnpickler(io.BytesIO(data), encoding="latin1").load()


def _sparse(rec: _Recorded) -> Any:
    import scipy.sparse as sp

    st = rec.state if isinstance(rec.state, dict) else {}
    kind = rec.global_name.rsplit(".", 1)[1].split("_")[0]
    shape = st.get("_shape", st.get("shape"))
    try:
        if kind in ("csc", "csr"):
            cls = sp.csc_matrix if kind == "csc" else sp.csr_matrix
            m = cls((st["data"], st["indices"], st["indptr"]), shape=shape)
        elif kind == "coo":
            m = sp.coo_matrix((st["data"], (st["row"], st["col"])), shape=shape)
        else:
            raise ValueError(f"sparse format {kind!r} is not supported")
        m.check_format(full_check=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise pickle.UnpicklingError(f"{rec.global_name}: cannot rebuild the sparse matrix ({exc})") from None
    return m


def plain_value(value: Any, key: str) -> Any:
    """``value`` with chumpy objects replaced by their arrays and sparse records by scipy matrices.

    A chumpy object that is not a plain array (an expression, such as a ``reordering`` of another one)
    has no stored value without chumpy, and an object array holds no numbers: both become None (the caller
    reports the key if it needs it).
    """
    if isinstance(value, _Recorded):
        if value.global_name.startswith("scipy.sparse"):
            return _sparse(value)
        state = value.state if isinstance(value.state, dict) else {}
        x = state.get("x")
        return plain_value(x, key) if x is not None else None
    if isinstance(value, np.ndarray) and value.dtype == object:
        return None  # not numbers: nothing a body model needs
    return value


def load_body_arrays(path: str | Path) -> dict[str, Any]:
    """The arrays of a pickled body model: ``{key: numpy array or scipy sparse matrix}``. Keys holding other
    values (names such as ``bs_style``, chumpy expressions without a stored array) are left out."""
    raw = load_body_pickle(path)
    if not isinstance(raw, dict):
        raise pickle.UnpicklingError(f"expected a pickled dict of arrays, got {type(raw).__name__}")
    out = {}
    for key, value in raw.items():
        v = plain_value(value, str(key))
        if isinstance(v, np.ndarray) or hasattr(v, "toarray"):
            out[str(key)] = v
    return out
