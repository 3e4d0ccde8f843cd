"""From decoded samples to a ``MotionBatch`` (``actiongpt/models/batch.py`` documents every field), with
the text chosen and aggregated at load time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from actiongpt.models.batch import ActionTensors, MotionBatch
from actiongpt.motion.features import NORM_EPS
from actiongpt.text.aggregate import AGGREGATORS, aggregate_pooled, aggregate_tokens
from shards.format import ShardError, TextBlock

TEXT_SOURCES = ("descriptions", "label")


@dataclass(frozen=True)
class TextChoice:
    """Which text the model sees: the aggregate of the first ``k`` descriptions, or the raw label."""

    source: str = "descriptions"
    k: int | None = None
    aggregator: str | None = None

    def resolve(self, text: dict[str, Any]) -> TextChoice:
        """Check against what the shards hold (manifest ``text``) and fill defaults."""
        if self.source not in TEXT_SOURCES:
            raise ShardError(f"text_source must be one of {TEXT_SOURCES}, got {self.source!r}")
        if self.source == "label":
            return TextChoice("label", None, None)
        stored_k = int(text["k"])
        if text["store"] == "aggregate":
            if self.k not in (None, stored_k):
                raise ShardError(
                    f"the shards store only the aggregate of k = {stored_k} descriptions; k = {self.k} "
                    "needs shards built with text_store=individual"
                )
            if self.aggregator not in (None, text["aggregator"]):
                raise ShardError(
                    f"the shards store the {text['aggregator']!r} aggregate; aggregator "
                    f"{self.aggregator!r} needs shards built with text_store=individual"
                )
            return TextChoice("descriptions", stored_k, text["aggregator"])
        k = stored_k if self.k is None else int(self.k)
        if not 1 <= k <= stored_k:
            raise ShardError(f"k = {k} requested, the shards hold {stored_k} descriptions per label")
        agg = self.aggregator or "original"
        if agg not in AGGREGATORS:
            raise ShardError(f"aggregator must be one of {AGGREGATORS}, got {agg!r}")
        return TextChoice("descriptions", k, agg)


def select_text(block: TextBlock, choice: TextChoice) -> tuple[np.ndarray, np.ndarray]:
    """(tokens (L, D) float32, pooled (Dp,) float32) of one action under a resolved choice."""
    if choice.source == "label":
        return block.label_tokens.astype(np.float32), block.label_pooled.astype(np.float32)
    if block.desc_tokens is None:  # stored aggregate
        return block.agg_tokens.astype(np.float32), block.desc_pooled[0].astype(np.float32)  # type: ignore[union-attr]
    k = int(choice.k)  # type: ignore[arg-type]
    return (
        aggregate_tokens(block.desc_tokens[:k], choice.aggregator or "original"),
        aggregate_pooled(block.desc_pooled[:k]),
    )


@dataclass
class Prepared:
    """One sample ready for batching: motion, per-action text, lengths."""

    key: str
    motion: np.ndarray  # (T, 135): float32 normalised, or as stored when ``collate`` normalises (mean/std)
    lengths: list[int]
    labels: list[str]
    texts: list[tuple[np.ndarray, np.ndarray]]  # per action: (tokens, pooled)


def normalise(motion: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The original's ``(x - mean) / (std + 1e-12)`` (same as ``actiongpt.motion.features.normalize``)."""
    if motion.dtype in (np.float16, np.float32) and mean.dtype == std.dtype == np.float32:
        # the same float32 operations in torch: numpy's float16 -> float32 conversion alone is ~5x slower
        x = torch.from_numpy(np.ascontiguousarray(motion)).to(torch.float32) - torch.from_numpy(mean)
        return x.div_(torch.from_numpy(std) + NORM_EPS).numpy()
    return (motion.astype(np.float32) - mean) / (std + np.float32(NORM_EPS))


def _pad_rows(rows: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> torch.Tensor:
    """(B, max(lengths), D) float32, zero after each length: sample i holds ``rows[starts[i]:][:lengths[i]]``.
    One gather and one scatter for the whole batch instead of a copy per sample."""
    bs, dim = len(lengths), rows.shape[1]
    width = int(lengths.max()) if bs else 0
    out = np.zeros((bs * width, dim), dtype=np.float32)
    ends = np.cumsum(lengths)
    within = np.arange(int(ends[-1]) if bs else 0) - np.repeat(ends - lengths, lengths)
    out[np.repeat(np.arange(bs) * width, lengths) + within] = rows[np.repeat(starts, lengths) + within]
    return torch.from_numpy(out).view(bs, width, dim)


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _pad_text(texts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lengths = np.array([t.shape[0] for t, _ in texts], dtype=np.int64)
    rows = _concat([t for t, _ in texts]).astype(np.float32, copy=False)
    tok = _pad_rows(rows, np.cumsum(lengths) - lengths, lengths)
    mask = torch.arange(tok.shape[1])[None, :] < torch.from_numpy(lengths)[:, None]
    pooled = torch.from_numpy(np.stack([p for _, p in texts]).astype(np.float32))
    return tok, mask, pooled


def collate(
    samples: list[Prepared], pairs: bool, mean: np.ndarray | None = None, std: np.ndarray | None = None
) -> MotionBatch:
    """Batch prepared samples. With ``mean``/``std`` the samples' motions are as stored and are normalised
    here, all at once (the same numbers as ``normalise`` per sample)."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    keys = [s.key for s in samples]
    rows = _concat([s.motion for s in samples])
    rows = normalise(rows, mean, std) if mean is not None and std is not None else rows.astype(np.float32)
    frames = np.array([s.motion.shape[0] for s in samples], dtype=np.int64)
    starts = np.cumsum(frames) - frames

    def action(j: int, motion: torch.Tensor, lengths: np.ndarray) -> ActionTensors:
        tok, mask, pooled = _pad_text([s.texts[j] for s in samples])
        labels = [s.labels[j] for s in samples]
        return ActionTensors(motion, torch.from_numpy(lengths), tok, mask, pooled, labels)

    if not pairs:
        return MotionBatch(keys, (action(0, _pad_rows(rows, starts, frames), frames),))
    # action 0, then transition + action 1 (as TEACH)
    first = np.array([s.lengths[0] for s in samples], dtype=np.int64)
    second = frames - first
    return MotionBatch(
        keys,
        (
            action(0, _pad_rows(rows, starts, first), first),
            action(1, _pad_rows(rows, starts + first, second), second),
        ),
        transition_lengths=torch.tensor([s.lengths[1] for s in samples], dtype=torch.int64),
    )
