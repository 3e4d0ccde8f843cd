"""CLIP ViT-B/32 text tower: MotionCLIP's text target.

``pooled`` is CLIP's ``encode_text``: the end-of-text state projected to 512-d, **not** normalised (the
original averages the k raw vectors and normalises later inside the cosine loss). Per-token states are
``last_hidden_state`` up to and including the end-of-text token.

Truncation: CLIP's context is 77 tokens (start + 75 + end), so ~128-token descriptions are cut, exactly as
in the original MotionCLIP variant (``clip.tokenize(..., truncate=True)``); ``truncated_fraction`` reports
how many texts lose content.

Weights are not installable offline. The real CLIP BPE vocabulary ships in ``open_clip_torch`` (optional
extra ``clip``); :func:`clip_tokenizer` builds the transformers tokenizer from it without importing
open_clip (whose import pulls heavy optional dependencies).
"""

from __future__ import annotations

import gzip
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from actiongpt.text.embedders import EmbedderInfo, HFTextEmbedder, model_fingerprint

CLIP_CONTEXT = 77
CLIP_VOCAB = 49408
_BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"


def _bytes_to_unicode() -> dict[int, str]:
    # The byte <-> printable-unicode table of GPT-2/CLIP BPE (same construction as CLIP's simple_tokenizer).
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def open_clip_bpe_path() -> Path:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the CLIP BPE vocabulary needs open_clip_torch "
            "(pip install torch==2.13.0 open_clip_torch==3.3.0 --no-deps, "
            "or the 'clip' extra), or a local CLIP model folder with its tokenizer files"
        )
    path = Path(spec.origin).parent / _BPE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the open_clip installation")
    return path


@lru_cache(maxsize=1)
def clip_tokenizer() -> Any:
    """The real CLIP tokenizer (49408 tokens) from open_clip's BPE merges, as OpenAI's simple_tokenizer."""
    from transformers import CLIPTokenizer

    with gzip.open(open_clip_bpe_path()) as fh:
        lines = fh.read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    tok = CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=merges)
    if len(tok) != CLIP_VOCAB:
        raise RuntimeError(f"CLIP tokenizer has {len(tok)} tokens, expected {CLIP_VOCAB}")
    return tok


class ClipTextEmbedder(HFTextEmbedder):
    """CLIP text tower: projected end-of-text vector (pooled) and per-token states, 77-token context."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        name: str = "openai/clip-vit-base-patch32",
        max_tokens: int | None = None,
        weights: str = "pretrained",
        **kwargs: Any,
    ) -> None:
        context = int(model.config.max_position_embeddings)
        super().__init__(model, tokenizer, max_tokens=min(max_tokens or context, context), **kwargs)
        self.info = EmbedderInfo(
            kind="clip",
            name=name,
            token_dim=int(model.config.hidden_size),
            pooled_dim=int(model.config.projection_dim),
            max_tokens=self.max_tokens,
            pooling="eot-projection",
            weights=weights,
            extra={"fingerprint": model_fingerprint(model)},
        )

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path = "openai/clip-vit-base-patch32", **kwargs: Any
    ) -> ClipTextEmbedder:
        """Load the text tower (+ projection) from a hub name (local cache) or folder."""
        from transformers import AutoTokenizer, CLIPTextModelWithProjection

        try:
            model = CLIPTextModelWithProjection.from_pretrained(str(name_or_path))
        except OSError as exc:
            raise FileNotFoundError(
                f"cannot load CLIP {str(name_or_path)!r}: {exc}. CLIP weights are not installable offline; "
                "pass a "
                "local folder (embed.model=/path/to/clip-vit-base-patch32) or use embed.embedder=minilm"
            ) from exc
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
        except OSError:
            tokenizer = clip_tokenizer()
        return cls(model, tokenizer, name=str(name_or_path), **kwargs)

    @classmethod
    def random_init(
        cls, size: str = "tiny", seed: int = 0, tokenizer: Any = None, **kwargs: Any
    ) -> ClipTextEmbedder:
        """Random weights, real tokenizer: ``base`` = ViT-B/32's text tower, ``tiny`` = 2 layers x 64."""
        from transformers import CLIPTextConfig, CLIPTextModelWithProjection

        tokenizer = tokenizer if tokenizer is not None else clip_tokenizer()
        ids = {
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
        if size == "base":
            config = CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=512,
                intermediate_size=2048,
                num_hidden_layers=12,
                num_attention_heads=8,
                max_position_embeddings=CLIP_CONTEXT,
                projection_dim=512,
                **ids,
            )
        elif size == "tiny":
            config = CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=2,
                num_attention_heads=2,
                max_position_embeddings=CLIP_CONTEXT,
                projection_dim=32,
                **ids,
            )
        else:
            raise ValueError(f"size must be 'base' or 'tiny', got {size!r}")
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = CLIPTextModelWithProjection(config)
        return cls(
            model, tokenizer, name=f"clip-{size}-random", weights=f"random-init(seed={seed})", **kwargs
        )

    def truncated_fraction(self, texts: list[str]) -> float:
        """Fraction of texts longer than the context (their tail is dropped, as in the original)."""
        if not texts:
            return 0.0
        full = self.tokenizer(texts, truncation=False)["input_ids"]
        return sum(len(ids) > self.max_tokens for ids in full) / len(texts)

    def _forward(self, enc: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        return out.last_hidden_state, enc["attention_mask"].bool(), out.text_embeds
