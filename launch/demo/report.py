"""Demo stage ``report``: ``<run>/results.md`` with the paper's Table 1 layout per split, training losses,
and where the renders are; printed at the end of the demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from actiongpt.io_utils import atomic_write_text
from actiongpt.models.registry import display_name
from launch.demo.context import METHODS, DemoContext
from launch.demo.losses import loss_summary
from launch.demo.model_stages import eval_row_dir, run_name, runs
from launch.demo.stamps import files_sha256, stamp_matches, write_stamp

RESULTS_FILE = "results.md"
SPLIT_TITLES = {
    "val": "val split (the original protocol's evaluation split)",
    "zeroshot": "zero-shot split (phrasings never seen in training)",
    "test": "test split",
    "train": "train split",
}


def _metrics_files(ctx: DemoContext) -> list[Path]:
    return [
        eval_row_dir(ctx, b, s, m) / "metrics.json"
        for b in ctx.backbones
        for s in ctx.cfg.eval.splits
        for m in ("default", "actiongpt")
    ]


def report_inputs(ctx: DemoContext) -> dict[str, Any]:
    return {
        "metrics": files_sha256(_metrics_files(ctx)),
        "training": files_sha256(ctx.run_dir(b, m) / "metrics.jsonl" for b, m in runs(ctx)),
    }


def report_done(ctx: DemoContext) -> bool:
    return (ctx.out / RESULTS_FILE).is_file() and stamp_matches(ctx.out, "report", report_inputs(ctx))


def split_table(ctx: DemoContext, split: str) -> tuple[str, int | None]:
    """Table 1's layout (model | method | APE x4 | AVE x4) for one split, and its sample count."""
    from cluster.eval_report import ROOTLESS_MODELS, TableRow, format_table, read_metrics

    rows, count = [], None
    for b in ctx.backbones:
        for m in ("default", "actiongpt"):
            payload = read_metrics(eval_row_dir(ctx, b, split, m))
            count = payload.get("num_sequences")
            rows.append(
                TableRow(display_name(b), METHODS[m][1], payload["metrics"], rootless=b in ROOTLESS_MODELS)
            )
    return format_table(rows), count


def _render_lines(ctx: DemoContext, split: str) -> list[str]:
    """One line per rendered sample: its text and the Default / Action-GPT GIFs and trajectory plots."""
    from cluster.eval_render import safe_name, text_of

    lines = []
    for b in ctx.backbones:
        dirs = {m: eval_row_dir(ctx, b, split, m) for m in ("default", "actiongpt")}
        texts: dict[str, str] = {}
        sw = dirs["actiongpt"] / "samplewise_error_values.json"
        if sw.is_file():
            texts = {safe_name(k): text_of(v.get("text")) for k, v in json.loads(sw.read_text()).items()}
        gifs = sorted((dirs["actiongpt"] / "renders").glob("*.gif"))
        for gif in gifs:
            name = gif.stem
            parts = []
            for m in ("default", "actiongpt"):
                g = dirs[m] / "renders" / f"{name}.gif"
                if g.is_file():
                    parts.append(f"{METHODS[m][1]} `{g}`")
            traj = dirs["actiongpt"] / "renders" / f"{name}_trajectory.png"
            if traj.is_file():
                parts.append(f"trajectory `{traj}`")
            lines.append(f'- {display_name(b)}, "{texts.get(name, name)}": ' + " · ".join(parts))
    return lines


def results_markdown(ctx: DemoContext) -> str:
    check_path = ctx.out / "descriptions_check.json"
    check = json.loads(check_path.read_text()) if check_path.is_file() else {}
    t = ctx.cfg.train
    steps = ", ".join(f"{display_name(b)} {t.steps[b]}" for b in ctx.backbones)
    out = [
        "# Action-GPT demo: results",
        "",
        f"Embedded setting: synthetic motions in the BABEL/AMASS formats (`{ctx.data_dir}`), k = {ctx.cfg.k} "
        f"descriptions per label from `{', '.join(ctx.cfg.descriptions)}` (model "
        f"{', '.join(check.get('models', ['?']))}), {ctx.cfg.embedder} text embeddings, the tiny model "
        f"presets trained for {steps} steps on {t.nproc} ranks. These numbers show the pipeline working "
        "end to end; they are not comparable to the paper's (real BABEL/AMASS, GPT-3 descriptions, full-size "
        "models trained for 1000 epochs).",
        "",
        "APE / AVE in metres, lower is better; **bold** marks the better of Default and Action-GPT per "
        "model. "
        "Columns as the paper's Table 1: root joint, global trajectory, mean local (root-relative) and mean "
        "global joint position (APE) and variance (AVE) errors. MotionCLIP generates no root motion (–).",
    ]
    for split in ctx.cfg.eval.splits:
        table, count = split_table(ctx, split)
        title = SPLIT_TITLES.get(split, f"{split} split")
        out += ["", f"## Table 1 layout: {title}, {count} samples", "", table]
    from launch.results.report_retrieval import demo_sections

    out += demo_sections(ctx)  # R-precision, FID, physics: when the evaluation had an evaluator
    out += [
        "",
        "## Training",
        "",
        "| run | text | steps | training loss (first -> last) | model |",
        "|---|---|---|---|---|",
    ]
    for b, m in runs(ctx):
        s = loss_summary(ctx.run_dir(b, m))
        text = "descriptions" if m == "actiongpt" else "raw label"
        loss = f"{s['first']:.4f} -> {s['last']:.4f}" + ("" if s["fell"] else " (did not fall)")
        out.append(
            f"| {display_name(b)} {METHODS[m][1]} | {text} | {s['steps']} | {loss} | "
            f"`{ctx.run_dir(b, m) / 'model.safetensors'}` |"
        )
    out += ["", "## Renders (generated vs reference; the same samples for Default and Action-GPT)"]
    for split in ctx.cfg.eval.splits:
        lines = _render_lines(ctx, split)
        if lines:
            out += ["", f"{split}:", "", *lines]
    first = runs(ctx)[-1]
    out += [
        "",
        "## Reproduce",
        "",
        f"Every command the demo ran reads a resolved config in `{ctx.configs_dir}`, e.g.",
        "",
        f"    torchrun --standalone --nproc_per_node={t.nproc} -m launch.train "
        f"-c {ctx.configs_dir / f'train-{run_name(*first)}.yaml'}",
        f"    torchrun --standalone --nproc_per_node={ctx.cfg.eval.nproc} -m launch.cli eval compare "
        f"-c {ctx.configs_dir / 'eval.yaml'}",
        "",
    ]
    return "\n".join(out)


def report_run(ctx: DemoContext) -> None:
    inputs = report_inputs(ctx)
    text = results_markdown(ctx)
    atomic_write_text(ctx.out / RESULTS_FILE, text)
    write_stamp(ctx.out, "report", inputs)
    report_show(ctx)


def report_show(ctx: DemoContext) -> None:
    path = ctx.out / RESULTS_FILE
    print()
    print(path.read_text().rstrip())
    print()
    print(f"  written to {path}")
