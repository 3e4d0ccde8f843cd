"""Demo stages ``shards``, ``train`` (torchrun, Action-GPT and Default runs) and ``eval`` (torchrun)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from actiongpt import config as cfglib
from actiongpt.models.registry import display_name
from launch.demo.context import LAYOUT, METHODS, DemoContext
from launch.demo.losses import loss_summary
from launch.demo.runner import raise_missing, run_cli, run_subprocess, torchrun_prefix
from launch.demo.stamps import (
    files_sha256,
    stamp_matches,
    write_stamp,
)
from launch.demo.text_stages import shards_config, write_shards_configs


def _remove_inside(ctx: DemoContext, path: Path) -> None:
    """Delete a stage output for ``--redo`` (only inside the run folder: shared folders are never removed)."""
    if path.exists() and ctx.inside_out(path):
        shutil.rmtree(path)


# --- stage: shards ---------------------------------------------------------------------------------------


def shards_inputs(ctx: DemoContext, layout: str) -> dict[str, Any]:
    cfg = shards_config(ctx, layout)
    return {
        "store": files_sha256([ctx.embeddings_dir / "index.json"]),
        "config": cfglib.to_dict(cfg),
        "dataset": files_sha256(sorted((ctx.data_dir / "babel").glob("*.json"))),
    }


def _manifest(ctx: DemoContext, layout: str) -> Path:
    return ctx.shards_dir(layout) / "manifest.json"


def shards_done(ctx: DemoContext) -> bool:
    return all(
        _manifest(ctx, lay).is_file() and stamp_matches(ctx.out, f"shards-{lay}", shards_inputs(ctx, lay))
        for lay in ctx.layouts
    )


def shards_run(ctx: DemoContext) -> None:
    paths = write_shards_configs(ctx)
    for layout in ctx.layouts:
        inputs = shards_inputs(ctx, layout)
        if _manifest(ctx, layout).is_file() and stamp_matches(ctx.out, f"shards-{layout}", inputs):
            print(f"  {ctx.shards_dir(layout)}: done before")
            continue
        # a fresh build: the builder would otherwise reuse shard files made from other inputs
        _remove_inside(ctx, ctx.shards_dir(layout))
        run_cli(["shards", "build", "-c", str(paths[layout]), "--skip-embed"], f"the {layout} shard build")
        run_cli(["shards", "verify", str(ctx.shards_dir(layout))], f"verifying {ctx.shards_dir(layout)}")
        write_stamp(ctx.out, f"shards-{layout}", inputs)


def shards_show(ctx: DemoContext) -> None:
    for layout in ctx.layouts:
        m = json.loads(_manifest(ctx, layout).read_text())
        counts = ", ".join(
            f"{s} {d['num_samples']} in {len(d['shards'])} shards" for s, d in m["splits"].items()
        )
        print(f"  {ctx.shards_dir(layout)} ({layout}): {counts}")


# --- stage: train ----------------------------------------------------------------------------------------


def runs(ctx: DemoContext) -> list[tuple[str, str]]:
    """(backbone, method) of every training run, Default first as in Table 1."""
    return [(b, m) for b in ctx.backbones for m in ("default", "actiongpt")]


def run_name(backbone: str, method: str) -> str:
    return f"{backbone}-{method}"


def train_args(ctx: DemoContext, backbone: str, method: str) -> tuple[list[str], list[str]]:
    """(config files, overrides) of a run, as one would give them to ``actiongpt train``."""
    t = ctx.cfg.train
    overrides = [
        f"run_dir={ctx.run_dir(backbone, method)}",
        f"shards_dir={ctx.shards_dir(LAYOUT[backbone])}",
        f"text_source={METHODS[method][0]}",
        f"max_steps={t.steps[backbone]}",
        f"ckpt_every={t.ckpt_every}",
        f"log_every={t.log_every}",
        f"val_every={t.val_every}",
        *t.overrides,
    ]
    return [f"configs/train/{backbone}.yaml", "configs/train/tiny.yaml"], overrides


def train_config(ctx: DemoContext, backbone: str, method: str) -> Any:
    """The run's resolved config (saved and given to ``python -m launch.train -c``, which resolves it again
    to the same values)."""
    from cluster.train_config import load_train_config

    return load_train_config(*train_args(ctx, backbone, method))


def train_inputs(ctx: DemoContext, backbone: str, method: str) -> dict[str, Any]:
    return {
        "config": cfglib.to_dict(train_config(ctx, backbone, method)),
        "manifest": files_sha256([_manifest(ctx, LAYOUT[backbone])]),
        "nproc": ctx.cfg.train.nproc,
    }


def _model_file(ctx: DemoContext, backbone: str, method: str) -> Path:
    from cluster.export import EXPORT_FILE

    return ctx.run_dir(backbone, method) / EXPORT_FILE


def _run_done(ctx: DemoContext, backbone: str, method: str) -> bool:
    name = run_name(backbone, method)
    return _model_file(ctx, backbone, method).is_file() and stamp_matches(
        ctx.out, f"train-{name}", train_inputs(ctx, backbone, method)
    )


def train_done(ctx: DemoContext) -> bool:
    return all(_run_done(ctx, b, m) for b, m in runs(ctx))


def train_run(ctx: DemoContext) -> None:
    for backbone, method in runs(ctx):
        name = run_name(backbone, method)
        run_dir = ctx.run_dir(backbone, method)
        if "train" not in ctx.redo and _run_done(ctx, backbone, method):
            print(f"  {name}: done before")
            continue
        inputs = train_inputs(ctx, backbone, method)
        same = stamp_matches(ctx.out, f"train-{name}.started", inputs)
        if run_dir.exists() and ("train" in ctx.redo or not same):
            # The trainer resumes from any checkpoint in run_dir: only do that for the same inputs.
            print(f"  {name}: {'--redo' if 'train' in ctx.redo else 'inputs changed'}: training from scratch")
            _remove_inside(ctx, run_dir)
        elif run_dir.exists():
            print(f"  {name}: resuming the interrupted run")
        cfg = train_config(ctx, backbone, method)
        path = cfglib.save(cfg, ctx.configs_dir / f"train-{name}.yaml")
        write_stamp(ctx.out, f"train-{name}.started", inputs)
        kind = "Action-GPT (k descriptions)" if method == "actiongpt" else "Default (raw label)"
        print(
            f"  {name}: {display_name(backbone)} {kind}, {cfg.max_steps} steps on {ctx.cfg.train.nproc} ranks"
        )
        run_subprocess(
            [*torchrun_prefix(ctx.cfg.train.nproc), "-m", "launch.train", "-c", str(path)],
            f"training {name}",
        )
        if not _model_file(ctx, backbone, method).is_file():
            raise_missing(_model_file(ctx, backbone, method), f"training {name}")
        write_stamp(ctx.out, f"train-{name}", inputs)
        print(f"  {name}: {loss_summary(run_dir)['text']}")


def train_show(ctx: DemoContext) -> None:
    for backbone, method in runs(ctx):
        print(f"  {run_name(backbone, method)}: {loss_summary(ctx.run_dir(backbone, method))['text']}")


# --- stage: evaluator (launch/demo/evaluator_stage.py) ---------------------------------------------------


def _evaluator_args(ctx: DemoContext) -> tuple[Path, Path, int, int, list[str]]:
    from launch.demo import evaluator_stage as E

    shards = E.shards_for(ctx.shards_dir, ctx.layouts)
    return ctx.out, shards, ctx.cfg.train.evaluator_steps, ctx.cfg.train.nproc, list(ctx.cfg.eval.splits)


def evaluator_done(ctx: DemoContext) -> bool:
    from launch.demo import evaluator_stage as E

    return ctx.cfg.train.evaluator_steps == 0 or E.done(*_evaluator_args(ctx))


def evaluator_run(ctx: DemoContext) -> None:
    from launch.demo import evaluator_stage as E

    if ctx.cfg.train.evaluator_steps == 0:
        print("  train.evaluator_steps = 0: no evaluator (the evaluation reports APE/AVE only)")
        return
    E.run(*_evaluator_args(ctx), ctx.configs_dir, "actiongpt demo")  # prints its quality table


def evaluator_show(ctx: DemoContext) -> None:
    from launch.demo import evaluator_stage as E

    E.show(ctx.out)


def _evaluator_file(ctx: DemoContext) -> Path | None:
    from launch.demo import evaluator_stage as E

    return E.model_file(ctx.out) if ctx.cfg.train.evaluator_steps else None


# --- stage: eval -----------------------------------------------------------------------------------------


def row_name(backbone: str, split: str, method: str) -> str:
    return f"{backbone}-{split}-{method}"


def compare_config(ctx: DemoContext) -> Any:
    """One ``actiongpt eval compare`` over every (backbone, split, method): one process group for all."""
    from cluster.eval_config import CompareConfig, CompareRow

    rows = []
    for backbone in ctx.backbones:
        for split in ctx.cfg.eval.splits:
            for method in ("default", "actiongpt"):
                text_source, label = METHODS[method]
                rows.append(
                    CompareRow(
                        name=row_name(backbone, split, method),
                        group=f"{display_name(backbone)} ({split})",
                        label=label,
                        overrides={
                            "checkpoint": str(_model_file(ctx, backbone, method)),
                            "shards_dir": str(ctx.shards_dir(LAYOUT[backbone])),
                            "split": split,
                            "text_source": text_source,
                        },
                    )
                )
    base = {"renders": ctx.cfg.eval.renders, **ctx.cfg.eval.base}
    evaluator = _evaluator_file(ctx)
    if evaluator is not None:  # R-precision, FID, diversity, MM-Dist and physics beside APE/AVE
        base = {"evaluator": str(evaluator), **base}
    return CompareConfig(out_dir=str(ctx.eval_dir), base=base, rows=rows)


def eval_row_dir(ctx: DemoContext, backbone: str, split: str, method: str) -> Path:
    return ctx.eval_dir / row_name(backbone, split, method)


def eval_inputs(ctx: DemoContext) -> dict[str, Any]:
    return {
        "compare": cfglib.to_dict(compare_config(ctx)),
        "models": files_sha256([_model_file(ctx, b, m) for b, m in runs(ctx)]),
        "evaluator": files_sha256([p for p in [_evaluator_file(ctx)] if p is not None]),
        "nproc": ctx.cfg.eval.nproc,
    }


def _rows(ctx: DemoContext) -> list[tuple[str, str, str]]:
    return [(b, s, m) for b in ctx.backbones for s in ctx.cfg.eval.splits for m in ("default", "actiongpt")]


def eval_done(ctx: DemoContext) -> bool:
    return all((eval_row_dir(ctx, *r) / "metrics.json").is_file() for r in _rows(ctx)) and stamp_matches(
        ctx.out, "eval", eval_inputs(ctx)
    )


def eval_run(ctx: DemoContext) -> None:
    inputs = eval_inputs(ctx)
    ccfg = compare_config(ctx)
    path = cfglib.save(ccfg, ctx.configs_dir / "eval.yaml")
    # --no-reuse: the rows' own reuse check compares configs, not weights, and the models may be new
    run_subprocess(
        [
            *torchrun_prefix(ctx.cfg.eval.nproc),
            "-m",
            "launch.cli",
            "eval",
            "compare",
            "-c",
            str(path),
            "--no-reuse",
        ],
        "the evaluation",
    )
    for r in _rows(ctx):
        if not (eval_row_dir(ctx, *r) / "metrics.json").is_file():
            raise_missing(eval_row_dir(ctx, *r) / "metrics.json", "the evaluation")
    write_stamp(ctx.out, "eval", inputs)


def eval_show(ctx: DemoContext) -> None:
    for b, s, m in _rows(ctx):
        d = eval_row_dir(ctx, b, s, m)
        data = json.loads((d / "metrics.json").read_text())
        mm = data["metrics"]
        print(
            f"  {row_name(b, s, m)}: {data.get('num_sequences')} samples, APE root {mm['APE_root']:.3f}, "
            f"AVE root {mm['AVE_root']:.3f}"
            + (f", R@1 {mm['R_precision_top1']:.3f}, FID {mm['FID']:.3f}" if "FID" in mm else "")
            + f" -> {d}"
        )
