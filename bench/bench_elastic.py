"""Cost of elastic determinism: the global plan, micro-batching and per-sample randomness (issue 19).

Part ``step``: one process trains the same model on the same shards two ways, alternating step by step so
that both see the same machine load (paired per-step ratios):

- *per-rank*: today's loader plan (per-rank contiguous ranges), micro-batch mean losses, the process RNG;
- *elastic*: the global plan (``set_global_batch``), the step's global statistics and batch digest (two
  collectives on a one-rank gloo group), losses normalised over the global batch, keyed noise and dropout.

Both read with ``num_workers=0`` so the data path is inside the step time.

Part ``plan``: time and memory to build one rank's plan (epoch order + global batches + this rank's
micro-batches) from a synthetic manifest of ``--sizes`` samples in shards of ``--shard-samples`` (time: median
of ``--repeats`` builds; memory: the tracemalloc peak of one more build, traced separately because tracing
slows allocation down).

    python bench/bench_elastic.py                      # writes bench/results/elastic.json
    python bench/bench_elastic.py --parts plan --sizes 60000 2000000
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402


# ------------------------------------------------------------------------------------------------ plan
def plan_once(n: int, per_shard: int, args: argparse.Namespace, bucket: int) -> float:
    from shards.sampler import GlobalPlanSpec, epoch_order, rank_plan

    counts = [per_shard] * (n // per_shard)
    lengths = np.random.default_rng(0).integers(30, 240, n)
    t = time.perf_counter()
    order = epoch_order(counts, args.seed, 3, True, args.shuffle_buffer)
    spec = GlobalPlanSpec(args.global_batch, True, bucket)
    plan = rank_plan(np.arange(n), spec, args.world, args.world - 1, args.micro_steps, order, lengths=lengths)
    assert len(plan) == n // args.global_batch * args.micro_steps
    return time.perf_counter() - t


def part_plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for n in args.sizes:
        for bucket in (0, args.bucket):
            times = [plan_once(n, args.shard_samples, args, bucket) for _ in range(args.repeats)]
            tracemalloc.start()
            plan_once(n, args.shard_samples, args, bucket)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            row = {
                "samples": n,
                "bucket_batches": bucket,
                "seconds_median": round(statistics.median(times), 4),
                "peak_mb": round(peak / 2**20, 1),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------ step
class Side:
    """One way of training: its own loader, model copy and optimizer."""

    def __init__(self, name: str, loader: Any, model: Any, elastic: bool, accum: int, seed: int) -> None:
        import torch

        self.name, self.loader, self.model, self.elastic, self.accum = name, loader, model, elastic, accum
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
        self.it = iter(loader)
        self.step, self.seed, self.times = 0, seed, []

    def _next(self) -> Any:
        batch = next(self.it, None)
        if batch is None:
            self.it = iter(self.loader)
            batch = next(self.it)
        return batch

    def run_step(self) -> float:
        import torch
        import torch.distributed as dist

        from actiongpt.models import step_context
        from cluster.global_batch import digest, key_lanes

        t = time.perf_counter()
        micro = [self._next() for _ in range(self.accum)]
        if self.elastic:
            lanes = [key_lanes(b["keys"]) for b in micro]
            total = torch.tensor(
                [sum(len(b["keys"]) for b in micro), sum(a for a, _ in lanes), sum(b for _, b in lanes)]
                + [int(b["lengths"].sum()) for b in micro[:1]],
                dtype=torch.int64,
            )
            top = torch.tensor([max(int(b["lengths"].max()) for b in micro)], dtype=torch.int64)
            dist.all_reduce(total)
            dist.all_reduce(top, op=dist.ReduceOp.MAX)
            digest(int(total[1]), int(total[2]))
            frames = sum(int(b["lengths"].sum()) for b in micro)
            for b in micro:
                ctx = step_context.StepContext(
                    self.seed,
                    self.step + 1,
                    int(total[0]),
                    {"lengths": frames},
                    {"lengths": int(top[0])},
                    b["keys"],
                )
                with step_context.active(ctx):
                    self.model(b)["loss"].backward()
        else:
            for b in micro:
                (self.model(b)["loss"] / self.accum).backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.step += 1
        dt = time.perf_counter() - t
        self.times.append(dt)
        return dt


def part_step(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import torch
    import torch.distributed as dist

    from actiongpt.models.step_context import make_dropout_keyed
    from cluster.components import build_model
    from cluster.train_config import TrainConfig
    from shards.loader import LoaderConfig, ShardLoader
    from shards.manifest import Manifest

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_train import find_shards

    torch.set_num_threads(args.threads)
    shards, what = find_shards(args.shards_root, work, args.train_samples)
    root = shards["seg"]
    manifest = Manifest.load(root)
    dist.init_process_group("gloo", init_method=f"file://{work / 'pg'}", rank=0, world_size=1)
    cfg = TrainConfig(model=args.model, preset=args.preset, shards_dir=str(root)).resolved()
    torch.manual_seed(0)
    base = build_model(cfg, manifest)
    keyed = copy.deepcopy(base)
    n_keyed = make_dropout_keyed(keyed)
    lc = LoaderConfig(root=str(root), batch_size=args.micro_batch, num_workers=0, seed=0)
    today = ShardLoader(lc, rank=0, world_size=1, manifest=manifest)
    today.set_epoch(0)
    elastic = ShardLoader(lc, rank=0, world_size=1, manifest=manifest)
    elastic.set_global_batch(args.micro_batch * args.micro_steps, args.micro_steps)
    elastic.set_epoch(0)
    sides = [
        Side("per_rank", today, base.train(), False, args.micro_steps, 0),
        Side("elastic", elastic, keyed.train(), True, args.micro_steps, 0),
    ]
    ratios = []
    for i in range(args.warmup + args.steps):
        pair = {}
        for side in sides if i % 2 == 0 else sides[::-1]:  # alternate who goes first
            pair[side.name] = side.run_step()
        if i >= args.warmup:
            ratios.append(pair["elastic"] / pair["per_rank"])
    dist.destroy_process_group()
    out = {
        "shards": what,
        "model": f"{args.model}/{args.preset}",
        "keyed_dropout_modules": n_keyed,
        "micro_batch": args.micro_batch,
        "micro_steps": args.micro_steps,
        "steps": args.steps,
        "per_rank_step_s_median": round(statistics.median(sides[0].times[args.warmup :]), 5),
        "elastic_step_s_median": round(statistics.median(sides[1].times[args.warmup :]), 5),
        "ratio_median": round(statistics.median(ratios), 4),
        "ratio_p25_p75": [round(float(q), 4) for q in np.percentile(ratios, [25, 75])],
    }
    print(json.dumps(out), flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="+", default=["step", "plan"], choices=["step", "plan"])
    p.add_argument("--shards-root", help="folder with pairs-*/ and seg-*/ shard folders (default: synthetic)")
    p.add_argument("--train-samples", type=int, default=128, help="synthetic shards: training samples")
    p.add_argument("--model", default="temos")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--micro-batch", type=int, default=4)
    p.add_argument("--micro-steps", type=int, default=2)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sizes", type=int, nargs="+", default=[60_000, 2_000_000])
    p.add_argument("--shard-samples", type=int, default=1000)
    p.add_argument("--shuffle-buffer", type=int, default=1000)
    p.add_argument("--global-batch", type=int, default=64)
    p.add_argument("--world", type=int, default=8)
    p.add_argument("--bucket", type=int, default=50, help="plan: also time length bucketing (windows)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "elastic.json"))
    args = p.parse_args()
    result: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()},
        "args": vars(args),
    }
    with tempfile.TemporaryDirectory() as tmp:
        if "step" in args.parts:
            result["step"] = part_step(args, Path(tmp))
        if "plan" in args.parts:
            result["plan"] = part_plan(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
