"""Training-runtime benchmark: scaling 1 -> 2 ranks, data wait, checkpoint cost, Action-GPT vs baseline.

Every number comes from the real entry point (``torchrun -m launch.train``: shard loader, backbone, engine,
trainer) and is read from the run's ``metrics.jsonl``; per-step figures are medians over the steps after
``--warmup``. Three parts:

1. **scaling**: samples/s for 1 and 2 ranks at a fixed global batch (1 x B and 2 x B/2), scaling
   efficiency = samples/s(2) / (2 x samples/s(1)), and the data-wait share of the step time;
2. **checkpoint**: save and load seconds and bytes at the paper configuration (DDP + DCP and DeepSpeed
   ZeRO-2, 2 ranks): one launch trains ``--ckpt-steps`` steps and saves, a second launch resumes (load) and
   saves again;
3. **agpt_vs_baseline**: step time with the aggregated description embeddings (Action-GPT) vs the raw-label
   embedding (the baseline) for each backbone, alternated in the same run (the paper reports 1.13-1.35x
   with on-the-fly text encoding; with precomputed embeddings the only extra cost is the longer text
   sequence the backbone's own text encoder attends over), and for TEMOS/TEACH the same with the compact
   aggregators (``--aggregators``: one or k sentence-level tokens instead of ~130 per-position ones).

Data: ``--shards-root`` with ``pairs-*/`` and ``seg-*/`` shard folders, by default the embedded dataset's
``data/embedded/shards/{pairs,seg}-minilm`` when built, else synthetic shards made here with realistic sizes
(MiniLM width 384; descriptions ~110 tokens, labels ~5; motions 1-8 s at 30 fps) and a hash embedder.

    python bench/bench_train.py                       # all parts, writes bench/results/train.json
    python bench/bench_train.py --parts scaling --steps 40
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actiongpt.models.registry import backbone  # noqa: E402

# the backbones benchmarked, with the shard mode each trains on (from its registry record)
MODELS = {m: backbone(m).shard_mode for m in ("temos", "teach", "motionclip")}
CONFIG = {m: f"configs/train/{m}.yaml" for m in MODELS}


# ------------------------------------------------------------------------------------------------ data
def synthetic_shards(root: Path, n_train: int, seed: int = 0) -> dict[str, Path]:
    """Shards with realistic text/motion sizes (see the module docstring)."""
    import numpy as np

    from actiongpt.text.embed_stage import run_embed_stage
    from shards.source import ListSource, SourceSample
    from tests.dist_helpers import shards_data as S

    rng = np.random.default_rng(seed)
    labels = S.LABELS
    words = ["the", "person", "stands", "upright", "then", "slowly", "moves", "left", "right", "arm", "leg",
             "forward", "backward", "while", "bending", "knees", "raising", "lowering", "head", "torso",
             "shoulders", "hips", "and", "keeps", "balance"]  # fmt: skip
    # ~110-token descriptions (k = 4 per label), like the LLM descriptions of the paper.
    desc = {
        lab: [" ".join(rng.choice(words, size=int(rng.integers(95, 125)))) for _ in range(4)]
        for lab in labels
    }
    store_dir = root / "emb"
    embedder = S.HashEmbedder(token_dim=384, pooled_dim=384)
    embedder.info = dataclasses.replace(embedder.info, max_tokens=256)  # MiniLM's limit (the stand-in: 64)
    run_embed_stage(desc, store_dir, embedder, chunk_size=8, progress=False)
    from actiongpt.text.embedding_store import EmbeddingStore

    store = EmbeddingStore(store_dir)
    out = {}
    for mode in ("pairs", "seg"):
        samples = []
        for split, n in (("train", n_train), ("val", max(16, n_train // 4))):
            items = []
            for i in range(n):
                if mode == "pairs":
                    lengths = [
                        int(rng.integers(30, 240)),
                        int(rng.integers(0, 15)),
                        int(rng.integers(30, 240)),
                    ]
                    labs = [str(rng.choice(labels)), str(rng.choice(labels))]
                else:
                    lengths = [int(rng.integers(30, 240))]
                    labs = [str(rng.choice(labels))]
                motion = rng.standard_normal((sum(lengths), 135)).astype(np.float32) * 0.5
                items.append(
                    SourceSample(
                        f"b{i:05d}-{split}", motion, labs, lengths, {"source": "synthetic", "fps": 30.0}
                    )
                )
            samples.append((split, ListSource(items, split, mode)))
        S.build(root / mode, store, dict(samples), shard_multiple=4)
        out[mode] = root / mode
    return out


def find_shards(arg: str | None, workdir: Path, n_train: int) -> tuple[dict[str, Path], str]:
    if arg:
        base = Path(arg)
        found = {m: next(iter(sorted(base.glob(f"{m}-*"))), None) for m in ("pairs", "seg")}
        if None in found.values():
            raise SystemExit(f"{base}: expected pairs-*/ and seg-*/ shard folders")
        from shards.manifest import Manifest

        embedder = Manifest.load(found["pairs"]).embedder.get("name")  # type: ignore[arg-type]
        return found, f"{base} ({embedder})"  # type: ignore[return-value]
    emb = ROOT / "data" / "embedded" / "shards"
    if all((emb / f"{m}-minilm" / "manifest.json").is_file() for m in ("pairs", "seg")):
        return {m: emb / f"{m}-minilm" for m in ("pairs", "seg")}, "embedded dataset (MiniLM)"
    return synthetic_shards(workdir / "shards", n_train), "synthetic (hash embedder, MiniLM-sized)"


# ------------------------------------------------------------------------------------------------ runs
def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC_"))}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        e.pop(k, None)
    e.update(
        OMP_NUM_THREADS="1",
        DS_ACCELERATOR="cpu",
        PYTHONPATH=str(ROOT),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    return e


def train_run(
    ranks: int, model: str, shards: Path, run_dir: Path, *overrides: str, omp: int | None = None
) -> None:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={ranks}",
        "-m",
        "launch.train",
        "-c",
        CONFIG[model],
        f"shards_dir={shards}",
        f"run_dir={run_dir}",
        "progress=false",
        "tensorboard=false",
        "num_workers=0",
        "val_every=0",
        *overrides,
    ]
    e = env()
    if omp:
        e["OMP_NUM_THREADS"] = str(omp)
    res = subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True, timeout=3600)
    if res.returncode != 0:
        raise RuntimeError(
            f"run failed: {' '.join(cmd)}\n" + "\n".join((res.stdout + res.stderr).splitlines()[-30:])
        )


def records(run_dir: Path, kind: str = "train") -> list[dict[str, Any]]:
    from cluster.metrics_log import read_metrics

    return [r for _, r in sorted(read_metrics(run_dir / "metrics.jsonl", kind).items())]


def events(run_dir: Path, name: str) -> list[dict[str, Any]]:
    out = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("kind") == "event" and rec.get("event") == name:
            out.append(rec)
    return out


def med(recs: list[dict[str, Any]], key: str, warmup: int) -> float:
    vals = [r[key] for r in recs[warmup:] if r.get(key) is not None]
    return statistics.median(vals)


# ----------------------------------------------------------------------------------------------- parts
def part_scaling(a: argparse.Namespace, shards: dict[str, Path], work: Path) -> dict[str, Any]:
    rows = {}
    for ranks in (1, 2):
        per_rank = a.global_batch // ranks
        sps, wait, step = [], [], []
        for rep in range(a.repeats):
            run = work / f"scaling-{ranks}-{rep}"
            # One CPU thread per rank: a rank stands for one device. (Two OpenMP threads in one process were
            # ~6x slower than one on the shared 2-core machine: spinning threads fight other users' load.)
            train_run(
                ranks,
                a.scaling_model,
                shards[MODELS[a.scaling_model]],
                run,
                f"preset={a.scaling_preset}",
                f"batch_size={per_rank}",
                f"max_steps={a.steps}",
                "ckpt_every=100000",
                "export_on_finish=false",
                omp=a.threads_per_rank,
            )
            recs = records(run)
            sps.append(med(recs, "samples_per_s", a.warmup))
            wait.append(med(recs, "data_wait_pct", a.warmup))
            step.append(med(recs, "step_time_s", a.warmup))
        rows[f"{ranks}_ranks"] = {
            "batch_per_rank": per_rank,
            "samples_per_s": round(statistics.median(sps), 2),
            "samples_per_s_per_device": round(statistics.median(sps) / ranks, 2),
            "data_wait_pct": round(statistics.median(wait), 2),
            "step_time_s": round(statistics.median(step), 4),
            "samples_per_s_all": sps,
        }
    eff = rows["2_ranks"]["samples_per_s"] / (2 * rows["1_ranks"]["samples_per_s"])
    return {
        "model": a.scaling_model,
        "preset": a.scaling_preset,
        "global_batch": a.global_batch,
        "steps": a.steps,
        "threads_per_rank": a.threads_per_rank,
        **rows,
        "scaling_efficiency": round(eff, 3),
    }


def part_checkpoint(a: argparse.Namespace, shards: dict[str, Path], work: Path) -> dict[str, Any]:
    out = {}
    for engine in ("ddp", "deepspeed"):
        run = work / f"ckpt-{engine}"
        common = [
            f"engine={engine}",
            "zero_stage=2",
            f"preset={a.ckpt_preset}",
            f"run_steps={a.ckpt_steps}",
            "ckpt_every=100000",
            "export_on_finish=false",
            "batch_size=4",
        ]
        train_run(2, a.ckpt_model, shards[MODELS[a.ckpt_model]], run, *common, omp=1)
        train_run(2, a.ckpt_model, shards[MODELS[a.ckpt_model]], run, *common, omp=1)
        saves = events(run, "checkpoint")
        loads = events(run, "resume")
        out[engine] = {
            "save_seconds": [s["save_seconds"] for s in saves],
            # of which: sizes and sha256 of every file for the marker (rank 0); and checking them on resume
            "digest_seconds": [s.get("digest_seconds") for s in saves],
            "verify_seconds": [x.get("verify_seconds") for x in loads],
            "bytes": saves[-1]["bytes"],
            "load_seconds": [x["load_seconds"] for x in loads],
            "megabytes": round(saves[-1]["bytes"] / 2**20, 2),
        }
    from cluster.checkpoint import latest

    info = latest(work / "ckpt-ddp" / "checkpoints")
    n_params = None
    if info is not None:
        from cluster.export import model_state_from_checkpoint

        sd = model_state_from_checkpoint(info)
        n_params = int(
            sum(t.numel() for k, t in sd.items() if not k.startswith("feature_") and t.is_floating_point())
        )
    return {"model": a.ckpt_model, "preset": a.ckpt_preset, "ranks": 2, "parameters": n_params, **out}


def _step_flops(net: Any, loaders: dict[str, Any], n: int) -> dict[str, float]:
    """Mean forward + backward FLOPs per batch over the first ``n`` batches of each text variant
    (``torch.utils.flop_counter``: matmuls, convolutions and attention; elementwise ops are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    out = {}
    for src, loader in loaders.items():
        loader.set_epoch(0)
        total, count = 0, 0
        for batch in loader:
            counter = FlopCounterMode(display=False)
            with counter:
                net(batch)["loss"].backward()
            net.zero_grad(set_to_none=True)
            total += counter.get_total_flops()
            count += 1
            if count == n:
                break
        out[src] = total / max(count, 1)
    return out


def part_agpt(a: argparse.Namespace, shards: dict[str, Path], work: Path) -> dict[str, Any]:
    """Action-GPT vs baseline step time, measured side by side in one process: the text variants of the
    *same* batches (same seed, so the same motions; only the text differs) take turns step by step, in an
    order rotated every step, so machine-load drift hits all equally. A step = load the batch + forward +
    backward + AdamW step. Variants: the raw label (baseline), the original per-position aggregate
    (Action-GPT) and, for the token-text backbones, each of ``--aggregators`` (compact Action-GPT)."""
    import torch

    from actiongpt import config as cfglib
    from cluster import components
    from cluster.train_config import TrainConfig
    from shards.loader import ShardLoader

    torch.set_num_threads(a.threads_per_rank)
    out: dict[str, Any] = {}
    for model in a.models:
        token_text = backbone(model).text == "tokens"
        desc = ["text_source=descriptions", *([f"k={a.k}"] if a.k else [])]
        variants = {"label": ["text_source=label"], "descriptions": desc}
        if token_text:
            variants |= {agg: [*desc, f"aggregator={agg}"] for agg in a.aggregators}
        names = list(variants)
        base_overrides = [f"shards_dir={shards[MODELS[model]]}", f"preset={a.agpt_preset}", "batch_size=4",
                          "num_workers=0"]  # fmt: skip
        cfg = cfglib.load(TrainConfig, [ROOT / CONFIG[model]], base_overrides).resolved()
        manifest = components.load_manifest(cfg)
        torch.manual_seed(0)
        net = components.build_model(cfg, manifest)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
        loaders = {}
        for name, extra in variants.items():
            v_cfg = cfglib.load(TrainConfig, [ROOT / CONFIG[model]], [*base_overrides, *extra])
            loaders[name] = ShardLoader(components.loader_config(v_cfg.resolved(), cfg.train_split, True),
                                        rank=0, world_size=1, manifest=manifest)  # fmt: skip
        iters = {name: iter(loaders[name]) for name in names}
        times: dict[str, list[float]] = {name: [] for name in names}
        waits: dict[str, list[float]] = {name: [] for name in names}
        tokens: dict[str, list[int]] = {name: [] for name in names}
        for i in range(a.steps):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                t0 = time.perf_counter()
                batch = next(iters[name], None)
                if batch is None:  # epoch end: every variant rolls over at the same step
                    loaders[name].set_epoch(loaders[name].epoch + 1)
                    iters[name] = iter(loaders[name])
                    batch = next(iters[name])
                t1 = time.perf_counter()
                loss = net(batch)["loss"]
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                t2 = time.perf_counter()
                if i >= a.warmup:
                    times[name].append(t2 - t0)
                    waits[name].append(t1 - t0)
                    mask = batch.get("text_mask", batch.get("text_mask_0"))
                    tokens[name].append(int(mask.shape[1]))
        step = {name: statistics.median(times[name]) for name in names}
        # step i of every variant trains on the same motions: the median of the per-step ratios cancels the
        # batch-to-batch variation (motion lengths) that a ratio of medians keeps
        ratio = {
            name: statistics.median(t / b for t, b in zip(times[name], times["label"], strict=True))
            for name in names
        }
        flops = _step_flops(net, loaders, a.flop_batches)
        out[model] = {
            "step_time_agpt_s": round(step["descriptions"], 4),
            "step_time_baseline_s": round(step["label"], 4),
            "ratio": round(ratio["descriptions"], 3),
            "data_time_agpt_s": round(statistics.median(waits["descriptions"]), 4),
            "data_time_baseline_s": round(statistics.median(waits["label"]), 4),
            "text_tokens_agpt": round(statistics.mean(tokens["descriptions"]), 1),
            "text_tokens_baseline": round(statistics.mean(tokens["label"]), 1),
            "uses_token_text": token_text,
            # forward + backward arithmetic of the same batches: if the step-time ratio matches this ratio,
            # the whole extra time is the backbone's own compute on the longer text, not the pipeline
            "gflop_per_step_agpt": round(flops["descriptions"] / 1e9, 3),
            "gflop_per_step_baseline": round(flops["label"] / 1e9, 3),
            "flop_ratio": round(flops["descriptions"] / flops["label"], 3),
            # Action-GPT with a compact aggregator (same k), against the same baseline steps
            "compact": {
                agg: {
                    "step_time_s": round(step[agg], 4),
                    "ratio": round(ratio[agg], 3),
                    "text_tokens": round(statistics.mean(tokens[agg]), 1),
                    "data_time_s": round(statistics.median(waits[agg]), 4),
                    "gflop_per_step": round(flops[agg] / 1e9, 3),
                    "flop_ratio": round(flops[agg] / flops["label"], 3),
                }
                for agg in names[2:]
            },
        }
    return {
        "preset": a.agpt_preset,
        "steps_per_variant": a.steps - a.warmup,
        "method": "one process, same batches, variants take turns step by step (rotated order); ratio = "
        "median over steps of variant / baseline time of the same step",
        "k": a.k,
        "paper_ratio_range": [1.13, 1.35],
        "target_ratio": 1.02,
        **out,
    }


def summary_line(result: dict[str, Any], measured: set[str], models: list[str], data: str, out: Path) -> str:
    """One line of what this run measured; parts kept in ``out`` from an earlier run are named, not shown
    (their figures are not this run's)."""
    parts = []
    if "scaling" in measured:
        s = result["scaling"]
        parts.append(
            f"scaling {s['1_ranks']['samples_per_s']}->{s['2_ranks']['samples_per_s']} samples/s "
            f"(eff {s['scaling_efficiency']}, data wait {s['2_ranks']['data_wait_pct']}%)"
        )
    if "checkpoint" in measured:
        c = result["checkpoint"]
        parts.append(
            "ckpt "
            + ", ".join(
                f"{e} save {statistics.median(c[e]['save_seconds']):.2f}s "
                f"load {statistics.median(c[e]['load_seconds']):.2f}s {c[e]['megabytes']} MB"
                for e in ("ddp", "deepspeed")
            )
        )
    if "agpt_vs_baseline" in measured:
        g = result["agpt_vs_baseline"]
        parts.append("agpt/baseline " + ", ".join(f"{m} {g[m]['ratio']}x" for m in models if m in g))
        compact = [
            f"{m} {agg} {v['ratio']}x" for m in models if m in g for agg, v in g[m].get("compact", {}).items()
        ]
        if compact:
            parts.append("compact/baseline " + ", ".join(compact))
    kept = [k for k in ("scaling", "checkpoint", "agpt_vs_baseline") if k in result and k not in measured]
    if kept:
        parts.append(f"not measured now, kept from an earlier run: {', '.join(kept)}")
    return f"bench_train ({data}): " + " | ".join(parts) + f" -> {out}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--parts",
        nargs="+",
        default=["scaling", "checkpoint", "agpt"],
        choices=["scaling", "checkpoint", "agpt"],
    )
    p.add_argument("--shards-root", help="folder with pairs-*/ and seg-*/ shard folders")
    p.add_argument("--train-samples", type=int, default=256, help="synthetic shards: training samples")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads-per-rank", type=int, default=1, help="OMP_NUM_THREADS of every rank")
    p.add_argument("--global-batch", type=int, default=16)
    p.add_argument("--scaling-model", default="teach", choices=sorted(MODELS))
    p.add_argument("--scaling-preset", default="tiny")
    p.add_argument("--ckpt-model", default="teach", choices=sorted(MODELS))
    p.add_argument("--ckpt-preset", default="paper")
    p.add_argument("--ckpt-steps", type=int, default=2)
    p.add_argument("--agpt-preset", default="paper")
    p.add_argument("--flop-batches", type=int, default=8, help="agpt: batches whose FLOPs are counted")
    p.add_argument("--k", type=int, default=4, help="agpt: descriptions per label (0: all the shards hold)")
    p.add_argument("--aggregators", nargs="*", default=["sentence_mean", "sentences"],
                   help="agpt: compact aggregators also timed for TEMOS/TEACH")  # fmt: skip
    p.add_argument("--models", nargs="+", default=sorted(MODELS), choices=sorted(MODELS))
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "train.json"))
    a = p.parse_args()

    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        work = Path(tmp)
        shards, data = find_shards(a.shards_root, work, a.train_samples)
        result: dict[str, Any] = {
            "benchmark": "train_runtime",
            "data": data,
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        }
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.is_file() and set(a.parts) != {"scaling", "checkpoint", "agpt"}:
            # A partial rerun updates its parts and keeps the others (each part records its own settings).
            previous = json.loads(out.read_text())
            commands = previous.pop("commands", None) or [previous.pop("command", None)]
            result = {**previous, **result, "commands": [*commands, result["command"]]}
            result.pop("command")
        plan = [("scaling", "scaling", part_scaling), ("checkpoint", "checkpoint", part_checkpoint),
                ("agpt", "agpt_vs_baseline", part_agpt)]  # fmt: skip
        for part, key, fn in plan:
            if part in a.parts:
                result[key] = fn(a, shards, work)
                result["wall_seconds"] = round(time.time() - t0, 1)
                out.write_text(json.dumps(result, indent=2) + "\n")  # partial results survive a later failure

    measured = {key for part, key, _ in plan if part in a.parts}
    print(summary_line(result, measured, a.models, data, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
