"""The embedding stage: embed every label and its descriptions once, distributed and resumable.

Training never runs a text encoder (the original ran DistilBERT on k descriptions per sample at every
step and re-read the description json on every batch: the paper's Table 3 training-time overhead). This
stage runs once:

1. A label belongs to chunk ``sha256(label) mod chunks``, so adding labels (descriptions are often
   generated incrementally) changes only the chunks they fall into. The j-th non-empty chunk is embedded by
   part ``j mod n`` (ranks of a process group, Slurm array tasks, or explicit ``i/n``). A chunk's bytes
   depend only on its labels and the embedder, so the result is the same for any number of parts.
2. A finished chunk is skipped on a rerun when its input digest (labels, descriptions, embedder) matches,
   so a crashed or preempted run resumes where it stopped; a changed description re-embeds its chunk.
3. The merge writes ``index.json`` once every chunk is complete. Without a process group every part
   tries the merge when it finishes; the merge is deterministic and atomic, so doing it twice is harmless.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actiongpt.io_utils import atomic_write_json
from actiongpt.text.embedders import EmbeddingError, TextEmbedder
from actiongpt.text.embedding_store import (
    STORE_FORMAT,
    STORE_VERSION,
    EmbeddingStore,
    chunk_input_digest,
    read_chunk_meta,
    write_chunk,
)

log = logging.getLogger(__name__)


@dataclass
class EmbedConfig:
    """The embedding stage. Defaults: the embedded setup (all-MiniLM-L6-v2, real weights, offline).

    The paper's embedders are ``distilbert`` (TEMOS/TEACH, ``model: distilbert-base-uncased``) and ``clip``
    (MotionCLIP, ``model: openai/clip-vit-base-patch32``); see configs/shards/paper-*.yaml.
    """

    # the shipped SmolLM2 descriptions of the embedded dataset's labels (actiongpt/assets/descriptions)
    descriptions: list[str] = field(
        default_factory=lambda: ["actiongpt/assets/descriptions/embedded_smollm2.jsonl"]
    )
    out: str = "data/embedded/embeddings/minilm"
    embedder: str = "minilm"  # minilm | distilbert | clip
    model: str | None = None  # hub name or local folder; None = the embedder's default
    device: str = "auto"  # auto = cuda when present
    compute_dtype: str = "float32"  # float16/bfloat16 on GPU only
    max_tokens: int | None = None  # None = the model's limit (CLIP: 77, as the original)
    batch_size: int = 32
    chunks: int = 64  # labels are hashed into this many chunks (the unit of work, resume and re-embedding)
    k: int | None = None  # keep the first k descriptions per label; None = all generated
    model_filter: str | None = None  # select cache records of one LLM model (load_descriptions model=)
    part: str | None = None  # "i/n"; default: process group, Slurm array task, RANK/WORLD_SIZE, else 0/1

    def spec(self) -> dict[str, Any]:
        """What determines the embeddings (not where or how fast they are computed)."""
        return {
            "embedder": self.embedder,
            "model": self.model,
            "max_tokens": self.max_tokens,
            "compute_dtype": self.compute_dtype,
        }


@dataclass
class EmbedResult:
    folder: Path
    chunks_total: int
    chunks_embedded: int
    chunks_reused: int
    texts_embedded: int
    seconds: float
    merged: bool


def chunk_of(label: str, num_chunks: int) -> int:
    return int.from_bytes(hashlib.sha256(label.encode("utf-8")).digest()[:8], "big") % num_chunks


def chunk_labels(labels: Sequence[str], num_chunks: int) -> list[list[str]]:
    """Chunk c holds the sorted labels with ``chunk_of(label) == c`` (possibly none)."""
    if num_chunks < 1:
        raise ValueError(f"chunks must be >= 1, got {num_chunks}")
    out: list[list[str]] = [[] for _ in range(num_chunks)]
    for label in sorted(labels):
        out[chunk_of(label, num_chunks)].append(label)
    return out


def check_descriptions(
    descriptions: Mapping[str, Sequence[str]], k: int | None = None
) -> dict[str, list[str]]:
    """Validate and cut to k: a label without descriptions (or with fewer than k) is an error naming it."""
    out: dict[str, list[str]] = {}
    for label in sorted(descriptions):
        descs = list(descriptions[label])
        if not isinstance(label, str) or not label.strip():
            raise EmbeddingError(f"empty label in the description cache: {label!r}")
        if not descs:
            raise EmbeddingError(f"label {label!r} has no descriptions")
        if k is not None:
            if len(descs) < k:
                raise EmbeddingError(f"label {label!r} has {len(descs)} descriptions, k = {k} requested")
            descs = descs[:k]
        for i, d in enumerate(descs):
            if not isinstance(d, str) or not d.strip():
                raise EmbeddingError(f"label {label!r}: description {i} is empty")
        out[label] = descs
    return out


def run_embed_stage(
    descriptions: Mapping[str, Sequence[str]],
    out: str | Path,
    embedder: TextEmbedder | Callable[[], TextEmbedder],
    *,
    spec: Mapping[str, Any] | None = None,
    num_chunks: int = 64,
    chunk_size: int | None = None,
    batch_size: int = 32,
    part: int = 0,
    num_parts: int = 1,
    barrier: Callable[[], None] | None = None,
    progress: bool = True,
) -> EmbedResult:
    """Embed this part's chunks, then merge if every chunk is done.

    ``embedder`` may be a factory, called only when some chunk needs embedding: with ``spec`` (the
    config-level identity of the embedder, :meth:`EmbedConfig.spec`) a finished chunk is recognised
    without loading the model. ``barrier`` (e.g. ``torch.distributed.barrier``) makes part 0 merge after
    all parts finished; without it each part merges opportunistically. ``chunk_size`` (labels per chunk)
    replaces ``num_chunks`` by ``ceil(labels / chunk_size)``.
    """
    t0 = time.perf_counter()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    if not 0 <= part < num_parts:
        raise ValueError(f"part {part} is not in 0..{num_parts - 1}")
    descs = check_descriptions(descriptions)
    if chunk_size is not None:  # labels per chunk instead: the chunk count then follows the label count
        num_chunks = max(1, -(-len(descs) // chunk_size))
    chunks = chunk_labels(list(descs), num_chunks)
    busy = [c for c in range(num_chunks) if chunks[c]]
    model: TextEmbedder | None = embedder if isinstance(embedder, TextEmbedder) else None
    if spec is None and model is None:
        raise ValueError("give either an embedder instance or a spec identifying the factory's embedder")

    def get_model() -> TextEmbedder:
        nonlocal model
        if model is None:
            model = embedder()  # type: ignore[operator]
        return model

    mine = [c for j, c in enumerate(busy) if j % num_parts == part]
    embedded = reused = texts_done = 0
    iterator: Any = mine
    if progress and mine:
        from tqdm import tqdm

        iterator = tqdm(mine, desc=f"embed chunks (part {part}/{num_parts})", unit="chunk")
    for c in iterator:
        items = [(label, descs[label]) for label in chunks[c]]
        if _chunk_current(read_chunk_meta(folder, c), items, spec, model):
            reused += 1
            continue
        m = get_model()
        digest = m.info.digest()
        texts: list[str] = []
        for label, d in items:
            texts.append(label)
            texts.extend(d)
        emb = m.embed(texts, batch_size=batch_size)
        write_chunk(
            folder,
            c,
            [lab for lab, _ in items],
            [len(d) for _, d in items],
            emb.tokens,
            emb.pooled,
            chunk_input_digest(items, digest),
            m.info.to_dict(),
            digest,
            spec,
        )
        embedded += 1
        texts_done += len(texts)
    if barrier is not None:
        barrier()
    merged = False
    if barrier is None or part == 0:
        merged = merge_store(folder, chunks, descs, spec, model)
    if barrier is not None:
        barrier()
        merged = (folder / "index.json").is_file()
    return EmbedResult(folder, len(busy), embedded, reused, texts_done, time.perf_counter() - t0, merged)


def _chunk_current(
    meta: Mapping[str, Any] | None,
    items: list[tuple[str, list[str]]],
    spec: Mapping[str, Any] | None,
    model: TextEmbedder | None,
) -> bool:
    """A finished chunk is reused when its inputs and its embedder are the configured ones."""
    if meta is None:
        return False
    if model is not None:
        digest = model.info.digest()
        if meta.get("embedder_digest") != digest:
            return False
    else:
        if meta.get("spec") != dict(spec or {}):
            return False
        digest = meta.get("embedder_digest", "")
    return meta.get("input_digest") == chunk_input_digest(items, digest)


def merge_store(
    folder: Path,
    chunks: list[list[str]],
    descs: Mapping[str, list[str]],
    spec: Mapping[str, Any] | None,
    model: TextEmbedder | None = None,
) -> bool:
    """Write ``index.json`` if every chunk is complete and current; returns whether it did."""
    busy = [c for c in range(len(chunks)) if chunks[c]]
    metas = {c: read_chunk_meta(folder, c) for c in busy}
    pending = [
        c for c in busy if not _chunk_current(metas[c], [(lab, descs[lab]) for lab in chunks[c]], spec, model)
    ]
    if pending:
        log.info(
            "embedding store %s: %d of %d chunks missing or stale (e.g. %s); not merging yet",
            folder,
            len(pending),
            len(busy),
            pending[:5],
        )
        return False
    if not busy:
        raise EmbeddingError(f"{folder}: no labels to embed")
    digests = {metas[c]["embedder_digest"] for c in busy}  # type: ignore[index]
    if len(digests) > 1:
        raise EmbeddingError(f"{folder}: chunks were embedded with different embedders {sorted(digests)}")
    index = {
        "format": STORE_FORMAT,
        "version": STORE_VERSION,
        "embedder": metas[busy[0]]["embedder"],  # type: ignore[index]
        "embedder_digest": digests.pop(),
        "spec": dict(spec) if spec is not None else None,
        "num_chunks": len(chunks),
        "num_labels": sum(len(c) for c in chunks),
        "num_texts": sum(1 + len(descs[lab]) for c in chunks for lab in c),
        "chunks": [
            {"id": c, "labels": len(chunks[c]), "input_digest": metas[c]["input_digest"]}  # type: ignore[index]
            for c in busy
        ],
    }
    atomic_write_json(folder / "index.json", index)
    log.info(
        "embedding store %s merged: %d labels, %d texts", folder, index["num_labels"], index["num_texts"]
    )
    return True


def token_stats(store: EmbeddingStore) -> dict[str, float]:
    """Mean token counts of label texts and descriptions (for sizing shards and reports)."""
    lab, desc = [], []
    for label in store.labels:
        n, ds = store.token_counts(label)
        lab.append(n)
        desc.extend(ds)
    return {
        "label_tokens_mean": float(np.mean(lab)) if lab else 0.0,
        "description_tokens_mean": float(np.mean(desc)) if desc else 0.0,
    }
