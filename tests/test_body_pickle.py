"""SMPL-H ``.pkl`` body models through the restricted unpickler: chumpy-shaped files load without chumpy,
a payload that would run a command raises and runs nothing, and ``actiongpt body convert`` writes an npz."""

from __future__ import annotations

import copy
import os
import pickle
import sys
import types
import weakref
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch

from actiongpt.motion.smplh import BodyModelError, load_smplh_arrays, load_smplh_skeleton
from launch.cli import main
from tests.synthetic_smplh import synthetic_smplh


def _fake_chumpy() -> dict[str, types.ModuleType]:
    """Modules named as chumpy's, with classes that pickle the way chumpy's do: the default object protocol
    (``copy_reg._reconstructor`` or NEWOBJ) and a ``__getstate__`` that drops the weak-reference caches."""
    pkg, ch, reordering = (types.ModuleType(n) for n in ("chumpy", "chumpy.ch", "chumpy.reordering"))

    class Ch:
        dterms = ("x",)

        def __init__(self, x):
            self.__dict__.update(x=np.asarray(x, np.float64), _dirty_vars=set(), _itr=None,
                                 _depends_on_deps={}, _make_dense=False, _make_sparse=False,
                                 _parents=weakref.WeakKeyDictionary(), _cache={"r": None})  # fmt: skip

        def __getstate__(self):
            state = copy.copy(self.__dict__)
            del state["_parents"], state["_cache"]
            return state

    class Select(Ch):  # an expression: stores its operand and indices, not a value
        def __init__(self, a, idxs):
            self.__dict__.update(a=a, idxs=np.asarray(idxs), _dirty_vars={"a"}, _itr=None,
                                 _parents=weakref.WeakKeyDictionary(), _cache={})  # fmt: skip

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    Select.__module__, Select.__qualname__ = "chumpy.reordering", "Select"
    ch.Ch, reordering.Select, pkg.ch, pkg.reordering = Ch, Select, ch, reordering
    return {"chumpy": pkg, "chumpy.ch": ch, "chumpy.reordering": reordering}


def _write_chumpy_model(path: Path, protocol: int, monkeypatch) -> dict[str, np.ndarray]:
    model = synthetic_smplh(num_betas=10, hands_pca=True, seed=3)
    mods = _fake_chumpy()
    with monkeypatch.context() as m:
        for name, mod in mods.items():
            m.setitem(sys.modules, name, mod)
        Ch, Select = mods["chumpy.ch"].Ch, mods["chumpy.reordering"].Select
        data = {k: Ch(v) for k, v in model.arrays.items() if k in ("v_template", "shapedirs", "posedirs")}
        data.update({k: v for k, v in model.arrays.items() if k not in data})
        data["J_regressor"] = scipy.sparse.csc_matrix(model.arrays["J_regressor"])
        data["J"] = Select(data["v_template"], [0, 1, 2])  # chumpy expression: left out
        data["bs_style"] = "lbs"
        path.write_bytes(pickle.dumps(data, protocol=protocol))
    raw = path.read_bytes()
    assert b"chumpy.ch" in raw and b"chumpy.reordering" in raw
    assert (b"copy_reg\n_reconstructor" in raw) == (protocol < 2)  # old protocols: as Python 2 wrote them
    return model


@pytest.mark.parametrize("protocol", [0, 2])
def test_chumpy_model_loads_without_chumpy_and_converts(
    tmp_path: Path, monkeypatch, capsys, protocol
) -> None:
    monkeypatch.setitem(sys.modules, "chumpy", None)  # importing chumpy would fail
    pkl = tmp_path / "SMPLH_MALE.pkl"
    model = _write_chumpy_model(pkl, protocol, monkeypatch)
    arrays = load_smplh_arrays(pkl)
    for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f"):
        np.testing.assert_array_equal(arrays[k], model.arrays[k], err_msg=k)
    sk = load_smplh_skeleton(pkl, vertex_ids=model.vertex_ids)
    torch.testing.assert_close(
        sk.rest_joints, torch.from_numpy(model.rest_joints[:22]).float(), atol=1e-6, rtol=0
    )

    npz = tmp_path / "smplh" / "male" / "model.npz"
    assert main(["body", "convert", str(pkl), str(npz)]) == 0
    assert f"wrote {npz}" in capsys.readouterr().out
    with np.load(npz, allow_pickle=False) as z:
        assert "J" not in z.files and "bs_style" not in z.files
        for k in ("v_template", "shapedirs", "J_regressor", "hands_componentsl"):
            np.testing.assert_array_equal(z[k], model.arrays[k], err_msg=k)
    assert load_smplh_skeleton(npz, vertex_ids=model.vertex_ids).rest_joints.equal(sk.rest_joints)


class _System:
    """A payload that runs a shell command when unpickled by ``pickle.load``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').system('true')",))


def test_malicious_pickle_raises_and_runs_nothing(tmp_path: Path, capsys) -> None:
    arrays = synthetic_smplh(seed=1).arrays
    control, marker = tmp_path / "control-ran", tmp_path / "payload-ran"
    payload = pickle.dumps({**arrays, "v_template": _System(f"touch {marker}")}, protocol=2)
    pickle.loads(pickle.dumps(_System(f"touch {control}")))  # the payload is real: plain pickle runs it
    assert control.exists()
    evil = tmp_path / "SMPLH_MALE.pkl"
    evil.write_bytes(payload)
    with pytest.raises(BodyModelError, match=r"SMPLH_MALE\.pkl.*refused to load global (posix|os)\.system"):
        load_smplh_arrays(evil)
    assert not marker.exists()

    out = tmp_path / "model.npz"
    assert main(["body", "convert", str(evil), str(out)]) == 2
    err = capsys.readouterr().err
    assert "SMPLH_MALE.pkl" in err and "refused" in err and "Traceback" not in err and err.count("\n") == 1
    assert not marker.exists() and not out.exists() and evil.read_bytes() == payload

    for obj in (_Eval(), {"a": copy.deepcopy}, {"a": np.load}):
        path = tmp_path / "other.pkl"
        path.write_bytes(pickle.dumps(obj, protocol=2))
        with pytest.raises(BodyModelError, match="refused"):
            load_smplh_arrays(path)
