"""``results.md`` of the experiment: Table 1 and Table 2 analogues as mean ± std over seeds, per-seed paired
differences, the compact aggregators against the original, training losses, a training-curve picture, the
setting and its caveats.

Every number is read from the run folder (``eval/*/metrics.json``, ``runs/*/metrics.jsonl``), so the report
can be rebuilt at any time with ``actiongpt results --until report``.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actiongpt.io_utils import atomic_write_text, markdown_table
from actiongpt.models.registry import display_name
from cluster.eval_report import COLUMNS, ROOT_KEYS, ROOTLESS_MODELS
from launch.demo.losses import loss_summary
from launch.results.config import ExperimentConfig, RunSpec, eval_dir, planned_runs, run_dir
from launch.results.paired import mean_std, paired_diffs, paired_verdict, read_metrics, vs_default
from launch.results.training import times_file

RESULTS_FILE = "results.md"
CURVES_FILE = "results_training_curves.png"
SPLIT_TITLES = {
    "val": "val split (the original protocol's evaluation split)",
    "zeroshot": "zero-shot split (held-out phrasings of the training actions, never seen in training)",
    "test": "test split",
    "train": "train split",
}


def cell(values: Sequence[float], digits: int = 3) -> str:
    m, s = mean_std(values)
    if math.isnan(m):
        return "n/a"
    return f"{m:.{digits}f} ± {s:.{digits}f}" if len(values) > 1 else f"{m:.{digits}f}"


def _group(
    cfg: ExperimentConfig,
    backbone: str,
    method: str,
    k: int | None,
    split: str,
    aggregator: str | None = None,
) -> list[dict]:
    """The metrics of one configuration over the seeds that have them."""
    out = []
    for seed in cfg.seeds:
        m = read_metrics(cfg, RunSpec(backbone, method, seed, k, aggregator), split)
        if m is not None:
            out.append(m)
    return out


def metrics_table(rows: list[tuple[str, str, list[dict], bool]], headers: tuple[str, str]) -> str:
    """Markdown table; rows = (first column, second column, per-seed metrics, rootless). Within each group
    of rows sharing the first column, the lowest mean of every column is bold."""
    body = []
    best: dict[tuple[str, str], float] = {}
    for group, _, ms, rootless in rows:
        for _, key in COLUMNS:
            if ms and not (rootless and key in ROOT_KEYS):
                m = mean_std([x[key] for x in ms])[0]
                best[(group, key)] = min(best.get((group, key), math.inf), m)
    for group, label, ms, rootless in rows:
        cells = []
        for _, key in COLUMNS:
            if rootless and key in ROOT_KEYS:
                cells.append("–")
                continue
            text = cell([x[key] for x in ms])
            if ms and math.isclose(mean_std([x[key] for x in ms])[0], best[(group, key)], abs_tol=5e-4):
                text = f"**{text}**"
            cells.append(text)
        body.append([group, label, str(len(ms)), *cells])
    return markdown_table([headers[0], headers[1], "seeds", *(c for c, _ in COLUMNS)], body)


def table1(cfg: ExperimentConfig, split: str) -> str:
    rows = []
    for b in cfg.backbones:
        rootless = b in ROOTLESS_MODELS
        rows.append((display_name(b), "Default", _group(cfg, b, "default", None, split), rootless))
        agpt = _group(cfg, b, "actiongpt", cfg.k, split)
        rows.append((display_name(b), f"Action-GPT (k={cfg.k})", agpt, rootless))
    return metrics_table(rows, ("model", "method"))


def table2(cfg: ExperimentConfig, split: str) -> str:
    b = cfg.ablation_backbone
    assert b is not None
    rows = [(display_name(b), "Default", _group(cfg, b, "default", None, split), False)]
    for k in cfg.ablation_ks:
        rows.append((display_name(b), f"Action-GPT k = {k}", _group(cfg, b, "actiongpt", k, split), False))
    return metrics_table(rows, ("model", "descriptions"))


def paired_lines(cfg: ExperimentConfig, split: str) -> list[str]:
    """Per backbone: Action-GPT minus Default of each headline metric, seed by seed (the same seed gives both
    runs the same initialisation and data order), and in how many seeds Action-GPT was lower."""
    lines = [
        "| model | metric | Action-GPT − Default per seed | mean | Action-GPT lower in |",
        "|---|---|---|---|---|",
    ]
    for b in cfg.backbones:
        # a model without root motion is compared on its local pose
        keys = ["APE_mean_pose" if b in ROOTLESS_MODELS else "APE_root", "APE_mean_joints"]
        for key in keys:
            diffs = vs_default(cfg, b, split, key)
            if not diffs:
                continue
            name = dict((k, c) for c, k in COLUMNS)[key]
            per_seed = ", ".join(f"{x:+.3f}" for x in diffs)
            lower = sum(1 for x in diffs if x < 0)
            lines.append(
                f"| {display_name(b)} | {name} | {per_seed} | {statistics.fmean(diffs):+.3f} | "
                f"{lower} of {len(diffs)} |"
            )
    return lines


def findings(cfg: ExperimentConfig) -> list[str]:
    """One line per backbone and split on the headline metric (APE mean global), and the best k."""
    lines = []
    for split in cfg.splits:
        for b in cfg.backbones:
            diffs = vs_default(cfg, b, split, "APE_mean_joints")
            if diffs:
                lines.append(
                    f"- {display_name(b)}, {split}: Action-GPT − Default APE mean global "
                    f"{statistics.fmean(diffs):+.4f} m; {paired_verdict(diffs)}."
                )
    b = cfg.ablation_backbone
    if b:
        for split in cfg.splits:
            means = {}
            for k in cfg.ablation_ks:
                ms = _group(cfg, b, "actiongpt", k, split)
                if ms:
                    means[k] = mean_std([m["APE_mean_joints"] for m in ms])
            if means:
                best = min(means, key=lambda k: means[k][0])
                spread = max(m for m, _ in means.values()) - min(m for m, _ in means.values())
                noise = max(s for _, s in means.values())
                lines.append(
                    f"- {display_name(b)} k ablation, {split}: lowest APE mean global at k = {best}; the "
                    f"means span {spread:.4f} m against a seed std of up to {noise:.4f} m."
                )
    return lines + compact_findings(cfg)


def compact_findings(cfg: ExperimentConfig) -> list[str]:
    """Each compact aggregator against the original aggregation (same k, same seed) on APE mean global."""
    lines = []
    for split in cfg.splits:
        for b in cfg.compact_backbones or []:
            original = RunSpec(b, "actiongpt", 0, cfg.k)
            for agg in cfg.compact_aggregators:
                compact = RunSpec(b, "actiongpt", 0, cfg.k, agg)
                diffs = paired_diffs(cfg, compact, original, split, "APE_mean_joints")
                vs_default = paired_diffs(cfg, compact, RunSpec(b, "default", 0), split, "APE_mean_joints")
                if diffs:
                    lines.append(
                        f"- {display_name(b)} `{agg}`, {split}: − original aggregation "
                        f"{statistics.fmean(diffs):+.4f} m, {paired_verdict(diffs, agg)}"
                        + (f"; − Default {statistics.fmean(vs_default):+.4f} m." if vs_default else ".")
                    )
    return lines


def compact_table(cfg: ExperimentConfig, split: str) -> str:
    rows = []
    for b in cfg.compact_backbones or []:
        rows.append((display_name(b), "Default", _group(cfg, b, "default", None, split), False))
        for agg in [None, *cfg.compact_aggregators]:
            spec = RunSpec(b, "actiongpt", 0, cfg.k, agg)
            label = spec.label + ("" if agg else " original")
            rows.append((display_name(b), label, _group(cfg, b, "actiongpt", cfg.k, split, agg), False))
    return metrics_table(rows, ("model", "text"))


COMPACT_INTRO = (
    "Not in the paper. The original aggregation averages the k descriptions' token states position by "
    "position, so TEMOS's and TEACH's own text transformer attends over ~130 tokens instead of the "
    "label's ~5; with precomputed embeddings that is the whole of Action-GPT's extra training cost for them "
    "(`python bench/bench_train.py --parts agpt`). The compact aggregators keep the paper's "
    "`v_aggr = mean(v_i)` but with sentence-level `v_i` (each description's mean token state): "
    "`sentence_mean` is one token, `sentences` is k tokens (one per description). Same k, seeds and steps "
    "as Table 1."
)


def training_lines(cfg: ExperimentConfig) -> list[str]:
    lines = [
        "| run | steps | training loss, first → last tenth (mean ± std over seeds) |",
        "|---|---|---|",
    ]
    configs: dict[tuple[str, str, int | None, str | None], list[RunSpec]] = {}
    for spec in planned_runs(cfg):
        configs.setdefault((spec.backbone, spec.method, spec.k, spec.aggregator), []).append(spec)
    for specs in configs.values():
        sums = [loss_summary(run_dir(cfg, s)) for s in specs]
        sums = [s for s in sums if not math.isnan(s["last"])]
        loss = "n/a"
        if sums:
            loss = f"{cell([s['first'] for s in sums], 4)} → {cell([s['last'] for s in sums], 4)}"
        b = specs[0].backbone
        lines.append(f"| {display_name(b)} {specs[0].label} | {cfg.steps[b]} | {loss} |")
    return lines


def _records(path: Path) -> list[dict[str, Any]]:
    """The training records of a run's metrics.jsonl (unreadable lines skipped)."""
    out = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("kind") == "train":
                out.append(rec)
    return out


def _loss_curve(path: Path, window: int) -> tuple[list[int], list[float]]:
    losses = {
        int(r["step"]): float(r["loss"]) for r in _records(path) if isinstance(r.get("loss"), (int, float))
    }
    steps = sorted(losses)
    xs, ys = [], []
    for i in range(0, len(steps) - window + 1, window):  # block means: readable without hiding the trend
        block = steps[i : i + window]
        xs.append(block[-1])
        ys.append(statistics.fmean(losses[s] for s in block))
    return xs, ys


def plot_curves(cfg: ExperimentConfig, out: Path) -> Path | None:
    """Training loss of Default and Action-GPT (k = cfg.k) per backbone: one thin line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cfg.backbones), figsize=(4.2 * len(cfg.backbones), 3.2), squeeze=False)
    drawn = False
    for ax, b in zip(axes[0], cfg.backbones):
        window = max(1, cfg.steps[b] // 40)
        for method, k, color, label in (
            ("default", None, "tab:gray", "Default"),
            ("actiongpt", cfg.k, "tab:blue", f"Action-GPT k={cfg.k}"),
        ):
            for i, seed in enumerate(cfg.seeds):
                xs, ys = _loss_curve(run_dir(cfg, RunSpec(b, method, seed, k)) / "metrics.jsonl", window)
                if xs:
                    ax.plot(xs, ys, color=color, lw=1.0, alpha=0.8, label=label if i == 0 else None)
                    drawn = True
        ax.set_title(f"{display_name(b)} (tiny), training loss")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if not drawn:
        plt.close(fig)
        return None
    fig.tight_layout()
    path = out / CURVES_FILE
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def setting_text(cfg: ExperimentConfig, stats: dict[str, Any]) -> list[str]:
    steps = ", ".join(f"{display_name(b)} {cfg.steps[b]}" for b in cfg.backbones)
    models = ", ".join(stats.get("models", ["?"]))
    counts = stats.get("counts", {})
    count_text = "; ".join(f"{s}: {n}" for s, n in counts.items())
    return [
        f"- Data: the embedded dataset (`{cfg.data.out}`, generated motions in the BABEL/AMASS formats, "
        "read by the real readers with TEACH's extraction rules). Evaluation samples per split: "
        f"{count_text or 'n/a'}.",
        f"- Descriptions: the shipped cache `{', '.join(cfg.descriptions)}` ({models}), k = {cfg.k} per "
        f"label for Table 1; {cfg.store_k} stored per label for the k ablation.",
        f"- Text encoder: {cfg.embedder} (frozen), token states aggregated by the original per-position "
        "mean (the compact aggregators: their own section).",
        f"- Models: the tiny presets (`configs/train/<backbone>.yaml` + `configs/train/tiny.yaml`), "
        f"{steps} optimizer steps, {cfg.nproc} rank(s) per run, seeds {cfg.seeds}.",
        "- Evaluation: the original protocol (APE/AVE in metres on MMM-21 joints, one sample per text, "
        "generation seeded by the run's seed and the sample key), on "
        f"{' and '.join(cfg.splits)}; lower is better, bold = best mean per model.",
    ]


CAVEATS = [
    "- **Generated motions.** The embedded dataset's 44 actions are procedurally animated; every label is "
    "one of 4-5 training phrasings of exactly one action (the zero-shot split uses two more per action). A "
    "raw label is then already close to a class name, which leaves less for descriptions to add than on "
    "real BABEL, whose free-form labels of one movement vary far more.",
    "- **A 135M-parameter LLM.** The descriptions come from SmolLM2-135M-Instruct (Q4), which often "
    "repeats itself or drifts from the action; the paper used GPT-3 (text-davinci-002). Better descriptions "
    "should help Action-GPT more than anything else here.",
    "- **A small text encoder.** all-MiniLM-L6-v2 (384-d) stands in for DistilBERT (TEMOS/TEACH) and CLIP "
    "(MotionCLIP).",
    "- **Tiny models, short training.** The paper trained full-size models for ~1000 epochs on 4 GPUs; "
    "these runs are minutes long on 2 CPU cores. The std over seeds shows how much of any difference is "
    "noise.",
    "- **An evaluator trained on labels.** The text-motion evaluator is tiny, trained on this dataset's "
    "shards with the raw label as its text: the text the Default models are trained on, so its R-precision, "
    "FID and MM-Dist may favour them over models trained on descriptions. Its numbers compare methods here; "
    "they are not HumanML3D numbers.",
    "- With real BABEL/AMASS, an OpenAI or vLLM endpoint and the paper presets, the same commands reproduce "
    "the paper's setting (README: *Running on a cluster with real data*).",
]


def _stats(cfg: ExperimentConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"counts": {}}
    check = Path(cfg.out) / "descriptions_check.json"
    if check.is_file():
        out["models"] = json.loads(check.read_text()).get("models", [])
    spec = planned_runs(cfg)[0]
    for split in cfg.splits:
        path = eval_dir(cfg, spec, split) / "metrics.json"
        if path.is_file():
            out["counts"][split] = json.loads(path.read_text()).get("num_sequences")
    return out


def results_markdown(cfg: ExperimentConfig, curves: Path | None) -> str:
    stats = _stats(cfg)
    out = [
        "# Action-GPT at small scale: results",
        "",
        "Produced by `actiongpt results` (defaults: `configs/results.yaml`); rerun it to reproduce every "
        "number below. Each configuration is trained with several seeds and reported as mean ± sample std "
        "over seeds.",
        "",
        "## Setting",
        "",
        *setting_text(cfg, stats),
    ]
    out += ["", "## Findings (computed from the tables below)", "", *findings(cfg)]
    for split in cfg.splits:
        out += ["", f"## Table 1 analogue: {SPLIT_TITLES.get(split, split)}", "", table1(cfg, split)]
        out += ["", f"Paired by seed ({split}):", "", *paired_lines(cfg, split)]
    if cfg.ablation_backbone:
        for split in cfg.splits:
            out += [
                "",
                "## Table 2 analogue: descriptions per label, "
                f"{display_name(cfg.ablation_backbone)}, {split}",
                "",
                table2(cfg, split),
            ]
    from launch.results.report_retrieval import results_sections

    out += results_sections(cfg)  # R-precision, FID, physics: when an evaluator scored the runs
    if cfg.compact_backbones and cfg.compact_aggregators:
        out += ["", "## Compact text aggregators (not in the paper)", "", COMPACT_INTRO]
        for split in cfg.splits:
            out += ["", f"{SPLIT_TITLES.get(split, split)}:", "", compact_table(cfg, split)]
    out += [
        "",
        "## Training",
        "",
        f"Each run's wall seconds are in `{times_file(cfg)}`; they depend on what else ran on the machine "
        "(two runs share the 2 cores, and runs added later ran at other times), so they are not compared "
        "here: `python bench/bench_train.py --parts agpt` times the text variants side by side on the same "
        "batches.",
        "",
        *training_lines(cfg),
    ]
    if curves is not None:
        out += ["", f"![training loss per seed, Default vs Action-GPT]({curves.name})"]
    out += ["", "## Caveats", "", *CAVEATS, ""]
    return "\n".join(out)


def write_report(cfg: ExperimentConfig) -> Path:
    out = Path(cfg.out)
    curves = plot_curves(cfg, out)
    text = results_markdown(cfg, curves)
    path = atomic_write_text(out / RESULTS_FILE, text)
    if cfg.doc:
        doc = Path(cfg.doc)
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(text)
        if curves is not None:
            (doc.parent / curves.name).write_bytes(curves.read_bytes())
    return path
