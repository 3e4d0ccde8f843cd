import math

import pytest
import torch
from smplx.lbs import batch_rigid_transform

from actiongpt.motion.fk import forward_kinematics, global_rotations
from actiongpt.motion.rotations import axis_angle_to_matrix, rotation_about_axis
from actiongpt.motion.skeleton import (
    JOINT_INDEX,
    SMPLH_BODY_JOINTS,
    SMPLH_BODY_PARENTS,
    STATURE_M,
    bundled_skeleton,
)


def random_pose(*lead: int, scale: float = 0.8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    rot = axis_angle_to_matrix(torch.randn(*lead, 22, 3, generator=g) * scale)
    trans = torch.randn(*lead, 3, generator=g)
    return rot, trans


def standing(n: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Rest pose standing upright in AMASS (root Rx(+90 deg)), soles on the floor (SMPL-H root convention:
    the pelvis is at trans + rest[0], so trans z is the floor offset less the rest pelvis's forward z)."""
    sk = bundled_skeleton()
    rot = torch.eye(3).repeat(n, 22, 1, 1)
    rot[:, 0] = rotation_about_axis(torch.tensor(math.pi / 2), "x")
    trans = torch.tensor([0.0, 0.0, sk.standing_trans_z()]).repeat(n, 1)
    return rot, trans


def test_shapes_batched_and_end_points():
    sk = bundled_skeleton()
    rot, trans = random_pose(3, 7)
    assert forward_kinematics(rot, trans, sk).shape == (3, 7, 22, 3)
    out = forward_kinematics(rot, trans, sk, with_end_points=True)
    assert out.shape == (3, 7, 22 + len(sk.end_point_names), 3)
    # batching is elementwise
    torch.testing.assert_close(
        out[2, 4], forward_kinematics(rot[2, 4], trans[2, 4], sk, with_end_points=True)
    )
    torch.testing.assert_close(out[..., :22, :], forward_kinematics(rot, trans, sk))


def test_identity_pose_gives_rest_joints_plus_trans():
    sk = bundled_skeleton()
    trans = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]])
    rot = torch.eye(3).repeat(2, 22, 1, 1)
    out = forward_kinematics(rot, trans, sk, with_end_points=True)
    expect = torch.cat([sk.rest_joints, sk.end_points])[None] + trans[:, None]
    torch.testing.assert_close(out, expect)


def test_bone_lengths_preserved_under_random_rotations():
    sk = bundled_skeleton()
    rot, trans = random_pose(50, scale=2.0, seed=3)
    pos = forward_kinematics(rot, trans, sk, with_end_points=True)
    rest = torch.cat([sk.rest_joints, sk.end_points])
    parents = list(SMPLH_BODY_PARENTS[1:]) + list(sk.end_point_parents)
    child = torch.arange(1, 22 + len(sk.end_point_parents))
    par = torch.tensor(parents)
    rest_len = (rest[child] - rest[par]).norm(dim=-1)
    posed_len = (pos[:, child] - pos[:, par]).norm(dim=-1)
    torch.testing.assert_close(posed_len, rest_len.expand_as(posed_len), atol=1e-5, rtol=0)


def test_matches_smplx_batch_rigid_transform():
    """Independent check against smplx's kinematic chain (the SMPL-H convention: root at rest[0] + trans)."""
    sk = bundled_skeleton()
    sk = sk.__class__(
        rest_joints=sk.rest_joints + torch.tensor([0.01, -0.24, 0.03]),  # root not at the origin, like SMPL-H
        end_points=sk.end_points,
        end_point_names=sk.end_point_names,
        end_point_parents=sk.end_point_parents,
    )
    rot, trans = random_pose(16, seed=5)
    posed, _ = batch_rigid_transform(rot, sk.rest_joints.expand(16, 22, 3), torch.tensor(SMPLH_BODY_PARENTS))
    torch.testing.assert_close(forward_kinematics(rot, trans, sk), posed + trans[:, None], atol=1e-5, rtol=0)


def test_global_rotations_compose_along_the_chain():
    rot, _ = random_pose(4, seed=6)
    g = global_rotations(rot, SMPLH_BODY_PARENTS)
    lw = JOINT_INDEX["left_wrist"]
    chain = []
    j = lw
    while j >= 0:
        chain.append(j)
        j = SMPLH_BODY_PARENTS[j]
    expect = torch.eye(3).expand(4, 3, 3)
    for j in reversed(chain):
        expect = expect @ rot[:, j]
    torch.testing.assert_close(g[:, lw], expect, atol=1e-5, rtol=0)


def test_bad_shapes_raise():
    sk = bundled_skeleton()
    rot, trans = random_pose(2)
    with pytest.raises(ValueError):
        forward_kinematics(rot[:, :21], trans, sk)
    with pytest.raises(ValueError):
        forward_kinematics(rot, trans[:1], sk)


def test_bundled_skeleton_symmetric():
    sk = bundled_skeleton()
    mirror = torch.tensor([-1.0, 1.0, 1.0])
    for i, name in enumerate(SMPLH_BODY_JOINTS):
        if name.startswith("left_"):
            j = JOINT_INDEX["right_" + name[5:]]
            torch.testing.assert_close(sk.rest_joints[j], sk.rest_joints[i] * mirror)
        elif not name.startswith("right_"):
            assert sk.rest_joints[i, 0] == 0.0, name
    for side in ("heel", "toe"):
        li, ri = sk.end_point("left_" + side), sk.end_point("right_" + side)
        torch.testing.assert_close(sk.end_points[ri], sk.end_points[li] * mirror)
    # left is +x in the body frame, the body faces +z (toes in front of heels)
    assert sk.rest_joints[JOINT_INDEX["left_hip"], 0] > 0
    assert (sk.end_points[sk.end_point("left_toe"), 2] > sk.end_points[sk.end_point("left_heel"), 2]).item()


def test_bundled_skeleton_standing_pose():
    """Root Rx(+90 deg) stands the body upright in AMASS (z up): feet on the floor, Winter's heights."""
    sk = bundled_skeleton()
    rot, trans = standing()
    pos = forward_kinematics(rot, trans, sk, with_end_points=True)[0]
    z = pos[:, 2]
    assert abs(sk.floor_offset() - 0.989) < 0.005
    torch.testing.assert_close(z.min(), torch.tensor(0.0), atol=1e-6, rtol=0)
    for name in ("left_heel", "right_heel", "left_toe", "right_toe"):
        assert abs(z[22 + sk.end_point(name)].item()) < 1e-6, name
    h = STATURE_M
    assert abs(h - 1.75) < 1e-9
    heights = {"left_ankle": 0.039, "left_knee": 0.285, "left_hip": 0.530, "left_shoulder": 0.818}
    for name, frac in heights.items():
        assert abs(z[JOINT_INDEX[name]].item() - frac * h) < 1e-4, name
    head = z[JOINT_INDEX["head"]].item()
    assert 0.87 * h < head < h  # head joint between the chin and the top of the head
    # facing world -y at zero yaw: toes in front of (more negative y than) heels
    assert pos[22 + sk.end_point("left_toe"), 1] < pos[22 + sk.end_point("left_heel"), 1]
    # arms stretched sideways (T-pose): wrist span about stature
    span = (pos[JOINT_INDEX["left_wrist"]] - pos[JOINT_INDEX["right_wrist"]]).norm().item()
    assert 0.85 * h < span < 1.0 * h
