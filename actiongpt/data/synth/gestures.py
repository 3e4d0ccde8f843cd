"""Motion models of the arms (feet stay planted): punches, waves, raising arms, claps, throws, ...

Key poses are written as directions of the upper arm and forearm (lateral, up, forward) in the chest
frame and converted with `arm_pose`; elbows are hinges, so they only ever flex one way.
"""

from __future__ import annotations

import numpy as np

from .body import SIDE_SIGN
from .common import RELAXED, Ctx, Motion, arm_pair, arm_pose, arm_reach, set_arm
from .curves import ease_keys, ramp, smooth_keys
from .postures import _idle
from .targets import PoseTargets, standing

PUNCH_DIRS = ((-0.08, 0.02, 1.0), (-0.1, 0.0, 1.0))
GUARD_FIST = (0.12, 0.17, 0.3)  # in front of the chin (lateral, up, forward from the chest joint)
GUARD_POLE = (0.4, -1.0, -0.1)


def _base(c: Ctx, duration: float) -> tuple[np.ndarray, PoseTargets]:
    t = c.times(duration)
    tg = standing(c.geo, len(t))
    _idle(tg, t, c, 0.6)
    return t, tg


def _punches(c: Ctx, hands: list[int]) -> Motion:
    """Guard up, punch with each hand in ``hands`` in turn, guard down."""
    t_guard = c.u(0.3, 0.45)
    times = {0: [0.0, t_guard], 1: [0.0, t_guard]}
    guard = {s: arm_reach(c.geo, s, GUARD_FIST, GUARD_POLE) for s in (0, 1)}
    poses = {s: [RELAXED, guard[s]] for s in (0, 1)}
    twist_t, twist_v = [0.0, t_guard], [0.0, 0.0]
    tt = t_guard + c.u(0.1, 0.3)
    for s in hands:
        out, back = c.u(0.13, 0.2), c.u(0.2, 0.3)
        times[s] += [tt, tt + out, tt + out + c.u(0.03, 0.08), tt + out + 0.08 + back]
        poses[s] += [guard[s], arm_pose(s, *PUNCH_DIRS), arm_pose(s, *PUNCH_DIRS), guard[s]]
        twist_t += [tt, tt + out, tt + out + 0.08, tt + out + 0.08 + back]
        tw = -SIDE_SIGN[s] * c.u(0.2, 0.35)  # the trunk turns away from the punching side
        twist_v += [0.0, tw, tw, 0.0]
        tt += out + back + c.u(0.05, 0.35)
    last = tt - 0.05
    end = last + c.u(0.35, 0.5)
    t, tg = _base(c, end + c.u(0.1, 0.3))
    for s in (0, 1):
        if times[s][-1] < last:  # hold the guard until the last punch is back
            times[s].append(last)
            poses[s].append(guard[s])
        set_arm(tg, t, s, times[s] + [end], poses[s] + [RELAXED])
    twist = ease_keys(t, twist_t, twist_v)
    tg.spine[:, 2] = twist
    tg.pelvis[:, 2] = 0.3 * twist
    tg.neck[:, 2] = -0.8 * twist
    return Motion(tg, params={"punches": len(hands)})


def punch_right(c: Ctx) -> Motion:
    return _punches(c, [1] * int(c.rng.integers(1, 4)))


def punch_left(c: Ctx) -> Motion:
    return _punches(c, [0] * int(c.rng.integers(1, 4)))


def boxing(c: Ctx) -> Motion:
    first = c.side()
    n = int(c.rng.integers(2, 6))
    return _punches(c, [(first + k) % 2 for k in range(n)])


def _wave(c: Ctx, sides: list[int]) -> Motion:
    t_up = c.u(0.4, 0.6)
    freq, n = c.u(1.5, 2.5), int(c.rng.integers(2, 5))
    swing = c.u(0.25, 0.45)
    lift = c.u(0.2, 0.5)
    t_end_wave = t_up + n / freq
    t_down = t_end_wave + c.u(0.4, 0.6)
    t, tg = _base(c, t_down + c.u(0.1, 0.3))
    for s in sides:
        upper = (0.75, lift, 0.35)
        left = arm_pose(s, upper, (-swing, 1.0, 0.15))
        right = arm_pose(s, upper, (swing, 1.0, 0.15))
        mid = np.array(arm_pose(s, upper, (0.0, 1.0, 0.15)))
        osc = (
            np.sin(2 * np.pi * freq * (t - t_up))
            * ramp(t, t_up - 0.1, t_up + 0.15)
            * (1 - ramp(t, t_end_wave - 0.15, t_end_wave))
        )
        pose = mid + 0.5 * osc[:, None] * (np.array(right) - np.array(left))
        w = ramp(t, 0.0, t_up) * (1 - ramp(t, t_end_wave, t_down))
        tg.arms[:, s] = (1 - w)[:, None] * tg.arms[:, s] + w[:, None] * pose
        tg.wrist[:, s] = 0.3 * osc
    tg.neck[:, 2] = 0.0
    return Motion(tg, params={"sides": sides, "waves": n})


def wave_right(c: Ctx) -> Motion:
    return _wave(c, [1])


def wave_left(c: Ctx) -> Motion:
    return _wave(c, [0])


def wave_both(c: Ctx) -> Motion:
    return _wave(c, [0, 1])


def _raise(c: Ctx, sides: list[int]) -> Motion:
    sideways = c.rng.random() < 0.5
    t_up, hold = c.u(0.6, 1.0), c.u(0.2, 1.0)
    lower = c.rng.random() < 0.75
    t_hold = t_up + hold
    t_down = t_hold + (c.u(0.6, 1.0) if lower else 0.0)
    t, tg = _base(c, t_down + c.u(0.2, 0.4))
    up_dirs = ((0.25, 1.0, 0.1), (0.15, 1.0, 0.2))
    for s in sides:
        up = arm_pose(s, *up_dirs)
        if sideways:  # through the side (abduction), otherwise through the front (flexion)
            via = arm_pose(s, (1.0, 0.0, 0.1), (1.0, 0.05, 0.15))
        else:
            via = arm_pose(s, (0.15, 0.0, 1.0), (0.1, 0.05, 1.0))
        t0 = c.u(0.1, 0.25)
        times = [0.0, t0, t0 + 0.5 * (t_up - t0), t_up, t_hold]
        poses = [RELAXED, RELAXED, via, up, up]
        if lower:
            times += [t_hold + 0.5 * (t_down - t_hold), t_down]
            poses += [via, RELAXED]
        tg.arms[:, s] = smooth_keys(t, times, poses)
    return Motion(tg, params={"sides": sides, "sideways": sideways, "lowered": lower})


def raise_both_arms(c: Ctx) -> Motion:
    return _raise(c, [0, 1])


def raise_right_arm(c: Ctx) -> Motion:
    return _raise(c, [1])


def raise_left_arm(c: Ctx) -> Motion:
    return _raise(c, [0])


def clap(c: Ctx) -> Motion:
    n, freq = int(c.rng.integers(2, 7)), c.u(1.8, 3.0)
    t_up = c.u(0.35, 0.5)
    t_end = t_up + n / freq
    t_down = t_end + c.u(0.35, 0.5)
    t, tg = _base(c, t_down + c.u(0.1, 0.3))
    h, fwd = c.u(-0.15, 0.12), c.u(0.3, 0.42)
    opened = np.array([arm_reach(c.geo, s, (0.25, h, fwd), (1.0, -1.0, 0.0)) for s in (0, 1)])
    closed = np.array([arm_reach(c.geo, s, (0.035, h, fwd), (1.0, -1.0, 0.0)) for s in (0, 1)])
    phase = 0.5 + 0.5 * np.cos(2 * np.pi * freq * (t - t_up))  # 1 = open, 0 = hands together
    phase = np.where(t < t_up, 1.0, phase)
    phase = np.where(t > t_end, 1.0, phase)
    pose = closed[None] + phase[:, None, None] * (opened - closed)[None]
    w = ramp(t, 0.0, t_up) * (1 - ramp(t, t_end, t_down))
    tg.arms[:] = (1 - w)[:, None, None] * tg.arms + w[:, None, None] * pose
    return Motion(tg, params={"claps": n, "rate": freq})


def arm_circles(c: Ctx) -> Motion:
    """Straight arms held out sideways (a little low and forward) draw circles.

    The circle's centre stays >= 10 degrees from the straight-sideways direction, where the
    (flexion, abduction) angles are singular, so the angles never wind around it."""
    n, freq = int(c.rng.integers(2, 5)), c.u(1.0, 1.6)
    radius = c.u(0.2, 0.35)  # rad
    centre_abd, centre_fwd = c.u(0.95, 1.1), c.u(0.1, 0.25)
    direction = 1.0 if c.rng.random() < 0.5 else -1.0
    t_up = c.u(0.5, 0.7)
    t_end = t_up + n / freq
    t_down = t_end + c.u(0.5, 0.7)
    t, tg = _base(c, t_down + c.u(0.1, 0.3))
    ang = direction * 2 * np.pi * freq * np.clip(t - t_up, 0.0, t_end - t_up)
    amp = radius * ramp(t, t_up - 0.2, t_up + 0.3) * (1 - ramp(t, t_end - 0.3, t_end + 0.1))
    abd = centre_abd + amp * np.sin(ang)
    fwd = centre_fwd + amp * np.cos(ang)
    dirs = np.stack([np.sin(abd), -np.cos(abd) * np.cos(fwd), np.cos(abd) * np.sin(fwd)], -1)
    w = ramp(t, 0.0, t_up) * (1 - ramp(t, t_end, t_down))
    for s in (0, 1):
        poses = arm_pose(s, dirs, dirs)
        tg.arms[:, s] = (1 - w)[:, None] * tg.arms[:, s] + w[:, None] * poses
    return Motion(tg, params={"circles": n, "direction": direction})


def throw(c: Ctx) -> Motion:
    side = 1 if c.rng.random() < 0.8 else 0
    t_wind = c.u(0.5, 0.8)
    t_rel = t_wind + c.u(0.35, 0.45)  # a casual throw: the hand peaks around 8-10 m/s
    t_follow = t_rel + c.u(0.3, 0.4)
    t_back = t_follow + c.u(0.5, 0.8)
    t, tg = _base(c, t_back + c.u(0.2, 0.4))
    wind = arm_pose(side, (0.85, 0.25, -0.4), (0.1, 1.0, -0.2))
    release = arm_pose(side, (0.3, 0.55, 0.8), (0.1, 0.3, 1.0))
    follow = arm_pose(side, (-0.05, -0.6, 0.8), (-0.3, -0.75, 0.55))
    tg.arms[:, side] = smooth_keys(
        t, [0.0, 0.15, t_wind, t_rel, t_follow, t_back], [RELAXED, RELAXED, wind, release, follow, RELAXED]
    )
    other = 1 - side
    tg.arms[:, other] = smooth_keys(
        t,
        [0.0, 0.15, t_wind, t_follow, t_back],
        [
            RELAXED,
            RELAXED,
            arm_pose(other, (0.3, 0.0, 0.95), (0.3, 0.1, 0.95)),
            arm_pose(other, (0.4, -0.8, -0.2), (0.3, -0.6, 0.5)),
            RELAXED,
        ],
    )
    twist = smooth_keys(t, [0.0, 0.15, t_wind, t_rel, t_follow, t_back], [0, 0, 1, -0.4, -0.8, 0])
    tg.spine[:, 2] = -SIDE_SIGN[side] * -0.35 * twist
    tg.pelvis[:, 2] = -SIDE_SIGN[side] * -0.12 * twist
    tg.neck[:, 2] = -tg.spine[:, 2]
    tg.spine[:, 0] = smooth_keys(t, [0.0, t_wind, t_follow, t_back], [0.0, -0.1, 0.35, 0.0])
    return Motion(tg, params={"side": side})


def drink(c: Ctx) -> Motion:
    side = 1 if c.rng.random() < 0.75 else 0
    t_up = c.u(0.6, 0.9)
    t_sip = t_up + c.u(0.4, 1.4)
    t_down = t_sip + c.u(0.6, 0.9)
    t, tg = _base(c, t_down + c.u(0.2, 0.4))
    hold = arm_reach(c.geo, side, (0.04, 0.17, 0.16), (1.0, -1.0, 0.0))  # cup just below the mouth
    sip = arm_reach(c.geo, side, (0.03, 0.21, 0.15), (1.0, -0.7, 0.0))
    near = arm_pose(side, (0.15, -0.95, 0.3), (0.0, -0.2, 1.0))
    tg.arms[:, side] = smooth_keys(
        t,
        [0.0, 0.1, 0.5 * t_up, t_up, t_sip, 0.5 * (t_sip + t_down), t_down],
        [RELAXED, RELAXED, near, hold, sip, near, RELAXED],
    )
    tg.neck[:, 0] = smooth_keys(t, [t_up, 0.5 * (t_up + t_sip), t_sip, t_down], [0.0, -0.3, -0.3, 0.0])
    return Motion(tg, params={"side": side})


def point(c: Ctx) -> Motion:
    side = 1 if c.rng.random() < 0.7 else 0
    lateral, up = c.u(-0.1, 0.9), c.u(-0.2, 0.4)
    t_up = c.u(0.4, 0.6)
    t_hold = t_up + c.u(0.4, 1.3)
    t_down = t_hold + c.u(0.4, 0.6)
    t, tg = _base(c, t_down + c.u(0.1, 0.3))
    d = (lateral, up, 1.0)
    aim = arm_pose(side, d, d)
    tg.arms[:, side] = smooth_keys(t, [0.0, 0.1, t_up, t_hold, t_down], [RELAXED, RELAXED, aim, aim, RELAXED])
    look = ramp(t, 0.1, t_up) * (1 - ramp(t, t_hold, t_down))
    tg.neck[:, 2] = SIDE_SIGN[side] * np.arctan2(lateral, 1.0) * look
    tg.neck[:, 0] = -0.4 * up * look
    return Motion(tg, params={"side": side, "direction": [lateral, up]})


def shrug(c: Ctx) -> Motion:
    reps = int(c.rng.integers(1, 3))
    times, vals, tt = [0.0], [0.0], c.u(0.1, 0.3)
    for _ in range(reps):
        times += [tt, tt + c.u(0.3, 0.45), tt + c.u(0.6, 1.0)]
        vals += [0.0, 1.0, 1.0]
        tt = times[-1] + c.u(0.3, 0.45)
        times.append(tt)
        vals.append(0.0)
    t, tg = _base(c, tt + c.u(0.1, 0.3))
    w = ease_keys(t, times, vals)
    tg.shrug[:] = c.u(0.18, 0.3) * w[:, None]
    palms = arm_pair((0.2, -1.0, 0.1), (0.6, 0.0, 0.8))
    tg.arms[:] = (1 - w)[:, None, None] * tg.arms + w[:, None, None] * palms
    tg.neck[:, 1] = c.u(-0.15, 0.15) * w
    return Motion(tg, params={"reps": reps})
