"""The experiment's evaluation: APE/AVE of every trained run on every split, as one ``actiongpt eval compare``
under torchrun (one process group, the models loaded one after another)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actiongpt import config as cfglib
from actiongpt.models.registry import display_name
from launch.demo.context import LAYOUT, DemoContext
from launch.demo.runner import run_subprocess, torchrun_prefix
from launch.demo.stamps import files_sha256, stamp_matches, write_stamp
from launch.errors import UserError
from launch.results.config import METHOD_TEXT, ExperimentConfig, eval_dir, planned_runs
from launch.results.training import model_file


def compare_config(cfg: ExperimentConfig, ctx: DemoContext) -> Any:
    from cluster.eval_config import CompareConfig, CompareRow

    rows = []
    for spec in planned_runs(cfg):
        for split in cfg.splits:
            rows.append(
                CompareRow(
                    name=eval_dir(cfg, spec, split).name,
                    group=f"{display_name(spec.backbone)} ({split})",
                    label=f"{spec.label} seed {spec.seed}",
                    overrides={
                        "checkpoint": str(model_file(cfg, spec)),
                        "shards_dir": str(ctx.shards_dir(LAYOUT[spec.backbone])),
                        "split": split,
                        "text_source": METHOD_TEXT[spec.method],
                        # generation noise differs between seeds as the training does
                        "seed": spec.seed,
                        **({"k": spec.k} if spec.k is not None else {}),
                        **({"aggregator": spec.aggregator} if spec.aggregator else {}),
                    },
                )
            )
    base = {"renders": 0, **cfg.eval_base}
    evaluator = evaluator_file(cfg, ctx)
    if evaluator is not None:  # R-precision, FID, diversity, MM-Dist and physics beside APE/AVE
        base = {"evaluator": str(evaluator), **base}
    return CompareConfig(out_dir=str(ctx.out / "eval"), base=base, rows=rows)


def evaluator_file(cfg: ExperimentConfig, ctx: DemoContext) -> Path | None:
    from launch.demo import evaluator_stage as E

    return E.model_file(ctx.out) if cfg.evaluator_steps else None


def _evaluator_args(cfg: ExperimentConfig, ctx: DemoContext) -> tuple[Path, Path, int, int, list[str]]:
    from launch.demo import evaluator_stage as E

    shards = E.shards_for(ctx.shards_dir, ctx.layouts)
    return ctx.out, shards, cfg.evaluator_steps, cfg.eval_nproc, list(cfg.splits)


def evaluator_done(cfg: ExperimentConfig, ctx: DemoContext) -> bool:
    from launch.demo import evaluator_stage as E

    return cfg.evaluator_steps == 0 or E.done(*_evaluator_args(cfg, ctx))


def evaluator_run(cfg: ExperimentConfig, ctx: DemoContext) -> None:
    """One tiny evaluator for every run (the same yardstick), its own retrieval quality printed."""
    from launch.demo import evaluator_stage as E

    if cfg.evaluator_steps == 0:
        print("  evaluator_steps = 0: no evaluator (APE/AVE only)")
        return
    E.run(*_evaluator_args(cfg, ctx), ctx.configs_dir, "actiongpt results")  # prints its quality


def eval_inputs(cfg: ExperimentConfig, ctx: DemoContext) -> dict[str, Any]:
    return {
        "compare": cfglib.to_dict(compare_config(cfg, ctx)),
        "models": files_sha256([model_file(cfg, s) for s in planned_runs(cfg)]),
        "evaluator": files_sha256([p for p in [evaluator_file(cfg, ctx)] if p is not None]),
        "nproc": cfg.eval_nproc,
    }


def _metrics_files(cfg: ExperimentConfig) -> list:
    return [eval_dir(cfg, s, split) / "metrics.json" for s in planned_runs(cfg) for split in cfg.splits]


def eval_done(cfg: ExperimentConfig, ctx: DemoContext) -> bool:
    return all(p.is_file() for p in _metrics_files(cfg)) and stamp_matches(
        ctx.out, "eval", eval_inputs(cfg, ctx)
    )


def eval_all(cfg: ExperimentConfig, ctx: DemoContext) -> None:
    inputs = eval_inputs(cfg, ctx)
    path = cfglib.save(compare_config(cfg, ctx), ctx.configs_dir / "eval.yaml")
    # --no-reuse: a row's own reuse check compares configs, not weights, and a model may be retrained
    cmd = ["-m", "launch.cli", "eval", "compare", "--no-reuse", "-c", str(path)]
    run_subprocess(
        [*torchrun_prefix(cfg.eval_nproc), *cmd],
        "the evaluation",
        rerun="actiongpt results",
    )
    missing = [str(p) for p in _metrics_files(cfg) if not p.is_file()]
    if missing:
        raise UserError(f"the evaluation exited without writing {missing[:3]} ({len(missing)} missing)")
    write_stamp(ctx.out, "eval", inputs)
