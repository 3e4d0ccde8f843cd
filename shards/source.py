"""Where shard samples come from: a dataset split as a list of examples with labels, lengths and motion.

The builder needs, for every example, cheap facts (key, labels, frame counts: to plan shards and size
them without reading motion) and, for the examples of its own shards, the motion features.
:class:`DatasetSource` adapts :class:`actiongpt.data.dataset.MotionDataset` (BABEL + AMASS; segments,
sequences or TEACH pairs); :class:`ListSource` holds ready-made examples (tests, benchmarks).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

PAIR_MODE = "pairs"


@dataclass
class SourceSample:
    """One example: unnormalised features (T, 135) and what describes it.

    ``lengths`` is ``[T]`` for a single action and ``[len_0, len_transition, len_1]`` for a pair;
    ``labels`` has one label per action.
    """

    key: str
    motion: np.ndarray
    labels: list[str]
    lengths: list[int]
    meta: dict[str, Any] = field(default_factory=dict)


class SampleSource(Protocol):
    split: str
    mode: str

    def __len__(self) -> int: ...
    def key(self, i: int) -> str: ...
    def labels(self, i: int) -> list[str]: ...
    def lengths(self, i: int) -> list[int]: ...
    def load(self, i: int) -> SourceSample: ...


def source_digest(source: SampleSource) -> str:
    """Digest of the examples' identity (keys, labels, lengths): the dataset hash in the manifest."""
    h = hashlib.sha256(f"{source.split}|{source.mode}".encode())
    for i in range(len(source)):
        h.update(
            json.dumps([source.key(i), source.labels(i), source.lengths(i)], ensure_ascii=False).encode()
        )
    return h.hexdigest()


class ListSource:
    """Examples held in memory."""

    def __init__(self, samples: Sequence[SourceSample], split: str, mode: str) -> None:
        self.samples = list(samples)
        self.split, self.mode = split, mode

    def __len__(self) -> int:
        return len(self.samples)

    def key(self, i: int) -> str:
        return self.samples[i].key

    def labels(self, i: int) -> list[str]:
        return list(self.samples[i].labels)

    def lengths(self, i: int) -> list[int]:
        return list(self.samples[i].lengths)

    def load(self, i: int) -> SourceSample:
        return self.samples[i]


class DatasetSource:
    """A :class:`MotionDataset` split; motion features computed with ``rotations_to_features``.

    Pairs: features are computed over the whole span (action 1, transition, action 2) and split at
    ``len_0`` by the loader, as TEACH does (``features_0 = features[:length_0]``,
    ``features_1_with_transition = features[length_0:]``).
    """

    def __init__(self, dataset: Any, canonicalize: str = "original") -> None:
        self.dataset = dataset
        self.split = dataset.split
        self.mode = PAIR_MODE if dataset.mode == "pairs" else dataset.mode
        self.canonicalize = canonicalize

    def __len__(self) -> int:
        return len(self.dataset)

    def _rec(self, i: int) -> Any:
        return self.dataset.records[i]

    def key(self, i: int) -> str:
        return self._rec(i).key

    def labels(self, i: int) -> list[str]:
        rec = self._rec(i)
        return [rec.label_0, rec.label_1] if self.mode == PAIR_MODE else [rec.label]

    def lengths(self, i: int) -> list[int]:
        rec = self._rec(i)
        if self.mode == PAIR_MODE:
            return [int(rec.length_0), int(rec.length_transition), int(rec.length_1)]
        return [int(rec.length)]

    def load(self, i: int) -> SourceSample:
        import torch

        from actiongpt.motion.features import rotations_to_features
        from actiongpt.motion.rotations import axis_angle_to_matrix

        item = self.dataset[i]
        rec = item.record
        rotmats = axis_angle_to_matrix(torch.from_numpy(np.asarray(item.poses, dtype=np.float32)))
        trans = torch.from_numpy(np.asarray(item.trans, dtype=np.float32))
        feats = rotations_to_features(rotmats, trans, self.canonicalize).numpy().astype(np.float32)
        lengths = self.lengths(i)
        if feats.shape[0] != sum(lengths):
            raise ValueError(
                f"{item.source}: record {rec.key} has {feats.shape[0]} frames, lengths say {lengths}"
            )
        meta = {
            "source": rec.feat_p,
            "seq_id": rec.seq_id,
            "fps": float(item.fps),
            "frames": [int(rec.start), int(rec.end)],
        }
        return SourceSample(key=rec.key, motion=feats, labels=self.labels(i), lengths=lengths, meta=meta)
