"""Sequences of 1-4 actions joined by transitions, composed in one world frame and solved together.

Every action starts and ends in the neutral stance of its own root frame, so the next action is placed
at the previous one's end frame and the feet are identical at the join; a transition then blends the
rest of the body (pelvis, trunk, head, arms) from the last pose of one action to the first pose of the
next while both feet stay planted, as a person settles between two movements. Transitions are labelled
as BABEL does (explicit ``transition`` segments between actions).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .body import BodyGeometry
from .catalogue import TPOSE, ActionSpec
from .common import Ctx
from .curves import minjerk
from .solver import SolvedMotion, solve
from .targets import SOFT_FIELDS, PoseTargets, concat


@dataclass
class Part:
    """One labelled stretch of a sequence: frames [start, end) at the capture rate."""

    kind: str  # "action" | "transition" | "tpose"
    action: str  # catalogue name, "transition" or "t_pose"
    start: int
    end: int
    params: dict = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass
class BuiltSequence:
    parts: list[Part]
    targets: PoseTargets
    solved: SolvedMotion
    fps: float

    @property
    def num_frames(self) -> int:
        return self.targets.num_frames


def transition(a: PoseTargets, b: PoseTargets, n: int) -> PoseTargets:
    """``n`` frames from the last frame of ``a`` to the first of ``b`` (both 1-frame targets, same frame).

    The feet must already coincide (both actions share the neutral stance at the join)."""
    gap = float(np.abs(a.ankle[-1] - b.ankle[0]).max())
    turn = abs(float(a.heading[-1] - b.heading[0]))
    if gap > 1e-4 or turn > 1e-4:  # 0.1 mm: rounding only
        raise RuntimeError(
            f"actions do not join: feet differ by {gap:.2e} m, heading by {turn:.2e} rad "
            "(an action must end in the neutral stance of its end frame)"
        )
    out = a.frames(np.full(n, a.num_frames - 1))
    w = minjerk((np.arange(n) + 1.0) / (n + 1.0))
    for name in SOFT_FIELDS:
        va, vb = getattr(a, name)[-1], getattr(b, name)[0]
        getattr(out, name)[:] = va + w.reshape((n,) + (1,) * va.ndim) * (vb - va)
    out.contact[:] = True
    out.reach[:] = 1.0
    out.airborne[:] = False
    return out


def compose_targets(
    geo: BodyGeometry,
    fps: float,
    specs: list[ActionSpec],
    rng: np.random.Generator,
    tpose: bool = False,
    transition_s: tuple[float, float] = (0.55, 1.2),
) -> tuple[list[Part], PoseTargets]:
    """Targets of ``specs`` one after another (optionally after a t-pose), joined by transitions, in a
    random world placement; and the labelled parts (frame ranges at ``fps``)."""
    frame = np.array([rng.uniform(-2.0, 2.0), rng.uniform(-2.0, 2.0), rng.uniform(-np.pi, np.pi)])
    items = ([TPOSE] if tpose else []) + list(specs)
    chunks: list[PoseTargets] = []
    parts: list[Part] = []
    cursor = 0
    for spec in items:
        motion = spec.model(Ctx(geo, fps, np.random.default_rng(rng.integers(2**63))))
        tg = motion.targets.transformed(frame[0], frame[1], frame[2])
        if chunks:
            n_tr = max(2, round(rng.uniform(*transition_s) * fps))
            tr = transition(chunks[-1], tg, n_tr)
            chunks.append(tr)
            parts.append(Part("transition", "transition", cursor, cursor + n_tr))
            cursor += n_tr
        chunks.append(tg)
        kind = "tpose" if spec is TPOSE else "action"
        parts.append(Part(kind, spec.name, cursor, cursor + tg.num_frames, motion.params))
        cursor += tg.num_frames
        ex, ez, epsi = motion.end
        c, s = np.cos(frame[2]), np.sin(frame[2])
        frame = np.array([frame[0] + c * ex + s * ez, frame[1] - s * ex + c * ez, frame[2] + epsi])
    return parts, concat(chunks)


def compose(
    geo: BodyGeometry,
    fps: float,
    specs: list[ActionSpec],
    rng: np.random.Generator,
    tpose: bool = False,
    transition_s: tuple[float, float] = (0.55, 1.2),
) -> BuiltSequence:
    """`compose_targets` and solve the sequence."""
    parts, targets = compose_targets(geo, fps, specs, rng, tpose, transition_s)
    return BuiltSequence(parts, targets, solve(targets, geo, fps), fps)


def choose_actions(rng: np.random.Generator, count: int, actions: tuple[ActionSpec, ...]) -> list[ActionSpec]:
    """``count`` actions where each may follow the previous one (body states match; no immediate repeat).

    A sequence may start seated only with an action that starts seated (sitting on an unseen chair)."""
    out: list[ActionSpec] = []
    for _ in range(count):
        prev = out[-1] if out else None
        pool = [
            a for a in actions if prev is None or (a.start_state == prev.end_state and a.name != prev.name)
        ]
        w = np.array([a.weight for a in pool], dtype=np.float64)
        out.append(pool[int(rng.choice(len(pool), p=w / w.sum()))])
    return out
