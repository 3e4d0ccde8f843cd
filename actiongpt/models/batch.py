"""The training and evaluation batch: what ``shards.collate.collate`` builds and every model consumes.

A batch is B samples. A sample is one action (TEMOS, MotionCLIP; ``seg``/``seq`` shards) or a pair of
actions (TEACH; ``pairs`` shards): action 0, then the transition plus action 1 as one motion. Per action,
every sample has

- ``motion`` (B, T, 135) float32: features normalised with the shards' mean/std, zero after ``lengths``;
- ``lengths`` (B,) int64: valid frames;
- ``text`` (B, L, D) float32: the text's token embeddings (the aggregate of the first k descriptions, or the
  raw label's), zero after ``text_mask``; ``text_mask`` (B, L) bool, True = a valid token;
- ``text_pooled`` (B, Dp) float32: the pooled text embedding;
- ``labels``: the B action labels.

``keys`` are the samples' ids (per-sample seeds and the evaluator's bookkeeping use them);
``transition_lengths`` (B,) int64 (pairs only) the frames of the transition at the start of action 1.

Code written against the flat dict of earlier versions can read a batch by those names: ``batch["motion"]``
for one action, ``batch["motion_0"]`` / ``batch["text_mask_1"]`` for pairs, ``batch["keys"]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from actiongpt.models.inputs import TextBatch

__all__ = ["ActionTensors", "MotionBatch"]

_FIELDS = ("motion", "lengths", "text", "text_mask", "text_pooled", "labels")


def _map(value: Any, fn: Any) -> Any:
    return fn(value) if isinstance(value, Tensor) else value


@dataclasses.dataclass
class ActionTensors:
    """One action of every sample in a batch (see the module doc for shapes)."""

    motion: Tensor
    lengths: Tensor
    text: Tensor
    text_mask: Tensor
    text_pooled: Tensor
    labels: list[str]

    def text_batch(self, pooled_only: bool = False) -> TextBatch:
        """The model's text input: the pooled embedding only (MotionCLIP), or tokens, mask and pooled."""
        if pooled_only:
            return TextBatch(None, None, self.text_pooled)
        return TextBatch(self.text, self.text_mask, self.text_pooled)

    def apply(self, fn: Any) -> ActionTensors:
        return ActionTensors(**{f: _map(getattr(self, f), fn) for f in _FIELDS})


@dataclasses.dataclass
class MotionBatch:
    """B samples of one action (``actions`` has one entry) or of action pairs (two entries)."""

    keys: list[str]
    actions: tuple[ActionTensors, ...]
    transition_lengths: Tensor | None = None

    def __post_init__(self) -> None:
        if len(self.actions) not in (1, 2):
            raise ValueError(f"a batch holds single actions or pairs, got {len(self.actions)} actions")
        if (len(self.actions) == 2) != (self.transition_lengths is not None):
            raise ValueError("transition_lengths: given for pairs and only for pairs")

    @property
    def is_pairs(self) -> bool:
        return len(self.actions) == 2

    @property
    def size(self) -> int:
        return len(self.keys)

    def sequence_lengths(self) -> Tensor:
        """(B, A) frames of each action (for pairs, action 1's include the transition)."""
        return torch.stack([a.lengths for a in self.actions], dim=1)

    def apply(self, fn: Any) -> MotionBatch:
        """A batch with ``fn`` applied to every tensor (other values shared)."""
        return MotionBatch(
            list(self.keys),
            tuple(a.apply(fn) for a in self.actions),
            _map(self.transition_lengths, fn),
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MotionBatch:
        return self.apply(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> MotionBatch:
        """Called by the DataLoader's ``pin_memory=True``."""
        return self.apply(lambda t: t.pin_memory())

    # -- the flat names of the earlier dict schema (read-only) -------------------------------------------
    def _names(self) -> list[str]:
        if not self.is_pairs:
            return ["keys", *_FIELDS]
        return ["keys", *(f"{f}_{i}" for i in (0, 1) for f in _FIELDS), "transition_lengths"]

    def __getitem__(self, name: str) -> Any:
        if name == "keys":
            return self.keys
        if name == "transition_lengths" and self.is_pairs:
            return self.transition_lengths
        field, _, index = name.rpartition("_") if self.is_pairs else (name, "", "0")
        if field in _FIELDS and index in ("0", "1")[: len(self.actions)]:
            return getattr(self.actions[int(index)], field)
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def items(self) -> Iterator[tuple[str, Any]]:
        return ((name, self[name]) for name in self._names())
