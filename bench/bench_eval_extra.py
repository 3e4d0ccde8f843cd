"""Cost of the evaluator-based metrics: evaluation time per sample with R-precision, FID, diversity,
MM-Dist and physics (``metrics`` all, an evaluator given) against APE/AVE alone, side by side on the same
shards and model, and the evaluator's training time.

1. Train the tiny text-motion evaluator with the real trainer (``torchrun --nproc_per_node=--ranks -m
   launch.train -c configs/train/evaluator.yaml -c configs/train/tiny.yaml``) for ``--evaluator-steps`` on
   ``--evaluator-shards``: wall seconds of the launch, and the trainer's own median step time.
2. Evaluate ``--checkpoint`` on ``--split`` of ``--shards`` with ``cluster.eval_run.run_eval`` (one process),
   alternating ``ape`` (APE/AVE alone) and ``all`` (plus the evaluator metrics) ``--repeats`` times: wall
   seconds of the whole call (model and evaluator loading included), per sample, and the ratio per repeat
   (runs side by side share the machine's load). The extra part's own seconds (the embeddings in the
   generation pass, the reference pass, the gather and scoring) come from the evaluation's metrics.json.

    python bench/bench_eval_extra.py --shards data/embedded/shards/pairs-minilm \
        --evaluator-shards data/embedded/shards/seg-minilm

Without ``--checkpoint`` the generator is a randomly initialised tiny TEACH with the shards' statistics (its
generation is cheap, so the evaluator's share looks larger than with a paper-size model). The evaluator is
trained on the embedded dataset. Writes bench/results/eval_extra.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _train_evaluator(shards: Path, out: Path, steps: int, ranks: int) -> dict:
    from launch.demo.runner import child_env, torchrun_prefix

    cmd = [
        *torchrun_prefix(ranks), "-m", "launch.train", "-c", "configs/train/evaluator.yaml",
        "-c", "configs/train/tiny.yaml", f"shards_dir={shards}", f"run_dir={out}", f"max_steps={steps}",
        "batch_size=16", "val_every=0", f"ckpt_every={steps}", "progress=false", "tensorboard=false",
        "num_workers=0",
    ]  # fmt: skip
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env=child_env(cmd), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0 or not (out / "model.safetensors").is_file():
        sys.exit(f"training the evaluator failed ({res.returncode}):\n{res.stderr[-3000:]}")
    steps_s = [
        json.loads(line)["step_time_s"]
        for line in (out / "metrics.jsonl").read_text().splitlines()
        if '"kind": "train"' in line
    ]
    return {
        "steps": steps,
        "ranks": ranks,
        "wall_s": wall,
        "median_step_s": statistics.median(steps_s[1:] or steps_s),
        "train_s": sum(steps_s),
    }


def _evaluate(cfg: dict, extra: bool) -> dict:
    from actiongpt.config import from_dict
    from cluster.eval_config import EvalConfig
    from cluster.eval_run import run_eval

    if not extra:
        cfg = {**cfg, "evaluator": "", "metrics": None}
    t0 = time.perf_counter()
    result = run_eval(from_dict(EvalConfig, cfg))
    wall = time.perf_counter() - t0
    assert result is not None
    meta = json.loads((Path(cfg["out_dir"]) / "metrics.json").read_text())["meta"]
    n = result.num_sequences
    return {
        "samples": n,
        "wall_s": wall,
        "ms_per_sample": 1000 * wall / n,
        "generation_loop_s": result.seconds,
        "extra_s": (meta.get("extra_metrics") or {}).get("seconds", 0.0),
        "metrics": {
            k: result.metrics[k]
            for k in ("APE_mean_joints", "R_precision_top1", "FID")
            if k in result.metrics
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", default="data/embedded/shards/pairs-minilm", help="evaluated shards")
    ap.add_argument(
        "--evaluator-shards", default=None, help="shards the evaluator trains on (default --shards)"
    )
    ap.add_argument("--checkpoint", default=None, help="the generator (default: a random tiny TEACH)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--evaluator-steps", type=int, default=300)
    ap.add_argument("--ranks", type=int, default=2, help="ranks of the evaluator training")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", default=str(ROOT / "bench/results/eval_extra.json"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    shards = Path(args.shards)
    ev_shards = Path(args.evaluator_shards or args.shards)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        training = _train_evaluator(ev_shards, tmp / "evaluator", args.evaluator_steps, args.ranks)
        checkpoint = args.checkpoint
        if checkpoint is None:
            from tests.dist_helpers.eval_toy import export_tiny_model

            checkpoint = str(export_tiny_model(shards, tmp / "teach.pt", "teach", preset="tiny"))
        cfg = {
            "checkpoint": checkpoint,
            "shards_dir": str(shards),
            "split": args.split,
            "evaluator": str(tmp / "evaluator" / "model.safetensors"),
            "batch_size": args.batch_size,
            "renders": 0,
            "progress": False,
            "backend": "gloo",
            "out_dir": str(tmp / "eval"),
        }
        runs: dict[str, list[dict]] = {"ape": [], "all": []}
        for _ in range(args.repeats):
            for name in ("ape", "all"):
                runs[name].append(_evaluate(cfg, extra=name == "all"))
    ratios = [a["wall_s"] / b["wall_s"] for a, b in zip(runs["all"], runs["ape"])]
    med = {k: statistics.median(r["ms_per_sample"] for r in v) for k, v in runs.items()}
    report = {
        "shards": str(shards),
        "evaluator_shards": str(ev_shards),
        "split": args.split,
        "generator": args.checkpoint or "random tiny TEACH",
        "evaluator_training": training,
        "eval_ms_per_sample_median": med,
        "ratio_all_over_ape_per_repeat": ratios,
        "ratio_all_over_ape_median": statistics.median(ratios),
        "runs": runs,
        "load_avg_start": load_start,
        "load_avg_end": os.getloadavg(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "note": "the evaluator is trained on the embedded dataset; numbers compare methods here only",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    n = runs["ape"][0]["samples"]
    print(
        f"{args.split}: {n} samples; APE/AVE alone {med['ape']:.1f} ms/sample, with R-precision/FID/"
        f"diversity/MM-Dist/physics {med['all']:.1f} ms/sample (x{statistics.median(ratios):.2f}, per repeat "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + f"); evaluator training {training['steps']} steps on {training['ranks']} ranks: "
        f"{training['wall_s']:.1f} s wall ({training['median_step_s'] * 1000:.0f} ms/step); load average "
        f"{load_start[0]:.1f} -> {os.getloadavg()[0]:.1f} -> {args.out}"
    )


if __name__ == "__main__":
    main()
