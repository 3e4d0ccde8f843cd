import math

import pytest
import torch

from actiongpt.motion.features import features_to_rotations, rotations_to_features
from actiongpt.motion.fk import forward_kinematics
from actiongpt.motion.mmm import (
    MMM21_CHAINS,
    MMM21_JOINTS,
    MMM21_SOURCES,
    MMM_SCALE,
    SMPLH73_TO_MMM21,
    amass_to_mmm_axes,
    joints_mmm21,
    mmm_to_amass_axes,
    smplh73_to_mmm21,
    to_mmm21,
)
from actiongpt.motion.rotations import axis_angle_to_matrix, rotation_about_axis
from actiongpt.motion.skeleton import bundled_skeleton

# TEACH's mapping: MMM index -> SMPL-H index (59/62 = heel landmarks of the 73-joint smplx output).
TABLE = [0, 3, 9, 12, 15, 16, 18, 20, 17, 19, 21, 1, 4, 7, 59, 10, 2, 5, 8, 62, 11]


def test_names_table_and_chains():
    assert MMM21_JOINTS == (
        "root", "BP", "BT", "BLN", "BUN", "LS", "LE", "LW", "RS", "RE", "RW",
        "LH", "LK", "LA", "LMrot", "LF", "RH", "RK", "RA", "RMrot", "RF",
    )  # fmt: skip
    assert list(SMPLH73_TO_MMM21) == TABLE
    assert len(MMM21_SOURCES) == 21
    assert MMM21_CHAINS == (
        (0, 1, 2, 3, 4),
        (3, 5, 6, 7),
        (3, 8, 9, 10),
        (0, 11, 12, 13, 14, 15),
        (0, 16, 17, 18, 19, 20),
    )
    assert sorted({j for c in MMM21_CHAINS for j in c}) == list(range(21))


def test_axis_convention():
    p = torch.tensor([1.0, 2.0, 3.0])
    torch.testing.assert_close(amass_to_mmm_axes(p), torch.tensor([2.0, 3.0, -1.0]))
    torch.testing.assert_close(mmm_to_amass_axes(amass_to_mmm_axes(p)), p)
    joints = torch.zeros(22, 3)
    joints[0] = p
    out = to_mmm21(joints, torch.zeros(2, 3))
    torch.testing.assert_close(out[0], torch.tensor([2.0, 3.0, -1.0]))
    torch.testing.assert_close(
        to_mmm21(joints, torch.zeros(2, 3), "mmm")[0], torch.tensor([2.0, 3.0, -1.0]) * 640
    )
    assert MMM_SCALE == 640


def test_index_mapping_batched():
    # Each source point encodes its own index; check every MMM joint picks the table's source.
    j73 = torch.arange(73, dtype=torch.float32)[:, None] * torch.tensor([1.0, 10.0, 100.0])
    j73 = j73.expand(2, 5, 73, 3)
    out = smplh73_to_mmm21(j73)
    assert out.shape == (2, 5, 21, 3)
    back = mmm_to_amass_axes(out)[0, 0, :, 0]  # AMASS x = the source index
    assert back.tolist() == [float(i) for i in TABLE]
    heels = j73[..., [59, 62], :]
    torch.testing.assert_close(to_mmm21(j73[..., :22, :], heels), out)


def test_bad_shapes():
    with pytest.raises(ValueError):
        to_mmm21(torch.zeros(21, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError):
        to_mmm21(torch.zeros(4, 22, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError):
        to_mmm21(torch.zeros(22, 3), torch.zeros(2, 3), "mm")
    with pytest.raises(ValueError):
        smplh73_to_mmm21(torch.zeros(52, 3))


def test_joints_mmm21_standing_body_y_up_facing_plus_z():
    """An upright body in canonical facing (as features produce) stands on y and faces MMM +z."""
    sk = bundled_skeleton()
    rot = torch.eye(3).repeat(1, 22, 1, 1)
    rot[:, 0] = rotation_about_axis(torch.tensor(math.pi / 2), "x")
    trans = torch.tensor([[0.3, -0.2, sk.standing_trans_z()]])
    feats = rotations_to_features(rot[None], trans[None], "original")
    crot, ctrans = features_to_rotations(feats)
    ctrans[..., 2] = sk.standing_trans_z()
    mmm = joints_mmm21(crot, ctrans, sk)[0, 0]
    assert mmm.shape == (21, 3)
    name = {n: i for i, n in enumerate(MMM21_JOINTS)}
    # y up: feet at 0, head highest
    torch.testing.assert_close(mmm[[name["LMrot"], name["RMrot"]], 1], torch.zeros(2), atol=1e-6, rtol=0)
    assert mmm[:, 1].argmax() == name["BUN"]
    # facing +z: the balls of the feet (LF) are in front of the heels
    assert mmm[name["LF"], 2] > mmm[name["LMrot"], 2]
    # matches FK + reordering, metres
    pos = forward_kinematics(crot[0, 0], ctrans[0, 0], sk, with_end_points=True)
    torch.testing.assert_close(mmm[name["LK"]], amass_to_mmm_axes(pos[4]))
    torch.testing.assert_close(mmm[name["RMrot"]], amass_to_mmm_axes(pos[22 + sk.end_point("right_heel")]))
    torch.testing.assert_close(joints_mmm21(crot, ctrans, sk, "mmm")[0, 0], mmm * 640)


def test_joints_mmm21_batch_shapes():
    sk = bundled_skeleton()
    rot = axis_angle_to_matrix(torch.randn(3, 8, 22, 3))
    trans = torch.randn(3, 8, 3)
    assert joints_mmm21(rot, trans, sk).shape == (3, 8, 21, 3)
