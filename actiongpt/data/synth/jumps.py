"""Jumps and hops: ground phases joined by ballistic flights.

In a ground phase the supporting feet are planted; the pelvis sinks into a crouch and pushes up (or
absorbs a landing), and the heels rise exactly as much as the legs need to reach the floor, so the body
takes off from the balls of the feet and lands toes first. In flight the pelvis follows a parabola
under gravity and the feet travel with the hips from the take-off pose to the landing pose (with an
optional tuck). A foot that does not support (hopping) is held bent behind the body.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .body import BodyGeometry
from .curves import bump, hermite, minjerk
from .targets import PoseTargets, planted_foot, rot, sole_points, standing

GRAVITY = 9.81
MAX_HEEL_RISE = 0.95  # rad; feet leave the floor when more would be needed
TAKEOFF_PITCH = 0.75
LANDING_PITCH = 0.45


@dataclass
class Ground:
    """A ground phase of ``duration`` seconds: supporting ``feet`` planted at ``prints`` (side -> (xz, yaw)).

    ``t0``/``t1`` are filled in by `jump_motion` from the durations and the ballistic flight times."""

    duration: float
    prints: dict[int, tuple[np.ndarray, float]]
    pelvis_xz: np.ndarray  # where the pelvis settles (or passes) during the phase
    crouch: float  # depth of the crouch below the standing height (m)
    pitch: float = 0.0  # pelvis forward bend at the bottom of the crouch
    apex: float = 0.0  # height of the following flight above take-off (m); 0 = no flight
    feet: tuple[int, ...] = (0, 1)
    t0: float = 0.0
    t1: float = 0.0


@dataclass
class JumpPlan:
    phases: list[Ground]
    tuck: float = 0.15  # fraction the legs shorten at the top of a flight
    free_foot: np.ndarray | None = None  # (3,) ankle offset from its hip of a held-up foot (hops)
    extras: dict = field(default_factory=dict)


def _hip(geo: BodyGeometry, side: int, pelvis: np.ndarray, heading: float, pitch: np.ndarray) -> np.ndarray:
    r = rot(np.full(pelvis.shape[:-1], heading), "y") @ rot(pitch, "x")
    return pelvis + r @ geo.hip_offset[side]


def heel_rise(
    geo: BodyGeometry, side: int, xz: np.ndarray, yaw: float, hip: np.ndarray, reach: float
) -> np.ndarray:
    """Smallest foot pitch (heel up, pivoting on the ball) that lets a leg from ``hip`` (..., 3) reach.

    With the ball fixed at B and b the ankle-to-ball vector of the flat foot, the ankle is
    ``B - Ry(yaw) Rx(a) b``, so the squared hip-ankle distance is ``|B - H|^2 + |b|^2 - 2 q.Rx(a) b`` with
    ``q = Ry(yaw)^T (B - H)``: cheap to evaluate, and bisected on a in [0, MAX_HEEL_RISE].
    """
    xz = np.asarray(xz, dtype=np.float64)
    ball = np.array([xz[0], geo.ankle_height, xz[1]]) + rot(yaw, "y") @ geo.ball[side]
    diff = ball - hip
    q = diff @ rot(yaw, "y")  # = Ry^T (B - H) per row
    b = geo.ball[side]
    const = (diff * diff).sum(-1) + b @ b
    lin = q[..., 0] * b[0]
    cos_k = q[..., 1] * b[1] + q[..., 2] * b[2]
    sin_k = q[..., 2] * b[1] - q[..., 1] * b[2]

    def dist2(a: np.ndarray) -> np.ndarray:
        return const - 2.0 * (lin + cos_k * np.cos(a) + sin_k * np.sin(a))

    lo = np.zeros(hip.shape[:-1])
    hi = np.full(hip.shape[:-1], MAX_HEEL_RISE)
    ok0 = dist2(lo) <= reach**2
    for _ in range(22):  # 0.95 rad / 2^22: sub-micro-radian
        mid = 0.5 * (lo + hi)
        ok = dist2(mid) <= reach**2
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    return np.where(ok0, 0.0, hi)


def _extended_height(
    geo: BodyGeometry,
    g: Ground,
    pelvis_xz: np.ndarray,
    heading: float,
    pitch: float,
    foot_pitch: float,
    reach: float,
) -> float:
    """Pelvis height at which the supporting legs are straight with the heels raised by ``foot_pitch``."""
    best = np.inf
    for side in g.feet:
        xz, yaw = g.prints[side]
        ankle, _ = planted_foot(geo, side, xz, yaw, foot_pitch)
        hip0 = _hip(geo, side, np.array([pelvis_xz[0], 0.0, pelvis_xz[1]]), heading, np.asarray(pitch))
        dxz = np.hypot(hip0[0] - ankle[0], hip0[2] - ankle[2])
        best = min(best, ankle[1] + np.sqrt(max(reach**2 - dxz**2, 0.0)) - hip0[1])
    return float(best)


def jump_motion(
    geo: BodyGeometry, fps: float, plan: JumpPlan, heading: float = 0.0, stand_drop: float = 0.012
) -> tuple[np.ndarray, PoseTargets]:
    """Times and targets for ``plan``; sets every phase's ``t0``/``t1``. The last phase should end in
    the neutral stance."""
    reach = 0.997 * 0.998 * geo.leg
    stand = geo.floor - stand_drop
    phases = plan.phases

    # Take-off and landing states of every flight.
    takeoffs = []
    for k, g in enumerate(phases[:-1]):
        nxt = phases[k + 1]
        xz_to = g.pelvis_xz + 0.35 * (nxt.pelvis_xz - g.pelvis_xz) * (1 if g.apex else 0)
        y_to = _extended_height(geo, g, xz_to, heading, 0.15 * g.pitch, TAKEOFF_PITCH, reach) - 0.004
        xz_ld = nxt.pelvis_xz - 0.25 * (nxt.pelvis_xz - g.pelvis_xz)
        y_ld = _extended_height(geo, nxt, xz_ld, heading, 0.15 * nxt.pitch, LANDING_PITCH, reach) - 0.004
        v0 = np.sqrt(2 * GRAVITY * g.apex)
        t_up = v0 / GRAVITY
        t_down = np.sqrt(2 * max(y_to + g.apex - y_ld, 1e-4) / GRAVITY)
        takeoffs.append(
            {
                "xz_to": xz_to,
                "y_to": y_to,
                "xz_ld": xz_ld,
                "y_ld": y_ld,
                "v0": v0,
                "v_ld": GRAVITY * t_down,
                "dur": t_up + t_down,
            }
        )
    # Timeline: ground phases separated by the exact flight times.
    clock = 0.0
    for k, g in enumerate(phases):
        g.t0, g.t1 = clock, clock + g.duration
        clock = g.t1 + (takeoffs[k]["dur"] if k < len(takeoffs) else 0.0)
    n = max(2, round(phases[-1].t1 * fps))
    t = np.arange(n) / fps
    tg = standing(geo, n)
    y = np.full(n, stand)
    px = np.zeros((n, 2))
    ppitch = np.zeros(n)
    in_flight = np.zeros(n, dtype=bool)
    flight_of = np.full(n, -1)
    # Ground phases run from the previous landing to the next take-off.
    for k, g in enumerate(phases):
        arrive = takeoffs[k - 1] if k > 0 else None
        leave = takeoffs[k] if k < len(phases) - 1 else None
        t0, t1 = g.t0, g.t1
        sel = (t >= t0) & (t <= t1) if k < len(phases) - 1 else t >= t0
        ts = t[sel]
        y_low = stand - g.crouch
        t_low = t0 + (0.45 if arrive else 0.55) * (t1 - t0) if leave else t0 + 0.35 * (t1 - t0)
        y_start = arrive["y_ld"] if arrive else stand
        v_start = -arrive["v_ld"] if arrive else 0.0
        first = hermite(ts, t0, t_low, y_start, y_low, v_start, 0.0)
        if leave:
            second = hermite(ts, t_low, t1, y_low, leave["y_to"], 0.0, leave["v0"])
        else:
            second = hermite(ts, t_low, t1 if t1 > t_low else t_low + 1e-3, y_low, stand, 0.0, 0.0)
        y[sel] = np.where(ts < t_low, first, second)
        xz_a = arrive["xz_ld"] if arrive else g.pelvis_xz
        xz_b = leave["xz_to"] if leave else g.pelvis_xz
        vx_a = (arrive["xz_ld"] - arrive["xz_to"]) / arrive["dur"] if arrive else np.zeros(2)
        vx_b = (leave["xz_ld"] - leave["xz_to"]) / leave["dur"] if leave else np.zeros(2)
        end = t1 if leave else max(t1, t0 + 1e-3)
        for c in range(2):
            px[sel, c] = hermite(ts, t0, end, xz_a[c], xz_b[c], vx_a[c], vx_b[c])
        ppitch[sel] = g.pitch * np.sin(np.pi * np.clip((ts - t0) / max(end - t0, 1e-3), 0, 1)) ** 2
        if leave:
            f0 = t1
            fsel = (t > f0) & (t < phases[k + 1].t0)
            tf = t[fsel] - f0
            y[fsel] = leave["y_to"] + leave["v0"] * tf - 0.5 * GRAVITY * tf**2
            u = np.clip(tf / leave["dur"], 0, 1)[:, None]
            px[fsel] = leave["xz_to"] + u * (leave["xz_ld"] - leave["xz_to"])
            in_flight[fsel] = True
            flight_of[fsel] = k
    tg.root[:, 0], tg.root[:, 1], tg.root[:, 2] = px[:, 0], y, px[:, 1]
    tg.heading[:] = heading
    tg.pelvis[:, 0] = ppitch
    tg.airborne = in_flight.copy()

    # Feet.
    pelvis = tg.root
    for side in (0, 1):
        hips = _hip(geo, side, pelvis, heading, ppitch)
        for k, g in enumerate(phases):
            sel = (t >= g.t0) & (t <= g.t1) if k < len(phases) - 1 else t >= g.t0
            if side not in g.feet:
                continue
            xz, yaw = g.prints[side]
            a = heel_rise(geo, side, xz, yaw, hips[sel], reach)
            ankle, toe = planted_foot(
                geo, side, np.broadcast_to(xz, (int(sel.sum()), 2)), np.full(int(sel.sum()), yaw), a
            )
            tg.ankle[sel, side], tg.toe[sel, side] = ankle, toe
            tg.foot_yaw[sel, side], tg.foot_pitch[sel, side] = yaw, a
            tg.contact[sel, side], tg.reach[sel, side] = True, 1.0
        # Flights: the foot moves with the hip from its take-off to its landing offset.
        for k in range(len(phases) - 1):
            g, nxt = phases[k], phases[k + 1]
            fsel = flight_of == k
            if side not in g.feet or side not in nxt.feet or not fsel.any():
                continue
            to_idx = np.flatnonzero((t >= g.t0) & (t <= g.t1))[-1]
            ld_idx = np.flatnonzero(t >= nxt.t0)[0]
            xz1, yaw1 = nxt.prints[side]
            a_ld = heel_rise(geo, side, xz1, yaw1, hips[ld_idx : ld_idx + 1], reach)[0]
            ankle_ld, _ = planted_foot(geo, side, xz1, yaw1, a_ld)
            v_to = tg.ankle[to_idx, side] - hips[to_idx]
            v_ld = ankle_ld - hips[ld_idx]
            u = (t[fsel] - t[to_idx]) / max(t[ld_idx] - t[to_idx], 1e-6)
            w = minjerk(u)[:, None]
            vec = (1 - w) * v_to + w * v_ld
            vec = vec * (1.0 - plan.tuck * np.sin(np.pi * u) ** 2)[:, None]
            tg.ankle[fsel, side] = hips[fsel] + vec
            a_to = tg.foot_pitch[to_idx, side]
            pitch = a_to + (a_ld - a_to) * minjerk(u)
            tg.foot_pitch[fsel, side] = pitch
            tg.foot_yaw[fsel, side] = g.prints[side][1] + (yaw1 - g.prints[side][1]) * minjerk(u)
            toe = -pitch * (1 - bump(u, 0.0, 1.0) ** 0.5)
            tg.toe[fsel, side] = toe
            # keep the sole off the floor until the landing frame
            yaw = tg.foot_yaw[fsel, side]
            low = sole_points(geo, side, tg.ankle[fsel, side], yaw, pitch, toe)[..., 1].min(-1)
            tg.ankle[fsel, side, 1] += np.maximum(0.01 * np.sin(np.pi * u) ** 0.5 - low, 0.0)
            tg.contact[fsel, side], tg.reach[fsel, side] = False, 0.0
        # A foot that supports in no phase is held up (hopping): bent knee, foot behind the body.
        if plan.free_foot is not None and all(side not in g.feet for g in phases):
            offset = rot(np.full(n, heading), "y") @ plan.free_foot
            tg.ankle[:, side] = hips + offset
            tg.foot_yaw[:, side] = heading
            tg.foot_pitch[:, side] = 0.5
            tg.toe[:, side] = 0.0
            tg.contact[:, side], tg.reach[:, side] = False, 0.0
    tg.airborne = ~tg.contact.any(axis=1)
    return t, tg
