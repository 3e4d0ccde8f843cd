"""Motion models that move the body over the floor: walking, running, stepping, turning, jumping."""

from __future__ import annotations

import numpy as np

from .body import SIDE_SIGN
from .common import Ctx, Motion
from .curves import ease_keys, ramp, smooth_keys
from .gait import Gait, gait_motion, min_duration
from .jumps import Ground, JumpPlan, jump_motion
from .targets import PoseTargets, concat, planted_foot, standing


def _gait(c: Ctx, duration: float, g: Gait, **params: float) -> Motion:
    duration = max(duration, min_duration(g, 2) + 2.0 / c.fps)  # t[-1] is one frame short of it
    t = c.times(duration)
    tg, end = gait_motion(c.geo, t, g)
    return Motion(tg, end, {"duration": duration, **params})


def walk_forward(c: Ctx) -> Motion:
    v = c.u(0.8, 1.6)
    g = Gait(
        speed=v,
        cadence=1.65 + 0.35 * (v - 0.8) / 0.8 + c.u(-0.05, 0.05),
        turn=c.rng.normal(0, 0.12),
        arm_swing=c.u(0.4, 0.75),
        lean=c.u(0.02, 0.08),
        first_foot=c.side(),
        lift=c.u(0.06, 0.1),
        heel_strike=c.u(0.18, 0.3),
        toe_off=c.u(0.35, 0.5),
        half_width=c.u(0.1, 0.14),
    )
    return _gait(c, c.u(1.6, 3.5), g, speed=v)


def walk_backward(c: Ctx) -> Motion:
    v = c.u(0.4, 0.9)
    g = Gait(
        speed=v,
        direction=np.pi,
        cadence=c.u(1.5, 1.8),
        heel_strike=0.0,
        toe_off=c.u(0.1, 0.2),
        lift=c.u(0.05, 0.07),
        lean=c.u(-0.02, 0.04),
        arm_swing=c.u(0.25, 0.45),
        first_foot=c.side(),
        turn=c.rng.normal(0, 0.08),
        placement=0.5,
    )
    return _gait(c, c.u(1.5, 3.0), g, speed=v)


def _sidestep(c: Ctx, side: int) -> Motion:
    v = c.u(0.3, 0.5)
    g = Gait(
        speed=v,
        direction=SIDE_SIGN[side] * np.pi / 2,
        cadence=c.u(1.5, 1.9),
        heel_strike=0.0,
        toe_off=c.u(0.05, 0.15),
        lift=c.u(0.05, 0.08),
        half_width=c.u(0.19, 0.23),
        arm_swing=0.1,
        first_foot=side,
        sway=0.015,
        pelvis_yaw=0.0,
        toe_out=0.0,
    )
    return _gait(c, c.u(1.3, 2.8), g, speed=v)


def sidestep_left(c: Ctx) -> Motion:
    return _sidestep(c, 0)


def sidestep_right(c: Ctx) -> Motion:
    return _sidestep(c, 1)


def jog(c: Ctx) -> Motion:
    v = c.u(1.8, 2.6)
    g = Gait(
        speed=v,
        cadence=c.u(2.5, 2.8),
        stance=0.42,
        lift=c.u(0.15, 0.2),
        heel_strike=0.12,
        toe_off=0.5,
        bob=-0.02,
        lean=c.u(0.07, 0.12),
        elbow=c.u(1.2, 1.5),
        arm_swing=c.u(0.5, 0.7),
        half_width=0.11,
        placement=0.4,
        pelvis_height=0.955,
        first_foot=c.side(),
        turn=c.rng.normal(0, 0.1),
    )
    return _gait(c, c.u(2.0, 3.5), g, speed=v)


def run(c: Ctx) -> Motion:
    v = c.u(2.8, 3.8)
    g = Gait(
        speed=v,
        cadence=c.u(2.75, 3.0),
        stance=0.36,
        lift=c.u(0.22, 0.28),
        heel_strike=0.12,
        toe_off=0.6,
        bob=-0.03,
        lean=c.u(0.12, 0.18),
        elbow=c.u(1.35, 1.6),
        arm_swing=c.u(0.6, 0.8),
        half_width=0.1,
        placement=0.35,
        pelvis_height=0.96,
        first_foot=c.side(),
        turn=c.rng.normal(0, 0.1),
    )
    return _gait(c, c.u(2.5, 4.0), g, speed=v)


def walk_in_circle(c: Ctx) -> Motion:
    v, radius, side = c.u(0.8, 1.3), c.u(0.8, 2.0), c.side()
    duration = c.u(3.5, 6.0)
    turn = SIDE_SIGN[side] * min(v * (duration - 1.2) / radius, 2 * np.pi)
    g = Gait(
        speed=v, turn=turn, cadence=1.6 + 0.3 * (v - 0.8) / 0.5, first_foot=c.side(), arm_swing=c.u(0.35, 0.6)
    )
    return _gait(c, duration, g, speed=v, radius=radius, turn=turn)


def _turn(c: Ctx, angle: float) -> Motion:
    steps = 2 + int(abs(angle) > 1.2) + int(abs(angle) > 2.4) + int(c.rng.integers(2))
    cadence = c.u(1.4, 1.9)
    g = Gait(
        speed=0.0,
        turn=angle,
        cadence=cadence,
        lift=c.u(0.04, 0.07),
        heel_strike=0.03,
        toe_off=0.1,
        first_foot=0 if angle > 0 else 1,
        arm_swing=0.2,
        sway=0.02,
        pelvis_yaw=0.0,
        bob=0.005,
        start=0.2,
        settle=0.2,
    )
    return _gait(c, min_duration(g, steps) + 2.0 / c.fps + c.u(0.0, 0.3), g, angle=angle)


def turn_left(c: Ctx) -> Motion:
    return _turn(c, c.u(np.radians(60), np.radians(120)))


def turn_right(c: Ctx) -> Motion:
    return _turn(c, -c.u(np.radians(60), np.radians(120)))


def turn_around(c: Ctx) -> Motion:
    return _turn(c, (1 if c.side() == 0 else -1) * c.u(np.radians(150), np.radians(200)))


def step_forward(c: Ctx) -> Motion:
    d = c.u(0.35, 0.6)
    g = Gait(
        distance=d,
        cadence=c.u(1.4, 1.8),
        first_foot=c.side(),
        heel_strike=0.15,
        toe_off=0.3,
        arm_swing=0.4,
        start=0.25,
        settle=0.3,
    )
    return _gait(c, min_duration(g, 2) + c.u(0.0, 0.3), g, distance=d)


def step_back(c: Ctx) -> Motion:
    d = c.u(0.3, 0.5)
    g = Gait(
        distance=d,
        direction=np.pi,
        cadence=c.u(1.4, 1.8),
        first_foot=c.side(),
        heel_strike=0.0,
        toe_off=0.15,
        arm_swing=0.3,
        start=0.25,
        settle=0.3,
    )
    return _gait(c, min_duration(g, 2) + c.u(0.0, 0.3), g, distance=d)


def march_in_place(c: Ctx) -> Motion:
    g = Gait(
        speed=0.0,
        cadence=c.u(1.6, 2.2),
        lift=c.u(0.2, 0.3),
        heel_strike=0.02,
        toe_off=0.15,
        stance=0.55,
        knee_lift_arms=c.u(1.6, 2.4),
        arm_swing=0.0,
        elbow=c.u(0.9, 1.4),
        first_foot=c.side(),
        bob=0.01,
        pelvis_yaw=0.0,
        sway=0.02,
    )
    return _gait(c, c.u(1.6, 3.5), g)


# --- jumps ---------------------------------------------------------------------------------------------


def _neutral_prints(
    c: Ctx, x: float = 0.0, z: float = 0.0, half_width: float | None = None
) -> dict[int, tuple[np.ndarray, float]]:
    w = c.geo.stance_half_width if half_width is None else half_width
    return {s: (np.array([x + SIDE_SIGN[s] * w, z + c.geo.stance_z]), 0.0) for s in (0, 1)}


def _swing_arms(tg: PoseTargets, t: np.ndarray, phases: list[Ground], up: float) -> None:
    """Arms swing back in each crouch and forward/up through each take-off."""
    times, vals = [0.0], [0.05]
    for k, g in enumerate(phases[:-1]):
        times += [g.t0 + 0.5 * (g.t1 - g.t0), g.t1 + 0.08, phases[k + 1].t0 + 0.05]
        vals += [-0.6, up, 0.5 * up]
    times += [phases[-1].t0 + 0.6 * (phases[-1].t1 - phases[-1].t0), float(t[-1])]
    vals += [0.05, 0.05]
    flex = ease_keys(t, np.maximum.accumulate(np.array(times)), vals)
    tg.arms[:, :, 0] = flex[:, None]
    tg.arms[:, :, 2] = 0.35


def jump_in_place(c: Ctx) -> Motion:
    n_jumps = 1 if c.rng.random() < 0.65 else int(c.rng.integers(2, 4))
    h = c.u(0.12, 0.35) if n_jumps == 1 else c.u(0.1, 0.22)
    crouch = c.u(0.12, 0.24)
    phases = []
    for k in range(n_jumps + 1):
        dur = c.u(0.75, 1.0) if k == 0 else (c.u(0.4, 0.55) if k < n_jumps else c.u(0.7, 1.0))
        phases.append(
            Ground(
                dur,
                _neutral_prints(c),
                np.zeros(2),
                crouch if k == 0 else 0.8 * crouch,
                pitch=0.35 * crouch / 0.2,
                apex=h if k < n_jumps else 0.0,
            )
        )
    t, tg = jump_motion(c.geo, c.fps, JumpPlan(phases, tuck=c.u(0.05, 0.25)))
    _swing_arms(tg, t, phases, c.u(1.4, 2.2))
    return Motion(tg, (0.0, 0.0, 0.0), {"jumps": n_jumps, "height": h})


def jump_forward(c: Ctx) -> Motion:
    d, h = c.u(0.4, 1.1), c.u(0.15, 0.3)
    crouch = c.u(0.15, 0.25)
    g0 = Ground(c.u(0.8, 1.0), _neutral_prints(c), np.zeros(2), crouch, pitch=0.45, apex=h)
    g1 = Ground(c.u(0.8, 1.1), _neutral_prints(c, z=d), np.array([0.0, d]), c.u(0.12, 0.22), pitch=0.35)
    t, tg = jump_motion(c.geo, c.fps, JumpPlan([g0, g1], tuck=c.u(0.1, 0.25)))
    _swing_arms(tg, t, [g0, g1], c.u(1.4, 2.2))
    return Motion(tg, (0.0, d, 0.0), {"distance": d, "height": h})


def hop_on_one_leg(c: Ctx) -> Motion:
    side, n_hops = c.side(), int(c.rng.integers(1, 5))
    h, dz = c.u(0.06, 0.14), c.u(0.0, 0.3) * (c.rng.random() < 0.6)
    geo = c.geo
    shift = 0.8 * geo.stance_half_width
    stance_x = SIDE_SIGN[side] * geo.stance_half_width
    pelvis_x = SIDE_SIGN[side] * shift
    free = 1 - side
    phases = []
    for k in range(n_hops + 1):
        z = k * dz
        phases.append(
            Ground(
                c.u(0.28, 0.38),
                {side: (np.array([stance_x, z + geo.stance_z]), 0.0)},
                np.array([pelvis_x, z]),
                c.u(0.05, 0.09),
                pitch=0.15,
                apex=h if k < n_hops else 0.0,
                feet=(side,),
            )
        )
    free_off = np.array([0.0, -0.62, -0.25])  # knee bent ~80 deg, foot behind and off the floor
    pre_d, post_d = c.u(0.5, 0.7), c.u(0.5, 0.7)
    _, mid = jump_motion(geo, c.fps, JumpPlan(phases, tuck=0.1, free_foot=free_off))
    # Before: shift the weight over the hopping foot and lift the other; after: put it down, re-centre.
    pre = _shift_and_lift(c, pre_d, mid.frames(0), side, free, lifting=True)
    post = _shift_and_lift(c, post_d, mid.frames(-1), side, free, lifting=False, end_z=n_hops * dz)
    tg = concat([pre, mid.frames(slice(1, None)), post])
    tg.arms[:, :, 1] = 0.35  # arms a little out for balance
    return Motion(tg, (0.0, n_hops * dz, 0.0), {"hops": n_hops, "height": h, "side": side})


def _shift_and_lift(
    c: Ctx, duration: float, held: PoseTargets, side: int, free: int, lifting: bool, end_z: float = 0.0
) -> PoseTargets:
    """Standing on both feet <-> standing on ``side`` with the other foot held as in ``held`` (1 frame)."""
    t = c.times(duration)
    duration = float(t[-1])  # the blends must be complete on the last frame
    n = len(t)
    tg = standing(c.geo, n)
    tg.root[:, 2] += end_z
    tg.ankle[:, :, 2] += end_z
    w = ramp(t, 0.0, 0.6 * duration) if lifting else 1.0 - ramp(t, 0.4 * duration, duration)
    lift = ramp(t, 0.45 * duration, duration) if lifting else 1.0 - ramp(t, 0.0, 0.55 * duration)
    tg.root = (1 - w)[:, None] * tg.root + w[:, None] * held.root
    for name in ("pelvis", "spine", "neck"):
        getattr(tg, name)[:] = w[:, None] * getattr(held, name)
    base = tg.ankle[:, free].copy()
    tg.ankle[:, free] = (1 - lift)[:, None] * base + lift[:, None] * held.ankle[:, free]
    tg.ankle[:, free, 1] += 0.03 * np.sin(np.pi * lift)
    tg.foot_pitch[:, free] = lift * held.foot_pitch[0, free]
    tg.contact[:, free] = lift < 1e-3
    tg.reach[:, free] = (lift < 1e-3).astype(float)
    # the supporting foot stays on its footprint; its heel rises as the weight comes over it
    pitch = w * held.foot_pitch[0, side]
    xz = np.broadcast_to(tg.ankle[0, side, [0, 2]], (n, 2))
    tg.ankle[:, side], tg.toe[:, side] = planted_foot(c.geo, side, xz, np.zeros(n), pitch)
    tg.foot_pitch[:, side] = pitch
    return tg


def jumping_jacks(c: Ctx) -> Motion:
    reps = int(c.rng.integers(1, 5))
    h, wide = c.u(0.05, 0.1), c.u(0.3, 0.4)
    phases = []
    n = 2 * reps
    for k in range(n + 1):
        out = k % 2 == 1
        dur = c.u(0.5, 0.7) if k == 0 else (c.u(0.16, 0.24) if k < n else c.u(0.5, 0.7))
        phases.append(
            Ground(
                dur,
                _neutral_prints(c, half_width=wide if out else None),
                np.zeros(2),
                c.u(0.05, 0.08) if 0 < k < n else 0.1,
                pitch=0.05,
                apex=h if k < n else 0.0,
            )
        )
    t, tg = jump_motion(c.geo, c.fps, JumpPlan(phases, tuck=0.05))
    # Arms up (over the head, sideways) while the feet are apart.
    times, abd = [0.0], [0.12]
    for k in range(n):
        mid = phases[k].t1 + 0.5 * (phases[k + 1].t0 - phases[k].t1)
        times.append(mid + 0.05)
        abd.append(c.u(2.4, 2.8) if k % 2 == 0 else 0.2)
    times.append(float(t[-1]))
    abd.append(0.12)
    tg.arms[:, :, 1] = smooth_keys(t, times, abd)[:, None]
    tg.arms[:, :, 0] = 0.05
    tg.arms[:, :, 2] = 0.2
    return Motion(tg, (0.0, 0.0, 0.0), {"reps": reps, "height": h})
