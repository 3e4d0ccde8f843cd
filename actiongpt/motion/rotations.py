"""Batched rotation conversions in torch (any leading batch shape).

Conventions:
- axis-angle: (..., 3), angle = norm, in radians;
- matrix: (..., 3, 3), acting on column vectors;
- quaternion: (..., 4) as (w, x, y, z), unit norm; ``matrix_to_quaternion`` returns w >= 0;
- 6D (Zhou et al., "On the Continuity of Rotation Representations"): (..., 6). Following the original
  TEACH/TEMOS code, the 6 numbers are the first two **rows** of the matrix, row-major
  ``(R00, R01, R02, R10, R11, R12)``; the inverse re-orthonormalises them by Gram-Schmidt and takes the
  third row as their cross product.

Every conversion below is public API (``__all__``), also those the pipeline itself does not call
(``axis_angle_to_quaternion``, ``axis_angle_to_rot6d``, ``rot6d_to_axis_angle``, ``quaternion_multiply``):
they complete the set for users working with other representations, and tests pin them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "axis_angle_to_matrix",
    "axis_angle_to_quaternion",
    "axis_angle_to_rot6d",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "matrix_to_rot6d",
    "quaternion_multiply",
    "quaternion_slerp",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "rot6d_to_axis_angle",
    "rot6d_to_matrix",
    "rotation_about_axis",
    "skew",
]

_EPS = 1e-8


def skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrix."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula with a Taylor expansion near zero angle (finite gradients at 0)."""
    theta2 = (aa * aa).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    theta = torch.sqrt(theta2.clamp_min(_EPS * _EPS))
    small = theta2 < 1e-8
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(_EPS))
    k = skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(k.shape)
    return eye + a * k + b * (k @ k)


def _sqrt_positive_part(x: torch.Tensor) -> torch.Tensor:
    """sqrt(max(x, 0)) with a zero (not NaN) gradient where x <= 0.

    A plain ``sqrt(x.clamp_min(0))`` back-propagates ``0 * inf = NaN`` for the zero candidates, e.g. at the
    identity matrix, where three of the four candidates are exactly 0.
    """
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), torch.zeros_like(x))


def matrix_to_quaternion(m: torch.Tensor) -> torch.Tensor:
    """Robust conversion (picks the best-conditioned of four candidate formulas)."""
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    q_abs = _sqrt_positive_part(
        torch.stack(
            [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1
        )
    )
    cand = torch.stack(
        [
            torch.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], dim=-1),
            torch.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], dim=-1),
            torch.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], dim=-1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], dim=-1),
        ],
        dim=-2,
    )
    cand = cand / (2.0 * q_abs[..., None].clamp_min(0.1))
    best = q_abs.argmax(dim=-1)
    q = torch.gather(cand, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    q = F.normalize(q, dim=-1)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)


def axis_angle_to_quaternion(aa: torch.Tensor) -> torch.Tensor:
    angle = aa.norm(dim=-1, keepdim=True)
    half = angle / 2
    small = angle < 1e-6
    s = torch.where(small, 0.5 - angle * angle / 48, torch.sin(half) / angle.clamp_min(_EPS))
    return torch.cat([torch.cos(half), aa * s], dim=-1)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """Angle in [0, pi] (the quaternion is flipped to w >= 0 first)."""
    q = F.normalize(q, dim=-1)
    q = torch.where(q[..., :1] < 0, -q, q)
    xyz = q[..., 1:]
    s = xyz.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(s, q[..., :1])
    small = s < 1e-6
    factor = torch.where(small, 2.0 + angle * angle / 12, angle / s.clamp_min(_EPS))
    return xyz * factor


def matrix_to_axis_angle(m: torch.Tensor) -> torch.Tensor:
    return quaternion_to_axis_angle(matrix_to_quaternion(m))


def matrix_to_rot6d(m: torch.Tensor) -> torch.Tensor:
    """First two rows, row-major (the original TEACH layout)."""
    return m[..., :2, :].reshape(*m.shape[:-2], 6)


def rot6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """Gram-Schmidt on the two stored rows; third row = their cross product."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-2)


def axis_angle_to_rot6d(aa: torch.Tensor) -> torch.Tensor:
    return matrix_to_rot6d(axis_angle_to_matrix(aa))


def rot6d_to_axis_angle(d6: torch.Tensor) -> torch.Tensor:
    return matrix_to_axis_angle(rot6d_to_matrix(d6))


def quaternion_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def quaternion_slerp(q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Shortest-path spherical interpolation; ``t`` broadcasts against the batch shape (no trailing 4)."""
    t = torch.as_tensor(t, dtype=q0.dtype, device=q0.device)
    q0 = F.normalize(q0, dim=-1)
    q1 = F.normalize(q1, dim=-1)
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    t = t[..., None] if t.dim() > 0 else t
    omega = torch.acos(dot)
    so = torch.sin(omega)
    near = so < 1e-6
    w0 = torch.where(near, 1 - t, torch.sin((1 - t) * omega) / so.clamp_min(_EPS))
    w1 = torch.where(near, t, torch.sin(t * omega) / so.clamp_min(_EPS))
    return F.normalize(w0 * q0 + w1 * q1, dim=-1)


def rotation_about_axis(angle: torch.Tensor, axis: str) -> torch.Tensor:
    """Elementary rotation matrices about 'x', 'y' or 'z'; ``angle`` (...,) -> (..., 3, 3)."""
    c, s = torch.cos(angle), torch.sin(angle)
    o, i = torch.zeros_like(angle), torch.ones_like(angle)
    if axis == "x":
        rows = [i, o, o, o, c, -s, o, s, c]
    elif axis == "y":
        rows = [c, o, s, o, i, o, -s, o, c]
    elif axis == "z":
        rows = [c, -s, o, s, c, o, o, o, i]
    else:
        raise ValueError(f"axis must be 'x', 'y' or 'z', got {axis!r}")
    return torch.stack(rows, dim=-1).reshape(*angle.shape, 3, 3)
