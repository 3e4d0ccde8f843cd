"""Small synthetic inputs for the embedding, shard and loader tests (fast: no model, no dataset files)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from actiongpt.text.embed_stage import run_embed_stage
from actiongpt.text.embedders import EmbedderInfo, TextEmbedder, TextEmbeddings
from actiongpt.text.embedding_store import EmbeddingStore
from shards.config import ShardsConfig
from shards.source import ListSource, SourceSample
from shards.writer import build_shards


class HashEmbedder(TextEmbedder):
    """Deterministic stand-in: token count = word count + 2, values from a hash of (text, position)."""

    def __init__(self, token_dim: int = 8, pooled_dim: int = 6) -> None:
        self.info = EmbedderInfo("hash", "hash-embedder", token_dim, pooled_dim, 64, "hash", "none")
        self.calls = 0

    def _vec(self, text: str, pos: int, dim: int) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(f"{text}|{pos}".encode()).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)

    def embed(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> TextEmbeddings:
        self.calls += 1
        toks, pooled = [], []
        for t in texts:
            n = min(len(t.split()) + 2, self.info.max_tokens)
            toks.append(np.stack([self._vec(t, p, self.info.token_dim) for p in range(n)]).astype(np.float16))
            pooled.append(self._vec(t, -1, self.info.pooled_dim))
        return TextEmbeddings(toks, np.stack(pooled).astype(np.float16))


LABELS = ["walk", "run forward", "jump up", "sit down", "wave right hand", "turn left", "kick", "throw ball"]


def descriptions(k: int = 4, labels: Sequence[str] = LABELS) -> dict[str, list[str]]:
    rng = np.random.default_rng(0)
    words = [
        "the",
        "person",
        "moves",
        "left",
        "right",
        "arm",
        "leg",
        "slowly",
        "quickly",
        "bends",
        "knees",
        "raises",
        "lowers",
        "head",
        "torso",
    ]
    out = {}
    for lab in labels:
        out[lab] = [f"{lab}: " + " ".join(rng.choice(words, size=int(rng.integers(3, 12)))) for _ in range(k)]
    return out


def make_store(folder: Path, k: int = 4, labels: Sequence[str] = LABELS) -> EmbeddingStore:
    run_embed_stage(descriptions(k, labels), folder, HashEmbedder(), num_chunks=3, progress=False)
    return EmbeddingStore(folder)


def make_source(
    n: int, split: str = "train", pairs: bool = True, seed: int = 1, labels: Sequence[str] = LABELS
) -> ListSource:
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        if pairs:
            lengths = [int(rng.integers(5, 20)), int(rng.integers(0, 4)), int(rng.integers(5, 20))]
            labs = [str(rng.choice(labels)), str(rng.choice(labels))]
        else:
            lengths = [int(rng.integers(5, 30))]
            labs = [str(rng.choice(labels))]
        motion = rng.standard_normal((sum(lengths), 135)).astype(np.float32) * 0.5 + np.arange(135) * 0.01
        samples.append(
            SourceSample(
                f"seq{i:04d}-{split}", motion, labs, lengths, {"source": f"synthetic/{i}.npz", "fps": 30.0}
            )
        )
    return ListSource(samples, split, "pairs" if pairs else "seg")


def build(
    out: Path,
    store: EmbeddingStore,
    sources: dict,
    part: int = 0,
    num_parts: int = 1,
    barrier=None,
    **overrides,
):
    cfg = ShardsConfig(out=str(out), splits=sorted(sources), **overrides)
    return build_shards(cfg, sources, store, part=part, num_parts=num_parts, barrier=barrier, progress=False)


def run_cli(argv: list[str]) -> int:
    """``actiongpt <argv>`` with only the shards command registered (as launch.cli.main handles errors)."""
    import argparse
    import sys

    from launch.commands import shards as shards_cmd
    from launch.errors import bad_input_errors

    parser = argparse.ArgumentParser(prog="actiongpt")
    shards_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except bad_input_errors() as exc:
        print(f"actiongpt {args.command}: error: {exc}", file=sys.stderr)
        return 2
