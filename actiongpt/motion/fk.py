"""Batched forward kinematics for a ``Skeleton``.

Matches SMPL-H's kinematic chain (``smplx.lbs.batch_rigid_transform``): joint 0 is placed at
``rest[0] + trans`` and rotated by the global orientation; every other joint is its parent's position plus
the parent's global rotation applied to the rest bone vector.
"""

from __future__ import annotations

import torch

from actiongpt.motion.skeleton import Skeleton


def global_rotations(rotmats: torch.Tensor, parents: tuple[int, ...]) -> torch.Tensor:
    """Local (..., J, 3, 3) -> global (..., J, 3, 3) along the tree (parents precede children)."""
    out = [rotmats[..., 0, :, :]]
    for i in range(1, len(parents)):
        out.append(out[parents[i]] @ rotmats[..., i, :, :])
    return torch.stack(out, dim=-3)


def forward_kinematics(
    rotmats: torch.Tensor,
    trans: torch.Tensor,
    skeleton: Skeleton,
    with_end_points: bool = False,
) -> torch.Tensor:
    """Rotations (..., 22, 3, 3) + translation (..., 3) -> joint positions (..., 22, 3).

    With ``with_end_points`` the skeleton's end points are appended: (..., 22 + E, 3).
    """
    parents = skeleton.parents
    if rotmats.shape[-3:] != (len(parents), 3, 3):
        raise ValueError(f"rotmats must end in ({len(parents)}, 3, 3), got {tuple(rotmats.shape)}")
    if trans.shape[-1] != 3 or trans.shape[:-1] != rotmats.shape[:-3]:
        raise ValueError(f"trans {tuple(trans.shape)} does not match rotmats {tuple(rotmats.shape)}")
    skel = skeleton.to(device=rotmats.device, dtype=rotmats.dtype)
    offsets = skel.offsets
    grot = global_rotations(rotmats, parents)
    pos = [trans + offsets[0]]
    for i in range(1, len(parents)):
        p = parents[i]
        pos.append(pos[p] + (grot[..., p, :, :] @ offsets[i, :, None])[..., 0])
    if with_end_points:
        for e, p in enumerate(skel.end_point_parents):
            bone = skel.end_points[e] - skel.rest_joints[p]
            pos.append(pos[p] + (grot[..., p, :, :] @ bone[:, None])[..., 0])
    return torch.stack(pos, dim=-2)
