"""Physical-plausibility metrics on hand-made joint trajectories (metres, y up, floor at 0)."""

from __future__ import annotations

import pytest
import torch

from actiongpt.metrics_physics import CONTACT_HEIGHT, FOOT_JOINTS, PHYSICS_KEYS, physics_sums

FPS = 30.0


def _body(frames: int, height: float = 0.5) -> torch.Tensor:
    """(1, T, 21, 3): every joint at ``height`` except the feet, which stand on the floor."""
    j = torch.zeros(1, frames, 21, 3)
    j[..., 1] = height
    j[:, :, list(FOOT_JOINTS), 1] = 0.0
    return j


def _metrics(joints: torch.Tensor, length: int | None = None) -> dict[str, float]:
    n = joints.shape[1] if length is None else length
    return physics_sums(joints, torch.tensor([n]), FPS).pooled()


def test_planted_foot_does_not_skate_and_a_sliding_one_skates_at_its_speed() -> None:
    assert _metrics(_body(20))["foot_skating"] == 0.0
    sliding = _body(20)
    speed = 0.6  # m/s along x
    sliding[:, :, list(FOOT_JOINTS), 0] = torch.arange(20.0)[:, None] * speed / FPS
    assert _metrics(sliding)["foot_skating"] == pytest.approx(speed)
    lifted = sliding.clone()
    lifted[:, :, list(FOOT_JOINTS), 1] = 2 * CONTACT_HEIGHT  # moving in the air is walking, not skating
    assert _metrics(lifted)["foot_skating"] == 0.0


def test_penetration_floating_and_padding() -> None:
    below = _body(10)
    below[..., 1] -= 0.1  # the whole body 10 cm under the floor
    m = _metrics(below)
    assert m["floor_penetration"] == pytest.approx(0.1) and m["floating"] == 0.0
    above = _body(10)
    above[..., 1] += 0.3
    m = _metrics(above)
    assert m["floating"] == pytest.approx(0.3 - CONTACT_HEIGHT) and m["floor_penetration"] == 0.0
    # frames past the length are ignored, whatever they hold
    padded = torch.cat([_body(10), torch.full((1, 5, 21, 3), -9.0)], 1)
    assert _metrics(padded, 10) == _metrics(_body(10))


def test_jerk_is_zero_for_constant_acceleration_and_known_for_a_cubic() -> None:
    t = torch.arange(30.0, dtype=torch.float64) / FPS
    body = _body(30).double()  # (float32 positions rounded and divided by (1/30 s)^3 would leave ~1e-3)
    body[..., 2] = (0.5 * 2.0 * t**2)[:, None]  # constant acceleration: no jerk
    assert _metrics(body)["jerk"] == pytest.approx(0.0, abs=1e-6)
    body[..., 2] = (t**3)[:, None]  # x''' = 6 m/s^3 for every joint
    assert _metrics(body)["jerk"] == pytest.approx(6.0, rel=1e-6)


def test_sums_combine_exactly_over_sequences() -> None:
    a, b = _body(12), _body(20, height=0.9)
    b[:, :, list(FOOT_JOINTS), 0] = torch.arange(20.0)[:, None] * 0.01
    both = torch.zeros(2, 20, 21, 3)
    both[0, :12], both[1] = a[0], b[0]
    joint = physics_sums(both, torch.tensor([12, 20]), FPS)
    sa, sb = physics_sums(a, torch.tensor([12]), FPS), physics_sums(b, torch.tensor([20]), FPS)
    assert torch.allclose(joint.sums, torch.cat([sa.sums, sb.sums]))
    assert torch.equal(joint.counts, torch.cat([sa.counts, sb.counts]))
    assert set(joint.pooled()) == set(PHYSICS_KEYS)
