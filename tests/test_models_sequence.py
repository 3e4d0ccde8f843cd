"""TEACH sequence generation: history conditioning, slerp window, body/trajectory alignment, no jumps."""

from __future__ import annotations

import math

import pytest
import torch

from actiongpt.models.configs import TeachConfig, TemosConfig
from actiongpt.models.generate import generate
from actiongpt.models.registry import build_model
from actiongpt.models.sequence import stitch
from actiongpt.motion.features import rotations_to_features, upright_yaw
from actiongpt.motion.rotations import matrix_to_axis_angle, rotation_about_axis
from tests.models_batches import TEXT_DIM, embed_fn_factory, identity_stats, realistic_stats
from tests.stitch_reference import align_full_bodies, align_trajectory, slerp_poses, slerp_translation

RX90 = rotation_about_axis(torch.tensor(math.pi / 2), "x")


def walk(
    n: int, heading: float, start_xy: tuple[float, float], arm: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """An upright body walking straight at 1.2 m/s along ``heading`` with its shoulders turned by ``arm``."""
    rot = torch.eye(3).repeat(n, 22, 1, 1)
    rot[:, 0] = rotation_about_axis(torch.tensor(heading), "z") @ RX90
    rot[:, 16] = rotation_about_axis(torch.tensor(arm), "z")
    rot[:, 17] = rotation_about_axis(torch.tensor(-arm), "z")
    direction = torch.tensor([math.cos(heading - math.pi / 2), math.sin(heading - math.pi / 2)])
    xy = torch.tensor(start_xy) + (torch.arange(n, dtype=torch.float32)[:, None] * 0.04) * direction
    trans = torch.cat([xy, torch.full((n, 1), 0.95)], dim=1)
    return rot, trans


def joint_speed(joints: torch.Tensor) -> torch.Tensor:
    """(T, J, 3) -> (T - 1,) largest joint displacement between consecutive frames."""
    return (joints[1:] - joints[:-1]).norm(dim=-1).amax(dim=-1)


# -- boundary operations --------------------------------------------------------------------------------
def test_align_full_bodies_matches_yaw_and_continues_trajectory():
    last_rot, last_trans = walk(1, 0.3, (1.0, 2.0), 0.0)
    rot, trans = walk(10, 1.5, (-4.0, 0.5), 0.0)
    for yaw in ("original", "heading"):
        new_rot, new_trans = align_full_bodies(last_rot[0], last_trans[0], rot, trans, yaw=yaw)
        assert torch.allclose(new_trans[0, :2], last_trans[0, :2], atol=1e-6)
        assert torch.allclose(new_trans[:, 2], trans[:, 2])
        steps = (new_trans[1:, :2] - new_trans[:-1, :2]).norm(dim=-1)
        assert torch.allclose(steps, torch.full_like(steps, 0.04), atol=1e-5)  # speed kept
        assert torch.equal(new_rot[:, 1:], rot[:, 1:])  # local joints untouched
    # "heading" makes the facing match exactly, and the walking direction turns with it.
    new_rot, new_trans = align_full_bodies(last_rot[0], last_trans[0], rot, trans, yaw="heading")
    assert float(upright_yaw(new_rot[0, 0])) == pytest.approx(0.3, abs=1e-5)
    d = new_trans[-1, :2] - new_trans[0, :2]
    assert math.atan2(d[1], d[0]) == pytest.approx(0.3 - math.pi / 2, abs=1e-4)
    # "original" turns by the difference of the axis-angle z components, as the original code.
    orig_rot, _ = align_full_bodies(last_rot[0], last_trans[0], rot, trans, yaw="original")
    delta = matrix_to_axis_angle(rot[0, 0])[2] - matrix_to_axis_angle(last_rot[0, 0])[2]
    expected = rotation_about_axis(delta, "z").T @ rot[0, 0]
    assert torch.allclose(orig_rot[0, 0], expected, atol=1e-6)


def test_align_trajectory_and_interpolation():
    trans = torch.tensor([[5.0, 5.0, 1.0], [6.0, 5.0, 1.1]])
    out = align_trajectory(torch.tensor([1.0, 2.0, 0.0]), trans)
    assert torch.allclose(out, torch.tensor([[1.0, 2.0, 1.0], [2.0, 2.0, 1.1]]))
    lerp = slerp_translation(torch.zeros(3), torch.tensor([3.0, 0.0, 0.0]), 2)
    assert lerp[:, 0].tolist() == pytest.approx([1.0, 2.0])
    a = torch.eye(3).repeat(22, 1, 1)
    b = rotation_about_axis(torch.full((22,), 0.9), "y")
    mid = slerp_poses(a, b, 2)
    assert mid.shape == (2, 22, 3, 3)
    assert torch.allclose(mid[0], rotation_about_axis(torch.full((22,), 0.3), "y"), atol=1e-5)
    assert torch.allclose(mid[1], rotation_about_axis(torch.full((22,), 0.6), "y"), atol=1e-5)


def test_stitch_removes_the_jump_between_actions():
    from actiongpt.motion.fk import forward_kinematics
    from actiongpt.motion.skeleton import bundled_skeleton

    skel = bundled_skeleton()
    r0, t0 = walk(30, 0.0, (0.0, 0.0), 0.0)
    r1, t1 = walk(40, 2.0, (3.0, -2.0), 1.4)  # other facing, other place, arms raised
    rot, trans = torch.cat([r0, r1]), torch.cat([t0, t1])
    raw = joint_speed(forward_kinematics(rot, trans, skel))
    assert float(raw[29]) > 1.0  # the unstitched boundary jumps by metres
    lengths = torch.tensor([[30, 40]])
    new_rot, new_trans = (x[0] for x in stitch(rot[None], trans[None], lengths, 8, "full", "heading"))
    speed = joint_speed(forward_kinematics(new_rot, new_trans, skel))
    within = float(speed[:29].max())
    assert float(speed.max()) < 0.2  # bounded everywhere (walking is 0.04 m/frame; arms rise over 9 frames)
    assert float(speed[29:39].max()) < within + 0.15
    assert torch.equal(rot, torch.cat([r0, r1]))  # inputs untouched
    # Without a slerp window the pose still jumps at the boundary, but the trajectory is continuous.
    no_slerp_trans = stitch(rot[None], trans[None], lengths, None, "full", "heading")[1][0]
    assert float((no_slerp_trans[30, :2] - no_slerp_trans[29, :2]).norm()) < 1e-6
    with pytest.raises(ValueError, match="align mode"):
        stitch(rot[None], trans[None], lengths, 8, align="both")  # type: ignore[arg-type]


# -- end to end -------------------------------------------------------------------------------------------
def test_teach_sequence_joins_actions_without_jumps():
    torch.manual_seed(0)
    model = build_model("teach", TeachConfig.tiny(), TEXT_DIM)
    realistic_stats(model)
    embed = embed_fn_factory()
    lengths = [30, 25, 40, 20]
    out = generate(
        model, ["walk", "turn around", "sit down", "wave"], lengths=lengths, embed_fn=embed, seed=3
    )
    assert len(out) == 1 and out.lengths.tolist() == [115]
    assert out.starts.tolist() == [[0, 30, 55, 95]]
    speed = joint_speed(out.joints[0])
    boundaries = [29, 54, 94]
    window_idx = [b + i for b in boundaries for i in range(10)]
    inside = [i for i in range(len(speed)) if i not in window_idx]
    assert float(speed[window_idx].max()) <= 1.5 * float(speed[inside].max()) + 1e-3
    # Each boundary's trajectory continues from the previous action's last position.
    rot, trans = out.rotmats[0], out.trans[0]
    for b in boundaries:
        gap = (trans[b + 1 : b + 10, :2] - trans[b : b + 9, :2]).norm(dim=-1)
        assert float(gap.max()) < 1e-5  # "full" alignment: the body stays put while it blends
    # The slerp window is filled by interpolation: a rotation changes at most its share per frame.
    slerped = rot[30:39]
    assert torch.allclose(slerped @ slerped.transpose(-1, -2), torch.eye(3).expand_as(slerped), atol=1e-5)


def test_teach_history_conditions_the_next_action():
    torch.manual_seed(0)
    model = build_model("teach", TeachConfig.tiny(), TEXT_DIM)
    identity_stats(model)
    embed = embed_fn_factory()
    kwargs = dict(lengths=[20, 20], embed_fn=embed, mean=True, slerp_window=None, align="none")
    a = generate(model, ["jump", "wave"], **kwargs)
    b = generate(model, ["crouch", "wave"], **kwargs)
    # The second action differs because its text encoder saw other history frames.
    assert not torch.allclose(a.rotmats[0, 20:], b.rotmats[0, 20:], atol=1e-4)
    t = build_model("temos", TemosConfig.tiny(), TEXT_DIM)
    identity_stats(t)
    a = generate(t, ["jump", "wave"], sequence=True, **kwargs)
    b = generate(t, ["crouch", "wave"], sequence=True, **kwargs)
    # TEMOS has no history: the second action's poses are the same.
    assert torch.allclose(a.rotmats[0, 20:], b.rotmats[0, 20:], atol=1e-5)


def test_sequence_variants_are_deterministic_and_lengths_checked():
    torch.manual_seed(0)
    model = build_model("teach", TeachConfig.tiny(), TEXT_DIM)
    realistic_stats(model)
    embed = embed_fn_factory()
    a = generate(model, ["walk", "run"], lengths=[20, 20], embed_fn=embed, num_samples=2, seed=1)
    b = generate(model, ["walk", "run"], lengths=[20, 20], embed_fn=embed, num_samples=2, seed=1)
    assert len(a) == 2 and torch.equal(a.joints, b.joints)
    assert not torch.allclose(a.joints[0], a.joints[1], atol=1e-4)
    with pytest.raises(ValueError, match="need more than 9 frames"):
        generate(model, ["walk", "run"], lengths=[20, 9], embed_fn=embed)
    with pytest.raises(ValueError, match="at least 5 frames"):
        generate(model, ["walk", "run"], lengths=[4, 20], embed_fn=embed)


def test_features_match_the_final_motion():
    from actiongpt.motion.features import features_to_rotations

    torch.manual_seed(0)
    model = build_model("teach", TeachConfig.tiny(), TEXT_DIM)
    realistic_stats(model)
    out = generate(model, ["walk", "run"], lengths=[20, 24], embed_fn=embed_fn_factory())
    rot, trans = features_to_rotations(out.features[0])
    assert torch.allclose(rot, out.rotmats[0], atol=1e-5)
    assert torch.allclose(
        trans, out.trans[0] - torch.cat([out.trans[0, :1, :2], torch.zeros(1, 1)], 1), atol=1e-5
    )
    assert torch.allclose(
        rotations_to_features(out.rotmats[0], out.trans[0], canonicalize="none"), out.features[0], atol=1e-6
    )


def test_sequence_features_place_each_action_at_its_offset_with_the_slerp_gap_zeroed():
    """``generate_sequence_features`` writes sample b's action a (its reserved slerp frames as zeros, then
    the decoded frames) at the sum of its earlier actions' lengths, and zeros after its total length."""
    from actiongpt.models.inputs import TextBatch
    from actiongpt.models.sequence import generate_sequence_features

    torch.manual_seed(0)
    model = build_model("temos", TemosConfig.tiny(), TEXT_DIM).eval()
    realistic_stats(model)
    g = torch.Generator().manual_seed(1)
    texts = [
        TextBatch(torch.randn(3, 5, TEXT_DIM, generator=g), torch.ones(3, 5, dtype=torch.bool)) for _ in "ab"
    ]
    lengths = torch.tensor([[20, 30], [35, 15], [12, 12]])
    window = 4
    with torch.no_grad():
        out = generate_sequence_features(model, texts, lengths, slerp_window=window, mean=True)
        assert out.shape == (3, 50, model.nfeats)
        for b in range(3):
            start = 0
            for a in range(2):
                n, gap = int(lengths[b, a]), window if a else 0
                z = model.text_to_latent(
                    TextBatch(texts[a].tokens[b : b + 1], texts[a].mask[b : b + 1]), mean=True
                )
                want = model.decode(z, torch.tensor([n - gap]))[0, : n - gap]
                torch.testing.assert_close(out[b, start + gap : start + n], want)
                assert not out[b, start : start + gap].any()
                start += n
            assert not out[b, start:].any()
