"""Action-label rules shared by the BABEL extraction modes (TEACH's `teach/data/babel.py`).

TEACH decides "is this a transition / a calibration pose" on the processed label after its own
spelling fixer. We do not ship that fixer's table (it belongs to TEACH's licensed code base); the
structural decisions only need whitespace/case normalisation plus the known spellings of the t-/a-pose
labels, which is what `canonical_label` provides. The label *text* handed to the text encoder is left
exactly as BABEL wrote it (`raw_label` or `proc_label`).
"""

from __future__ import annotations

from typing import Literal

LabelField = Literal["raw_label", "proc_label"]
LABEL_FIELDS: tuple[str, ...] = ("raw_label", "proc_label")

TRANSITION = "transition"
#: calibration poses TEACH removes before building pairs (EXCLUDED_ACTIONS_WO_TR)
EXCLUDED_POSES = frozenset({"t-pose", "a-pose", "a pose", "t pose", "tpose", "apose"})
#: actions TEACH drops from `seg`/`seq` samples (EXCLUDED_ACTIONS)
EXCLUDED_ACTIONS = EXCLUDED_POSES | {TRANSITION}
#: one-word misspellings of the poses found in BABEL labels, mapped as TEACH's fixer maps them
_POSE_SPELLINGS = {
    "tposes": "t-pose",
    "tpost": "t-pose",
    "tposition": "t-pose",
    "apost": "a-pose",
    "tpose": "t-pose",
    "apose": "a-pose",
}


def canonical_label(label: str | None) -> str | None:
    """Lower-case, single-spaced form used for the transition/pose decisions (None stays None)."""
    if label is None:
        return None
    words = label.strip().lower().split()
    return " ".join(_POSE_SPELLINGS.get(w, w) for w in words)


def is_transition(label: str | None) -> bool:
    return canonical_label(label) == TRANSITION


def is_excluded_pose(label: str | None) -> bool:
    """t-pose / a-pose in any of BABEL's spellings (removed before pair extraction)."""
    return canonical_label(label) in EXCLUDED_POSES


def is_excluded_action(label: str | None) -> bool:
    """Excluded from single-action samples: calibration poses and transitions."""
    return canonical_label(label) in EXCLUDED_ACTIONS


def check_label_field(label_field: str) -> str:
    if label_field not in LABEL_FIELDS:
        raise ValueError(f"label_field must be one of {LABEL_FIELDS}, got {label_field!r}")
    return label_field
