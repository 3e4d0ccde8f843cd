"""Loader throughput at the paper's sizes, against the cost of the original design's text path.

Paper configuration (Action-GPT-TEACH): TEACH pairs, k = 4 descriptions of ~128 tokens per action, DistilBERT
token states of 768-d, 4 samples per GPU. The shards are built with the real writer from an embedding store
of exactly those sizes (random values: the loader's cost does not depend on them) and read back with the
real loader (one process, no DataLoader workers: the figure is per process), for four storage variants:
text table vs in-sample, k individual descriptions vs their aggregate only.

The original design (TEACH/TEMOS Action-GPT: ``text_hist.py``, ``distilbert_transformer.py``) does per batch:
re-read the description json (> 4 MiB in the original), tokenise the k descriptions of every action of the
batch padded to the longest, run frozen DistilBERT on them and average by position. It is timed here with a
randomly initialised distilbert-base-sized model (the weights cannot be had offline; the cost does not depend
on the values), with the same number of threads as the loader. Ratios are measured side by side in one run;
each figure is the median over ``--repeats``.

    python bench/bench_loader.py                        # writes bench/results/loader.json
    python bench/bench_loader.py --samples 200 --repeats 2 --original-batches 2   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from actiongpt.text.aggregate import aggregate_padded  # noqa: E402
from actiongpt.text.embed_stage import run_embed_stage  # noqa: E402
from actiongpt.text.embedders import EmbedderInfo, TextEmbedder, TextEmbeddings  # noqa: E402
from actiongpt.text.embedding_store import EmbeddingStore  # noqa: E402
from shards.config import ShardsConfig  # noqa: E402
from shards.loader import LoaderConfig, ShardLoader  # noqa: E402
from shards.source import ListSource, SourceSample  # noqa: E402
from shards.writer import build_shards  # noqa: E402

WORDS = [
    "the",
    "person",
    "lifts",
    "the",
    "left",
    "leg",
    "bends",
    "the",
    "knee",
    "and",
    "swings",
    "both",
    "arms",
    "forward",
    "while",
    "the",
    "torso",
    "leans",
    "slightly",
    "back",
    "then",
    "the",
    "right",
    "foot",
    "steps",
    "out",
    "and",
    "the",
    "hips",
    "rotate",
]


class SizedEmbedder(TextEmbedder):
    """Token count = words + 2 (like [CLS] ... [SEP]), random float16 values; DistilBERT-base sizes."""

    def __init__(self, dim: int = 768) -> None:
        self.info = EmbedderInfo("bench", "sized-random", dim, dim, 512, "masked-mean", "random")
        self.rng = np.random.default_rng(0)

    def embed(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> TextEmbeddings:
        d = self.info.token_dim
        toks = [(self.rng.standard_normal((len(t.split()) + 2, d)) * 0.3).astype(np.float16) for t in texts]
        pooled = np.stack([t.astype(np.float32).mean(0) for t in toks]).astype(np.float16)
        return TextEmbeddings(toks, pooled)


def description(rng: np.random.Generator, tokens: int) -> str:
    return " ".join(rng.choice(WORDS, size=tokens - 2))


def make_inputs(work: Path, labels: int, samples: int, k: int, desc_tokens: int, dim: int):
    rng = np.random.default_rng(0)
    names = [
        f"action {i} " + " ".join(rng.choice(WORDS, size=int(rng.integers(1, 5)))) for i in range(labels)
    ]
    descs = {n: [description(rng, desc_tokens) for _ in range(k)] for n in names}
    run_embed_stage(descs, work / "emb", SizedEmbedder(dim), num_chunks=16, progress=False)
    items = []
    for i in range(samples):  # BABEL-like TEACH pairs at 30 fps: 1.5-5 s actions, 0-1 s transition
        lengths = [int(rng.integers(45, 150)), int(rng.integers(0, 30)), int(rng.integers(45, 150))]
        motion = rng.standard_normal((sum(lengths), 135)).astype(np.float32)
        items.append(
            SourceSample(
                f"pair{i:06d}",
                motion,
                [str(rng.choice(names)), str(rng.choice(names))],
                lengths,
                {"source": "bench"},
            )
        )
    return descs, EmbeddingStore(work / "emb"), ListSource(items, "train", "pairs")


def build(work: Path, name: str, store: EmbeddingStore, source: ListSource, **opts) -> dict:
    cfg = ShardsConfig(out=str(work / name), splits=["train"], shard_multiple=4, target_shard_mb=64, **opts)
    res = build_shards(cfg, {"train": source}, store, progress=False)
    return res.summary["train"]


def time_loader(root: Path, batch: int, repeats: int, **kw) -> list[float]:
    """Seconds per full epoch (one process), per repeat; each repeat is a fresh loader (cold caches)."""
    out = []
    for r in range(repeats):
        loader = ShardLoader(
            LoaderConfig(root=str(root), batch_size=batch, num_workers=0, seed=r, **kw), rank=0, world_size=1
        )
        t0 = time.perf_counter()
        n = sum(len(b["keys"]) for b in loader)
        out.append((time.perf_counter() - t0) / n)
    return out


def original_text_path(
    json_path: Path, batch_labels: list[list[str]], k: int, repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Per batch: re-read the json, tokenise k descriptions of every action, DistilBERT, mean by position."""
    from actiongpt.text.embedder_distilbert import DistilBertEmbedder

    emb = DistilBertEmbedder.random_init("base", seed=0, device="cpu")
    model, tok = emb.model, emb.tokenizer
    times, json_times, label_times = [], [], []
    for b, labels in enumerate(batch_labels[: warmup + repeats]):
        t0 = time.perf_counter()
        with open(json_path) as fh:  # the original re-reads the file on every call
            annotations = json.load(fh)
        t1 = time.perf_counter()
        texts = [d for lab in labels for d in annotations[lab][:k]]
        enc = tok(
            texts, return_tensors="pt", padding=True
        )  # padded to the longest in the batch, no truncation
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state
            agg, _ = aggregate_padded(
                hidden.view(len(labels), k, *hidden.shape[1:]),
                enc["attention_mask"].view(len(labels), k, -1),
                "original",
            )
        t2 = time.perf_counter()
        enc_l = tok(labels, return_tensors="pt", padding=True)  # the baseline: the raw labels only
        with torch.inference_mode():
            model(**enc_l)
        t3 = time.perf_counter()
        if b >= warmup:
            times.append(t2 - t0)
            json_times.append(t1 - t0)
            label_times.append(t3 - t2)
        del agg
    return {
        "batch_s": statistics.median(times),
        "json_s": statistics.median(json_times),
        "baseline_labels_batch_s": statistics.median(label_times),
        "batches": len(times),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=600, help="TEACH pairs in the benchmark split")
    ap.add_argument(
        "--labels", type=int, default=80, help="distinct action labels among them (BABEL: ~8 pairs per label)"
    )
    ap.add_argument("--json-labels", type=int, default=1500, help="labels in the original's description json")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=128, help="tokens per description")
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch", type=int, default=4, help="samples per GPU in the paper")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--original-batches", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both sides (per process)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "loader.json"))
    ap.add_argument("--keep", help="keep the built shards in this folder")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_loader_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        descs, store, source = make_inputs(work, args.labels, args.samples, args.k, args.tokens, args.dim)
        variants = {
            "table+individual": {"text_storage": "table", "text_store": "individual", "k": args.k},
            "table+aggregate": {"text_storage": "table", "text_store": "aggregate", "k": args.k},
            "sample+individual": {"text_storage": "sample", "text_store": "individual", "k": args.k},
            "sample+aggregate": {"text_storage": "sample", "text_store": "aggregate", "k": args.k},
        }
        rows = {}
        for name, opts in variants.items():
            summary = build(work, name, store, source, **opts)
            per_sample = time_loader(work / name, args.batch, args.repeats)
            sps = 1.0 / statistics.median(per_sample)
            bytes_ps = summary["per_sample_shards"]
            rows[name] = {
                "bytes_per_sample_shards": round(bytes_ps),
                "bytes_per_sample_with_table": round(summary["per_sample_with_table"]),
                "dataset_mb": round((summary["shard_bytes"] + summary["table_bytes"]) / 1e6, 1),
                "samples_per_s": round(sps, 1),
                "shard_mb_per_s": round(sps * bytes_ps / 1e6, 2),
                "samples_per_s_all": [round(1.0 / x, 1) for x in per_sample],
            }
            print(
                f"{name:18s} {rows[name]['samples_per_s']:8.1f} samples/s  "
                f"{rows[name]['shard_mb_per_s']:7.2f} MB/s  {bytes_ps / 1e3:8.1f} kB/sample in shards",
                flush=True,
            )
        baseline = time_loader(work / "table+individual", args.batch, args.repeats, text_source="label")
        # the original's description json: every label of the dataset, k descriptions each
        rng = np.random.default_rng(1)
        all_descs = dict(descs)
        for i in range(max(0, args.json_labels - len(descs))):
            all_descs[f"other label {i}"] = [description(rng, args.tokens) for _ in range(args.k)]
        json_path = work / "gpt3_annotations.json"
        json_path.write_text(json.dumps(all_descs))
        batches = []
        for b in range(args.original_batches + 1):
            items = [source.samples[(b * args.batch + j) % len(source.samples)] for j in range(args.batch)]
            batches.append([lab for it in items for lab in it.labels])  # 2 actions per pair
        orig = original_text_path(json_path, batches, args.k, args.original_batches)
        orig_sps = args.batch / orig["batch_s"]
        ours = rows["table+individual"]["samples_per_s"]
        result = {
            "benchmark": "loader_vs_original_text_path",
            "config": {k: v for k, v in vars(args).items() if k not in ("out", "keep")},
            "json_mb": round(json_path.stat().st_size / 1e6, 2),
            "loader": rows,
            "loader_baseline_label_text_samples_per_s": round(1.0 / statistics.median(baseline), 1),
            "original": {
                "samples_per_s": round(orig_sps, 2),
                "batch_s": round(orig["batch_s"], 3),
                "json_reread_s_per_batch": round(orig["json_s"], 4),
                "baseline_label_text_batch_s": round(orig["baseline_labels_batch_s"], 4),
                "batches_timed": orig["batches"],
                "model": "distilbert-base-sized DistilBertModel, random init, 66.4M parameters",
            },
            "ratio_ours_table_individual_vs_original": round(ours / orig_sps, 1),
            "ratio_ours_best_vs_original": round(
                max(r["samples_per_s"] for r in rows.values()) / orig_sps, 1
            ),
            "machine": {
                "cpu_count": os.cpu_count(),
                "platform": platform.platform(),
                "torch": torch.__version__,
                "threads": args.threads,
                "note": "shared 2-core CPU; files in the page cache",
            },
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(
            f"loader (table+individual, k={args.k} aggregated at load time): {ours:.1f} samples/s per "
            f"process; original text path (json re-read + DistilBERT-base on {args.k} x 2 descriptions per "
            f"pair): {orig_sps:.2f} samples/s -> {ours / orig_sps:.0f}x; json re-read alone "
            f"{orig['json_s'] * 1e3:.0f} ms per batch ({result['json_mb']} MB) -> {args.out}"
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
