"""The evaluator-based rows of the reports (``actiongpt results`` and the demo): R-precision, FID,
diversity, MM-Dist and the physics metrics of each configuration, the reference motions first (their
ceiling), mean ± std over seeds, and Action-GPT − Default paired by seed.

Read from each evaluation's ``metrics.json`` (generated row: ``metrics``; reference row:
``meta.reference_metrics``; the evaluator checkpoint: ``meta.evaluator``)."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLUMNS = (
    ("R@1 ↑", "R_precision_top1"),
    ("R@2 ↑", "R_precision_top2"),
    ("R@3 ↑", "R_precision_top3"),
    ("FID ↓", "FID"),
    ("diversity", "diversity"),
    ("MM-Dist ↓", "MM_dist"),
    ("skate m/s ↓", "foot_skating"),
    ("penetration m ↓", "floor_penetration"),
    ("floating m ↓", "floating"),
    ("jerk m/s³", "jerk"),
)
PAIRED_KEYS = ("R_precision_top3", "FID", "MM_dist", "foot_skating")
NOTE = (
    "The evaluator is a tiny contrastive text-motion model (`model=evaluator`, label text) trained on the "
    "embedded dataset's own shards, so these numbers compare the methods with each other here; they are "
    "not HumanML3D numbers. Chance R@1 = 1/32 (one true text among 32, the others of other labels). The "
    "reference motions' row is the "
    "ceiling (FID 0 by definition). Multimodality needs several samples per text (`eval.base.num_samples`)."
)


def payload(path: Path) -> dict[str, Any] | None:
    path = Path(path) / "metrics.json" if Path(path).is_dir() else Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


def has_extra(payloads: Sequence[dict[str, Any] | None]) -> bool:
    return any(p is not None and "R_precision_top1" in p.get("metrics", {}) for p in payloads)


def _cell(values: Sequence[float], digits: int = 3) -> str:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return "n/a"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{statistics.fmean(vals):.{digits}f} ± {statistics.stdev(vals):.{digits}f}"


def table(rows: list[tuple[str, str, list[dict[str, Any]]]], headers: tuple[str, str]) -> str:
    """rows = (group, label, per-seed metrics.json payloads); each group's reference row comes first."""
    lines = [
        f"| {headers[0]} | {headers[1]} | seeds | " + " | ".join(c for c, _ in COLUMNS) + " |",
        "|---|---|---|" + "---|" * len(COLUMNS),
    ]
    seen: set[str] = set()
    for group, label, payloads in rows:
        if group not in seen and payloads:
            seen.add(group)
            ref = payloads[0].get("meta", {}).get("reference_metrics") or {}
            cells = [_cell([ref[k]]) if k in ref and k != "FID" else "–" for _, k in COLUMNS]
            lines.append(f"| {group} | reference motions | – | " + " | ".join(cells) + " |")
        cells = [_cell([p["metrics"].get(k, math.nan) for p in payloads]) for _, k in COLUMNS]
        lines.append(f"| {group} | {label} | {len(payloads)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluator_line(payloads: Sequence[dict[str, Any] | None]) -> str:
    """Which evaluator checkpoint scored the rows (one line)."""
    evs = {
        json.dumps(p["meta"]["evaluator"], sort_keys=True)
        for p in payloads
        if p is not None and p.get("meta", {}).get("evaluator")
    }
    if not evs:
        return ""
    first = json.loads(sorted(evs)[0])
    more = f" ({len(evs)} different evaluators!)" if len(evs) > 1 else ""
    step, text = first.get("step"), first.get("text_source")
    return f"Evaluator: `{first.get('checkpoint')}` (step {step}, text {text}){more}."


# --- actiongpt results ---------------------------------------------------------------------------------


def _payloads(cfg: Any, backbone: str, method: str, k: int | None, split: str) -> list[dict[str, Any]]:
    from launch.results.config import RunSpec, eval_dir

    out = []
    for seed in cfg.seeds:
        p = payload(eval_dir(cfg, RunSpec(backbone, method, seed, k), split))
        if p is not None and "R_precision_top1" in p.get("metrics", {}):
            out.append(p)
    return out


def results_sections(cfg: Any) -> list[str]:
    """Markdown lines: per split, the Table 1 analogue on the evaluator metrics with paired per-seed tests,
    and the Table 2 analogue; [] when no evaluation carries them."""
    from actiongpt.models.registry import display_name
    from launch.results.paired import paired_verdict, vs_default

    everything = [p for s in cfg.splits for b in cfg.backbones for p in _payloads(cfg, b, "default", None, s)]
    if not everything:
        return []
    out = ["", "## Evaluator-based metrics (text-motion alignment and physical plausibility)", "", NOTE]
    line = evaluator_line(everything)
    if line:
        out += ["", line]
    for split in cfg.splits:
        rows = []
        for b in cfg.backbones:
            rows.append((display_name(b), "Default", _payloads(cfg, b, "default", None, split)))
            rows.append(
                (display_name(b), f"Action-GPT (k={cfg.k})", _payloads(cfg, b, "actiongpt", cfg.k, split))
            )
        out += ["", f"Table 1 analogue, {split}:", "", table(rows, ("model", "method"))]
        paired = [
            "| model | metric | Action-GPT − Default per seed | mean | paired test |",
            "|---|---|---|---|---|",
        ]
        names = {k: c for c, k in COLUMNS}
        for b in cfg.backbones:
            for key in PAIRED_KEYS:
                diffs = [d for d in vs_default(cfg, b, split, key) if math.isfinite(d)]
                if diffs:
                    per_seed = ", ".join(f"{x:+.3f}" for x in diffs)
                    paired.append(
                        f"| {display_name(b)} | {names[key]} | {per_seed} | {statistics.fmean(diffs):+.3f} | "
                        f"{paired_verdict(diffs)} |"
                    )
        out += ["", f"Paired by seed ({split}; R@3 higher is better, the others lower):", "", *paired]
        b = cfg.ablation_backbone
        if b:
            rows = [(display_name(b), "Default", _payloads(cfg, b, "default", None, split))]
            rows += [
                (display_name(b), f"Action-GPT k = {k}", _payloads(cfg, b, "actiongpt", k, split))
                for k in cfg.ablation_ks
            ]
            out += [
                "",
                f"Table 2 analogue ({display_name(b)}), {split}:",
                "",
                table(rows, ("model", "descriptions")),
            ]
    return out


# --- actiongpt demo ------------------------------------------------------------------------------------


def demo_sections(ctx: Any) -> list[str]:
    """The demo's evaluator section: per split, reference / Default / Action-GPT rows per backbone, and the
    evaluator's own retrieval quality; [] when the evaluation ran without an evaluator."""
    from actiongpt.models.registry import display_name
    from launch.demo import evaluator_stage as E
    from launch.demo.model_stages import eval_row_dir

    labels = {"default": "Default", "actiongpt": "Action-GPT"}
    all_payloads = []
    out: list[str] = []
    for split in ctx.cfg.eval.splits:
        rows = []
        for b in ctx.backbones:
            for m in ("default", "actiongpt"):
                p = payload(eval_row_dir(ctx, b, split, m))
                if p is not None and "R_precision_top1" in p.get("metrics", {}):
                    rows.append((display_name(b), labels[m], [p]))
                    all_payloads.append(p)
        if rows:
            out += ["", f"{split}:", "", table(rows, ("model", "method"))]
    if not all_payloads:
        return []
    head = ["", "## Evaluator-based metrics (text-motion alignment, physical plausibility)", "", NOTE, ""]
    head.append(evaluator_line(all_payloads))
    quality = E.quality_dir(ctx.out) / "evaluator_quality.md"
    if quality.is_file():
        own = quality.read_text().rstrip()
        head += ["", "The evaluator's own retrieval on the reference motions:", "", own]
    return head + out
