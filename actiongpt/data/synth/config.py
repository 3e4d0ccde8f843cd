"""Configuration of the embedded (generated) dataset. Defaults give the shipped default dataset."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SplitSizes:
    """Sequences per split (train/val/test 60/20/20 as BABEL; zeroshot uses only held-out phrasings)."""

    train: int = 300
    val: int = 100
    test: int = 100
    zeroshot: int = 70

    def __post_init__(self) -> None:
        if min(self.train, self.val, self.test) < 1 or self.zeroshot < 0:
            raise ValueError("need at least one train, val and test sequence and zeroshot >= 0")

    def as_dict(self) -> dict[str, int]:
        return {"train": self.train, "val": self.val, "test": self.test, "zeroshot": self.zeroshot}


@dataclass
class SynthConfig:
    """How much motion to generate and how. Every output byte is a function of these values."""

    out: str = "data/embedded"
    seed: int = 0
    sequences: SplitSizes = field(default_factory=SplitSizes)
    action_count_weights: tuple[float, ...] = (0.35, 0.25, 0.2, 0.2)  # P(1..4 actions per sequence)
    frame_rates: tuple[float, ...] = (60.0, 100.0, 120.0)  # capture rates (all above 30: resampled)
    frame_rate_weights: tuple[float, ...] = (0.65, 0.1, 0.25)
    subjects: int = 12
    tpose_probability: float = 0.15  # a sequence starts with a labelled t-pose, as many mocap takes do
    null_frame_ann_probability: float = 0.5  # single-action sequences with only a sequence label
    transition_seconds: tuple[float, float] = (0.55, 1.2)  # >= 16 frames at 30 fps: TEACH keeps them
    batch_frames: int = 30000  # frames solved together (memory vs speed; does not change the output)

    def __post_init__(self) -> None:
        if (
            not self.action_count_weights
            or any(w < 0 for w in self.action_count_weights)
            or sum(self.action_count_weights) <= 0
        ):
            raise ValueError("action_count_weights must be non-negative with a positive sum")
        if len(self.frame_rates) != len(self.frame_rate_weights) or not self.frame_rates:
            raise ValueError("frame_rates and frame_rate_weights must have the same non-zero length")
        if (
            any(r <= 30.0 for r in self.frame_rates)
            or any(w < 0 for w in self.frame_rate_weights)
            or sum(self.frame_rate_weights) <= 0
        ):
            raise ValueError(
                "capture frame rates must be above 30 fps (the readers resample to 30) "
                "with non-negative weights"
            )
        if self.subjects < 1:
            raise ValueError("subjects must be >= 1")
        for name in ("tpose_probability", "null_frame_ann_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        lo, hi = self.transition_seconds
        if not 0.1 <= lo <= hi <= 3.0:
            raise ValueError("transition_seconds must satisfy 0.1 <= low <= high <= 3")
        if self.batch_frames < 1000:
            raise ValueError("batch_frames must be >= 1000")
