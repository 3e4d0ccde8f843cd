"""From decoded samples to the batch schema of CONTRACTS.md (text chosen and aggregated at load time).

Single actions: ``keys``, ``motion`` (B, T, 135) normalised and zero-padded, ``lengths``, ``text`` (B, L, D),
``text_mask`` (B, L) True = valid, ``text_pooled`` (B, Dp), and ``labels``. TEACH pairs: the same keys with
suffix ``_0`` (first action) and ``_1`` (transition + second action), plus ``transition_lengths``;
``keys`` has no suffix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

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
    """One sample ready for batching: normalised motion, per-action text, lengths."""

    key: str
    motion: np.ndarray  # (T, 135) float32, normalised
    lengths: list[int]
    labels: list[str]
    texts: list[tuple[np.ndarray, np.ndarray]]  # per action: (tokens, pooled)


def normalise(motion: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The original's ``(x - mean) / (std + 1e-12)`` (same as ``actiongpt.motion.features.normalize``)."""
    return (motion.astype(np.float32) - mean) / (std + np.float32(NORM_EPS))


def _pad_motion(arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([a.shape[0] for a in arrays], dtype=torch.int64)
    out = torch.zeros(
        len(arrays), int(lengths.max()) if len(arrays) else 0, arrays[0].shape[1] if arrays else 0
    )
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = torch.from_numpy(a)
    return out, lengths


def _pad_text(texts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    length = max(t.shape[0] for t, _ in texts)
    dim = texts[0][0].shape[1]
    tok = torch.zeros(len(texts), length, dim)
    mask = torch.zeros(len(texts), length, dtype=torch.bool)
    for i, (t, _) in enumerate(texts):
        tok[i, : t.shape[0]] = torch.from_numpy(np.ascontiguousarray(t))
        mask[i, : t.shape[0]] = True
    pooled = torch.from_numpy(np.stack([p for _, p in texts]).astype(np.float32))
    return tok, mask, pooled


def collate(samples: list[Prepared], pairs: bool) -> dict[str, Any]:
    """Batch prepared samples into the batch schema."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    batch: dict[str, Any] = {"keys": [s.key for s in samples]}
    if not pairs:
        batch["motion"], batch["lengths"] = _pad_motion([s.motion for s in samples])
        batch["text"], batch["text_mask"], batch["text_pooled"] = _pad_text([s.texts[0] for s in samples])
        batch["labels"] = [s.labels[0] for s in samples]
        return batch
    first = [s.motion[: s.lengths[0]] for s in samples]
    second = [s.motion[s.lengths[0] :] for s in samples]  # transition + action 2, as TEACH
    batch["motion_0"], batch["lengths_0"] = _pad_motion(first)
    batch["motion_1"], batch["lengths_1"] = _pad_motion(second)
    batch["transition_lengths"] = torch.tensor([s.lengths[1] for s in samples], dtype=torch.int64)
    for j in (0, 1):
        tok, mask, pooled = _pad_text([s.texts[j] for s in samples])
        batch[f"text_{j}"], batch[f"text_mask_{j}"], batch[f"text_pooled_{j}"] = tok, mask, pooled
        batch[f"labels_{j}"] = [s.labels[j] for s in samples]
    return batch
