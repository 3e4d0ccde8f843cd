"""``actiongpt eval``: APE/AVE of trained backbones on a split, on one process or many ranks.

    actiongpt eval run -c configs/eval/default.yaml checkpoint=runs/teach-agpt/model.safetensors
    torchrun --nproc_per_node=4 -m launch.cli eval run checkpoint=runs/teach-agpt text_source=label
    actiongpt eval run -c configs/eval/zeroshot.yaml checkpoint=...        # the zero-shot split
    actiongpt eval compare -c configs/eval/compare_table1.yaml            # Default vs Action-GPT per backbone
    actiongpt eval compare -c configs/eval/compare_k.yaml                 # the k = 1, 2, 4, 8 ablation
    actiongpt eval table runs/eval/a runs/eval/b                          # a table from existing results
    actiongpt eval run checkpoint=runs/teach-agpt evaluator=runs/evaluator   # + R-precision, FID...
    actiongpt eval evaluator evaluator=runs/evaluator shards_dir=data/embedded/shards/seg-minilm

``run`` writes ``metrics.json``, ``samplewise_error_values.json`` (per key: text, APE root and trajectory),
``table.md`` (Table 1's layout), ``config.yaml`` and ``renders/`` (generated vs reference GIFs and trajectory
plots) into ``out_dir``. Each sample's generation is seeded by (seed, key, sample index), so the numbers do
not depend on the number of ranks. ``compare`` evaluates each row (skipping rows already evaluated with the
same config) and prints one table.

With ``evaluator=<a model=evaluator checkpoint>`` (trained with ``actiongpt train -c
configs/train/evaluator.yaml``) ``run`` also reports R-precision top-1/2/3, FID, diversity, multimodality
(``num_samples`` >= 2), MM-Dist and the physics metrics (foot skating, floor penetration, floating, jerk),
with the reference motions as the first row, in ``extra_metrics.md``/``.json``; ``--metrics ape,physics``
picks groups. The evaluator is trained on the embedded dataset: its numbers compare methods here, they are
not HumanML3D numbers. ``evaluator`` prints the evaluator's own retrieval quality on reference motions.
Exit codes: 0 done; 2 user or configuration error.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from launch.cli import UserError
from launch.config_args import add_config_args, resolve

log = logging.getLogger("actiongpt.eval")

DEFAULT_CONFIG = "configs/eval/default.yaml"
DEFAULT_COMPARE = "configs/eval/compare_table1.yaml"


def _user_errors():
    from cluster.evaluator import EvalError
    from shards.format import ShardError
    from shards.sampler import PlanError

    return (EvalError, ShardError, PlanError)


def cmd_run(args: argparse.Namespace) -> int:
    from cluster.eval_config import EvalConfig
    from cluster.eval_run import run_eval

    cfg = resolve(EvalConfig, args)
    if args.out_dir:
        cfg.out_dir = args.out_dir
    if args.no_progress:
        cfg.progress = False
    if args.metrics:
        cfg.metrics = [m for m in args.metrics.split(",") if m]
    try:
        result = run_eval(cfg)
    except _user_errors() as exc:
        raise UserError(str(exc)) from exc
    if result is not None:
        out = result.out_dir
        print((out / "table.md").read_text().rstrip())
        extra = out / "extra_metrics.md"
        if extra.is_file():  # written by this run (metrics=retrieval/physics or an evaluator given)
            print("\n" + extra.read_text().rstrip())
        print(
            f"wrote {out}: {result.num_sequences} samples, "
            f"{result.world_size} rank(s), {result.samples_per_s:.1f} samples/s"
        )
    return 0


def cmd_evaluator(args: argparse.Namespace) -> int:
    import json

    from cluster.eval_config import EvalConfig
    from cluster.eval_retrieval import evaluator_quality, quality_table

    cfg = resolve(EvalConfig, args)
    splits = [s for s in args.splits.split(",") if s]
    try:
        scores = evaluator_quality(cfg, splits)
    except _user_errors() as exc:
        raise UserError(str(exc)) from exc
    if scores is not None:
        table = quality_table(scores)
        print(table)
        print(
            f"evaluator {cfg.evaluator}: retrieval on the reference motions (trained on the embedded "
            "dataset: not HumanML3D numbers)"
        )
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / "evaluator_quality.json").write_text(json.dumps(scores, indent=2, default=str) + "\n")
            (out / "evaluator_quality.md").write_text(table + "\n")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from cluster.eval_config import CompareConfig
    from cluster.eval_run import run_compare

    cfg = resolve(CompareConfig, args)
    if args.out_dir:
        cfg.out_dir = args.out_dir
    if args.no_reuse:
        cfg.reuse = False
    try:
        table = run_compare(cfg)
    except _user_errors() as exc:
        raise UserError(str(exc)) from exc
    if table is not None:
        print(table)
        extra = _extra_table(Path(cfg.out_dir))
        if extra:
            print("\n" + extra)
        print(f"wrote {cfg.out_dir}/table.md and comparison.json")
    return 0


def _extra_table(out: Path) -> str:
    """The evaluator-based metrics of a comparison's rows (reference motions first), if it computed them."""
    import json

    from launch.results.report_retrieval import NOTE, has_extra, payload, table

    rows = json.loads((out / "comparison.json").read_text())["rows"]
    payloads = [payload(Path(r["dir"])) for r in rows]
    if not has_extra(payloads):
        return ""
    data = [(r["group"], r["label"], [p]) for r, p in zip(rows, payloads) if p is not None]
    return table(data, ("model", "method")) + "\n\n" + NOTE


def cmd_table(args: argparse.Namespace) -> int:
    from cluster.eval_report import ROOTLESS_MODELS, TableRow, format_table, read_metrics

    rows = []
    for d in args.dirs:
        try:
            payload = read_metrics(d)
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        meta = payload.get("meta", {})
        rows.append(
            TableRow(
                str(meta.get("model_label") or meta.get("model") or Path(d).name),
                str(meta.get("method") or "–"),
                payload["metrics"],
                rootless=str(meta.get("model", "")).lower() in ROOTLESS_MODELS,
            )
        )
    table = format_table(rows, headers=tuple(args.headers), digits=args.digits)  # type: ignore[arg-type]
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table + "\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="APE/AVE evaluation (distributed), comparison tables, renders",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="eval_command", metavar="SUBCOMMAND", required=True)

    run = sub.add_parser("run", help="evaluate one checkpoint on one split (every rank of a job runs it)")
    add_config_args(run, [DEFAULT_CONFIG])
    run.add_argument("--out-dir", help="output folder (overrides out_dir)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--metrics",
        help="comma-separated groups: ape,retrieval,physics (default: all with evaluator=..., else ape)",
    )
    run.set_defaults(func=cmd_run)

    ev = sub.add_parser(
        "evaluator",
        help="the text-motion evaluator's own retrieval quality (t2m/m2t R@1/2/3) on reference motions",
    )
    add_config_args(ev, [DEFAULT_CONFIG])
    ev.add_argument("--splits", default="val,zeroshot", help="comma-separated splits (default val,zeroshot)")
    ev.add_argument("--out", help="also write evaluator_quality.json/.md into this folder")
    ev.set_defaults(func=cmd_evaluator)

    cmp_ = sub.add_parser("compare", help="evaluate several checkpoints / text settings and print one table")
    add_config_args(cmp_, [DEFAULT_COMPARE])
    cmp_.add_argument("--out-dir", help="output folder (overrides out_dir)")
    cmp_.add_argument("--no-reuse", action="store_true", help="re-evaluate rows that already have results")
    cmp_.set_defaults(func=cmd_compare)

    tab = sub.add_parser("table", help="a Markdown table (paper layout) from existing metrics.json files")
    tab.add_argument("dirs", nargs="+", help="evaluation folders (or metrics.json files)")
    tab.add_argument(
        "--headers",
        nargs=2,
        default=["model", "method"],
        metavar=("FIRST", "SECOND"),
        help="names of the two label columns (Table 2: component setting)",
    )
    tab.add_argument("--digits", type=int, default=3)
    tab.add_argument("--out", help="also write the table to this file")
    tab.set_defaults(func=cmd_table)
