"""Shared pieces of the per-action motion models: context, result type and pose helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .body import SIDE_SIGN, BodyGeometry
from .curves import ease_keys, minjerk, ramp
from .targets import PoseTargets, planted_foot, rot, sole_points

# Arm presets (flexion, abduction, elbow flexion, swivel), radians; see targets.PoseTargets.arms.
RELAXED = (0.05, 0.12, 0.25, 0.0)
GUARD = (0.55, 0.2, 2.2, 0.55)
T_POSE = (0.0, np.pi / 2, 0.0, 0.0)


@dataclass
class Ctx:
    """What a motion model needs: body geometry, capture rate and its own random generator."""

    geo: BodyGeometry
    fps: float
    rng: np.random.Generator

    def times(self, duration: float) -> np.ndarray:
        n = max(2, round(duration * self.fps))
        return np.arange(n) / self.fps

    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def side(self) -> int:
        return int(self.rng.integers(2))


@dataclass
class Motion:
    """One action instance: targets in the action's own frame (starts at the origin, heading 0, neutral
    stance), the root frame it ends in (x, z, heading), the state it ends in, and its sampled parameters."""

    targets: PoseTargets
    end: tuple[float, float, float] = (0.0, 0.0, 0.0)
    params: dict = field(default_factory=dict)


def set_arm(
    tg: PoseTargets, t: np.ndarray, side: int, times: Sequence[float], poses: Sequence[Sequence[float]]
) -> None:
    """Arm ``side`` through key poses (flexion, abduction, elbow, swivel) with gesture-like easing."""
    tg.arms[:, side] = ease_keys(t, times, poses)


def set_channel(tg: PoseTargets, name: str, t: np.ndarray, times: Sequence[float], values: Sequence) -> None:
    arr = getattr(tg, name)
    arr[:] = ease_keys(t, times, values).reshape(arr.shape)


def leg_offset(
    geo: BodyGeometry,
    hip_flex: np.ndarray,
    knee_flex: np.ndarray,
    abduction: np.ndarray | float = 0.0,
    side: int = 0,
) -> np.ndarray:
    """Ankle position relative to its hip (heading frame, G axes) for given hip/knee flexion (radians).

    Hip flexion raises the thigh forward, knee flexion swings the shank back; abduction opens the leg
    sideways. Used to aim a free leg (kicks, knee raises) at reachable places.
    """
    hip_flex = np.asarray(hip_flex, dtype=np.float64)
    knee_flex = np.asarray(knee_flex, dtype=np.float64)
    thigh = np.stack([np.zeros_like(hip_flex), -np.cos(hip_flex), np.sin(hip_flex)], -1) * geo.thigh
    a2 = hip_flex - knee_flex
    shank = np.stack([np.zeros_like(a2), -np.cos(a2), np.sin(a2)], -1) * geo.shank
    off = thigh + shank
    abd = np.broadcast_to(np.asarray(abduction, dtype=np.float64) * SIDE_SIGN[side], hip_flex.shape)
    return (rot(abd, "z") @ off[..., None])[..., 0]  # Rz(+a) swings a leg towards +x (the body's left)


def hip_positions(geo: BodyGeometry, tg: PoseTargets, side: int) -> np.ndarray:
    """World hip joint positions implied by the pelvis targets (ignores the solver's reach lowering)."""
    r = rot(tg.heading + tg.pelvis[:, 2], "y") @ rot(tg.pelvis[:, 0], "x") @ rot(-tg.pelvis[:, 1], "z")
    return tg.root + r @ geo.hip_offset[side]


def free_leg(
    geo: BodyGeometry,
    tg: PoseTargets,
    t: np.ndarray,
    side: int,
    t_off: float,
    t_on: float,
    key_times: Sequence[float],
    key_legs: Sequence[Sequence[float]],
    pitch_keys: Sequence[float],
) -> None:
    """Lift foot ``side`` off its footprint at ``t_off``, move it through leg key poses (hip flexion, knee
    flexion, abduction) relative to the hip, and put it back on the same footprint at ``t_on``.

    The first/last 0.2 s blend between the planted foot and the key poses with extra clearance so the
    foot neither drags on nor sinks into the floor.
    """
    sel = (t > t_off) & (t < t_on)
    if not sel.any():
        return
    ts = t[sel]
    planted = tg.ankle[:, side].copy()
    keys = ease_keys(ts, key_times, key_legs)
    hips = hip_positions(geo, tg, side)[sel]
    heading = tg.heading[sel]
    off = leg_offset(geo, keys[:, 0], keys[:, 1], keys[:, 2], side)
    free = hips + np.einsum("tij,tj->ti", rot(heading, "y"), off)
    blend = np.minimum(ramp(ts, t_off, t_off + 0.2), 1.0 - ramp(ts, t_on - 0.2, t_on))[:, None]
    ankle = (1 - blend) * planted[sel] + blend * free
    pitch = ease_keys(ts, key_times, pitch_keys)
    pitch = blend[:, 0] * pitch
    yaw = tg.foot_yaw[sel, side]
    toe = np.zeros_like(pitch)
    low = sole_points(geo, side, ankle, yaw, pitch, toe)[..., 1].min(-1)
    u = (ts - t_off) / (t_on - t_off)
    ankle[:, 1] += np.maximum(0.015 * np.sin(np.pi * u) ** 0.5 - low, 0.0)
    tg.ankle[sel, side] = ankle
    tg.foot_pitch[sel, side] = pitch
    tg.toe[sel, side] = toe
    tg.contact[sel, side] = False
    tg.reach[sel, side] = 0.0


def step_foot(
    geo: BodyGeometry,
    tg: PoseTargets,
    t: np.ndarray,
    side: int,
    t0: float,
    t1: float,
    xz1: np.ndarray,
    yaw1: float,
    lift: float = 0.06,
) -> None:
    """Move a planted foot to a new footprint during [t0, t1] (flat, with clearance); planted after."""
    i0 = int(np.searchsorted(t, t0))
    xz0 = tg.ankle[i0, side, [0, 2]].copy()
    yaw0 = float(tg.foot_yaw[i0, side])
    a0, _ = planted_foot(geo, side, xz0, yaw0, 0.0)
    a1, _ = planted_foot(geo, side, np.asarray(xz1), yaw1, 0.0)
    sel = (t > t0) & (t < t1)
    u = (t[sel] - t0) / (t1 - t0)
    w = minjerk(u)[:, None]
    tg.ankle[sel, side] = a0 + w * (a1 - a0)
    tg.ankle[sel, side, 1] += lift * np.sin(np.pi * u)
    tg.foot_yaw[sel, side] = yaw0 + (yaw1 - yaw0) * w[:, 0]
    tg.foot_pitch[sel, side] = 0.0
    tg.toe[sel, side] = 0.0
    tg.contact[sel, side] = False
    tg.reach[sel, side] = 1.0 - np.sin(np.pi * u)
    after = t >= t1
    tg.ankle[after, side] = a1
    tg.foot_yaw[after, side] = yaw1
    tg.foot_pitch[after, side] = 0.0
    tg.toe[after, side] = 0.0
    tg.contact[after, side] = True
    tg.reach[after, side] = 1.0


def weight_shift(
    tg: PoseTargets, t: np.ndarray, side: int, amount: float, t0: float, t1: float, t2: float, t3: float
) -> None:
    """Shift the pelvis sideways over foot ``side`` during [t0, t1], hold, and back during [t2, t3]."""
    w = ramp(t, t0, t1) * (1.0 - ramp(t, t2, t3))
    tg.root[:, 0] += SIDE_SIGN[side] * amount * w


def arm_pose(
    side: int, upper: Sequence[float] | np.ndarray, fore: Sequence[float] | np.ndarray
) -> tuple[float, float, float, float] | np.ndarray:
    """(flexion, abduction, elbow, swivel) that aim the upper arm along ``upper`` and the forearm along
    ``fore``; both given as (lateral, up, forward) in the chest frame, lateral = away from the midline.

    Inverse of `solver.arm_directions` (same bend-plane reference), so key poses can be written as
    directions. The elbow angle is the angle between the two directions (a hinge: always >= 0).
    Arrays of directions (..., 3) give an array (..., 4); single directions give a tuple.
    """
    s = float(SIDE_SIGN[side])
    mirror = np.array([s, 1.0, 1.0])
    d = np.asarray(upper, dtype=np.float64) * mirror
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    f = np.asarray(fore, dtype=np.float64) * mirror
    f = f / np.linalg.norm(f, axis=-1, keepdims=True)
    abd = np.arcsin(np.clip(s * d[..., 0], -1.0, 1.0))
    flex = np.arctan2(d[..., 2], -d[..., 1])
    elbow = np.arccos(np.clip((d * f).sum(-1), -1.0, 1.0))
    ref = np.array([-0.3 * s, 0.5, 1.0])
    n0 = ref - (d @ ref)[..., None] * d
    n0 = n0 / np.linalg.norm(n0, axis=-1, keepdims=True)
    medial = s * np.cross(d, n0)
    fp = f - (d * f).sum(-1, keepdims=True) * d
    degenerate = np.linalg.norm(fp, axis=-1) < 1e-6
    swivel = np.where(degenerate, 0.0, np.arctan2((fp * medial).sum(-1), (fp * n0).sum(-1)))
    out = np.stack([flex, abd, elbow, swivel], axis=-1)
    if out.ndim == 1:
        return tuple(float(v) for v in out)  # type: ignore[return-value]
    return out


def arm_pair(upper: Sequence[float], fore: Sequence[float]) -> np.ndarray:
    """(2, 4) mirrored arm pose for both sides."""
    return np.array([arm_pose(0, upper, fore), arm_pose(1, upper, fore)])


def arm_reach(
    geo: BodyGeometry, side: int, target: Sequence[float], pole: Sequence[float] = (0.4, -1.0, -0.2)
) -> tuple[float, float, float, float]:
    """Arm angles that put the wrist at ``target`` = (lateral, up, forward) metres from the chest joint
    (spine3), with the elbow turned towards ``pole`` (two-bone IK in the chest frame)."""
    from .body import ELBOW, SHOULDER, WRIST

    spine3 = geo.rest[9]
    sh = geo.rest[SHOULDER[side]] - spine3
    sh = np.array([abs(sh[0]), sh[1], sh[2]])
    lu = float(np.linalg.norm(geo.rest[ELBOW[side]] - geo.rest[SHOULDER[side]]))
    lf = float(np.linalg.norm(geo.rest[WRIST[side]] - geo.rest[ELBOW[side]]))
    v = np.asarray(target, dtype=np.float64) - sh
    dist = min(float(np.linalg.norm(v)), 0.999 * (lu + lf))
    u = v / np.linalg.norm(v)
    cos_a = np.clip((lu**2 + dist**2 - lf**2) / (2 * lu * dist), -1.0, 1.0)
    p = np.asarray(pole, dtype=np.float64)
    p = p - (p @ u) * u
    p /= np.linalg.norm(p)
    upper = cos_a * u + np.sqrt(1 - cos_a**2) * p
    fore = sh + dist * u - (sh + lu * upper)
    return arm_pose(side, upper, fore)
