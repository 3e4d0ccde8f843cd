"""The 21-joint MMM evaluation layout (TEACH/Action-GPT ``jointstype="mmmns"``).

Joint order and sources (TEACH's ``teach/info/joints.py`` ``mmm_joints`` order; ``MMM21_SOURCES`` below): the
21 MMM joints are 19 SMPL-H body joints plus the two heel landmarks (``LMrot``/``RMrot``), which SMPL-H takes
from mesh vertices and our skeletons carry as end points rigidly attached to the ankles.

Axes: ``(x, y, z)_mmm = (y, z, -x)_amass``: y is up, the ground plane is (x, z), and a body facing
AMASS -x (the canonical facing of ``features.rotations_to_features``) faces MMM +z. The map has
determinant -1 (a mirror); that is the original convention and harmless because generated and
ground-truth motions both go through it (the metrics are mirror-invariant).

Units: ``"mmmns"`` keeps metres (TEACH, Action-GPT); ``"mmm"`` multiplies by ``480 / 0.75 = 640``
(Mathux/TEMOS's MMM millimetre-like scale). The original additionally shifts each sequence so its
frame-0 root equals ``trans[0]`` (mixing axes); it has no effect on APE/AVE, which remove the floor and
re-integrate the trajectory from zero, so it is not reproduced here.

Public API (``__all__``) includes ``mmm_to_amass_axes``, the inverse axis map, for users bringing MMM-layout
joints (e.g. the original's outputs) back to the AMASS frame; the pipeline only maps the other way.
"""

from __future__ import annotations

import torch

from actiongpt.motion.fk import forward_kinematics
from actiongpt.motion.skeleton import JOINT_INDEX, Skeleton

__all__ = [
    "JOINTS_TYPES",
    "MMM21_CHAINS",
    "MMM21_JOINTS",
    "MMM21_SOURCES",
    "MMM_SCALE",
    "SMPLH73_LEFT_HEEL",
    "SMPLH73_RIGHT_HEEL",
    "SMPLH73_TO_MMM21",
    "amass_to_mmm_axes",
    "joints_mmm21",
    "mmm_to_amass_axes",
    "smplh73_to_mmm21",
    "to_mmm21",
]

MMM21_JOINTS: tuple[str, ...] = (
    "root", "BP", "BT", "BLN", "BUN", "LS", "LE", "LW", "RS", "RE", "RW",
    "LH", "LK", "LA", "LMrot", "LF", "RH", "RK", "RA", "RMrot", "RF",
)  # fmt: skip

# SMPL-H body joint name (or "left_heel"/"right_heel" end point) per MMM joint.
MMM21_SOURCES: tuple[str, ...] = (
    "pelvis", "spine1", "spine3", "neck", "head", "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist", "left_hip", "left_knee", "left_ankle", "left_heel",
    "left_foot", "right_hip", "right_knee", "right_ankle", "right_heel", "right_foot",
)  # fmt: skip

MMM21_CHAINS: tuple[tuple[int, ...], ...] = (
    (0, 1, 2, 3, 4),
    (3, 5, 6, 7),
    (3, 8, 9, 10),
    (0, 11, 12, 13, 14, 15),
    (0, 16, 17, 18, 19, 20),
)

# Index of each MMM joint in the SMPL-H 73-joint smplx output (52 joints + landmarks; heels 59 and 62).
SMPLH73_LEFT_HEEL, SMPLH73_RIGHT_HEEL = 59, 62
SMPLH73_TO_MMM21: tuple[int, ...] = tuple(
    {"left_heel": SMPLH73_LEFT_HEEL, "right_heel": SMPLH73_RIGHT_HEEL}.get(n, JOINT_INDEX.get(n, -1))
    for n in MMM21_SOURCES
)

MMM_SCALE = 480 / 0.75  # = 640, the "mmm" joints type
JOINTS_TYPES = ("mmmns", "mmm")

# Position of each MMM joint in cat([joints22, heels(left, right)]) (24 rows).
_GATHER = tuple({"left_heel": 22, "right_heel": 23}.get(n, JOINT_INDEX.get(n, -1)) for n in MMM21_SOURCES)


def amass_to_mmm_axes(points: torch.Tensor) -> torch.Tensor:
    """(..., 3) AMASS (z up) -> MMM axes: ``(x, y, z)_mmm = (y, z, -x)_amass``."""
    return torch.stack([points[..., 1], points[..., 2], -points[..., 0]], dim=-1)


def mmm_to_amass_axes(points: torch.Tensor) -> torch.Tensor:
    """Inverse of ``amass_to_mmm_axes``."""
    return torch.stack([-points[..., 2], points[..., 0], points[..., 1]], dim=-1)


def to_mmm21(joints22: torch.Tensor, heels: torch.Tensor, jointstype: str = "mmmns") -> torch.Tensor:
    """AMASS-frame body joints (..., 22, 3) + heels (..., 2, 3) (left, right) -> MMM-21 (..., 21, 3)."""
    if jointstype not in JOINTS_TYPES:
        raise ValueError(f"jointstype must be one of {JOINTS_TYPES}, got {jointstype!r}")
    if joints22.shape[-2:] != (22, 3):
        raise ValueError(f"joints22 must be (..., 22, 3), got {tuple(joints22.shape)}")
    if heels.shape != (*joints22.shape[:-2], 2, 3):
        raise ValueError(f"heels must be (..., 2, 3) matching joints22, got {tuple(heels.shape)}")
    allj = torch.cat([joints22, heels], dim=-2)
    out = amass_to_mmm_axes(allj[..., list(_GATHER), :])
    return out * MMM_SCALE if jointstype == "mmm" else out


def smplh73_to_mmm21(joints73: torch.Tensor, jointstype: str = "mmmns") -> torch.Tensor:
    """smplx SMPL-H joints (..., 73, 3) (52 joints + vertex landmarks) -> MMM-21, as the original."""
    if joints73.shape[-2] != 73 or joints73.shape[-1] != 3:
        raise ValueError(f"expected (..., 73, 3) SMPL-H joints from smplx, got {tuple(joints73.shape)}")
    heels = joints73[..., [SMPLH73_LEFT_HEEL, SMPLH73_RIGHT_HEEL], :]
    return to_mmm21(joints73[..., :22, :], heels, jointstype)


def joints_mmm21(
    rotmats: torch.Tensor, trans: torch.Tensor, skeleton: Skeleton, jointstype: str = "mmmns"
) -> torch.Tensor:
    """Rotations (..., 22, 3, 3) + AMASS translation (..., 3) -> MMM-21 joints (..., 21, 3).

    Forward kinematics on ``skeleton``; the heels are its ``left_heel``/``right_heel`` end points (rigid
    on the ankles -- for the bundled skeleton and for ``smplh.load_smplh_skeleton``; use
    ``smplh.smplh_joints`` + ``smplh73_to_mmm21`` for skinned mesh heels).
    """
    try:
        heel_idx = [22 + skeleton.end_point("left_heel"), 22 + skeleton.end_point("right_heel")]
    except ValueError as exc:
        raise ValueError(f"skeleton {skeleton.name!r} has no left_heel/right_heel end points") from exc
    pos = forward_kinematics(rotmats, trans, skeleton, with_end_points=True)
    return to_mmm21(pos[..., :22, :], pos[..., heel_idx, :], jointstype)
