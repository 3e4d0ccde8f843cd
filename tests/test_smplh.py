import contextlib
import io
import pickle

import numpy as np
import pytest
import smplx
import torch

from actiongpt.motion.fk import forward_kinematics
from actiongpt.motion.mmm import joints_mmm21, smplh73_to_mmm21
from actiongpt.motion.rotations import axis_angle_to_matrix
from actiongpt.motion.skeleton import SMPLH_BODY_PARENTS, bundled_skeleton
from actiongpt.motion.smplh import (
    BodyModelError,
    BodyModelNotFoundError,
    SMPLHBody,
    find_smplh_model,
    load_smplh_skeleton,
    smplh_joints,
)
from tests.synthetic_smplh import smplh_parents52, write_synthetic_smplh

# smplx's 73-joint SMPL-H output: landmarks after the 52 joints (nose, reye, leye, rear, lear, LBigToe, ...)
L_BIG_TOE, L_HEEL, R_BIG_TOE, R_HEEL = 57, 59, 60, 62


def random_motion(lead=(2, 5), seed=0):
    g = torch.Generator().manual_seed(seed)
    rot = axis_angle_to_matrix(torch.randn(*lead, 22, 3, generator=g) * 0.7)
    trans = torch.randn(*lead, 3, generator=g)
    return rot, trans


def assert_skeleton_matches_smplx_joints(sk, joints73, rot, trans):
    ours = forward_kinematics(rot, trans, sk, with_end_points=True)
    torch.testing.assert_close(ours[..., :22, :], joints73[..., :22, :], atol=1e-5, rtol=0)
    # the synthetic landmarks are skinned rigidly, so smplx's mesh heels/toes equal our end points
    ends = [sk.end_point(n) + 22 for n in ("left_heel", "right_heel", "left_toe", "right_toe")]
    torch.testing.assert_close(
        ours[..., ends, :], joints73[..., [L_HEEL, R_HEEL, L_BIG_TOE, R_BIG_TOE], :], atol=1e-5, rtol=0
    )


def test_skeleton_known_answer(tmp_path):
    model = write_synthetic_smplh(tmp_path / "SMPLH_MALE.npz")
    sk = load_smplh_skeleton(tmp_path, "male", vertex_ids=model.vertex_ids)
    torch.testing.assert_close(
        sk.rest_joints, torch.from_numpy(model.rest_joints[:22]).float(), atol=1e-6, rtol=0
    )
    for i, (name, lm) in enumerate(
        (("left_heel", "LHeel"), ("right_heel", "RHeel"), ("left_toe", "LBigToe"), ("right_toe", "RBigToe"))
    ):
        assert sk.end_point_names[i] == name
        torch.testing.assert_close(
            sk.end_points[i], torch.from_numpy(model.landmarks[lm]).float(), atol=1e-6, rtol=0
        )
    assert sk.parents == SMPLH_BODY_PARENTS
    # the synthetic body is the bundled one, shifted: same pelvis height above the soles
    assert abs(sk.floor_offset() - bundled_skeleton().floor_offset()) < 1e-5
    assert "SMPLH_MALE.npz" in sk.name


def test_fk_matches_smplx_own_forward(tmp_path):
    """Our skeleton + FK against a plain smplx.SMPLHLayer built from the same file (no wrapper of ours)."""
    model = write_synthetic_smplh(tmp_path / "SMPLH_MALE.npz", seed=1)
    betas = torch.randn(10, generator=torch.Generator().manual_seed(1))
    sk = load_smplh_skeleton(tmp_path, "male", betas=betas, vertex_ids=model.vertex_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        layer = smplx.SMPLHLayer(
            str(tmp_path), ext="npz", gender="male", vertex_ids=model.vertex_ids, num_betas=10
        )
    rot, trans = random_motion((12,), seed=2)
    out = layer(
        betas=betas.expand(12, 10), global_orient=rot[:, :1], body_pose=rot[:, 1:22], transl=trans
    ).joints
    assert out.shape == (12, 73, 3)
    assert_skeleton_matches_smplx_joints(sk, out, rot, trans)
    # and the mean shape differs from this one (betas are really applied)
    sk0 = load_smplh_skeleton(tmp_path, "male", vertex_ids=model.vertex_ids)
    assert (sk0.rest_joints - sk.rest_joints).abs().max() > 1e-3


@pytest.mark.parametrize(
    "rel, kwargs, num_betas",
    [
        ("SMPLH_FEMALE.npz", {}, 10),
        ("smplh/female/model.npz", {"hands_pca": False, "num_betas": 16}, 16),  # AMASS "Extended SMPL+H"
    ],
)
def test_smplh_body_wrapper_batched(tmp_path, rel, kwargs, num_betas):
    model = write_synthetic_smplh(tmp_path / rel, seed=3, **kwargs)
    betas = np.random.default_rng(0).normal(size=num_betas)
    sk = load_smplh_skeleton(
        tmp_path, "female", betas=betas, num_betas=num_betas, vertex_ids=model.vertex_ids
    )
    body = SMPLHBody(
        tmp_path, "female", betas=betas, num_betas=num_betas, vertex_ids=model.vertex_ids, chunk_size=4
    )
    rot, trans = random_motion((2, 5), seed=4)
    j73 = body.joints(rot, trans)
    assert j73.shape == (2, 5, 73, 3)
    assert_skeleton_matches_smplx_joints(sk, j73, rot, trans)
    torch.testing.assert_close(body.skeleton().rest_joints, sk.rest_joints, atol=1e-6, rtol=0)
    torch.testing.assert_close(body.skeleton().end_points, sk.end_points, atol=1e-6, rtol=0)
    # MMM-21 through our skeleton equals MMM-21 from smplx's output (the original's path)
    torch.testing.assert_close(joints_mmm21(rot, trans, sk), smplh73_to_mmm21(j73), atol=1e-5, rtol=0)
    # full 52-joint poses: hand rotations move only the hand joints
    hands = axis_angle_to_matrix(torch.randn(2, 5, 30, 3))
    j52 = body.joints(torch.cat([rot, hands], dim=-3), trans)
    torch.testing.assert_close(j52[..., :22, :], j73[..., :22, :], atol=1e-6, rtol=0)
    assert (j52[..., 22:52, :] - j73[..., 22:52, :]).abs().max() > 1e-3


def test_pkl_only_when_explicit(tmp_path):
    model = write_synthetic_smplh(tmp_path / "SMPLH_MALE.pkl", seed=5)
    with pytest.raises(BodyModelNotFoundError, match="pass") as err:
        load_smplh_skeleton(tmp_path, "male", vertex_ids=model.vertex_ids)
    assert "SMPLH_MALE.pkl" in str(err.value)
    sk = load_smplh_skeleton(tmp_path / "SMPLH_MALE.pkl", vertex_ids=model.vertex_ids)  # sparse J_regressor
    torch.testing.assert_close(
        sk.rest_joints, torch.from_numpy(model.rest_joints[:22]).float(), atol=1e-6, rtol=0
    )
    rot, trans = random_motion((3,), seed=6)
    j73 = smplh_joints(tmp_path / "SMPLH_MALE.pkl", rot, trans, vertex_ids=model.vertex_ids)
    assert_skeleton_matches_smplx_joints(sk, j73, rot, trans)


def test_lone_chumpy_object_is_no_model_and_needs_no_chumpy(tmp_path):
    path = tmp_path / "SMPLH_MALE.pkl"
    path.write_bytes(b"\x80\x02cchumpy.ch\nCh\nq\x00)\x81q\x01.")  # a pickled chumpy.ch.Ch, no dict
    with pytest.raises(BodyModelError, match=r"SMPLH_MALE\.pkl.*dict"):
        load_smplh_skeleton(path)


def test_full_size_model_with_default_vertex_ids(tmp_path):
    """The AMASS layout at the real vertex count: smplx's default landmark ids work without overrides."""
    write_synthetic_smplh(
        tmp_path / "smplh" / "male" / "model.npz", full_size=True, hands_pca=False, num_betas=16
    )
    assert find_smplh_model(tmp_path, "male") == tmp_path / "smplh" / "male" / "model.npz"
    sk = load_smplh_skeleton(tmp_path, "male")
    rot, trans = random_motion((4,), seed=7)
    assert_skeleton_matches_smplx_joints(sk, smplh_joints(tmp_path, rot, trans), rot, trans)


def test_missing_model_error_names_paths_and_source(tmp_path):
    with pytest.raises(BodyModelNotFoundError) as err:
        load_smplh_skeleton(tmp_path, "male")
    assert isinstance(err.value, FileNotFoundError)
    msg = str(err.value)
    for rel in ("SMPLH_MALE.npz", "smplh/SMPLH_MALE.npz", "male/model.npz", "smplh/male/model.npz"):
        assert str(tmp_path / rel) in msg
    assert "https://mano.is.tue.mpg.de" in msg and "Extended SMPL+H" in msg
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_smplh_skeleton(tmp_path / "nowhere" / "SMPLH_MALE.npz")
    with pytest.raises(ValueError, match="gender"):
        find_smplh_model(tmp_path, "other")


def test_folder_lookup_is_case_insensitive(tmp_path):
    model = write_synthetic_smplh(tmp_path / "SMPLH_male.npz")
    assert find_smplh_model(tmp_path, "male").name == "SMPLH_male.npz"
    load_smplh_skeleton(tmp_path, vertex_ids=model.vertex_ids)


def _write_arrays(path, arrays):
    np.savez(path, **arrays)
    return path


def test_unusable_files_raise_body_model_error(tmp_path):
    model = write_synthetic_smplh(tmp_path / "ok.npz")
    ids = model.vertex_ids
    arrays = dict(model.arrays)
    # missing key
    bad = {k: v for k, v in arrays.items() if k != "J_regressor"}
    with pytest.raises(BodyModelError, match="J_regressor"):
        load_smplh_skeleton(_write_arrays(tmp_path / "a.npz", bad), vertex_ids=ids)
    # SMPL (24 joints) instead of SMPL-H
    smpl = dict(arrays, J_regressor=arrays["J_regressor"][:24], kintree_table=arrays["kintree_table"][:, :24])
    with pytest.raises(BodyModelError, match="SMPL-H"):
        load_smplh_skeleton(_write_arrays(tmp_path / "b.npz", smpl), vertex_ids=ids)
    # wrong body tree
    kt = arrays["kintree_table"].copy()
    kt[0, 4] = 2
    with pytest.raises(BodyModelError, match="parents"):
        load_smplh_skeleton(_write_arrays(tmp_path / "c.npz", dict(arrays, kintree_table=kt)), vertex_ids=ids)
    # the default (6890-vertex) landmark ids on a small mesh
    with pytest.raises(BodyModelError, match="vertex_ids"):
        load_smplh_skeleton(tmp_path / "ok.npz")
    # too many betas requested
    with pytest.raises(BodyModelError, match="num_betas"):
        load_smplh_skeleton(tmp_path / "ok.npz", num_betas=16, vertex_ids=ids)
    # not a model file at all
    (tmp_path / "d.npz").write_bytes(b"garbage")
    with pytest.raises(BodyModelError, match=r"d\.npz"):
        load_smplh_skeleton(tmp_path / "d.npz", vertex_ids=ids)
    (tmp_path / "e.obj").write_text("v 0 0 0\n")
    with pytest.raises(BodyModelError, match="unsupported"):
        load_smplh_skeleton(tmp_path / "e.obj")
    (tmp_path / "f.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(BodyModelError, match="dict"):
        load_smplh_skeleton(tmp_path / "f.pkl")


def test_betas_truncated_to_num_betas(tmp_path):
    model = write_synthetic_smplh(tmp_path / "m.npz", num_betas=16, hands_pca=False)
    b = np.random.default_rng(1).normal(size=16)
    ids = model.vertex_ids
    a = load_smplh_skeleton(tmp_path / "m.npz", betas=b, num_betas=10, vertex_ids=ids)
    c = load_smplh_skeleton(tmp_path / "m.npz", betas=b[:10], num_betas=10, vertex_ids=ids)
    d = load_smplh_skeleton(tmp_path / "m.npz", betas=b, num_betas=16, vertex_ids=ids)
    torch.testing.assert_close(a.rest_joints, c.rest_joints)
    assert (a.rest_joints - d.rest_joints).abs().max() > 1e-4


def test_synthetic_model_uses_the_real_parent_table(tmp_path):
    model = write_synthetic_smplh(tmp_path / "m.npz")
    kt = np.load(tmp_path / "m.npz")["kintree_table"]
    assert kt[0, 0] == 4294967295
    assert list(kt[0, 1:]) == smplh_parents52()[1:]
    assert model.arrays["posedirs"].shape == (model.arrays["v_template"].shape[0], 3, 459)
    assert model.arrays["weights"].shape[1] == 52
