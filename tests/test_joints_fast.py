"""``actiongpt.motion.joints_fast``: the evaluator's features -> MMM-21 joints against the reference path
(``features_to_rotations`` + ``joints_mmm21``)."""

from __future__ import annotations

import pytest
import torch

from actiongpt.motion.features import features_to_rotations, rotations_to_features
from actiongpt.motion.joints_fast import MMM21Joints, _runs
from actiongpt.motion.mmm import joints_mmm21
from actiongpt.motion.rotations import axis_angle_to_matrix
from actiongpt.motion.skeleton import Skeleton, bundled_skeleton


def reference(features: torch.Tensor, skeleton: Skeleton, jointstype: str = "mmmns") -> torch.Tensor:
    return joints_mmm21(*features_to_rotations(features), skeleton, jointstype)


def same(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal to float32 rounding (bit-identical where torch's kernels use FMA, as on the development CPU)."""
    assert a.shape == b.shape and a.dtype == b.dtype
    torch.testing.assert_close(a, b, rtol=0, atol=2e-6)


def features(*lead: int, seed: int = 0, raw: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if raw:  # any 135 numbers (network outputs): Gram-Schmidt makes rotations of them
        return torch.randn(*lead, 135, generator=g)
    rot = axis_angle_to_matrix(torch.randn(*lead, 22, 3, generator=g))
    trans = torch.cumsum(0.05 * torch.randn(*lead, 3, generator=g), dim=-2)
    return rotations_to_features(rot, trans)


@pytest.mark.parametrize("jointstype", ["mmmns", "mmm"])
@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize("lead", [(1, 40), (7, 13), (64, 50), (3, 1)])
def test_equals_the_reference_path(lead, raw, jointstype):
    sk = bundled_skeleton()
    f = features(*lead, raw=raw)
    got = MMM21Joints(sk, jointstype)(f)
    same(got, reference(f, sk, jointstype))
    assert got.is_contiguous()


def test_any_leading_shape_and_non_contiguous_input():
    sk = bundled_skeleton()
    to_joints = MMM21Joints(sk)
    f = features(2, 3, 11, seed=1)
    same(to_joints(f), reference(f, sk))
    same(to_joints(f[0, 1]), reference(f[0, 1], sk))  # one sequence (T, 135)
    g = features(4, 30, seed=2)[:, 5:25]  # a slice: not contiguous
    same(to_joints(g), reference(g, sk))


def test_padded_converts_only_valid_frames_and_zeroes_the_rest():
    sk = bundled_skeleton()
    to_joints = MMM21Joints(sk)
    f = features(5, 20, seed=3)
    lengths = torch.tensor([20, 3, 11, 1, 17])
    valid = torch.arange(20)[None, :] < lengths[:, None]
    f = f * valid[..., None]  # padded frames hold zeros, as collated batches do
    got = to_joints.padded(f, lengths)
    want = torch.where(valid[..., None, None], reference(f, sk), torch.zeros(()))
    same(got, want)
    assert bool((got[~valid] == 0).all())
    same(to_joints.padded(f, torch.full((5,), 20)), reference(f, sk))  # no padding


def test_other_dtypes_devices_and_gradients_take_the_reference_path():
    sk = bundled_skeleton()
    to_joints = MMM21Joints(sk)
    f = features(2, 9, seed=4)
    assert torch.equal(to_joints(f.double()), reference(f.double(), sk))
    g = f.clone().requires_grad_(True)
    out = to_joints(g)
    out.sum().backward()
    assert g.grad is not None and torch.equal(out.detach(), reference(f, sk))


def test_other_skeleton_proportions_and_checks():
    base = bundled_skeleton()
    g = torch.Generator().manual_seed(5)
    sk = Skeleton(
        rest_joints=base.rest_joints * 1.1 + 0.01 * torch.randn(22, 3, generator=g),
        end_points=base.end_points * 0.9,
        end_point_names=base.end_point_names,
        end_point_parents=base.end_point_parents,
        name="other",
    )
    f = features(3, 12, seed=6)
    same(MMM21Joints(sk)(f), reference(f, sk))
    with pytest.raises(ValueError, match="jointstype"):
        MMM21Joints(sk, "cm")
    with pytest.raises(ValueError, match="left_heel/right_heel"):
        MMM21Joints(Skeleton(base.rest_joints, base.end_points[2:], base.end_point_names[2:], (10, 11)))
    with pytest.raises(ValueError, match=r"\(\.\.\., T, 135\)"):
        MMM21Joints(sk)(torch.zeros(4, 134))


def test_runs_group_consecutive_children_with_consecutive_or_shared_parents():
    runs = _runs([(1, 0), (2, 0), (3, 0), (7, 4), (8, 5), (9, 6), (12, 9), (14, 13)])
    assert [(r.children, r.parents) for r in runs] == [
        (slice(1, 4), slice(0, 1)),
        (slice(7, 10), slice(4, 7)),
        (slice(12, 13), slice(9, 10)),
        (slice(14, 15), slice(13, 14)),
    ]
    # a shared parent followed by a step starts a new run
    runs = _runs([(10, 7), (11, 8), (12, 9), (13, 9), (14, 9)])
    assert [(r.children, r.parents) for r in runs] == [
        (slice(10, 13), slice(7, 10)),
        (slice(13, 15), slice(9, 10)),
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gram_schmidt_rows_are_the_first_two_rows_of_rot6d_to_matrix(dtype):
    from actiongpt.motion.joints_fast import gram_schmidt_rows_into
    from actiongpt.motion.rotations import rot6d_to_matrix

    x = features(6, 17, raw=True, seed=7).to(dtype)
    d6 = x[..., 3:].unflatten(-1, (22, 6))  # strided, as in a feature array
    out = torch.empty_like(x)
    b1, b2 = gram_schmidt_rows_into(d6, out[..., 3:].unflatten(-1, (22, 6)))
    want = rot6d_to_matrix(d6)
    same(b1, want[..., 0, :])
    same(b2, want[..., 1, :])
    assert b1.data_ptr() == out[..., 3].data_ptr()  # written into the given view
