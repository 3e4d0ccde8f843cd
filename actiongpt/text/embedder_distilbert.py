"""DistilBERT per-token states: the text path of TEMOS/TEACH and of Action-GPT-TEMOS/TEACH.

``distilbert-base-uncased`` (by hub name, from the local Hugging Face cache, or a local folder) gives
768-d ``last_hidden_state``; the original tokenises without truncation (~128-token descriptions fit
DistilBERT's 512 positions), we truncate at the position limit instead of crashing on longer texts.
DistilBERT has no pooled output; ``pooled`` here is the masked token mean (TEMOS/TEACH never use it).

The weights cannot be installed offline; :meth:`DistilBertEmbedder.random_init` builds a randomly
initialised model with the real uncased WordPiece tokenizer (the bert-base-uncased vocabulary shipped in
the MiniLM package) for tests and for timing the original design.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from actiongpt.text.embedders import EmbedderInfo, HFTextEmbedder, masked_mean, model_fingerprint

BERT_UNCASED_VOCAB = 30522


def uncased_wordpiece_tokenizer() -> Any:
    """The real ``bert-base-uncased`` / ``distilbert-base-uncased`` WordPiece tokenizer, offline."""
    from transformers import DistilBertTokenizer

    from actiongpt.text.embedder_minilm import minilm_path

    # from_pretrained(folder), not DistilBertTokenizer(vocab_file=...): in transformers 5.23 the latter
    # silently builds a 5-token vocabulary (checked below).
    tok = DistilBertTokenizer.from_pretrained(str(minilm_path()), local_files_only=True)
    if len(tok) != BERT_UNCASED_VOCAB:
        raise RuntimeError(
            f"uncased WordPiece tokenizer has {len(tok)} tokens, expected {BERT_UNCASED_VOCAB}"
        )
    return tok


class DistilBertEmbedder(HFTextEmbedder):
    """DistilBERT ``last_hidden_state`` per token; masked-mean pooled vector."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        name: str = "distilbert-base-uncased",
        max_tokens: int | None = None,
        weights: str = "pretrained",
        **kwargs: Any,
    ) -> None:
        limit = int(model.config.max_position_embeddings)
        super().__init__(model, tokenizer, max_tokens=min(max_tokens or limit, limit), **kwargs)
        self.info = EmbedderInfo(
            kind="distilbert",
            name=name,
            token_dim=int(model.config.dim),
            pooled_dim=int(model.config.dim),
            max_tokens=self.max_tokens,
            pooling="masked-mean",
            weights=weights,
            extra={"fingerprint": model_fingerprint(model)},
        )

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path = "distilbert-base-uncased", **kwargs: Any
    ) -> DistilBertEmbedder:
        """Load a DistilBERT model and its tokenizer from a hub name (local cache) or a folder."""
        from transformers import AutoModel, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
            model = AutoModel.from_pretrained(str(name_or_path))
        except OSError as exc:
            raise FileNotFoundError(
                f"cannot load DistilBERT {str(name_or_path)!r}: {exc}. Its weights are not installable "
                "offline; pass a local folder (embed.model=/path/to/distilbert-base-uncased) or use "
                "embed.embedder=minilm"
            ) from exc
        return cls(model, tokenizer, name=str(name_or_path), **kwargs)

    @classmethod
    def random_init(
        cls, size: str = "base", seed: int = 0, tokenizer: Any = None, **kwargs: Any
    ) -> DistilBertEmbedder:
        """Random weights, real tokenizer: ``base`` = distilbert-base-uncased's shape (66 M), ``tiny``."""
        from transformers import DistilBertConfig, DistilBertModel

        tokenizer = tokenizer if tokenizer is not None else uncased_wordpiece_tokenizer()
        if size == "base":
            config = DistilBertConfig(vocab_size=len(tokenizer))
        elif size == "tiny":
            config = DistilBertConfig(
                vocab_size=len(tokenizer),
                dim=64,
                hidden_dim=128,
                n_layers=2,
                n_heads=2,
                max_position_embeddings=512,
            )
        else:
            raise ValueError(f"size must be 'base' or 'tiny', got {size!r}")
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = DistilBertModel(config)
        return cls(
            model, tokenizer, name=f"distilbert-{size}-random", weights=f"random-init(seed={seed})", **kwargs
        )

    def _forward(self, enc: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden = self.model(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
        ).last_hidden_state
        mask = enc["attention_mask"].bool()
        return hidden, mask, masked_mean(hidden.float(), mask)
