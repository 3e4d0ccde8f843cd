"""Rifke-style canonicalisation of MMM-21 joint sequences, exactly as TEACH's APE/AVE evaluation does it.

The original (``teach/transforms/joints2jfeats/{rifke,tools}.py`` + ``ComputeMetrics.transform`` in
``teach/model/metrics/compute.py``) turns every sequence into features and back:

1. **Floor**: per frame the lowest height of the four foot joints (LMrot, LF, RMrot, RF); over the sequence
   ``floor = m - log(0.5 + exp(m - M))`` with ``m``/``M`` the min/max of those per-frame heights (a "soft
   minimum" with softness 0.5), subtracted from every joint's height.
2. **Root / trajectory**: root height = root y after floor removal; trajectory = root (x, z); the other 20
   joints get x, z relative to the root (y stays height above the floor).
3. **Heading**: across-vector ``a`` -> forward ``f = normalise(-a_z, a_x)``, ``theta = atan2(f0, f1)``; the 20
   root-relative joints and the root velocity are rotated by the inverse heading (local poses).
4. **Re-integration**: heading re-integrated and shifted to 0 at frame 0; local root velocity rotated back
   and integrated into a trajectory that starts at (0, 0); global joints = local poses rotated by that
   heading plus the trajectory, root = (traj_x, root_y, traj_z).

Everything here is batched over padded ``(B, T, 21, 3)`` tensors with per-sequence ``lengths``; padded
frames never influence valid ones (the floor's min/max only see valid frames, the padding is zeroed).

Deliberate, documented choices:
- ``heading="original"`` reproduces what the code *actually* computes. ``get_forward_direction`` uses the
  21-joint indices LS=5, RS=8, LH=11, RH=16 but is called on the root-removed 20-joint array, where index
  ``k`` is MMM joint ``k + 1``: it selects LE(6), RE(9), LK(12), RK(17), so the across-vector is
  ``(RK - LK) + (RE - LE)`` (knees and elbows). ``heading="hips_shoulders"`` is the intended
  ``(RH - LH) + (RS - LS)``. Published numbers depend on the former.
- ``floor="original"`` is the soft minimum above. It was written for the millimetre MMM scale, where its
  correction is below 1 mm; TEACH/Action-GPT feed metres, so the floor lands 0.1-0.4 m away from the true
  lowest foot height, by an amount that depends on the sequence's foot-height range (so two sequences with
  the same lowest foot but different ranges get different vertical offsets). ``floor="min"`` uses the
  plain minimum ``m`` (the limit the formula approximates at millimetre scale). Use ``"original"`` to
  compare with published numbers.
- The canonical heading is computed as ``theta_t - theta_0`` rather than ``cumsum(diff(theta)) -`` first,
  which is the same number up to rounding (the cumulative sum of differences telescopes).

``heading_angle`` (public, in ``__all__``) is the heading as an angle, for users inspecting a motion; the
metrics use its sine and cosine (``forward_sin_cos``) directly.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch

from actiongpt.motion.mmm import MMM21_JOINTS  # teach/info/joints.py ``mmm_joints`` order

__all__ = [
    "ACROSS_JOINTS",
    "FLOOR_MODES",
    "FOOT_JOINTS",
    "HEADING_MODES",
    "MMM21_POSE_JOINTS",
    "NUM_JOINTS",
    "UP_AXIS",
    "Canonical",
    "CanonicalParts",
    "FloorMode",
    "HeadingMode",
    "canonical_parts",
    "canonicalize",
    "check_modes",
    "floor_height",
    "forward_sin_cos",
    "heading_angle",
    "valid_mask",
]

MMM21_POSE_JOINTS: tuple[str, ...] = MMM21_JOINTS[1:]  # the 20 joints of the root-removed local pose
NUM_JOINTS = 21
UP_AXIS = 1  # y up; (x, z) is the ground plane

_J = {name: i for i, name in enumerate(MMM21_JOINTS)}
FOOT_JOINTS: tuple[int, ...] = (_J["LMrot"], _J["LF"], _J["RMrot"], _J["RF"])

FloorMode = Literal["original", "min"]
HeadingMode = Literal["original", "hips_shoulders"]
FLOOR_MODES: tuple[str, ...] = ("original", "min")
HEADING_MODES: tuple[str, ...] = ("original", "hips_shoulders")

# Across-vector (right, left, right, left) as indices into the 20-joint root-removed array.
# "original": the 21-joint indices RH, LH, RS, LS applied to the 20-joint array -> RK, LK, RE, LE.
_ACROSS_IDX20: dict[str, tuple[int, int, int, int]] = {
    "original": (_J["RH"], _J["LH"], _J["RS"], _J["LS"]),
    "hips_shoulders": (_J["RH"] - 1, _J["LH"] - 1, _J["RS"] - 1, _J["LS"] - 1),
}
# The same selections expressed in MMM-21 joint names (documentation and tests).
ACROSS_JOINTS: dict[str, tuple[str, str, str, str]] = {
    mode: tuple(MMM21_JOINTS[i + 1] for i in idx)  # type: ignore[misc]
    for mode, idx in _ACROSS_IDX20.items()
}
assert ACROSS_JOINTS["original"] == ("RK", "LK", "RE", "LE")

_SOFTNESS = 0.5  # tools.get_floor: softmin(foot_heights, softness=0.5)


class Canonical(NamedTuple):
    """Canonicalised sequences, all padded like the input (B, T, ...)."""

    joints: torch.Tensor  # (B, T, 21, 3) global joints, root at (traj_x, root_y, traj_z)
    poses_local: torch.Tensor  # (B, T, 20, 3) facing-normalised, root-relative x/z, y above floor
    root: torch.Tensor  # (B, T, 3)
    trajectory: torch.Tensor  # (B, T, 2) ground-plane (x, z), (0, 0) at frame 0


def check_modes(floor: str, heading: str) -> None:
    if floor not in FLOOR_MODES:
        raise ValueError(f"floor must be one of {FLOOR_MODES}, got {floor!r}")
    if heading not in HEADING_MODES:
        raise ValueError(f"heading must be one of {HEADING_MODES}, got {heading!r}")


def valid_mask(lengths: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool, True on valid frames."""
    return torch.arange(num_frames, device=lengths.device)[None, :] < lengths[:, None]


def floor_height(joints: torch.Tensor, valid: torch.Tensor, floor: FloorMode = "original") -> torch.Tensor:
    """Per-sequence floor height (B,) from the foot joints over the valid frames."""
    foot = joints[:, :, FOOT_JOINTS, UP_AXIS].amin(-1)  # (B, T) lowest foot joint per frame
    m = torch.where(valid, foot, math.inf).amin(1)
    if floor == "min":
        return m
    big = torch.where(valid, foot, -math.inf).amax(1)
    # softmin(x) = -softmax(-x), softmax(x) = max + log(softness + exp(min - max))
    return m - torch.log(_SOFTNESS + torch.exp(m - big))


def forward_sin_cos(
    rel_x: torch.Tensor, rel_z: torch.Tensor, heading: HeadingMode = "original"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit forward direction ``f = normalise(-a_z, a_x)`` as (sin, cos) = (f0, f1) of the heading.

    ``rel_x``/``rel_z`` are (..., 20): the root-removed joints' ground-plane coordinates. The 1e-12 floor
    on the norm is F.normalize's eps, as the original, so a degenerate across-vector gives (0, 0).
    """
    r1, l1, r2, l2 = _ACROSS_IDX20[heading]
    ax = rel_x[..., r1] - rel_x[..., l1] + rel_x[..., r2] - rel_x[..., l2]
    az = rel_z[..., r1] - rel_z[..., l1] + rel_z[..., r2] - rel_z[..., l2]
    norm = torch.sqrt(ax * ax + az * az).clamp_min(1e-12)
    return -az / norm, ax / norm


def heading_angle(joints: torch.Tensor, heading: HeadingMode = "original") -> torch.Tensor:
    """Heading theta = atan2(f0, f1) of MMM-21 joints (..., 21, 3) -> (...)."""
    sin, cos = forward_sin_cos(joints[..., 1:, 0], joints[..., 1:, 2], heading)
    return torch.atan2(sin, cos)


class CanonicalParts(NamedTuple):
    """Canonicalised sequences split by coordinate (cheaper for the metrics than stacked xyz)."""

    x: torch.Tensor  # (B, T, 21) global x; joint 0 = trajectory x
    y: torch.Tensor  # (B, T, 21) height above the floor (global and local y are the same)
    z: torch.Tensor  # (B, T, 21) global z; joint 0 = trajectory z
    local_x: torch.Tensor  # (B, T, 20) facing-normalised, root-relative x of joints 1..20
    local_z: torch.Tensor  # (B, T, 20)


def canonical_parts(
    joints: torch.Tensor,
    lengths: torch.Tensor,
    *,
    floor: FloorMode = "original",
    heading: HeadingMode = "original",
) -> CanonicalParts:
    """``canonicalize`` without the final stacking; see there."""
    check_modes(floor, heading)
    if joints.ndim != 4 or joints.shape[-2:] != (NUM_JOINTS, 3):
        raise ValueError(f"expected joints of shape (B, T, 21, 3), got {tuple(joints.shape)}")
    valid = valid_mask(lengths, joints.shape[1])
    # zero the padding so nothing non-finite in it can leak through diff/cumsum
    x = joints.masked_fill(~valid[:, :, None, None], 0.0)
    gx, gy, gz = x.unbind(-1)  # (B, T, 21) each

    height = gy - floor_height(x, valid, floor)[:, None, None]
    tx, tz = gx[:, :, 0], gz[:, :, 0]  # trajectory
    rx, rz = gx[:, :, 1:] - tx[..., None], gz[:, :, 1:] - tz[..., None]  # root-relative, 20 joints

    sin, cos = forward_sin_cos(rx, rz, heading)
    theta = torch.atan2(sin, cos)

    # inverse heading: row vector times matrix_of_angles(cos, sin, inv=True) = [[cos, sin], [-sin, cos]]
    s_, c_ = sin[..., None], cos[..., None]
    lx, lz = rx * c_ - rz * s_, rx * s_ + rz * c_
    vx, vz = torch.zeros_like(tx), torch.zeros_like(tz)  # root velocity, 0 at frame 0
    vx[:, 1:], vz[:, 1:] = tx[:, 1:] - tx[:, :-1], tz[:, 1:] - tz[:, :-1]
    vlx, vlz = vx * cos - vz * sin, vx * sin + vz * cos

    # re-integration: heading phi (0 at frame 0), times matrix_of_angles(cos phi, sin phi)
    phi = theta - theta[:, :1]
    cp, sp = torch.cos(phi), torch.sin(phi)
    trx = torch.cumsum(vlx * cp + vlz * sp, dim=1)
    trz = torch.cumsum(-vlx * sp + vlz * cp, dim=1)
    trx, trz = trx - trx[:, :1], trz - trz[:, :1]
    cp3, sp3 = cp[..., None], sp[..., None]
    out_x = torch.cat((trx[..., None], lx * cp3 + lz * sp3 + trx[..., None]), dim=2)
    out_z = torch.cat((trz[..., None], -lx * sp3 + lz * cp3 + trz[..., None]), dim=2)
    return CanonicalParts(out_x, height, out_z, lx, lz)


def canonicalize(
    joints: torch.Tensor,
    lengths: torch.Tensor,
    *,
    floor: FloorMode = "original",
    heading: HeadingMode = "original",
) -> Canonical:
    """Canonicalise padded MMM-21 sequences (B, T, 21, 3) with valid ``lengths`` (B,), as TEACH's eval.

    The transform runs on all valid frames of each sequence (the floor uses every one of them);
    callers crop afterwards. Values on padded frames are finite but meaningless.
    """
    p = canonical_parts(joints, lengths, floor=floor, heading=heading)
    out_joints = torch.stack((p.x, p.y, p.z), dim=-1)
    poses_local = torch.stack((p.local_x, p.y[..., 1:], p.local_z), dim=-1)
    return Canonical(out_joints, poses_local, out_joints[:, :, 0], out_joints[:, :, 0][..., [0, 2]])
