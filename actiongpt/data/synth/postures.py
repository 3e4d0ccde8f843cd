"""Motion models on the spot that move the whole body: standing, squats, sitting, bending, kicks, balance."""

from __future__ import annotations

import numpy as np

from .body import SIDE_SIGN
from .common import (
    T_POSE,
    Ctx,
    Motion,
    arm_pair,
    arm_pose,
    arm_reach,
    free_leg,
    set_channel,
    step_foot,
    weight_shift,
)
from .curves import ease_keys, ramp, smooth_keys
from .jumps import heel_rise
from .targets import PoseTargets, planted_foot, standing

HANDS_ON_THIGHS = arm_pair((0.15, -0.75, 0.65), (0.0, -0.45, 0.9))
ARMS_FORWARD = arm_pair((0.05, 0.0, 1.0), (0.02, 0.05, 1.0))


def _idle(tg: PoseTargets, t: np.ndarray, c: Ctx, amount: float = 1.0) -> None:
    """Postural sway and breathing on top of whatever the body does."""
    f1, f2, ph1, ph2 = c.u(0.15, 0.35), c.u(0.2, 0.4), c.u(0, 2 * np.pi), c.u(0, 2 * np.pi)
    tg.root[:, 0] += amount * 0.008 * np.sin(2 * np.pi * f1 * t + ph1)
    tg.root[:, 2] += amount * 0.006 * np.sin(2 * np.pi * f2 * t + ph2)
    tg.spine[:, 0] += amount * 0.015 * np.sin(2 * np.pi * 0.25 * t + ph1)


def t_pose(c: Ctx) -> Motion:
    """The calibration pose at the start of many mocap takes (BABEL labels it 't pose')."""
    duration = c.u(0.8, 2.2)
    t = c.times(duration)
    tg = standing(c.geo, len(t), pelvis_drop=0.004)
    tg.arms[:] = T_POSE
    tg.arms[:, :, 1] += c.u(-0.08, 0.05)
    _idle(tg, t, c, 0.5)
    return Motion(tg, params={"duration": duration})


def stand_still(c: Ctx) -> Motion:
    duration = c.u(1.0, 3.5)
    t = c.times(duration)
    tg = standing(c.geo, len(t))
    _idle(tg, t, c, c.u(0.7, 1.5))
    if c.rng.random() < 0.5:  # rest the weight on one leg for a while
        side = c.side()
        a, b = c.u(0.1, 0.4) * duration, c.u(0.6, 0.9) * duration
        weight_shift(tg, t, side, c.u(0.03, 0.06), a, a + 0.5, b, min(b + 0.5, duration))
        w = ramp(t, a, a + 0.5) * (1 - ramp(t, b, min(b + 0.5, duration)))
        tg.pelvis[:, 1] += -SIDE_SIGN[side] * 0.05 * w
    keys = np.linspace(0, duration, 4)
    set_channel(tg, "neck", t, keys, [[0, 0, 0]] + [[c.u(-0.1, 0.1), 0, c.u(-0.3, 0.3)] for _ in range(3)])
    tg.arms[:, :, 0] += c.u(-0.05, 0.1)
    return Motion(tg, params={"duration": duration})


def look_around(c: Ctx) -> Motion:
    n = int(c.rng.integers(1, 4))
    first = 1 if c.rng.random() < 0.5 else -1
    times, yaws = [0.0], [0.0]
    tt = c.u(0.2, 0.4)
    for k in range(n):
        tt += c.u(0.5, 0.9)
        times.append(tt)
        yaws.append(first * (-1) ** k * c.u(0.6, 1.1))
        tt += c.u(0.2, 0.7)
        times.append(tt)
        yaws.append(yaws[-1])
    tt += c.u(0.5, 0.8)
    times.append(tt)
    yaws.append(0.0)
    t = c.times(tt + 0.2)
    tg = standing(c.geo, len(t))
    yaw = ease_keys(t, times, yaws)
    tg.neck[:, 2] = 0.75 * yaw
    tg.spine[:, 2] = 0.25 * yaw
    tg.neck[:, 0] = c.u(-0.15, 0.1) * np.abs(yaw)
    _idle(tg, t, c)
    return Motion(tg, params={"looks": n})


def squat(c: Ctx) -> Motion:
    reps = int(c.rng.integers(1, 3))
    depth = c.u(0.28, 0.45)
    arms_fwd = c.rng.random() < 0.7
    times, ys, zs, pitch, arm_w = [0.0], [0.0], [0.0], [0.0], [0.0]
    tt = c.u(0.2, 0.4)
    times.append(tt)
    ys.append(0.0)
    zs.append(0.0)
    pitch.append(0.0)
    arm_w.append(0.0)
    for _ in range(reps):
        tt += c.u(0.6, 0.9)
        times += [tt, tt + c.u(0.05, 0.3)]
        tt = times[-1]
        ys += [-depth, -depth]
        zs += [-0.45 * depth, -0.45 * depth]
        pitch += [1.5 * depth, 1.5 * depth]
        arm_w += [1.0, 1.0]
        tt += c.u(0.6, 0.9)
        times.append(tt)
        ys.append(0.0)
        zs.append(0.0)
        pitch.append(0.0)
        arm_w.append(0.3 if _ < reps - 1 else 0.0)
    times.append(tt + c.u(0.3, 0.6))
    ys.append(0.0)
    zs.append(0.0)
    pitch.append(0.0)
    arm_w.append(0.0)
    t = c.times(times[-1])
    tg = standing(c.geo, len(t))
    tg.root[:, 1] += ease_keys(t, times, ys)
    tg.root[:, 2] += ease_keys(t, times, zs)
    p = ease_keys(t, times, pitch)
    tg.pelvis[:, 0] = 0.8 * p
    tg.spine[:, 0] = 0.2 * p
    tg.neck[:, 0] = -0.3 * p
    w = ease_keys(t, times, arm_w)[:, None, None]
    target = ARMS_FORWARD if arms_fwd else arm_pair((0.2, -0.7, 0.7), (-0.3, 0.2, 0.9))
    tg.arms[:] = (1 - w) * tg.arms + w * target
    return Motion(tg, params={"reps": reps, "depth": depth})


def _seated(c: Ctx) -> dict[str, float]:
    return {"back": c.u(0.3, 0.4), "height": c.u(0.5, 0.56), "lean": c.u(0.05, 0.2)}


def sit_down(c: Ctx) -> Motion:
    seat = _seated(c)
    d_down, hold = c.u(1.2, 1.9), c.u(0.5, 1.5)
    t0 = c.u(0.1, 0.3)
    t1 = t0 + d_down
    t = c.times(t1 + hold)
    tg = standing(c.geo, len(t))
    stand_y = tg.root[0, 1]
    tg.root[:, 1] = ease_keys(t, [t0, t0 + 0.25 * d_down, t1], [stand_y, stand_y - 0.05, seat["height"]])
    tg.root[:, 2] = ease_keys(t, [t0, t0 + 0.3 * d_down, t1], [0.0, -0.08, -seat["back"]])
    tg.pelvis[:, 0] = ease_keys(t, [t0, t0 + 0.6 * d_down, t1 + 0.2], [0.0, 0.75, seat["lean"]])
    tg.spine[:, 0] = ease_keys(t, [t0, t0 + 0.6 * d_down, t1 + 0.2], [0.0, 0.2, 0.0])
    w = ease_keys(t, [t0, t0 + 0.5 * d_down, t1 + 0.3], [0.0, 1.0, 0.0])[:, None, None]
    v = ramp(t, t0 + 0.5 * d_down, t1 + 0.3)[:, None, None]
    tg.arms[:] = (1 - w) * ((1 - v) * tg.arms + v * HANDS_ON_THIGHS) + w * arm_pair(
        (0.1, -0.3, 0.95), (0.05, 0.0, 1.0)
    )
    return Motion(tg, params=seat | {"duration": float(t[-1])})


def stand_up(c: Ctx) -> Motion:
    seat = _seated(c)
    hold, d_up = c.u(0.2, 0.8), c.u(1.1, 1.8)
    t0 = hold
    t1 = t0 + d_up
    t = c.times(t1 + c.u(0.3, 0.6))
    tg = standing(c.geo, len(t))
    stand_y = tg.root[0, 1]
    tg.root[:, 1] = ease_keys(t, [t0 + 0.25 * d_up, t1], [seat["height"], stand_y])
    tg.root[:, 2] = ease_keys(t, [t0, t0 + 0.55 * d_up, t1], [-seat["back"], -0.12, 0.0])
    tg.pelvis[:, 0] = ease_keys(t, [0.0, t0, t0 + 0.35 * d_up, t1], [seat["lean"], seat["lean"], 0.8, 0.0])
    tg.spine[:, 0] = ease_keys(t, [t0, t0 + 0.35 * d_up, t1], [0.0, 0.2, 0.0])
    w = ease_keys(t, [t0, t0 + 0.35 * d_up, t1], [0.0, 1.0, 0.0])[:, None, None]
    v = ramp(t, t0, t0 + 0.35 * d_up)[:, None, None]
    seated_arms = (1 - v) * HANDS_ON_THIGHS + v * tg.arms
    tg.arms[:] = (1 - w) * seated_arms + w * arm_pair((0.1, -0.4, 0.9), (0.05, -0.1, 1.0))
    return Motion(tg, params=seat | {"duration": float(t[-1])})


def bend_forward(c: Ctx) -> Motion:
    """Bend down at the hips towards the toes, then come back up."""
    flex = c.u(1.2, 1.8)
    d_down, hold, d_up = c.u(0.8, 1.2), c.u(0.1, 0.8), c.u(0.8, 1.2)
    t0 = c.u(0.1, 0.3)
    keys = [t0, t0 + d_down, t0 + d_down + hold, t0 + d_down + hold + d_up]
    t = c.times(keys[-1] + c.u(0.2, 0.5))
    tg = standing(c.geo, len(t))
    f = ease_keys(t, keys, [0.0, flex, flex, 0.0])
    tg.pelvis[:, 0] = 0.65 * f
    tg.spine[:, 0] = 0.35 * f
    tg.neck[:, 0] = -0.2 * f
    tg.root[:, 2] -= 0.09 * f
    # arms hang towards the floor: flexion relative to the chest equals the trunk bend
    tg.arms[:, :, 0] = (f + 0.05)[:, None]
    tg.arms[:, :, 1] = 0.1
    tg.arms[:, :, 2] = 0.15
    return Motion(tg, params={"flexion": flex})


def bow(c: Ctx) -> Motion:
    flex = c.u(0.35, 0.8)
    d_down, hold, d_up = c.u(0.5, 0.8), c.u(0.2, 0.8), c.u(0.5, 0.8)
    t0 = c.u(0.1, 0.3)
    keys = [t0, t0 + d_down, t0 + d_down + hold, t0 + d_down + hold + d_up]
    t = c.times(keys[-1] + c.u(0.2, 0.4))
    tg = standing(c.geo, len(t))
    f = ease_keys(t, keys, [0.0, flex, flex, 0.0])
    tg.pelvis[:, 0] = 0.6 * f
    tg.spine[:, 0] = 0.4 * f
    tg.neck[:, 0] = 0.3 * f
    tg.root[:, 2] -= 0.06 * f
    tg.arms[:, :, 0] = (0.5 * f)[:, None]
    return Motion(tg, params={"flexion": flex})


def side_bend(c: Ctx) -> Motion:
    side = c.side()  # the side the trunk leans towards
    lean = c.u(0.4, 0.7) * SIDE_SIGN[side]
    reps = int(c.rng.integers(1, 3))
    overhead = c.rng.random() < 0.5
    times, vals, tt = [0.0], [0.0], c.u(0.1, 0.3)
    for _ in range(reps):
        times += [tt, tt + c.u(0.6, 0.9), tt + c.u(1.0, 1.4)]
        tt = times[-1] + c.u(0.6, 0.9)
        vals += [0.0, 1.0, 1.0]
        times.append(tt)
        vals.append(0.0)
    t = c.times(tt + c.u(0.2, 0.4))
    tg = standing(c.geo, len(t))
    w = ease_keys(t, times, vals)
    tg.spine[:, 1] = lean * w
    tg.pelvis[:, 1] = -0.15 * lean * w
    tg.root[:, 0] -= 0.08 * lean * w  # hips move away to balance the trunk
    other = 1 - side
    if overhead:
        up = np.array(arm_pose(other, (0.3, 0.95, 0.05), (-0.2, 0.95, 0.05)))
        tg.arms[:, other] = tg.arms[:, other] + w[:, None] * (up - tg.arms[:, other])
    tg.arms[:, side, 1] = 0.05 + 0.07 * (1 - w)
    return Motion(tg, params={"side": side, "reps": reps})


def _lift_leg_motion(
    c: Ctx,
    side: int,
    t: np.ndarray,
    t_off: float,
    t_on: float,
    key_times: list[float],
    legs: list[list[float]],
    pitches: list[float],
    shift: float = 0.9,
) -> PoseTargets:
    """Standing on the other foot while leg ``side`` moves through key poses between t_off and t_on."""
    tg = standing(c.geo, len(t))
    stance = 1 - side
    weight_shift(tg, t, stance, shift * c.geo.stance_half_width, t_off - 0.35, t_off, t_on, t_on + 0.35)
    free_leg(c.geo, tg, t, side, t_off, t_on, key_times, legs, pitches)
    return tg


def kick(c: Ctx, side: int) -> Motion:
    reps = 1 if c.rng.random() < 0.75 else 2
    height = c.u(1.05, 1.55)  # hip flexion of the extended leg
    t_off = c.u(0.45, 0.6)
    times, legs, pitches = [t_off], [[0.0, 0.1, 0.0]], [0.0]
    tt = t_off
    for _ in range(reps):
        tt += c.u(0.2, 0.3)
        times.append(tt)
        legs.append([height + 0.1, 2.0, 0.05])  # chamber: knee up
        pitches.append(0.4)
        tt += c.u(0.12, 0.18)
        times.append(tt)
        legs.append([height, c.u(0.05, 0.2), 0.05])  # extend
        pitches.append(0.6)
        tt += c.u(0.18, 0.26)
        times.append(tt)
        legs.append([height + 0.1, 2.0, 0.05])
        pitches.append(0.4)
    t_on = tt + c.u(0.3, 0.4)
    times.append(t_on)
    legs.append([0.0, 0.1, 0.0])
    pitches.append(0.0)
    t = c.times(t_on + c.u(0.4, 0.6))
    tg = _lift_leg_motion(c, side, t, t_off, t_on, times, legs, pitches)
    ext = np.zeros(len(t))
    for k in range(reps):
        ext = np.maximum(
            ext,
            ramp(t, times[1 + 3 * k], times[2 + 3 * k]) * (1 - ramp(t, times[2 + 3 * k], times[3 + 3 * k])),
        )
    lean = ramp(t, t_off - 0.2, times[1]) * (1 - ramp(t, times[-2], t_on))
    tg.pelvis[:, 0] = -0.12 * lean - 0.12 * ext
    w = lean[:, None, None]
    guard = np.array([arm_reach(c.geo, s, (0.14, 0.1, 0.32), (0.4, -1.0, -0.1)) for s in (0, 1)])
    tg.arms[:] = (1 - w) * tg.arms + w * guard
    return Motion(tg, params={"side": side, "reps": reps, "height": height})


def kick_right(c: Ctx) -> Motion:
    return kick(c, 1)


def kick_left(c: Ctx) -> Motion:
    return kick(c, 0)


def balance_one_leg(c: Ctx) -> Motion:
    side = c.side()  # the raised leg
    t_off, hold = c.u(0.5, 0.7), c.u(0.6, 2.0)
    forward = c.rng.random() < 0.6
    pose = [c.u(0.8, 1.4), c.u(1.3, 1.8), 0.0] if forward else [c.u(-0.3, 0.0), c.u(1.4, 1.9), 0.0]
    t_up = t_off + c.u(0.4, 0.6)
    t_down = t_up + hold
    t_on = t_down + c.u(0.4, 0.6)
    times = [t_off, t_up, t_down, t_on]
    legs = [[0.0, 0.1, 0.0], pose, pose, [0.0, 0.1, 0.0]]
    t = c.times(t_on + c.u(0.4, 0.6))
    tg = _lift_leg_motion(c, side, t, t_off, t_on, times, legs, [0.0, 0.3, 0.3, 0.0])
    w = ramp(t, t_off - 0.2, t_up) * (1 - ramp(t, t_down, t_on))
    out = arm_pair((0.85, -0.45, 0.25), (0.85, -0.3, 0.45))
    tg.arms[:] = (1 - w[:, None, None]) * tg.arms + w[:, None, None] * out
    tg.root[:, 0] += 0.01 * np.sin(2 * np.pi * 0.7 * t) * w
    return Motion(tg, params={"side": side, "hold": hold, "knee_forward": forward})


def lunge(c: Ctx) -> Motion:
    side = c.side()  # the leg that steps forward
    rear = 1 - side
    geo = c.geo
    length, depth = c.u(0.7, 0.9), c.u(0.22, 0.32)
    t0 = c.u(0.2, 0.4)
    t1 = t0 + c.u(0.45, 0.6)  # front foot lands
    t2 = t1 + c.u(0.5, 0.8)  # bottom
    t3 = t2 + c.u(0.2, 0.8)  # hold
    t4 = t3 + c.u(0.5, 0.8)  # pushed back up, weight on the rear foot
    t5 = t4 + c.u(0.45, 0.6)  # front foot back
    t = c.times(t5 + c.u(0.3, 0.5))
    tg = standing(geo, len(t))
    front_xz = np.array([SIDE_SIGN[side] * geo.stance_half_width, geo.stance_z + length])
    step_foot(geo, tg, t, side, t0, t1, front_xz, 0.0, lift=0.07)
    home_xz = tg.ankle[0, side, [0, 2]].copy()
    step_foot(geo, tg, t, side, t4, t5, home_xz, 0.0, lift=0.07)
    # the body travels forward and starts to sink while the front foot is in the air
    fwd = smooth_keys(
        t, [t0, t1, t2, t3, t4, t5], [0.0, 0.3 * length, 0.42 * length, 0.42 * length, 0.3 * length, 0.0]
    )
    down = smooth_keys(t, [t0, t1, t2, t3, t4, t5], [0.0, 0.35 * depth, depth, depth, 0.35 * depth, 0.0])
    tg.root[:, 2] += fwd
    tg.root[:, 1] -= down
    tg.pelvis[:, 0] = 0.1 * down / depth
    # the rear heel lifts as much as the rear leg needs
    hips = tg.root + geo.hip_offset[rear]
    a = heel_rise(geo, rear, tg.ankle[0, rear, [0, 2]], 0.0, hips, 0.997 * 0.998 * geo.leg)
    a = np.maximum(a, 0.6 * down / depth)
    ankle, toe = planted_foot(
        geo, rear, np.broadcast_to(tg.ankle[0, rear, [0, 2]], (len(t), 2)), np.zeros(len(t)), a
    )
    tg.ankle[:, rear], tg.toe[:, rear], tg.foot_pitch[:, rear] = ankle, toe, a
    w = (down / depth)[:, None, None]
    tg.arms[:] = (1 - w) * tg.arms + w * arm_pair((0.3, -0.9, 0.1), (0.2, -0.9, 0.3))
    return Motion(tg, params={"side": side, "length": length, "depth": depth})
