import math

import numpy as np
import pytest
import torch

from actiongpt.motion.features import (
    FEATURE_DIM,
    RunningStats,
    canonical_angle,
    denormalize,
    feature_stats,
    features_to_rotations,
    normalize,
    rotations_to_features,
    upright_yaw,
)
from actiongpt.motion.fk import forward_kinematics
from actiongpt.motion.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    rotation_about_axis,
)
from actiongpt.motion.skeleton import Skeleton, bundled_skeleton

RX90 = rotation_about_axis(torch.tensor(math.pi / 2), "x")
ATOL = 2e-5


def rz(angle) -> torch.Tensor:
    return rotation_about_axis(torch.as_tensor(angle, dtype=torch.float32), "z")


def motion(batch: int = 4, frames: int = 30, seed: int = 0, yaw: torch.Tensor | None = None):
    """AMASS-like motions: an upright body (root Rz(yaw) @ tilt(t) @ Rx(90)), wandering in the plane."""
    g = torch.Generator().manual_seed(seed)
    yaw = torch.rand(batch, generator=g) * 2 * math.pi - math.pi if yaw is None else yaw
    tilt = axis_angle_to_matrix(torch.randn(batch, frames, 3, generator=g) * 0.3)
    root = rz(yaw)[:, None] @ tilt @ RX90
    local = axis_angle_to_matrix(torch.randn(batch, frames, 21, 3, generator=g) * 0.5)
    rot = torch.cat([root[:, :, None], local], dim=2)
    steps = torch.randn(batch, frames, 3, generator=g) * torch.tensor([0.02, 0.02, 0.005])
    trans = torch.cumsum(steps, dim=1) + torch.tensor([1.5, -2.0, 0.9])
    return rot, trans


def yaw_motion(rot, trans, psi):
    """Rotate whole motions by psi about world z (a rigid yaw of the scene)."""
    r = rz(psi)
    rot = rot.clone()
    rot[..., 0, :, :] = r[:, None] @ rot[..., 0, :, :]
    return rot, (r[:, None] @ trans[..., None])[..., 0]


def spec_original_features(rot, trans):
    """Expected features built step by step from the reference's description of the original mode.

    theta = z-component of frame 0's root axis-angle + pi/2; every root orientation is left-multiplied by
    Rz(theta)^T; ground velocities (frame 0 = 0) are rotated by -theta; height and body joints untouched.
    """
    theta = matrix_to_axis_angle(rot[..., 0, 0, :, :])[..., 2] + math.pi / 2  # (B,)
    rzt = rz(theta).transpose(-1, -2)  # Rz(theta)^T
    root = rzt[:, None] @ rot[..., 0, :, :]
    vel = torch.zeros_like(trans[..., :2])
    vel[:, 1:] = trans[:, 1:, :2] - trans[:, :-1, :2]
    c, s = torch.cos(-theta)[:, None], torch.sin(-theta)[:, None]
    vel = torch.stack([c * vel[..., 0] - s * vel[..., 1], s * vel[..., 0] + c * vel[..., 1]], dim=-1)
    joints = torch.cat([root[..., None, :, :], rot[..., 1:, :, :]], dim=-3)
    return torch.cat([trans[..., 2:3], vel, matrix_to_rot6d(joints).flatten(-2)], dim=-1)


def test_layout_without_canonicalisation():
    rot, trans = motion()
    f = rotations_to_features(rot, trans, "none")
    assert f.shape == (4, 30, FEATURE_DIM) and f.dtype == torch.float32
    torch.testing.assert_close(f[..., 0], trans[..., 2])  # raw height
    torch.testing.assert_close(f[:, 0, 1:3], torch.zeros(4, 2))  # frame 0 velocity is 0
    torch.testing.assert_close(f[:, 1:, 1:3], trans[:, 1:, :2] - trans[:, :-1, :2])
    # 6D = first two rows, row-major, joint by joint
    torch.testing.assert_close(f[..., 3:9], torch.cat([rot[..., 0, 0, :], rot[..., 0, 1, :]], dim=-1))
    torch.testing.assert_close(f[..., 3:].reshape(4, 30, 22, 6), matrix_to_rot6d(rot))


def test_original_mode_matches_the_specification():
    rot, trans = motion(seed=1)
    torch.testing.assert_close(rotations_to_features(rot, trans), spec_original_features(rot, trans))
    torch.testing.assert_close(rotations_to_features(rot, trans, True), spec_original_features(rot, trans))
    # height is never canonicalised
    torch.testing.assert_close(rotations_to_features(rot, trans)[..., 0], trans[..., 2])


def test_original_angle_is_not_the_heading():
    """For an upright body yawed by a small psi, the original's a_z is about (pi/4) psi; 'heading' is psi."""
    psi = torch.tensor([0.01, -0.02, 0.05])
    root0 = rz(psi) @ RX90
    a_z = canonical_angle(root0, "original") - math.pi / 2
    torch.testing.assert_close(a_z / psi, torch.full((3,), math.pi / 4), atol=2e-3, rtol=0)
    torch.testing.assert_close(canonical_angle(root0, "heading") - math.pi / 2, psi, atol=1e-6, rtol=0)
    torch.testing.assert_close(canonical_angle(root0, "none"), torch.zeros(3))
    # both modes agree for the un-yawed upright body: theta = pi/2
    torch.testing.assert_close(canonical_angle(RX90, "original"), canonical_angle(RX90, "heading"))


def test_upright_yaw_ignores_pitch_and_roll():
    psi = torch.linspace(-3.0, 3.0, 13)
    swing_axis = torch.nn.functional.normalize(torch.randn(13, 2), dim=-1)
    swing = axis_angle_to_matrix(torch.cat([swing_axis, torch.zeros(13, 1)], -1) * 1.2)  # horizontal axis
    torch.testing.assert_close(upright_yaw(rz(psi) @ swing @ RX90), psi, atol=1e-5, rtol=0)
    # an exactly upside-down body falls back to the forward axis' ground projection (finite, defined)
    upside_down = rz(torch.tensor(0.7)) @ rotation_about_axis(torch.tensor(math.pi), "y") @ RX90
    assert torch.isfinite(upright_yaw(upside_down))


def test_heading_mode_is_invariant_to_yaw_and_ground_translation():
    rot, trans = motion(seed=2)
    base = rotations_to_features(rot, trans, "heading")
    psi = torch.tensor([0.3, -2.5, 3.0, 1.0])
    r2, t2 = yaw_motion(rot, trans, psi)
    t2 = t2 + torch.tensor([3.0, -7.0, 0.0])
    torch.testing.assert_close(rotations_to_features(r2, t2, "heading"), base, atol=ATOL, rtol=0)
    # the original is translation invariant but not yaw invariant for a tilted (real) body
    orig = rotations_to_features(rot, trans, "original")
    assert (rotations_to_features(r2, t2, "original") - orig).abs().max() > 1e-2


def test_heading_mode_canonical_facing():
    """After 'heading' an upright body faces AMASS -x (MMM +z), like the original at zero yaw."""
    psi = torch.tensor([0.0, 0.4, -1.3, 2.9])
    root = rz(psi)[:, None] @ RX90.expand(4, 3, 3, 3)
    rot = torch.cat([root[:, :, None], torch.eye(3).expand(4, 3, 21, 3, 3)], dim=2)
    trans = torch.zeros(4, 3, 3)
    f = rotations_to_features(rot, trans, "heading")
    out_rot, _ = features_to_rotations(f)
    forward = out_rot[:, 0, 0, :, 2]  # image of the body's +z
    torch.testing.assert_close(forward, torch.tensor([-1.0, 0.0, 0.0]).expand(4, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        upright_yaw(out_rot[:, 0, 0]), torch.full((4,), -math.pi / 2), atol=1e-6, rtol=0
    )
    orig = rotations_to_features(rot[:1], trans[:1], "original")
    torch.testing.assert_close(orig, f[:1], atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", ["original", "heading", "none"])
def test_features_rotations_features_is_identity_with_none(mode):
    rot, trans = motion(seed=3)
    f = rotations_to_features(rot, trans, mode)
    f2 = rotations_to_features(*features_to_rotations(f), canonicalize="none")
    torch.testing.assert_close(f2, f, atol=ATOL, rtol=0)


def test_heading_is_idempotent_original_is_not():
    rot, trans = motion(seed=4)
    f = rotations_to_features(rot, trans, "heading")
    torch.testing.assert_close(
        rotations_to_features(*features_to_rotations(f), "heading"), f, atol=ATOL, rtol=0
    )
    g = rotations_to_features(rot, trans, "original")
    again = rotations_to_features(*features_to_rotations(g), "original")
    assert (again[..., 3:9] - g[..., 3:9]).abs().max() > 1e-2  # rotates the root again


@pytest.mark.parametrize("mode", ["original", "heading", "none"])
def test_rotations_features_rotations_up_to_rigid_yaw(mode):
    rot, trans = motion(seed=5)
    theta = canonical_angle(rot[:, 0, 0], mode)
    out_rot, out_trans = features_to_rotations(rotations_to_features(rot, trans, mode))
    r = rz(theta)
    torch.testing.assert_close(out_rot[..., 1:, :, :], rot[..., 1:, :, :], atol=ATOL, rtol=0)
    torch.testing.assert_close(
        out_rot[..., 0, :, :], r.transpose(-1, -2)[:, None] @ rot[..., 0, :, :], atol=ATOL, rtol=0
    )
    start = torch.cat([trans[:, :1, :2], torch.zeros(4, 1, 1)], dim=-1)
    expect = (r.transpose(-1, -2)[:, None] @ (trans - start)[..., None])[..., 0]
    torch.testing.assert_close(out_trans, expect, atol=ATOL, rtol=0)
    # joints: a rigid motion (yaw -theta plus a constant offset) even with SMPL-H's off-origin root
    base = bundled_skeleton()
    sk = Skeleton(
        rest_joints=base.rest_joints + torch.tensor([0.01, -0.24, 0.03]),
        end_points=base.end_points,
        end_point_names=base.end_point_names,
        end_point_parents=base.end_point_parents,
    )
    j_in = forward_kinematics(rot, trans, sk)
    j_out = forward_kinematics(out_rot, out_trans, sk)
    offset = j_out - (r.transpose(-1, -2)[:, None, None] @ j_in[..., None])[..., 0]
    torch.testing.assert_close(offset, offset[:, :1, :1].expand_as(offset), atol=1e-4, rtol=0)


def test_batched_equals_unbatched_and_single_sequence_shapes():
    rot, trans = motion(batch=3, seed=6)
    f = rotations_to_features(rot, trans, "heading")
    for b in range(3):
        torch.testing.assert_close(rotations_to_features(rot[b], trans[b], "heading"), f[b])
        r_b, t_b = features_to_rotations(f[b])
        assert r_b.shape == (30, 22, 3, 3) and t_b.shape == (30, 3)
    r, t = features_to_rotations(f)
    assert r.shape == (3, 30, 22, 3, 3) and t.shape == (3, 30, 3)
    one = rotations_to_features(rot[:, :1], trans[:, :1])
    assert one.shape == (3, 1, FEATURE_DIM)


def test_features_to_rotations_on_network_outputs():
    """Arbitrary 6D and a nonzero frame-0 velocity still give rotations and a trajectory starting at 0."""
    f = torch.randn(2, 10, FEATURE_DIM, requires_grad=True)
    rot, trans = features_to_rotations(f)
    eye = torch.eye(3).expand_as(rot)
    torch.testing.assert_close(rot @ rot.transpose(-1, -2), eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(trans[:, 0, :2], torch.zeros(2, 2))
    torch.testing.assert_close(trans[..., 2], f[..., 0])
    torch.testing.assert_close(trans[:, 1:, :2], torch.cumsum(f[:, 1:, 1:3], dim=1))
    (rot.sum() + trans.sum()).backward()
    assert torch.isfinite(f.grad).all()


def test_bad_input_raises():
    rot, trans = motion(batch=1)
    with pytest.raises(ValueError, match="canonicalize"):
        rotations_to_features(rot, trans, "yaw")
    with pytest.raises(ValueError, match="trans"):
        rotations_to_features(rot, trans[..., :2])
    with pytest.raises(ValueError, match="rotmats"):
        rotations_to_features(rot[..., :21, :, :], trans)
    with pytest.raises(ValueError, match="135"):
        features_to_rotations(torch.zeros(1, 5, 134))


def test_normalize_round_trip_and_formula():
    x = torch.randn(5, 7, FEATURE_DIM)
    mean, std = torch.randn(FEATURE_DIM), torch.rand(FEATURE_DIM) + 0.1
    n = normalize(x, mean, std)
    torch.testing.assert_close(n, (x - mean) / (std + 1e-12))
    torch.testing.assert_close(denormalize(n, mean, std), x)
    # zero std (a constant dimension) does not produce inf/NaN for data at the mean
    zero = normalize(mean.expand(3, FEATURE_DIM), mean, torch.zeros(FEATURE_DIM))
    assert torch.isfinite(zero).all()


def test_feature_stats_over_all_frames():
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randn(t, FEATURE_DIM, generator=g) * 3 + 5 for t in (1, 17, 40, 250)]
    mean, std = feature_stats(seqs)
    cat = torch.cat(seqs).double()
    torch.testing.assert_close(mean, cat.mean(0).float())
    torch.testing.assert_close(std, cat.std(0).float())  # unbiased, as torch.std / compute_stats.py
    # numpy input and a merge of partial results (e.g. from several ranks) give the same numbers
    a, b = RunningStats(), RunningStats()
    for s in seqs[:2]:
        a.update(s.numpy())
    for s in seqs[2:]:
        b.update(s)
    a.merge(b)
    m2, s2 = a.finalize()
    torch.testing.assert_close(m2, mean)
    torch.testing.assert_close(s2, std)
    assert a.count == sum(len(s) for s in seqs)


def test_feature_stats_large_offset_is_stable():
    base = np.random.default_rng(0).normal(size=(1000, FEATURE_DIM))
    _, std = feature_stats([base[:500] + 1e6, base[500:] + 1e6])
    np.testing.assert_allclose(std.numpy(), base.std(0, ddof=1), rtol=1e-4)


def test_feature_stats_errors():
    with pytest.raises(ValueError, match="2 frames"):
        feature_stats([torch.zeros(1, FEATURE_DIM)])
    with pytest.raises(ValueError, match="135"):
        feature_stats([torch.zeros(5, 10)])
    bad = torch.zeros(5, FEATURE_DIM)
    bad[2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        feature_stats([bad])
