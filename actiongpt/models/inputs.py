"""Model inputs: the text embedding bundle, length masks and batch checks with clear errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass
class TextBatch:
    """Precomputed text embeddings of B texts.

    ``tokens`` (B, L, D) per-token states, ``mask`` (B, L) bool (True = valid token), ``pooled`` (B, D).
    For Action-GPT they are already aggregated over the k descriptions; for the baseline they are the raw
    label's. ``pooled`` may be None for models that use only tokens (TEMOS, TEACH), ``tokens``/``mask``
    None for MotionCLIP.
    """

    tokens: Tensor | None
    mask: Tensor | None
    pooled: Tensor | None = None

    def __post_init__(self) -> None:
        if (self.tokens is None) != (self.mask is None):
            raise ValueError("TextBatch: tokens and mask must be given together")
        if self.tokens is not None:
            if self.tokens.dim() != 3:
                raise ValueError(f"TextBatch: tokens must be (B, L, D), got {tuple(self.tokens.shape)}")
            if self.mask.shape != self.tokens.shape[:2]:
                raise ValueError(
                    f"TextBatch: mask {tuple(self.mask.shape)} does not match tokens "
                    f"{tuple(self.tokens.shape)}"
                )
            if self.mask.dtype != torch.bool:
                raise ValueError(f"TextBatch: mask must be bool (True = valid token), got {self.mask.dtype}")
        if self.pooled is not None and self.pooled.dim() != 2:
            raise ValueError(f"TextBatch: pooled must be (B, D), got {tuple(self.pooled.shape)}")
        if self.tokens is None and self.pooled is None:
            raise ValueError("TextBatch: needs tokens+mask or pooled")

    def __len__(self) -> int:
        ref = self.tokens if self.tokens is not None else self.pooled
        return int(ref.shape[0])

    @classmethod
    def from_output(cls, out: Any) -> TextBatch:
        """Accept a TextBatch, a (tokens, mask, pooled) tuple or a mapping with those keys."""
        if isinstance(out, TextBatch):
            return out
        if isinstance(out, Mapping):
            return cls(out.get("tokens"), out.get("mask"), out.get("pooled"))
        if isinstance(out, (tuple, list)) and len(out) == 3:
            return cls(*out)
        raise TypeError(f"expected TextBatch, (tokens, mask, pooled) or a mapping, got {type(out).__name__}")

    def select(self, index: Tensor | list[int] | slice) -> TextBatch:
        def pick(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[index]

        return TextBatch(pick(self.tokens), pick(self.mask), pick(self.pooled))

    def repeat_interleave(self, n: int) -> TextBatch:
        def rep(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.repeat_interleave(n, dim=0)

        return TextBatch(rep(self.tokens), rep(self.mask), rep(self.pooled))

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TextBatch:
        def mv(t: Tensor | None, float_: bool) -> Tensor | None:
            if t is None:
                return None
            return t.to(device=device, dtype=dtype if float_ and dtype is not None else t.dtype)

        return TextBatch(mv(self.tokens, True), mv(self.mask, False), mv(self.pooled, True))


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """(B,) int lengths -> (B, max_len) bool mask, True on valid frames."""
    if max_len is None:
        max_len = int(lengths.max())
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def require(batch: Mapping[str, Any], keys: list[str], model: str) -> None:
    """Raise a ValueError naming every missing batch key."""
    missing = [k for k in keys if k not in batch]
    if missing:
        raise ValueError(f"{model}: batch is missing key(s) {missing}; it has {sorted(batch)}")


def check_motion(motion: Tensor, lengths: Tensor, nfeats: int, where: str) -> None:
    """Validate a padded motion tensor and its lengths."""
    if motion.dim() != 3 or motion.shape[-1] != nfeats:
        raise ValueError(f"{where}: motion must be (B, T, {nfeats}), got {tuple(motion.shape)}")
    if lengths.dim() != 1 or lengths.shape[0] != motion.shape[0]:
        raise ValueError(f"{where}: lengths must be ({motion.shape[0]},), got {tuple(lengths.shape)}")
    if lengths.dtype.is_floating_point:
        raise ValueError(f"{where}: lengths must be integers, got {lengths.dtype}")
    if len(lengths) and (int(lengths.min()) < 1 or int(lengths.max()) > motion.shape[1]):
        raise ValueError(
            f"{where}: lengths must be in [1, {motion.shape[1]}] (the padded T), got "
            f"min {int(lengths.min())} max {int(lengths.max())}"
        )


def check_text(text: TextBatch, text_dim: int, batch_size: int, where: str, need_tokens: bool) -> None:
    if need_tokens:
        if text.tokens is None:
            raise ValueError(f"{where}: per-token text embeddings are required")
        if text.tokens.shape[-1] != text_dim:
            raise ValueError(
                f"{where}: text width {text.tokens.shape[-1]} does not match the model's text_dim {text_dim} "
                "(was the model built for another embedder?)"
            )
        if not bool(text.mask.any(dim=1).all()):
            raise ValueError(f"{where}: every text needs at least one valid token (mask row all False)")
    elif text.pooled is None:
        raise ValueError(f"{where}: pooled text embeddings are required")
    elif text.pooled.shape[-1] != text_dim:
        raise ValueError(f"{where}: pooled width {text.pooled.shape[-1]} does not match text_dim {text_dim}")
    if len(text) != batch_size:
        raise ValueError(f"{where}: {len(text)} texts for a batch of {batch_size}")


def text_from_batch(batch: Mapping[str, Any], suffix: str = "", pooled_only: bool = False) -> TextBatch:
    if pooled_only:
        return TextBatch(None, None, batch[f"text_pooled{suffix}"])
    return TextBatch(batch[f"text{suffix}"], batch[f"text_mask{suffix}"], batch.get(f"text_pooled{suffix}"))
