"""Evaluation throughput: batched distributed evaluation vs a one-sample-at-a-time loop on the same data.

Three runs of the real evaluation path (``cluster.eval_run.run_eval``: shard loader, backbone generation
seeded per key, features -> MMM-21 joints, APE/AVE sums, all-reduce, rank 0 writes the files):

- ``loop``: one process, batches of 1 (the original ``eval.py`` design: one pair after another);
- ``batched``: one process, batches of ``--batch-size``;
- ``distributed``: ``--ranks`` gloo processes, batches of ``--batch-size``.

Throughput = evaluated samples / the slowest rank's evaluation wall time (loading, generation, joints,
metrics; process start-up and model loading excluded, the same for all three). Reported: median samples/s
over ``--repeats``, the ratios to the loop (also per repeat: runs side by side share the machine's load), and
the largest difference between the loop's metrics and the distributed run's (they must agree to 1e-6
relative, else the script fails; the model runs in float32 on batches of different composition). The load
average and the fraction of idle CPU just before and after are recorded: another process on a 2-core machine
takes a core from the 2-rank run first.

    python bench/bench_eval.py                                  # synthetic shards + tiny TEACH
    python bench/bench_eval.py --preset paper                   # the paper-size TEACH (slower)
    python bench/bench_eval.py --shards DIR --checkpoint runs/x/model.safetensors

Without ``--shards`` the data are the test helpers' synthetic shards (plausible motions, hash text
embeddings) and the model a randomly initialised backbone with the shards' statistics: the numbers measure
the evaluator, not a trained model. Writes bench/results/eval.json and prints a one-line summary.

``--stages`` adds a per-stage breakdown (ms per sample of the evaluating thread's CPU time, so other load on
the machine inflates it less than wall time) of one more loop and one more batched run in this process:
loading (shards -> collated batch), reference (features of the reference), generation (the backbone; then
the stitching and re-encoding of the generated actions), joints (features -> MMM-21, reference and
generated), metrics (APE/AVE sums) and the rest of the per-batch bookkeeping.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

from actiongpt.config import from_dict, to_dict  # noqa: E402
from actiongpt.metrics import MAIN_KEYS  # noqa: E402
from cluster.dist_env import RANK_ENV_VARS, free_port  # noqa: E402
from cluster.eval_config import EvalConfig  # noqa: E402

AGREE_REL = 1e-6  # float32 generation on batches of different composition: ~1e-8 relative in practice


def _worker(rank: int, world: int, port: int, cfg: dict) -> None:
    from tests.dist_helpers.eval_toy import join_local_job

    join_local_job(rank, world, port)
    from cluster.eval_run import run_eval

    run_eval(from_dict(EvalConfig, cfg))


def _run(cfg: EvalConfig, ranks: int) -> dict:
    """One evaluation; returns its metrics.json."""
    if ranks == 1:
        from cluster.eval_run import run_eval

        for k in RANK_ENV_VARS:  # a single process: no leftover rank layout from an earlier run
            os.environ.pop(k, None)
        torch.set_num_threads(1)
        run_eval(cfg)
    else:
        mp.spawn(_worker, args=(ranks, free_port(), to_dict(cfg)), nprocs=ranks, join=True)
    return json.loads((Path(cfg.out_dir) / "metrics.json").read_text())


STAGES = (
    "loading",
    "reference",
    "generation: backbone",
    "generation: stitch + re-encode",
    "joints",
    "metrics",
)


@contextlib.contextmanager
def _stage_timer() -> Iterator[dict[str, float]]:
    """Thread CPU seconds per stage of ``Evaluator.run`` (see the module docstring), by wrapping the
    functions each stage calls; restored on exit."""
    import actiongpt.metrics as metrics
    import actiongpt.models.sequence as sequence
    import cluster.eval_model as eval_model
    import cluster.evaluator as evaluator

    acc: dict[str, float] = dict.fromkeys((*STAGES, "other", "run", "add_batch", "samples"), 0.0)
    patched: list[tuple[object, str, object]] = []

    def wrap(owner: object, name: str, stage: str) -> None:
        fn = getattr(owner, name)

        def timed(*args: object, **kw: object) -> object:
            t0 = time.thread_time()
            try:
                return fn(*args, **kw)
            finally:
                acc[stage] += time.thread_time() - t0

        patched.append((owner, name, fn))
        setattr(owner, name, timed)

    wrap(evaluator.Evaluator, "run", "run")
    wrap(evaluator.Evaluator, "add_batch", "add_batch")
    wrap(evaluator, "reference_features", "reference")
    wrap(evaluator.Evaluator, "joints", "joints")
    wrap(metrics.MetricSums, "update", "metrics")
    wrap(eval_model, "sequence_features", "generation: stitch + re-encode")
    wrap(sequence, "generate_sequence_features", "generation: backbone")
    wrap(eval_model, "generate_features", "generation: backbone")
    try:
        yield acc
    finally:
        for owner, name, fn in reversed(patched):
            setattr(owner, name, fn)
        # nested stages: the backbone runs inside sequence_features; the rest of add_batch is "other"
        if acc["generation: stitch + re-encode"]:
            acc["generation: stitch + re-encode"] -= acc["generation: backbone"]
        acc["loading"] = acc["run"] - acc["add_batch"]
        acc["other"] = acc["add_batch"] - sum(acc[k] for k in STAGES if k != "loading")


def _stages(cfg: EvalConfig) -> dict[str, float]:
    """Per-stage ms per sample of one more evaluation in this process (thread CPU time)."""
    from cluster.eval_run import run_eval

    for k in RANK_ENV_VARS:
        os.environ.pop(k, None)
    with _stage_timer() as acc:
        result = run_eval(cfg)
    assert result is not None
    n = len(result.samples)
    out = {k: 1000 * acc[k] / n for k in (*STAGES, "other")}
    out["total"] = 1000 * acc["run"] / n
    return out


def _cpu_idle(seconds: float = 1.0) -> float | None:
    """Fraction of all CPUs idle over ``seconds`` (Linux /proc/stat; None elsewhere): how quiet the machine
    is before the runs (other processes take cores from the 2-rank run first)."""

    def read() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:9]]
        return values[3] + values[4], sum(values)

    try:
        idle0, total0 = read()
        time.sleep(seconds)
        idle1, total1 = read()
    except (OSError, ValueError, IndexError):
        return None
    return (idle1 - idle0) / max(total1 - total0, 1)


def _max_rel(a: dict, b: dict) -> float:
    return max(abs(a[k] - b[k]) / max(abs(a[k]), 1e-12) for k in MAIN_KEYS)


def _max_sample_diff(dir_a: Path, dir_b: Path) -> float:
    a = json.loads((dir_a / "samplewise_error_values.json").read_text())
    b = json.loads((dir_b / "samplewise_error_values.json").read_text())
    if sorted(a) != sorted(b):
        raise AssertionError("the runs evaluated different samples")
    return max(abs(a[k][m] - b[k][m]) for k in a for m in ("APE_root", "APE_traj"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", help="shards folder (default: build synthetic shards)")
    ap.add_argument("--checkpoint", help="exported model / checkpoint / run dir (default: a random backbone)")
    ap.add_argument("--model", default="teach", choices=["teach", "temos", "motionclip"])  # registry names
    ap.add_argument("--preset", default="tiny", choices=["tiny", "paper"])
    ap.add_argument("--split", default="val")
    ap.add_argument("--n", type=int, default=256, help="synthetic validation samples")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stages", action="store_true", help="add a per-stage breakdown (see the docstring)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "eval.json"))
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    load_start, idle_start = os.getloadavg(), _cpu_idle()

    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp_s:
        tmp = Path(tmp_s)
        if args.shards:
            shards = Path(args.shards)
        else:
            from actiongpt.models.registry import backbone
            from tests.dist_helpers.eval_toy import build_eval_shards

            pairs = backbone(args.model).pairs
            shards = build_eval_shards(tmp / "data", n_val=args.n, n_train=32, pairs=pairs)
        if args.checkpoint:
            checkpoint = Path(args.checkpoint)
        else:
            from tests.dist_helpers.eval_toy import export_tiny_model

            checkpoint = export_tiny_model(shards, tmp / "model.safetensors", args.model, preset=args.preset)
        base = {
            "checkpoint": str(checkpoint),
            "shards_dir": str(shards),
            "split": args.split,
            "renders": 0,
            "progress": False,
            "backend": "gloo",
            "device": "cpu",
        }
        runs = {
            "loop": (EvalConfig(**base, batch_size=1, bucket_batches=0, out_dir=str(tmp / "loop")), 1),
            "batched": (EvalConfig(**base, batch_size=args.batch_size, out_dir=str(tmp / "batched")), 1),
            "distributed": (
                EvalConfig(**base, batch_size=args.batch_size, out_dir=str(tmp / "dist")),
                args.ranks,
            ),
        }
        rates: dict[str, list[float]] = {name: [] for name in runs}
        metrics: dict[str, dict] = {}
        for rep in range(args.repeats):
            for name, (cfg, ranks) in runs.items():
                t0 = time.perf_counter()
                m = _run(cfg, ranks)
                rates[name].append(m["samples_per_s"])
                metrics[name] = m
                print(
                    f"[{rep + 1}/{args.repeats}] {name:11s} {m['samples_per_s']:8.1f} samples/s "
                    f"({m['num_sequences']} samples, {ranks} rank(s), {time.perf_counter() - t0:.1f}s with "
                    "start-up)",
                    file=sys.stderr,
                    flush=True,
                )
        stages = {name: _stages(runs[name][0]) for name in ("loop", "batched")} if args.stages else None
        n = metrics["loop"]["num_sequences"]
        med = {name: statistics.median(v) for name, v in rates.items()}
        result = {
            "benchmark": "eval",
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "data": "synthetic shards (tests.dist_helpers.eval_toy)" if not args.shards else str(shards),
            "model": args.model if not args.checkpoint else metrics["loop"]["meta"]["model"],
            "preset": args.preset if not args.checkpoint else metrics["loop"]["meta"].get("preset"),
            "samples": n,
            "ranks": args.ranks,
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "samples_per_s": {name: {"median": med[name], "all": rates[name]} for name in runs},
            "ratio_distributed_vs_loop": med["distributed"] / med["loop"],
            # the same ratio within each repeat (runs side by side share the machine's load at that moment)
            "paired_ratios_distributed_vs_loop": [
                d / lp for d, lp in zip(rates["distributed"], rates["loop"])
            ],
            "paired_ratios_batched_vs_loop": [b / lp for b, lp in zip(rates["batched"], rates["loop"])],
            "ratio_batched_vs_loop": med["batched"] / med["loop"],
            "ratio_distributed_vs_batched": med["distributed"] / med["batched"],
            "max_rel_metric_diff_loop_vs_distributed": _max_rel(
                metrics["loop"]["metrics"], metrics["distributed"]["metrics"]
            ),
            "max_rel_metric_diff_batched_vs_distributed": _max_rel(
                metrics["batched"]["metrics"], metrics["distributed"]["metrics"]
            ),
            "max_abs_sample_ape_diff_loop_vs_distributed": _max_sample_diff(tmp / "loop", tmp / "dist"),
            "metrics_distributed": {k: metrics["distributed"]["metrics"][k] for k in MAIN_KEYS},
            "rank_seconds_distributed_last": metrics["distributed"].get("rank_seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "torch": torch.__version__,
                "load_avg_at_start": load_start,
                "cpu_idle_fraction_before": idle_start,
                "load_avg": os.getloadavg(),
                "cpu_idle_fraction_after": _cpu_idle(),
            },
        }
        if stages is not None:
            result["stages_cpu_ms_per_sample"] = stages
        for key in ("max_rel_metric_diff_loop_vs_distributed", "max_rel_metric_diff_batched_vs_distributed"):
            if not result[key] <= AGREE_REL:
                raise AssertionError(f"{key} = {result[key]:.3g} > {AGREE_REL}: the runs disagree")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if stages is not None:
        for name, st in stages.items():
            print(f"{name:8s} " + ", ".join(f"{k} {v:.3f}" for k, v in st.items()) + " ms/sample (CPU)")
    print(
        f"eval {result['model']}/{result['preset']} {n} samples: loop {med['loop']:.1f}/s, batched "
        f"{med['batched']:.1f}/s, {args.ranks} ranks {med['distributed']:.1f}/s -> "
        f"{result['ratio_distributed_vs_loop']:.1f}x vs loop; metrics agree to "
        f"{result['max_rel_metric_diff_loop_vs_distributed']:.1e} (rel) -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
