"""Stepping: walking, running, side steps, turning on the spot and marching, from a footstep plan.

The root travels along a smooth path (speed ramps up and down, optional turning); steps alternate at
a fixed cadence, and each footprint is placed where the body will be during that foot's stance, so
feet never slide: a stance foot is planted (heel strike -> flat -> heel rise on the ball), a swing
foot moves from its lift-off to its landing pose with ground clearance. Both feet end in the neutral
stance of the final root frame, so any action can follow. Pelvis bob, sway and yaw, trunk lean and arm
swing are coupled to the feet (the arm opposite to the forward leg swings forward).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .body import SIDE_SIGN, BodyGeometry
from .curves import minjerk, ramp
from .targets import PoseTargets, planted_foot, rotate_y, sole_points, standing


@dataclass
class Gait:
    """Parameters of one stepping movement (see the module docstring). Angles in radians."""

    speed: float = 1.2  # m/s along the path; 0 = stepping on the spot
    direction: float = 0.0  # travel direction relative to the facing: 0 forward, pi back, +pi/2 left
    turn: float = 0.0  # total heading change (+ = to the left)
    cadence: float = 1.9  # steps per second
    stance: float = 0.6  # stance share of a stride per foot (< 0.5: flight phases, running)
    lift: float = 0.08  # swing ankle clearance (m)
    heel_strike: float = 0.25  # toes-up angle at landing
    toe_off: float = 0.45  # heel-up angle at lift-off
    half_width: float = 0.12  # lateral ankle offset while moving
    toe_out: float = 0.08
    pelvis_height: float = 0.965
    bob: float = 0.015  # + = highest at mid-stance (walking), - = lowest at mid-stance (running)
    sway: float = 0.025
    pelvis_yaw: float = 0.12  # rad per metre of fore-aft foot separation
    lean: float = 0.05
    arm_swing: float = 0.55  # rad per metre of fore-aft foot separation
    knee_lift_arms: float = 0.0  # rad per metre of foot height difference (marching)
    elbow: float = 0.35
    first_foot: int = 0
    distance: float | None = None  # if set, the path length (overrides speed)
    placement: float = 0.5  # footprint centred at this share of the stance
    start: float = 0.3  # seconds before the first step (weight shift)
    settle: float = 0.25  # seconds after the last landing


def _heading_frame_forward(psi: np.ndarray) -> np.ndarray:
    return np.stack([np.sin(psi), np.zeros_like(psi), np.cos(psi)], axis=-1)


def min_duration(g: Gait, steps: int) -> float:
    """Shortest movement that fits ``steps`` steps (with the start and settle pauses)."""
    delta = 1.0 / g.cadence
    return g.start + (steps - 1) * delta + (1.0 - g.stance) * 2.0 * delta + g.settle


def plan_steps(duration: float, g: Gait) -> tuple[np.ndarray, np.ndarray, float]:
    """Swing start times (n,), stepping feet (n,) and the last landing time for a movement of ``duration``."""
    delta = 1.0 / g.cadence
    swing = (1.0 - g.stance) * 2.0 * delta
    avail = duration - g.start - g.settle - swing
    n = int(np.floor(avail / delta)) + 1
    if n < 2 or avail < 0:
        raise ValueError(
            f"{duration:.2f} s is too short for two steps at {g.cadence:.2f} steps/s "
            f"(need {min_duration(g, 2):.2f} s)"
        )
    starts = g.start + delta * np.arange(n)
    feet = (g.first_foot + np.arange(n)) % 2
    return starts, feet, float(starts[-1] + swing)


def gait_motion(geo: BodyGeometry, t: np.ndarray, g: Gait) -> tuple[PoseTargets, tuple[float, float, float]]:
    """Targets for a stepping movement over times ``t`` (s) and its end root frame (x, z, heading)."""
    n_t = len(t)
    tg = standing(geo, n_t)
    duration = float(t[-1]) if n_t > 1 else 0.0
    starts, feet, t_end = plan_steps(duration, g)
    delta = 1.0 / g.cadence
    swing = (1.0 - g.stance) * 2.0 * delta
    stance_len = 2.0 * delta - swing
    t_move0, t_move1 = float(starts[0]), t_end

    # Root path: speed ramps over about one step at each end; heading follows the distance travelled.
    # about 4 m/s^2 at most, as people start and stop
    r = min(0.45 * (t_move1 - t_move0), 0.35 + 0.2 * g.speed)
    moving = ramp(t, t_move0, t_move0 + r) * (1.0 - ramp(t, t_move1 - r, t_move1))
    speed = g.speed
    if g.distance is not None:
        area = float(np.sum(0.5 * (moving[1:] + moving[:-1]) * np.diff(t)))
        speed = g.distance / area if area > 0 else 0.0
    if speed > 0:
        v = speed * moving
        dist = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * np.diff(t))])
        frac = dist / dist[-1] if dist[-1] > 0 else np.zeros_like(dist)
        psi = g.turn * frac
        step = np.diff(dist, prepend=0.0)
        travel = _heading_frame_forward(psi + g.direction) * step[:, None]
        path = np.cumsum(travel, axis=0)
    else:
        psi = g.turn * ramp(t, t_move0, t_move1)
        path = np.zeros((n_t, 3))

    def at(times: float) -> tuple[np.ndarray, float, float]:
        """Root position, heading and 'moving' factor at an arbitrary time (linear interpolation)."""
        pos = np.array([np.interp(times, t, path[:, k]) for k in range(3)])
        return pos, float(np.interp(times, t, psi)), float(np.interp(times, t, moving))

    def footprint(side: int, times: float, final: bool) -> tuple[np.ndarray, float]:
        pos, heading, m = at(times)
        if final:
            m = 0.0
        w = geo.stance_half_width + (g.half_width - geo.stance_half_width) * m
        off = np.array([SIDE_SIGN[side] * w, 0.0, geo.stance_z])
        p = pos + rotate_y(heading, off)
        return p[[0, 2]], heading + SIDE_SIGN[side] * g.toe_out * m

    # Per-foot footprints and swing intervals.
    n = len(starts)
    for side in (0, 1):
        steps = [j for j in range(n) if feet[j] == side]
        prints = [footprint(side, 0.0, True)]
        intervals = []
        for j in steps:
            land = starts[j] + swing
            tau = t_end if j >= n - 2 else min(land + g.placement * stance_len, t_end)
            prints.append(footprint(side, tau, j >= n - 2))
            intervals.append((starts[j], land))
        # Stance phases (between landings and lift-offs) with heel strike and heel rise.
        bounds = [0.0] + [x for iv in intervals for x in iv] + [float(t[-1]) + 1.0]
        for k in range(len(prints)):
            t0, t1 = bounds[2 * k], bounds[2 * k + 1]
            sel = (t >= t0) & (t < t1) if k < len(prints) - 1 else (t >= t0)
            if not sel.any():
                continue
            ts = t[sel]
            hs = g.heel_strike * (0.6 if k == len(prints) - 1 else 1.0) if k > 0 else 0.0
            to = g.toe_off * (0.6 if k == 0 else 1.0) if k < len(prints) - 1 else 0.0
            length = max(t1 - t0, 1e-3)
            pitch = -hs * (1.0 - ramp(ts, t0, t0 + 0.3 * min(length, stance_len)))
            pitch = pitch + to * ramp(ts, t1 - 0.4 * min(length, stance_len), t1)
            xz, yaw = prints[k]
            ankle, toe = planted_foot(
                geo, side, np.broadcast_to(xz, (len(ts), 2)), np.full(len(ts), yaw), pitch
            )
            tg.ankle[sel, side], tg.toe[sel, side] = ankle, toe
            tg.foot_yaw[sel, side], tg.foot_pitch[sel, side] = yaw, pitch
            tg.contact[sel, side] = True
        # Swings.
        for k, (s0, s1) in enumerate(intervals):
            sel = (t >= s0) & (t < s1)
            if not sel.any():
                continue
            u = (t[sel] - s0) / (s1 - s0)
            (xz0, yaw0), (xz1, yaw1) = prints[k], prints[k + 1]
            p_off = g.toe_off * (0.6 if k == 0 else 1.0)
            p_on = -g.heel_strike * (0.6 if k == len(intervals) - 1 else 1.0)
            a0, _ = planted_foot(geo, side, xz0, yaw0, p_off)
            a1, _ = planted_foot(geo, side, xz1, yaw1, p_on)
            # the foot leaves quickly (heel rises towards the buttock when running) and lands gently
            w = (u * u * (3.0 - 2.0 * u))[:, None]
            ankle = a0 + w * (a1 - a0)
            ankle[:, 1] += g.lift * np.sin(np.pi * u**0.8)
            pitch = p_off + (p_on - p_off) * minjerk(u)
            yaw = yaw0 + (yaw1 - yaw0) * minjerk(u)
            toe = -np.maximum(pitch, 0.0)
            # Ground clearance: lift the ankle wherever a sole point would touch the floor mid-swing.
            low = sole_points(geo, side, ankle, yaw, pitch, toe)[..., 1].min(-1)
            need = 0.012 * np.sin(np.pi * u) - low
            ankle[:, 1] += np.maximum(need, 0.0)
            tg.ankle[sel, side], tg.toe[sel, side] = ankle, toe
            tg.foot_yaw[sel, side], tg.foot_pitch[sel, side] = yaw, pitch
            tg.contact[sel, side] = False
            tg.reach[sel, side] = 1.0 - ramp(u, 0.0, 0.2) + ramp(u, 0.7, 1.0)
    tg.airborne = ~tg.contact.any(axis=1)

    # Pelvis and upper body.
    mids = starts + swing / 2
    phase = np.interp(t, mids, np.arange(n), left=np.nan, right=np.nan)
    phase = np.where(t < mids[0], (t - mids[0]) / delta, phase)
    phase = np.where(t > mids[-1], n - 1 + (t - mids[-1]) / delta, phase)
    envelope = ramp(t, max(0.0, t_move0 - 0.25), t_move0) * (1.0 - ramp(t, t_move1, t_move1 + g.settle))
    sway_sign = SIDE_SIGN[1 - g.first_foot]
    lateral = g.sway * sway_sign * np.cos(np.pi * phase) * envelope
    fwd = _heading_frame_forward(psi)
    left = rotate_y(psi, np.array([1.0, 0.0, 0.0]))
    root = path + lateral[:, None] * left
    root[:, 1] = geo.floor - 0.012 + (g.pelvis_height - geo.floor + 0.012) * envelope
    root[:, 1] += g.bob * np.cos(2 * np.pi * phase) * envelope
    tg.root = root
    tg.heading = psi
    sep = ((tg.ankle[:, 0] - tg.ankle[:, 1]) * fwd).sum(-1)  # + = left foot ahead
    rise = tg.ankle[:, 0, 1] - tg.ankle[:, 1, 1]
    drive = sep + g.knee_lift_arms * rise
    tg.pelvis[:, 0] = g.lean * envelope
    tg.pelvis[:, 2] = -g.pelvis_yaw * sep
    tg.spine[:, 2] = 1.4 * g.pelvis_yaw * sep
    tg.neck[:, 2] = -0.4 * g.pelvis_yaw * sep
    tg.arms[:, 0, 0] = -g.arm_swing * drive
    tg.arms[:, 1, 0] = g.arm_swing * drive
    tg.arms[:, :, 2] += (g.elbow - tg.arms[:, :, 2]) * envelope[:, None]
    end_pos, end_psi, _ = at(float(t[-1]))
    return tg, (float(end_pos[0]), float(end_pos[2]), end_psi)
