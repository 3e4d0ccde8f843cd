"""Build a text embedder by kind. A new embedder: a module with a :class:`TextEmbedder` subclass that has
``from_pretrained(model, **kwargs)``, and one line in ``EMBEDDERS`` (kept apart from ``embedders`` so the
interface module imports none of its implementations)."""

from __future__ import annotations

import importlib
from typing import Any

import torch

from actiongpt.text.embedders import TextEmbedder

# kind -> ("module:class", default model name or None = the class's own default); imported on use
EMBEDDERS: dict[str, tuple[str, str | None]] = {
    "minilm": ("actiongpt.text.embedder_minilm:MiniLMEmbedder", None),
    "distilbert": ("actiongpt.text.embedder_distilbert:DistilBertEmbedder", "distilbert-base-uncased"),
    "clip": ("actiongpt.text.embedder_clip:ClipTextEmbedder", "openai/clip-vit-base-patch32"),
}
EMBEDDER_KINDS = tuple(EMBEDDERS)
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def build_embedder(
    kind: str,
    model: str | None = None,
    *,
    device: str | torch.device | None = "auto",
    compute_dtype: str = "float32",
    max_tokens: int | None = None,
) -> TextEmbedder:
    """Construct an embedder by kind (``minilm``, ``distilbert``, ``clip``) from a name or local folder."""
    dtype = _DTYPES.get(compute_dtype)
    if dtype is None:
        raise ValueError(f"compute_dtype must be float32, float16 or bfloat16, got {compute_dtype!r}")
    if kind not in EMBEDDERS:
        raise ValueError(f"unknown embedder {kind!r}; choose one of {EMBEDDER_KINDS}")
    kwargs: dict[str, Any] = {"device": device, "compute_dtype": dtype}
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    target, default_model = EMBEDDERS[kind]
    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    return cls.from_pretrained(model or default_model, **kwargs)
