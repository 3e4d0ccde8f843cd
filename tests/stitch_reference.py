"""The stitching of one sequence, the loop of TEACH's ``forward_seq`` written out sample by sample: the
reference that tests check the batched ``actiongpt.models.sequence.stitch`` against."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from actiongpt.models.sequence import AlignMode, YawMode, _yaw_difference
from actiongpt.motion.rotations import (
    matrix_to_quaternion,
    quaternion_slerp,
    quaternion_to_matrix,
    rotation_about_axis,
)


def align_full_bodies(
    last_pose: Tensor, last_trans: Tensor, poses: Tensor, trans: Tensor, yaw: YawMode = "original"
) -> tuple[Tensor, Tensor]:
    """Turn a chunk (poses (N, 22, 3, 3), trans (N, 3)) about the vertical to face like ``last_pose``.

    Root orientations are left-multiplied by ``Rz(Δ)ᵀ`` with Δ the yaw difference (chunk start − last pose);
    ground velocities are turned the same way and integrated from the last ground position; height is kept.
    """
    angle = _yaw_difference(poses[0, 0], last_pose[0], yaw)
    rz_t = rotation_about_axis(angle, "z").transpose(-1, -2)
    root = rz_t @ poses[:, 0]
    turned = torch.cat((root[:, None], poses[:, 1:]), dim=1)
    vel = torch.diff(trans[:, :2], dim=0)
    vel = torch.cat((torch.zeros_like(vel[:1]), vel), dim=0)
    vel = vel @ rz_t[:2, :2].T
    traj = torch.cumsum(vel, dim=0) + last_trans[:2]
    return turned, torch.cat((traj, trans[:, 2:]), dim=1)


def align_trajectory(last_trans: Tensor, trans: Tensor) -> Tensor:
    """Translate a chunk's ground trajectory so that it starts at the last ground position."""
    traj = trans[:, :2] - trans[:1, :2] + last_trans[:2]
    return torch.cat((traj, trans[:, 2:]), dim=1)


def slerp_poses(last_pose: Tensor, new_pose: Tensor, n: int) -> Tensor:
    """n in-between poses (n, 22, 3, 3): slerp weights linspace(0, 1, n + 2) without the two ends."""
    w = torch.linspace(0.0, 1.0, n + 2, dtype=last_pose.dtype, device=last_pose.device)[1:-1]
    q0 = matrix_to_quaternion(last_pose)[None]
    q1 = matrix_to_quaternion(new_pose)[None]
    return quaternion_to_matrix(quaternion_slerp(q0, q1, w[:, None]))


def slerp_translation(last_trans: Tensor, new_trans: Tensor, n: int) -> Tensor:
    w = torch.linspace(0.0, 1.0, n + 2, dtype=last_trans.dtype, device=last_trans.device)[1:-1, None]
    return (1 - w) * last_trans + w * new_trans


def stitch_one(
    rotmats: Tensor,
    trans: Tensor,
    lengths: Sequence[int],
    slerp_window: int | None,
    align: AlignMode = "full",
    yaw: YawMode = "original",
) -> tuple[Tensor, Tensor]:
    """Align and interpolate the boundaries of one concatenated sequence (the loop of ``forward_seq``).

    ``rotmats`` (T, 22, 3, 3) and ``trans`` (T, 3) hold the actions back to back, ``lengths`` their lengths
    (each including its reserved slerp frames). Returns new tensors; the inputs are not modified.
    """
    if align not in ("full", "trajectory", "none"):
        raise ValueError(f"unknown align mode {align!r} (use 'full', 'trajectory' or 'none')")
    rotmats, trans = rotmats.clone(), trans.clone()
    window = slerp_window or 0
    end_first = lengths[0] - 1
    for length in lengths[1:]:
        begin = end_first + 1 + window
        stop = end_first + 1 + length
        if align == "full":
            rotmats[begin:stop], trans[begin:stop] = align_full_bodies(
                rotmats[end_first], trans[end_first], rotmats[begin:stop], trans[begin:stop], yaw
            )
        elif align == "trajectory":
            trans[begin:stop] = align_trajectory(trans[end_first], trans[begin:stop])
        if window:
            rotmats[end_first + 1 : begin] = slerp_poses(rotmats[end_first], rotmats[begin], window)
            trans[end_first + 1 : begin] = slerp_translation(trans[end_first], trans[begin], window)
        end_first += length
    return rotmats, trans
