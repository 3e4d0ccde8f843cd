"""The real SMPL-H body: a ``Skeleton`` from an SMPL-H model file, and smplx's own forward pass.

Model files are not redistributable. Users get them from https://mano.is.tue.mpg.de (registration):
the **"Extended SMPL+H model"** used by AMASS unpacks to ``smplh/{male,female,neutral}/model.npz``;
the "Models & Code" archive has ``SMPLH_{male,female}.pkl``. TEACH / Action-GPT use the **male** model.

Accepted ``model_path``:
- a file: ``.npz`` (read with ``allow_pickle=False``) or ``.pkl``. A ``.pkl`` is read with a restricted
  unpickler (``actiongpt.motion.body_pickle``: numpy arrays, scipy sparse matrices and the arrays of
  chumpy objects, no chumpy needed; any other global is refused, so a file cannot run code) and only when
  you pass it explicitly. ``actiongpt body convert SRC.pkl DST.npz`` converts it once;
- a folder, searched (case-insensitively) for ``SMPLH_{GENDER}.npz``, ``smplh/SMPLH_{GENDER}.npz``,
  ``{gender}/model.npz`` and ``smplh/{gender}/model.npz`` (AMASS layout).

``load_smplh_skeleton`` reads only the arrays (no smplx object): rest joints are
``J_regressor @ (v_template + shapedirs . betas)`` (the first 22 rows), the heel end points are the heel
vertices (smplx's ``vertex_ids['smplh']`` ``LHeel``/``RHeel``) and the toe end points the big-toe vertices,
all of the shaped template. Our FK on that skeleton reproduces smplx's 22 posed body joints exactly;
its heels are rigid on the ankles, whereas smplx's heel landmarks are skinned mesh vertices (a few mm
apart in motion). ``SMPLHBody`` / ``smplh_joints`` run smplx itself for the exact mesh-based landmarks.
"""

from __future__ import annotations

import contextlib
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actiongpt.motion.body_pickle import load_body_arrays
from actiongpt.motion.skeleton import END_POINT_PARENTS, JOINT_INDEX, SMPLH_BODY_PARENTS, Skeleton

GENDERS = ("male", "female", "neutral")
SMPLH_NUM_JOINTS = 52
SMPLH_NUM_OUTPUT_JOINTS = 73  # smplx SMPL-H output: 52 joints + 21 vertex landmarks
ROOT_PARENT_SENTINEL = 4294967295  # kintree_table's "no parent" (uint32 max) in the real files

DOWNLOAD_HINT = (
    "SMPL+H model files are not redistributable: register at https://mano.is.tue.mpg.de and download the "
    '"Extended SMPL+H model" (used by AMASS; it unpacks to smplh/{male,female,neutral}/model.npz), then pass '
    "that folder or file."
)

# Vertex landmarks used for the skeleton's end points (keys of smplx's vertex_ids['smplh']).
_END_POINT_VERTICES = {
    "left_heel": "LHeel",
    "right_heel": "RHeel",
    "left_toe": "LBigToe",
    "right_toe": "RBigToe",
}
_REQUIRED_SKELETON_KEYS = ("v_template", "shapedirs", "J_regressor", "kintree_table")
_REQUIRED_FORWARD_KEYS = (*_REQUIRED_SKELETON_KEYS, "weights", "posedirs", "f")


class BodyModelNotFoundError(FileNotFoundError):
    """No SMPL-H model file where we looked; the message names every path tried and where to get one."""


class BodyModelError(ValueError):
    """An SMPL-H model file exists but cannot be used (unreadable, missing key, wrong shape or topology)."""


def default_vertex_ids() -> dict[str, int]:
    """smplx's SMPL-H landmark vertex ids (for the real 6890-vertex mesh)."""
    from smplx.vertex_ids import vertex_ids

    return dict(vertex_ids["smplh"])


def _find_ci(folder: Path, rel: str) -> Path | None:
    """``folder/rel`` with each path component matched case-insensitively (exact match preferred)."""
    cur = folder
    for part in Path(rel).parts:
        exact = cur / part
        if exact.exists():
            cur = exact
            continue
        if not cur.is_dir():
            return None
        matches = sorted(p for p in cur.iterdir() if p.name.lower() == part.lower())
        if not matches:
            return None
        cur = matches[0]
    return cur


def find_smplh_model(model_path: str | Path, gender: str = "male") -> Path:
    """Resolve a model file from a file or folder path (see the module docstring for the search order)."""
    if gender not in GENDERS:
        raise ValueError(f"gender must be one of {GENDERS}, got {gender!r}")
    path = Path(model_path).expanduser()
    if path.is_file():
        if path.suffix.lower() not in (".npz", ".pkl"):
            raise BodyModelError(
                f"{path}: unsupported SMPL-H model file type {path.suffix!r} (need .npz or .pkl)"
            )
        return path
    if not path.exists():
        raise BodyModelNotFoundError(f"SMPL-H model path {path} does not exist. {DOWNLOAD_HINT}")
    g, G = gender, gender.upper()
    candidates = [f"SMPLH_{G}.npz", f"smplh/SMPLH_{G}.npz", f"{g}/model.npz", f"smplh/{g}/model.npz"]
    tried = []
    for rel in candidates:
        found = _find_ci(path, rel)
        if found is not None and found.is_file():
            return found
        tried.append(str(path / rel))
    pkls = [p for rel in (f"SMPLH_{G}.pkl", f"smplh/SMPLH_{G}.pkl") if (p := _find_ci(path, rel)) is not None]
    msg = f"no SMPL-H {gender} model found in {path}; tried: {', '.join(tried)}."
    if pkls:
        msg += (
            f" Found {', '.join(map(str, pkls))}: .pkl files are used only when passed explicitly as the"
            " model path (or convert once: actiongpt body convert SRC.pkl DST.npz)."
        )
    raise BodyModelNotFoundError(f"{msg} {DOWNLOAD_HINT}")


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "toarray"):  # scipy.sparse (J_regressor in the pkl files)
        return np.asarray(value.toarray())
    return np.asarray(value)


def load_smplh_arrays(
    path: str | Path, keys: tuple[str, ...] = _REQUIRED_FORWARD_KEYS
) -> dict[str, np.ndarray]:
    """Read an SMPL-H ``.npz``/``.pkl`` file into plain numpy arrays and check the required ``keys``.

    Optional hand-PCA keys (``hands_components{l,r}``, ``hands_mean{l,r}``) are returned when present.
    """
    path = Path(path)
    optional = ("hands_componentsl", "hands_componentsr", "hands_meanl", "hands_meanr")
    try:
        if path.suffix.lower() == ".pkl":
            raw = load_body_arrays(path)
        else:
            with np.load(path, allow_pickle=False) as npz:  # never unpickles; reads only what we need
                raw = {k: npz[k] for k in (*keys, *optional) if k in npz.files}
        missing = [k for k in keys if k not in raw]
        if missing:
            raise BodyModelError(f"{path}: not an SMPL-H model file, missing key(s) {missing}")
        data = {k: _to_numpy(raw[k]) for k in (*keys, *optional) if k in raw}
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        if isinstance(exc, BodyModelError):
            raise
        raise BodyModelError(f"{path}: cannot read SMPL-H model file: {exc}") from exc
    _check_arrays(path, data)
    return data


def _check_arrays(path: Path, d: dict[str, np.ndarray]) -> None:
    v = d["v_template"]
    if v.ndim != 2 or v.shape[1] != 3:
        raise BodyModelError(f"{path}: v_template must be (V, 3), got {v.shape}")
    n_v = v.shape[0]
    if d["shapedirs"].ndim != 3 or d["shapedirs"].shape[:2] != (n_v, 3):
        raise BodyModelError(f"{path}: shapedirs must be ({n_v}, 3, B), got {d['shapedirs'].shape}")
    if d["J_regressor"].shape != (SMPLH_NUM_JOINTS, n_v):
        raise BodyModelError(
            f"{path}: J_regressor must be ({SMPLH_NUM_JOINTS}, {n_v}), got {d['J_regressor'].shape}"
            " (SMPL has 24 joints, SMPL-X 55: an SMPL-H model is needed)"
        )
    kt = d["kintree_table"]
    if kt.shape != (2, SMPLH_NUM_JOINTS):
        raise BodyModelError(f"{path}: kintree_table must be (2, {SMPLH_NUM_JOINTS}), got {kt.shape}")
    parents = smplh_parents(kt)
    if tuple(parents[:22]) != SMPLH_BODY_PARENTS:
        raise BodyModelError(
            f"{path}: body parents {tuple(parents[:22])} differ from the SMPL-H tree {SMPLH_BODY_PARENTS}"
        )
    if "weights" in d and d["weights"].shape != (n_v, SMPLH_NUM_JOINTS):
        raise BodyModelError(f"{path}: weights must be ({n_v}, {SMPLH_NUM_JOINTS}), got {d['weights'].shape}")


def smplh_parents(kintree_table: np.ndarray) -> list[int]:
    """Parent indices from a kintree_table (root's 4294967295 or -1 -> -1)."""
    row = np.asarray(kintree_table[0]).astype(np.int64)
    return [-1 if (i == 0 or p < 0 or p >= row.shape[0]) else int(p) for i, p in enumerate(row)]


def _betas(betas: Any, num_betas: int, num_dirs: int, path: Path) -> np.ndarray:
    if num_betas < 0 or num_betas > num_dirs:
        raise BodyModelError(f"{path}: num_betas={num_betas} but the model has {num_dirs} shape directions")
    if betas is None:
        return np.zeros(num_betas)
    b = betas.detach().cpu().double().numpy() if isinstance(betas, torch.Tensor) else np.asarray(betas, float)
    if b.ndim != 1:
        raise ValueError(f"betas must be 1-D (one body shape), got shape {b.shape}")
    # Only the first num_betas coefficients are used (TEACH keeps 10 of AMASS's 16).
    b = b[:num_betas]
    return np.concatenate([b, np.zeros(num_betas - b.shape[0])])


def shaped_template(data: dict[str, np.ndarray], betas: np.ndarray) -> np.ndarray:
    """``v_template + shapedirs[..., :n] . betas`` in float64, (V, 3)."""
    n = betas.shape[0]
    return data["v_template"].astype(np.float64) + data["shapedirs"][..., :n].astype(np.float64) @ betas


def _vertex_ids(
    vertex_ids: dict[str, int] | None, n_v: int, names: tuple[str, ...], path: Path
) -> dict[str, int]:
    ids = default_vertex_ids() if vertex_ids is None else dict(vertex_ids)
    missing = [n for n in names if n not in ids]
    if missing:
        raise ValueError(f"vertex_ids is missing {missing}")
    bad = {n: ids[n] for n in names if not 0 <= int(ids[n]) < n_v}
    if bad:
        raise BodyModelError(
            f"{path}: vertex_ids {bad} out of range for a model with {n_v} vertices "
            "(the defaults are for the real 6890-vertex SMPL-H mesh; pass vertex_ids=... for other meshes)"
        )
    return ids


def load_smplh_skeleton(
    model_path: str | Path,
    gender: str = "male",
    betas: Any = None,
    num_betas: int = 10,
    vertex_ids: dict[str, int] | None = None,
) -> Skeleton:
    """A 22-joint ``Skeleton`` (+ heel and big-toe end points) from an SMPL-H model file or folder.

    ``betas``: one body shape (array-like of up to ``num_betas`` used coefficients; None = mean shape).
    ``vertex_ids``: landmark vertex ids (default: smplx's ``vertex_ids['smplh']``). Raises
    ``BodyModelNotFoundError`` (a ``FileNotFoundError``) when no file is found, ``BodyModelError`` when
    the file is unusable.
    """
    path = find_smplh_model(model_path, gender)
    data = load_smplh_arrays(path, _REQUIRED_SKELETON_KEYS)
    b = _betas(betas, num_betas, data["shapedirs"].shape[-1], path)
    verts = shaped_template(data, b)
    joints = data["J_regressor"].astype(np.float64) @ verts
    names = tuple(END_POINT_PARENTS)
    ids = _vertex_ids(vertex_ids, verts.shape[0], tuple(_END_POINT_VERTICES[n] for n in names), path)
    ends = np.stack([verts[int(ids[_END_POINT_VERTICES[n]])] for n in names])
    return Skeleton(
        rest_joints=torch.from_numpy(joints[:22]).float(),
        end_points=torch.from_numpy(ends).float(),
        end_point_names=names,
        end_point_parents=tuple(JOINT_INDEX[END_POINT_PARENTS[n]] for n in names),
        name=f"smplh-{gender}:{path.name}",
    )


class SMPLHBody:
    """smplx's ``SMPLHLayer`` for one model file and one body shape, run in chunks over any batch shape.

    Works with the AMASS npz files too (they lack the hand-PCA arrays smplx insists on; zeros are filled
    in, unused since hand poses are given as rotation matrices). The shape is baked into the template, so
    all of the model's shape directions (16 in the AMASS files) can be used, while smplx itself caps
    SMPL-H at 10.
    """

    def __init__(
        self,
        model_path: str | Path,
        gender: str = "male",
        betas: Any = None,
        num_betas: int = 10,
        vertex_ids: dict[str, int] | None = None,
        chunk_size: int = 1024,
    ) -> None:
        import smplx
        from smplx.utils import Struct

        self.path = find_smplh_model(model_path, gender)
        data = load_smplh_arrays(self.path)
        b = _betas(betas, num_betas, data["shapedirs"].shape[-1], self.path)
        verts = shaped_template(data, b)
        ids = _vertex_ids(vertex_ids, verts.shape[0], tuple(default_vertex_ids()), self.path)
        for side in "lr":
            data.setdefault(f"hands_components{side}", np.zeros((45, 45)))
            data.setdefault(f"hands_mean{side}", np.zeros(45))
        self.chunk_size = chunk_size
        ext = "pkl" if self.path.suffix.lower() == ".pkl" else "npz"
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning about 10 shape coefficients
            self.layer = smplx.SMPLHLayer(
                model_path=str(self.path),
                data_struct=Struct(**data),
                gender=gender,
                ext=ext,
                num_betas=min(10, data["shapedirs"].shape[-1]),
                vertex_ids=ids,
                use_pca=False,
                v_template=torch.from_numpy(verts).float(),
            ).eval()

    def joints(self, rotmats: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
        """Rotations (..., 22 or 52, 3, 3) + translation (..., 3) -> smplx joints (..., 73, 3).

        22 rotations = root + body (hands flat, as TEACH); 52 = SMPL-H's full pose incl. both hands.
        """
        n_j = rotmats.shape[-3]
        if rotmats.shape[-2:] != (3, 3) or n_j not in (22, SMPLH_NUM_JOINTS):
            raise ValueError(f"rotmats must be (..., 22 or 52, 3, 3), got {tuple(rotmats.shape)}")
        if trans.shape != (*rotmats.shape[:-3], 3):
            raise ValueError(f"trans {tuple(trans.shape)} does not match rotmats {tuple(rotmats.shape)}")
        lead = rotmats.shape[:-3]
        layer = self.layer.to(rotmats.device)
        dtype = layer.shapedirs.dtype
        rot = rotmats.reshape(-1, n_j, 3, 3).to(dtype)
        tr = trans.reshape(-1, 3).to(dtype)
        out = []
        for s in range(0, rot.shape[0], self.chunk_size):
            r, t = rot[s : s + self.chunk_size], tr[s : s + self.chunk_size]
            kw = {}
            if n_j == SMPLH_NUM_JOINTS:
                kw = {"left_hand_pose": r[:, 22:37], "right_hand_pose": r[:, 37:52]}
            res = layer(global_orient=r[:, :1], body_pose=r[:, 1:22], transl=t, return_verts=False, **kw)
            out.append(res.joints)
        joints = torch.cat(out) if out else rot.new_zeros(0, SMPLH_NUM_OUTPUT_JOINTS, 3)
        return joints.reshape(*lead, joints.shape[-2], 3).to(rotmats.dtype)

    def skeleton(self) -> Skeleton:
        """The rigid skeleton of the same shape (rest joints and end points from the shaped template)."""
        verts = self.layer.v_template.double()
        joints = (self.layer.J_regressor.double() @ verts)[:22]
        names = tuple(END_POINT_PARENTS)
        return Skeleton(
            rest_joints=joints.float(),
            end_points=torch.stack([verts[self._landmark(n)] for n in names]).float(),
            end_point_names=names,
            end_point_parents=tuple(JOINT_INDEX[END_POINT_PARENTS[n]] for n in names),
            name=f"smplh:{self.path.name}",
        )

    def _landmark(self, end_point: str) -> int:
        # extra_joints_idxs order: nose, reye, leye, rear, lear, LBigToe, LSmallToe, LHeel, RBigToe, ...
        order = {"left_toe": 5, "left_heel": 7, "right_toe": 8, "right_heel": 10}
        return int(self.layer.vertex_joint_selector.extra_joints_idxs[order[end_point]])


def smplh_joints(
    model_path: str | Path,
    rotmats: torch.Tensor,
    trans: torch.Tensor,
    gender: str = "male",
    betas: Any = None,
    num_betas: int = 10,
    vertex_ids: dict[str, int] | None = None,
) -> torch.Tensor:
    """One-shot ``SMPLHBody(...).joints(rotmats, trans)``: smplx's (..., 73, 3) joints incl. mesh heels.

    Build an ``SMPLHBody`` once instead when converting many batches.
    """
    return SMPLHBody(model_path, gender, betas, num_betas, vertex_ids).joints(rotmats, trans)
