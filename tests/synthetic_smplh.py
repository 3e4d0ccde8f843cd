"""Synthetic SMPL-H model files in the real file layout, for tests and smoke runs (never for results).

Real SMPL-H files are not redistributable (see ``smplh.DOWNLOAD_HINT``). These files have every key,
dtype and shape smplx reads (``v_template``, ``shapedirs (V,3,B)``, ``posedirs (V,3,459)``,
``J_regressor (52,V)``, ``weights (V,52)``, ``kintree_table`` with the root parent 4294967295, ``f``, and
the hand PCA arrays unless written in the AMASS style, which lacks them), so loaders and smplx run on
them unchanged.

Unlike random arrays, the geometry is meaningful so tests can check known answers: the regressed rest
joints are the bundled skeleton's (whose pelvis already sits where SMPL-H's does), each joint being the
exact weighted mean of two vertices; heel/toe landmark vertices sit on the bundled end points and are
skinned 100 % to the ankle/foot without pose blend shapes, so smplx's mesh heels equal rigid end points.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from actiongpt.motion.skeleton import SMPLH_BODY_PARENTS, SMPLH_REST_PELVIS, bundled_skeleton
from actiongpt.motion.smplh import ROOT_PARENT_SENTINEL, SMPLH_NUM_JOINTS

# Where SMPL-H's template puts the pelvis joint (approximately; y up, metres): the bundled skeleton's.
SYNTHETIC_PELVIS = SMPLH_REST_PELVIS
FULL_SIZE_VERTICES = 6890

# Landmark order of smplx's VertexJointSelector (face, feet, then l/r finger tips).
LANDMARKS = (
    "nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
    "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex", "rmiddle", "rring", "rpinky",
)  # fmt: skip

# SMPL-H finger order per hand: index, middle, pinky, ring, thumb (3 joints each).
_FINGERS = ("index", "middle", "pinky", "ring", "thumb")
_FINGER_Z = {"index": 0.02, "middle": 0.0, "pinky": -0.04, "ring": -0.02, "thumb": 0.045}


def smplh_parents52() -> list[int]:
    """The full SMPL-H tree: body, then 5 three-joint finger chains per hand (left from 20, right from 21)."""
    parents = list(SMPLH_BODY_PARENTS)
    for wrist, start in ((20, 22), (21, 37)):
        for f in range(5):
            base = start + 3 * f
            parents += [wrist, base, base + 1]
    return parents


@dataclass
class SyntheticSMPLH:
    arrays: dict[str, np.ndarray]
    vertex_ids: dict[str, int]
    rest_joints: np.ndarray  # (52, 3) of the mean shape
    path: Path | None = None
    landmarks: dict[str, np.ndarray] = field(default_factory=dict)  # mean-shape landmark positions


def _rest_joints52() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    sk = bundled_skeleton()
    shift = np.asarray(SYNTHETIC_PELVIS) - sk.rest_joints[0].double().numpy()
    body = sk.rest_joints.double().numpy() + shift
    ends = {n: sk.end_points[i].double().numpy() + shift for i, n in enumerate(sk.end_point_names)}
    hands = []
    for wrist, sign in ((20, 1.0), (21, -1.0)):
        for f in _FINGERS:
            for k in range(3):
                dy = -0.02 if f == "thumb" else 0.0
                hands.append(body[wrist] + np.array([sign * (0.08 + 0.03 * k), dy, _FINGER_Z[f]]))
    joints = np.concatenate([body, np.stack(hands)])
    head, lfoot_out = joints[15], np.array([0.035, 0.0, -0.03])
    lm = {
        "nose": head + np.array([0.0, 0.05, 0.1]),
        "reye": head + np.array([-0.03, 0.08, 0.08]),
        "leye": head + np.array([0.03, 0.08, 0.08]),
        "rear": head + np.array([-0.07, 0.06, 0.0]),
        "lear": head + np.array([0.07, 0.06, 0.0]),
        "LBigToe": ends["left_toe"],
        "LSmallToe": ends["left_toe"] + lfoot_out,
        "LHeel": ends["left_heel"],
        "RBigToe": ends["right_toe"],
        "RSmallToe": ends["right_toe"] + lfoot_out * [-1, 1, 1],
        "RHeel": ends["right_heel"],
    }
    for side, start, sign in (("l", 22, 1.0), ("r", 37, -1.0)):
        for tip in ("thumb", "index", "middle", "ring", "pinky"):
            last = start + 3 * _FINGERS.index(tip) + 2
            lm[side + tip] = joints[last] + [sign * 0.025, 0.0, 0.0]
    return joints, {k: np.asarray(v, dtype=np.float64) for k, v in lm.items()}


def _landmark_joint(name: str) -> int:
    if name in ("nose", "reye", "leye", "rear", "lear"):
        return 15
    if name in ("LBigToe", "LSmallToe"):
        return 10
    if name in ("RBigToe", "RSmallToe"):
        return 11
    if name == "LHeel":
        return 7
    if name == "RHeel":
        return 8
    start = 22 if name[0] == "l" else 37
    return start + 3 * _FINGERS.index(name[1:]) + 2


def synthetic_smplh(
    num_betas: int = 10, hands_pca: bool = True, full_size: bool = False, seed: int = 0
) -> SyntheticSMPLH:
    """Build the arrays. ``full_size`` uses 6890 vertices with smplx's default landmark ids (so no
    ``vertex_ids`` override is needed); otherwise 125 vertices and ``result.vertex_ids`` must be passed.
    ``hands_pca=False`` mimics the AMASS "Extended SMPL+H" npz (no hand PCA arrays)."""
    rng = np.random.default_rng(seed)
    joints, lm = _rest_joints52()
    parents = smplh_parents52()
    n_core = 2 * SMPLH_NUM_JOINTS + len(LANDMARKS)
    if full_size:
        from actiongpt.motion.smplh import default_vertex_ids

        n_v = FULL_SIZE_VERTICES
        vertex_ids = {k: default_vertex_ids()[k] for k in LANDMARKS}
        free = np.setdiff1d(np.arange(n_v), list(vertex_ids.values()))
        cluster_ids = free[: 2 * SMPLH_NUM_JOINTS]
    else:
        n_v = n_core
        cluster_ids = np.arange(2 * SMPLH_NUM_JOINTS)
        vertex_ids = {k: 2 * SMPLH_NUM_JOINTS + i for i, k in enumerate(LANDMARKS)}

    v = np.zeros((n_v, 3))
    weights = np.zeros((n_v, SMPLH_NUM_JOINTS))
    jreg = np.zeros((SMPLH_NUM_JOINTS, n_v))
    # Filler vertices (full size only): scattered near random joints, skinned to them.
    owner = rng.integers(0, SMPLH_NUM_JOINTS, n_v)
    v[:] = joints[owner] + rng.normal(0, 0.03, (n_v, 3))
    weights[np.arange(n_v), owner] = 1.0
    for j in range(SMPLH_NUM_JOINTS):
        a, b = cluster_ids[2 * j], cluster_ids[2 * j + 1]
        w = rng.uniform(0.25, 0.75)
        v[a] = joints[j] + rng.normal(0, 0.03, 3)
        v[b] = (joints[j] - w * v[a]) / (1 - w)  # so that w * v[a] + (1 - w) * v[b] == joint j exactly
        jreg[j, a], jreg[j, b] = w, 1 - w
        for vid in (a, b):
            weights[vid] = 0.0
            p = parents[j]
            if p < 0:
                weights[vid, j] = 1.0
            else:
                weights[vid, j], weights[vid, p] = 0.7, 0.3
    for name, vid in vertex_ids.items():
        v[vid] = lm[name]
        weights[vid] = 0.0
        weights[vid, _landmark_joint(name)] = 1.0

    shapedirs = rng.normal(0, 0.01, (n_v, 3, num_betas))
    # Pose blend shapes only on the joint-cluster vertices: keeps landmarks rigid and full-size files small.
    posedirs = np.zeros((n_v, 3, 9 * (SMPLH_NUM_JOINTS - 1)))
    posedirs[cluster_ids] = rng.normal(0, 1e-3, (len(cluster_ids), 3, posedirs.shape[-1]))
    kintree = np.array([[ROOT_PARENT_SENTINEL, *parents[1:]], list(range(SMPLH_NUM_JOINTS))], dtype=np.int64)
    faces = rng.integers(0, n_v, (max(n_v // 2, 1), 3)).astype(np.uint32)
    arrays: dict[str, np.ndarray] = {
        "v_template": v.astype(np.float64),
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": jreg,
        "weights": weights,
        "kintree_table": kintree,
        "f": faces,
    }
    if hands_pca:
        for side in "lr":
            q, _ = np.linalg.qr(rng.normal(size=(45, 45)))
            arrays[f"hands_components{side}"] = q
            arrays[f"hands_mean{side}"] = rng.normal(0, 0.1, 45)
    else:  # the AMASS npz carries a few more arrays smplx ignores
        arrays["J"] = jreg @ v
        arrays["bs_style"] = np.array("lbs")
        arrays["bs_type"] = np.array("lrotmin")
    return SyntheticSMPLH(arrays=arrays, vertex_ids=vertex_ids, rest_joints=jreg @ v, landmarks=lm)


def write_synthetic_smplh(
    path: str | Path, num_betas: int = 10, hands_pca: bool = True, full_size: bool = False, seed: int = 0
) -> SyntheticSMPLH:
    """Write a synthetic model to ``path`` (``.npz`` or ``.pkl``, parents created) and return it.

    ``.pkl`` stores ``J_regressor`` as a scipy.sparse matrix, like the real pkl files (no chumpy).
    Typical real layouts: ``<dir>/SMPLH_MALE.npz`` (smplx) or ``<dir>/smplh/male/model.npz`` (AMASS,
    ``hands_pca=False, num_betas=16``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = synthetic_smplh(num_betas=num_betas, hands_pca=hands_pca, full_size=full_size, seed=seed)
    if path.suffix == ".pkl":
        import scipy.sparse

        data = dict(model.arrays)
        data["J_regressor"] = scipy.sparse.csc_matrix(data["J_regressor"])
        with open(path, "wb") as fh:
            pickle.dump(data, fh, protocol=2)
    elif path.suffix == ".npz":
        (np.savez_compressed if full_size else np.savez)(path, **model.arrays)
    else:
        raise ValueError(f"synthetic SMPL-H file must end in .npz or .pkl, got {path}")
    model.path = path
    return model
