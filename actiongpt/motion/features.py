"""The 135-d motion features of the original BABEL setup (TEACH's ``Globalvelandy``, rot6d).

Layout per frame (30 fps in the original):

====== ==========================================================================================
dims   content
====== ==========================================================================================
0      root height: the raw AMASS translation z (z up, metres; absolute, never canonicalised)
1-2    ground-plane root velocity ``trans_xy[t] - trans_xy[t-1]`` (frame 0 holds 0), rotated by
       the canonicalisation
3-134  22 rotations (global root orientation + 21 local SMPL-H body joints) in 6D: the first two
       ROWS of each matrix, row-major ``(R00, R01, R02, R10, R11, R12)``
====== ==========================================================================================

Canonicalisation removes a yaw ``theta`` computed from frame 0's root orientation ``R0``: every root
orientation is left-multiplied by ``Rz(theta)^T`` and the velocities are rotated by ``-theta``.

- ``"original"`` (default, compatible with the published models and statistics):
  ``theta = a_z + pi/2`` where ``a_z`` is the z component of ``R0`` as an axis-angle vector (angle in
  [0, pi]). ``a_z`` is *not* the heading (for an upright body yawed by a small ``psi``,
  ``a_z ~ (pi/4) psi``), so the output still carries a start-pose-dependent residual yaw, and applying
  the transform twice rotates again (not idempotent).
- ``"heading"``: the same formula with ``a_z`` replaced by the exact yaw ``psi`` of frame 0:
  ``theta = psi + pi/2``. ``psi`` is the twist about world z of ``R0 @ Rx(+90 deg)^T``, i.e. the
  rotation about the vertical of an upright (AMASS: body y-up -> world z-up) body, irrespective of any
  pitch/roll applied after it (swing-twist decomposition). Both modes therefore bring an upright,
  un-yawed start pose to the same canonical facing (AMASS -x, which is MMM +z). Undefined only for a
  body exactly upside down at frame 0; there the horizontal projection of the body's forward axis is
  used instead. Idempotent: after it, frame 0's yaw is exactly -pi/2 and a second pass is a no-op.
- ``"none"``: no rotation (theta = 0).

Round trips (tested in ``tests/test_features.py``):

- features -> rotations -> features is the identity (float tolerance) for every valid feature array
  (orthonormal 6D rows, zero velocity at frame 0 -- everything ``rotations_to_features`` returns)
  when re-encoded with ``"none"``; re-encoding with ``"heading"`` is also the identity for features
  that were made with ``"heading"`` (idempotence). ``"original"`` has no such property.
- rotations -> features -> rotations returns the input up to a rigid motion: the root orientations are
  ``Rz(theta)^T R_root``, the local joints are unchanged, the translation is
  ``Rz(-theta) (trans - [trans_xy[0], 0])`` (height kept). Forward-kinematics joints are the input's
  rotated by ``Rz(-theta)`` plus a constant offset (SMPL-H places the root at ``rest[0] + trans``
  without rotating ``rest[0]``, so the offset is not only the removed start position).

``feature_stats`` (public, in ``__all__``) is the one-call mean/std over feature arrays for users; the shard
writer accumulates the same ``RunningStats`` incrementally.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

from actiongpt.motion.rotations import (
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rot6d,
    rot6d_to_matrix,
    rotation_about_axis,
)

__all__ = [
    "CANONICALIZE_MODES",
    "FEATURE_DIM",
    "NORM_EPS",
    "NUM_FEATURE_JOINTS",
    "RunningStats",
    "canonical_angle",
    "denormalize",
    "feature_stats",
    "features_to_rotations",
    "normalize",
    "rotate_2d",
    "rotations_to_features",
    "upright_yaw",
]

FEATURE_DIM = 135
NUM_FEATURE_JOINTS = 22
CANONICALIZE_MODES = ("original", "heading", "none")
NORM_EPS = 1e-12  # the original's (x - mean) / (std + 1e-12)


def _mode(canonicalize: str | bool) -> str:
    # bools are accepted for the planned API (canonicalize=True means the original behaviour)
    if canonicalize is True:
        return "original"
    if canonicalize is False or canonicalize is None:
        return "none"
    if canonicalize not in CANONICALIZE_MODES:
        raise ValueError(
            f"canonicalize must be one of {CANONICALIZE_MODES} (or a bool), got {canonicalize!r}"
        )
    return canonicalize


def upright_yaw(root_orient: torch.Tensor) -> torch.Tensor:
    """Exact yaw (..., ) of root orientations (..., 3, 3) relative to the upright AMASS body.

    0 for ``Rx(+90 deg)`` (standing, facing world -y); ``psi`` for ``Rz(psi) @ S @ Rx(+90 deg)`` with any
    swing ``S`` about a horizontal axis. Falls back to the forward axis' ground projection for a body that
    is (numerically) upside down, where the twist is undefined.
    """
    rx90 = rotation_about_axis(
        torch.tensor(math.pi / 2, dtype=root_orient.dtype, device=root_orient.device), "x"
    )
    q = matrix_to_quaternion(root_orient @ rx90.transpose(-1, -2))
    w, z = q[..., 0], q[..., 3]
    twist = 2.0 * torch.atan2(z, w)
    twist = torch.atan2(torch.sin(twist), torch.cos(twist))  # wrap to (-pi, pi]
    fwd = root_orient[..., :, 2]  # image of the body's forward axis (+z)
    fallback = torch.atan2(fwd[..., 1], fwd[..., 0]) + math.pi / 2
    return torch.where(w * w + z * z > 1e-10, twist, fallback)


def canonical_angle(root_orient0: torch.Tensor, canonicalize: str | bool = "original") -> torch.Tensor:
    """The yaw ``theta`` (...,) removed by ``rotations_to_features`` given frame 0's root (..., 3, 3)."""
    mode = _mode(canonicalize)
    if mode == "none":
        return root_orient0.new_zeros(root_orient0.shape[:-2])
    if mode == "original":
        a_z = matrix_to_axis_angle(root_orient0)[..., 2]
    else:
        a_z = upright_yaw(root_orient0)
    return a_z + math.pi / 2


def rotate_2d(v: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate (..., T, 2) vectors by ``angle`` (...,)."""
    c, s = torch.cos(angle)[..., None], torch.sin(angle)[..., None]
    x, y = v[..., 0], v[..., 1]
    return torch.stack([c * x - s * y, s * x + c * y], dim=-1)


def _check_motion(rotmats: torch.Tensor, trans: torch.Tensor) -> None:
    if rotmats.dim() < 4 or rotmats.shape[-3:] != (NUM_FEATURE_JOINTS, 3, 3):
        raise ValueError(f"rotmats must be (..., T, 22, 3, 3), got {tuple(rotmats.shape)}")
    if trans.shape != (*rotmats.shape[:-3], 3):
        raise ValueError(
            f"trans must be (..., T, 3) matching rotmats {tuple(rotmats.shape)}, got {tuple(trans.shape)}"
        )
    if rotmats.shape[-4] < 1:
        raise ValueError("a motion needs at least one frame")


def rotations_to_features(
    rotmats: torch.Tensor, trans: torch.Tensor, canonicalize: str | bool = "original"
) -> torch.Tensor:
    """Rotation matrices (..., T, 22, 3, 3) + AMASS translation (..., T, 3) -> features (..., T, 135).

    ``rotmats[..., 0, :, :]`` is the global root orientation, joints 1..21 the local SMPL-H body joints.
    ``trans`` is the raw AMASS translation (z up, metres). ``canonicalize``: ``"original"`` (default),
    ``"heading"`` or ``"none"`` (see the module docstring; ``True``/``False`` mean original/none).
    Each sequence in the batch is canonicalised by its own frame 0.
    """
    _check_motion(rotmats, trans)
    theta = canonical_angle(rotmats[..., 0, 0, :, :], canonicalize)
    height = trans[..., 2:3]
    xy = trans[..., :2]
    vel = torch.cat([torch.zeros_like(xy[..., :1, :]), xy[..., 1:, :] - xy[..., :-1, :]], dim=-2)
    vel = rotate_2d(vel, -theta)
    rz_t = rotation_about_axis(theta, "z").transpose(-1, -2)[..., None, :, :]  # (..., 1, 3, 3)
    root = rz_t @ rotmats[..., 0, :, :]
    mats = torch.cat([root[..., None, :, :], rotmats[..., 1:, :, :]], dim=-3)
    rot6d = matrix_to_rot6d(mats).flatten(-2)
    return torch.cat([height, vel, rot6d], dim=-1)


def features_to_rotations(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (..., T, 135) -> (rotmats (..., T, 22, 3, 3), trans (..., T, 3)).

    Rotations come from Gram-Schmidt on the 6D rows (so any 6D output of a network maps to a valid
    rotation); the ground trajectory is the cumulative sum of the velocities shifted so frame 0 is at
    xy = 0 (frame 0's stored velocity is therefore ignored), z is dim 0. The canonicalisation yaw is
    not undone (it is not stored), as in the original.
    """
    if feats.dim() < 2 or feats.shape[-1] != FEATURE_DIM:
        raise ValueError(f"features must be (..., T, {FEATURE_DIM}), got {tuple(feats.shape)}")
    if feats.shape[-2] < 1:
        raise ValueError("a motion needs at least one frame")
    traj = torch.cumsum(feats[..., 1:3], dim=-2)
    traj = traj - traj[..., :1, :]
    trans = torch.cat([traj, feats[..., 0:1]], dim=-1)
    rotmats = rot6d_to_matrix(feats[..., 3:].unflatten(-1, (NUM_FEATURE_JOINTS, 6)))
    return rotmats, trans


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / (std + 1e-12)`` per feature dimension, as the original."""
    return (x - mean) / (std + NORM_EPS)


def denormalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Exact inverse of ``normalize`` (the original multiplies by ``std`` alone; the 1e-12 is immaterial)."""
    return x * (std + NORM_EPS) + mean


class RunningStats:
    """Per-dimension mean and (unbiased) std over all frames, mergeable across workers.

    Uses float64 per-chunk mean/M2 combined with Chan et al.'s parallel update, so millions of frames
    can be streamed without concatenating them and partial results from several ranks can be merged.
    """

    def __init__(self, dim: int = FEATURE_DIM) -> None:
        self.dim = dim
        self.count = 0
        self.mean = np.zeros(dim, dtype=np.float64)
        self.m2 = np.zeros(dim, dtype=np.float64)

    def update(self, x: torch.Tensor | np.ndarray) -> None:
        arr = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float64)
        arr = arr.reshape(-1, arr.shape[-1]) if arr.ndim else arr
        if arr.ndim != 2 or arr.shape[-1] != self.dim:
            raise ValueError(f"expected (..., {self.dim}) features, got shape {np.shape(x)}")
        if not np.isfinite(arr).all():
            raise ValueError("features contain NaN or Inf")
        n = arr.shape[0]
        if n == 0:
            return
        mean = arr.mean(0)
        m2 = ((arr - mean) ** 2).sum(0)
        self._combine(n, mean, m2)

    def merge(self, other: RunningStats) -> None:
        if other.dim != self.dim:
            raise ValueError(f"cannot merge stats of dim {other.dim} into dim {self.dim}")
        if other.count:
            self._combine(other.count, other.mean, other.m2)

    def _combine(self, n: int, mean: np.ndarray, m2: np.ndarray) -> None:
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total

    def finalize(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.count < 2:
            raise ValueError(f"need at least 2 frames for a standard deviation, got {self.count}")
        std = np.sqrt(self.m2 / (self.count - 1))  # torch.std's default (unbiased), as compute_stats.py
        return torch.from_numpy(self.mean).float(), torch.from_numpy(std).float()


def feature_stats(features: Iterable[torch.Tensor | np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (each (135,), float32) over all frames of all (T, 135) feature arrays."""
    stats = RunningStats()
    for f in features:
        stats.update(f)
    return stats.finalize()
