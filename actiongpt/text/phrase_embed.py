"""Free-text phrases -> text embeddings at generation time (zero-shot): the training text path, live.

Action-GPT's text input is the aggregate of the k LLM descriptions of the action phrase (the baseline's
is the phrase itself). At training time those embeddings come precomputed from the shards; here an unseen
phrase goes through the same stages on the fly: descriptions (``describe``: a cache lookup, an LLM on a
miss, supplied by the caller), the frozen embedder, and the aggregator. The result is the ``embed_fn`` of
:func:`actiongpt.models.generate.generate`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from actiongpt.text.aggregate import aggregate_pooled, aggregate_tokens, check_aggregator
from actiongpt.text.cache import load_descriptions
from actiongpt.text.embedders import TextEmbedder

# phrases -> {phrase: its descriptions in order i = 0..K-1}; raises when it cannot provide them
DescribeFn = Callable[[Sequence[str]], Mapping[str, Sequence[str]]]
EmbedOutput = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class PhraseError(ValueError):
    """A phrase cannot be turned into embeddings (no or too few descriptions); names the phrase."""


def normalize_phrase(phrase: str) -> str:
    """The cache key of a phrase: lower case, single spaces (BABEL ``proc_label`` style)."""
    out = " ".join(str(phrase).split()).lower()
    if not out:
        raise PhraseError(f"empty action phrase {phrase!r}")
    return out


def _pad(tokens: Sequence[np.ndarray], pooled: np.ndarray) -> EmbedOutput:
    """Unpadded (n_i, D) arrays -> (tokens (N, L, D) float32, mask (N, L) bool, pooled (N, Dp))."""
    length = max(t.shape[0] for t in tokens)
    out = torch.zeros(len(tokens), length, tokens[0].shape[1])
    mask = torch.zeros(len(tokens), length, dtype=torch.bool)
    for i, t in enumerate(tokens):
        out[i, : t.shape[0]] = torch.from_numpy(np.asarray(t, dtype=np.float32))
        mask[i, : t.shape[0]] = True
    return out, mask, torch.from_numpy(np.asarray(pooled, dtype=np.float32))


def make_embed_fn(
    describe: DescribeFn | None,
    embedder: TextEmbedder,
    *,
    k: int | None = None,
    aggregator: str = "original",
    text_source: str = "descriptions",
) -> Callable[..., EmbedOutput]:
    """``embed_fn(phrases, k=, aggregator=, description=) -> (tokens, mask, pooled)`` for ``generate``.

    ``text_source="descriptions"`` (Action-GPT): the first ``k`` descriptions of each phrase (``None``: all
    it has) are embedded and aggregated (tokens by ``aggregator``, pooled by their mean), or only
    description ``description`` when given (the paper's per-description diversity). ``"label"`` (the
    baseline): the phrase itself is embedded and ``describe`` is never called. Call options override the
    defaults given here.
    """
    if text_source not in ("descriptions", "label"):
        raise ValueError(f"text_source must be 'descriptions' or 'label', got {text_source!r}")
    if text_source == "descriptions" and describe is None:
        raise ValueError("text_source='descriptions' needs a describe function")
    check_aggregator(aggregator)

    def embed_fn(
        phrases: Sequence[str],
        *,
        k: int | None = k,
        aggregator: str = aggregator,
        description: int | None = None,
    ) -> EmbedOutput:
        check_aggregator(aggregator)
        phrases = list(phrases)
        if not phrases:
            raise PhraseError("no phrases to embed")
        if text_source == "label":
            emb = embedder.embed(phrases)
            return _pad(emb.tokens, emb.pooled)
        assert describe is not None
        found = describe(phrases)
        groups: list[list[str]] = []
        for phrase in phrases:
            descs = list(found.get(phrase) or [])
            if not descs:
                raise PhraseError(f"phrase {phrase!r} has no descriptions")
            if description is not None:
                if not 0 <= description < len(descs):
                    raise PhraseError(
                        f"phrase {phrase!r}: description {description} requested, it has {len(descs)}"
                    )
                descs = [descs[description]]
            elif k is not None:
                if len(descs) < k:
                    raise PhraseError(f"phrase {phrase!r} has {len(descs)} descriptions, k = {k} needed")
                descs = descs[:k]
            groups.append(descs)
        # One embedder call for every description of every phrase; then split back per phrase.
        emb = embedder.embed([d for g in groups for d in g])
        tokens, pooled, start = [], [], 0
        for g in groups:
            stop = start + len(g)
            tokens.append(aggregate_tokens(emb.tokens[start:stop], aggregator))
            pooled.append(aggregate_pooled(emb.pooled[start:stop]))
            start = stop
        return _pad(tokens, np.stack(pooled))

    return embed_fn


class CacheFirstDescriber:
    """``describe`` for :func:`make_embed_fn`: the description caches first, ``on_miss`` for the rest.

    ``on_miss(phrases)`` must write the missing phrases' descriptions into one of ``caches`` (typically
    the user's cache, never a shipped asset); the caches are then read again. ``on_miss=None``: a miss
    is a :class:`PhraseError` naming the phrases (``miss_hint`` says how to generate them).
    """

    def __init__(
        self,
        caches: Sequence[str | Path],
        on_miss: Callable[[list[str]], None] | None = None,
        *,
        min_descriptions: int = 1,
        miss_hint: str = "",
    ) -> None:
        self.caches = [Path(c) for c in caches]
        self.on_miss = on_miss
        self.min_descriptions = max(1, int(min_descriptions))
        self.miss_hint = miss_hint
        self.generated: list[str] = []  # phrases described by on_miss in this session

    def _lookup(self, phrases: Sequence[str]) -> tuple[dict[str, list[str]], list[str]]:
        table = load_descriptions([c for c in self.caches if c.exists()]) if self.caches else {}
        found = {p: table[p] for p in phrases if len(table.get(p, ())) >= self.min_descriptions}
        return found, [p for p in dict.fromkeys(phrases) if p not in found]

    def __call__(self, phrases: Sequence[str]) -> dict[str, list[str]]:
        found, missing = self._lookup(phrases)
        if missing and self.on_miss is not None:
            self.on_miss(missing)
            self.generated.extend(missing)
            found, missing = self._lookup(phrases)
        if missing:
            raise PhraseError(
                f"no descriptions (at least {self.min_descriptions} needed) for {missing} in "
                f"{[str(c) for c in self.caches]}" + (f"; {self.miss_hint}" if self.miss_hint else "")
            )
        return found
