"""The embedded dataset: procedurally animated motions of the bundled body in the real AMASS/BABEL formats.

- `catalogue`: the actions (motion model, BABEL categories, phrasings, held-out zero-shot phrasings);
- `targets`, `solver`: per-frame pose targets and the IK that turns them into SMPL-H rotations (AMASS axes);
- `gait`, `jumps`, `locomotion`, `postures`, `gestures`: the motion models;
- `sequence`: 1-4 actions joined by transitions; `physics`: plausibility measures and limits;
- `writers`, `generate`: deterministic npz/json writers and the dataset generator (`generate_dataset`).
"""

from .catalogue import ACTIONS, BY_NAME, ActionSpec, check_catalogue
from .config import SplitSizes, SynthConfig
from .generate import GENERATOR_VERSION, generate_dataset

__all__ = [
    "ACTIONS",
    "BY_NAME",
    "GENERATOR_VERSION",
    "ActionSpec",
    "SplitSizes",
    "SynthConfig",
    "check_catalogue",
    "generate_dataset",
]
