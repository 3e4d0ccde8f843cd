import math

import pytest
import torch

from actiongpt.motion import rotations as R


@pytest.fixture(autouse=True)
def _float64():
    # These tests check the math to ~1e-9, so they run in float64 (restored afterwards).
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def random_axis_angle(n: int, seed: int = 0) -> torch.Tensor:
    """Angles spread over [0, pi) plus the hard cases: exactly 0, ~1e-7, near pi."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1)
    angle = torch.rand(n, 1, generator=g, dtype=torch.float64) * (math.pi - 1e-3)
    angle[0], angle[1], angle[2], angle[3] = 0.0, 1e-7, math.pi - 1e-6, math.pi - 1e-4
    return axis * angle


def assert_same_rotation_aa(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-6) -> None:
    torch.testing.assert_close(R.axis_angle_to_matrix(a), R.axis_angle_to_matrix(b), atol=atol, rtol=0)


def test_matrix_is_rotation():
    m = R.axis_angle_to_matrix(random_axis_angle(200))
    eye = torch.eye(3).expand_as(m)
    torch.testing.assert_close(m @ m.transpose(-1, -2), eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(m), torch.ones(200), atol=1e-12, rtol=0)


def test_axis_angle_matrix_round_trip():
    aa = random_axis_angle(500)
    back = R.matrix_to_axis_angle(R.axis_angle_to_matrix(aa))
    # Away from pi the axis-angle vector itself is recovered (angle in [0, pi)).
    ok = aa.norm(dim=-1) < math.pi - 1e-3
    torch.testing.assert_close(back[ok], aa[ok], atol=1e-9, rtol=0)
    # Near pi (axis sign ambiguous) the rotation is recovered.
    assert_same_rotation_aa(back, aa, atol=1e-9)
    assert (back.norm(dim=-1) <= math.pi + 1e-9).all()


def test_quaternion_round_trips():
    aa = random_axis_angle(500, seed=1)
    q = R.axis_angle_to_quaternion(aa)
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(500), atol=1e-12, rtol=0)
    m = R.axis_angle_to_matrix(aa)
    torch.testing.assert_close(R.quaternion_to_matrix(q), m, atol=1e-12, rtol=0)
    q2 = R.matrix_to_quaternion(m)
    assert (q2[:, 0] >= 0).all()
    # same rotation: q2 = +-q
    torch.testing.assert_close((q2 * q).sum(-1).abs(), torch.ones(500), atol=1e-9, rtol=0)
    assert_same_rotation_aa(R.quaternion_to_axis_angle(q), aa, atol=1e-9)


def test_rot6d_round_trip_and_layout():
    aa = random_axis_angle(300, seed=2)
    m = R.axis_angle_to_matrix(aa)
    d6 = R.matrix_to_rot6d(m)
    # first two ROWS, row-major (the original TEACH layout)
    torch.testing.assert_close(d6, torch.cat([m[:, 0, :], m[:, 1, :]], dim=-1))
    torch.testing.assert_close(R.rot6d_to_matrix(d6), m, atol=1e-12, rtol=0)
    assert_same_rotation_aa(R.rot6d_to_axis_angle(R.axis_angle_to_rot6d(aa)), aa, atol=1e-9)


def test_rot6d_gram_schmidt_projects_arbitrary_input():
    d6 = torch.randn(100, 6)
    m = R.rot6d_to_matrix(d6)
    torch.testing.assert_close(m @ m.transpose(-1, -2), torch.eye(3).expand_as(m), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(m), torch.ones(100), atol=1e-12, rtol=0)
    # first row keeps the first vector's direction
    torch.testing.assert_close(m[:, 0], torch.nn.functional.normalize(d6[:, :3], dim=-1))


def test_batched_shapes():
    aa = torch.randn(4, 5, 22, 3)
    m = R.axis_angle_to_matrix(aa)
    assert m.shape == (4, 5, 22, 3, 3)
    assert R.matrix_to_quaternion(m).shape == (4, 5, 22, 4)
    assert R.matrix_to_rot6d(m).shape == (4, 5, 22, 6)
    torch.testing.assert_close(R.axis_angle_to_matrix(aa[1, 2]), m[1, 2])


def test_elementary_rotations():
    a = torch.tensor(0.3)
    for axis, vec in (("x", [1.0, 0, 0]), ("y", [0, 1.0, 0]), ("z", [0, 0, 1.0])):
        torch.testing.assert_close(
            R.rotation_about_axis(a, axis), R.axis_angle_to_matrix(0.3 * torch.tensor(vec))
        )
    # Rx(+90 deg) maps the body's y (up) to world z (AMASS)
    rx = R.rotation_about_axis(torch.tensor(math.pi / 2), "x")
    torch.testing.assert_close(rx @ torch.tensor([0.0, 1, 0]), torch.tensor([0.0, 0, 1]), atol=1e-12, rtol=0)
    with pytest.raises(ValueError):
        R.rotation_about_axis(a, "w")


def test_skew_is_cross_product():
    a, b = torch.randn(10, 3), torch.randn(10, 3)
    torch.testing.assert_close((R.skew(a) @ b[..., None])[..., 0], torch.linalg.cross(a, b))


def test_quaternion_multiply_matches_matrix_product():
    qa = R.axis_angle_to_quaternion(random_axis_angle(50, seed=3))
    qb = R.axis_angle_to_quaternion(random_axis_angle(50, seed=4))
    torch.testing.assert_close(
        R.quaternion_to_matrix(R.quaternion_multiply(qa, qb)),
        R.quaternion_to_matrix(qa) @ R.quaternion_to_matrix(qb),
        atol=1e-12,
        rtol=0,
    )


def test_slerp_endpoints_and_midpoint():
    aa0 = random_axis_angle(64, seed=5)[4:]
    aa1 = random_axis_angle(64, seed=6)[4:]
    q0, q1 = R.axis_angle_to_quaternion(aa0), R.axis_angle_to_quaternion(aa1)
    torch.testing.assert_close(
        R.quaternion_to_matrix(R.quaternion_slerp(q0, q1, 0.0)), R.quaternion_to_matrix(q0)
    )
    torch.testing.assert_close(
        R.quaternion_to_matrix(R.quaternion_slerp(q0, q1, 1.0)), R.quaternion_to_matrix(q1)
    )
    mid = R.quaternion_slerp(q0, q1, 0.5)
    # the midpoint is equally far (in rotation angle) from both ends, half the total angle
    m0, m1, mm = R.quaternion_to_matrix(q0), R.quaternion_to_matrix(q1), R.quaternion_to_matrix(mid)
    total = R.matrix_to_axis_angle(m0.transpose(-1, -2) @ m1).norm(dim=-1)
    d0 = R.matrix_to_axis_angle(m0.transpose(-1, -2) @ mm).norm(dim=-1)
    d1 = R.matrix_to_axis_angle(mm.transpose(-1, -2) @ m1).norm(dim=-1)
    torch.testing.assert_close(d0, total / 2, atol=1e-9, rtol=0)
    torch.testing.assert_close(d1, total / 2, atol=1e-9, rtol=0)
    # about a common axis slerp is linear in the angle; per-sample t broadcasts
    axis = torch.tensor([0.0, 0.0, 1.0])
    qa, qb = R.axis_angle_to_quaternion(0.2 * axis), R.axis_angle_to_quaternion(1.4 * axis)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    out = R.quaternion_slerp(qa.expand(4, 4), qb.expand(4, 4), t)
    torch.testing.assert_close(
        R.quaternion_to_axis_angle(out), (0.2 + 1.2 * t)[:, None] * axis, atol=1e-9, rtol=0
    )


def test_slerp_takes_the_short_path_and_handles_identical_inputs():
    q = R.axis_angle_to_quaternion(torch.tensor([0.0, 0.0, 0.5]))
    out = R.quaternion_slerp(q, -q, 0.5)  # -q is the same rotation
    torch.testing.assert_close(R.quaternion_to_matrix(out), R.quaternion_to_matrix(q), atol=1e-9, rtol=0)
    assert torch.isfinite(R.quaternion_slerp(q, q, 0.3)).all()


def test_finite_gradients_at_zero_rotation():
    for fn in (R.axis_angle_to_matrix, R.axis_angle_to_quaternion, R.axis_angle_to_rot6d):
        aa = torch.zeros(3, 3, requires_grad=True)
        fn(aa).sum().backward()
        assert torch.isfinite(aa.grad).all(), fn.__name__
    # d R / d aa at 0 is the skew generator: d(R v)/d aa = -[v]_x
    aa = torch.zeros(3, requires_grad=True)
    v = torch.tensor([0.3, -0.2, 0.5])
    jac = torch.autograd.functional.jacobian(lambda a: R.axis_angle_to_matrix(a) @ v, aa)
    torch.testing.assert_close(jac, -R.skew(v))
    d6 = torch.tensor([[1.0, 0, 0, 0, 1, 0]], requires_grad=True)
    R.rot6d_to_matrix(d6).sum().backward()
    assert torch.isfinite(d6.grad).all()
    # at the identity three of the four quaternion candidates are exactly 0 (was a NaN gradient)
    for fn in (R.matrix_to_quaternion, R.matrix_to_axis_angle):
        m = torch.eye(3).expand(2, 3, 3).clone().requires_grad_(True)
        fn(m).sum().backward()
        assert torch.isfinite(m.grad).all(), fn.__name__
