"""The evaluation stage end to end: checkpoint + shards -> distributed evaluation -> files on rank 0.

``run_eval(cfg)`` sets up the process group (torchrun / srun / submitit / one process), builds the model and
this rank's share of the split (the shard loader without shuffling and without dropping anything: every
sample exactly once over all ranks), evaluates and, on rank 0, writes ``metrics.json``,
``samplewise_error_values.json``, ``table.md``, the resolved ``config.yaml`` and the renders.
``run_compare(cfg)`` does that for several rows inside one process group and prints one table. Both first
let the process keep the memory it frees (``keep_freed_memory``: the batches' large temporaries are then
reused instead of page-faulted back from the OS every batch).
"""

from __future__ import annotations

import ctypes
import itertools
import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from actiongpt import config as cfglib
from actiongpt.models.registry import display_name
from actiongpt.motion.skeleton import Skeleton, bundled_skeleton
from cluster.eval_config import CompareConfig, EvalConfig
from cluster.eval_report import (
    METRICS_FILE,
    ROOTLESS_MODELS,
    TABLE_FILE,
    TableRow,
    format_table,
    read_metrics,
    write_outputs,
)
from cluster.eval_retrieval import attach_extra, build_extra_metrics, preflight_extra, run_extra, write_extra
from cluster.evaluator import EvalResult, eval_runtime, evaluate

if TYPE_CHECKING:
    from cluster.eval_model import ModelSource

log = logging.getLogger(__name__)


def _device(cfg: EvalConfig, rt: Any) -> torch.device:
    if cfg.device != "auto":
        return torch.device(cfg.device)
    return rt.pg.device if rt.pg is not None else torch.device("cpu")


def _skeleton(cfg: EvalConfig) -> Skeleton:
    if cfg.body == "smplh":
        from actiongpt.motion.smplh import load_smplh_skeleton

        return load_smplh_skeleton(cfg.smplh_path, cfg.gender)  # type: ignore[arg-type]
    return bundled_skeleton()


def _check_stats(model: Any, mean: torch.Tensor, std: torch.Tensor, source: str) -> None:
    """The model denormalises with the statistics it was trained with; the reference with the shards'.
    Different values mean the checkpoint was trained on other shards: say so (the metrics stay valid)."""
    dm = float((model.feature_mean.cpu() - mean).abs().max())
    ds = float((model.feature_std.cpu() - std).abs().max())
    if dm > 1e-4 or ds > 1e-4:
        log.warning(
            "%s: the model's feature mean/std differ from the shards' (max |diff| %.3g / %.3g); was it "
            "trained on other shards?",
            source,
            dm,
            ds,
        )


def _check_mode(model: str, mode: str, cfg: EvalConfig) -> None:
    """TEACH generates pairs (its history conditioning), MotionCLIP single actions; TEMOS either."""
    if model == "teach" and mode != "pairs":
        raise cfglib.ConfigError(
            f"{cfg.shards_dir} split {cfg.split!r} holds {mode!r} samples; TEACH is "
            "evaluated on action pairs (shards built with data.mode=pairs)"
        )
    if model == "motionclip" and mode == "pairs":
        raise cfglib.ConfigError(
            f"{cfg.shards_dir} split {cfg.split!r} holds pairs; MotionCLIP generates single "
            "actions (use seg/seq shards)"
        )


def _text_source(cfg: EvalConfig, meta: dict[str, Any], source: str, warn: bool = True) -> str:
    """The configured text, else the one the checkpoint was trained with (a baseline: the raw labels)."""
    trained = meta.get("text_source")
    if cfg.text_source is None:
        return str(trained or "descriptions")
    if warn and trained and trained != cfg.text_source:
        log.warning(
            "%s was trained with text_source=%s but is evaluated with %s", source, trained, cfg.text_source
        )
    return cfg.text_source


def _text_choice(cfg: EvalConfig, meta: dict[str, Any], source: str, warn: bool = True) -> Any:
    """The (unresolved) TextChoice to evaluate with: the configured text, k and aggregator, each defaulting to
    the one the checkpoint was trained with (a model trained on one token per label must not be handed ~130
    position-wise tokens because the evaluation config left ``aggregator`` unset)."""
    from shards.collate import TextChoice

    text_source = _text_source(cfg, meta, source, warn)
    as_trained = text_source == "descriptions" and meta.get("text_source") == "descriptions"
    k = cfg.k if cfg.k is not None or not as_trained else meta.get("k")
    aggregator = cfg.aggregator if cfg.aggregator is not None or not as_trained else meta.get("aggregator")
    return TextChoice(text_source, None if k is None else int(k), aggregator)


def evaluate_in_runtime(cfg: EvalConfig, rt: Any, source: ModelSource | None = None) -> EvalResult | None:
    """One evaluation inside an entered ``eval_runtime`` (every rank calls it). Rank 0 returns the result.
    ``source``: ``cfg.checkpoint`` as ``preflight`` resolved it (resolved here when not given)."""
    from cluster.components import shard_loader_config
    from cluster.eval_model import load_model, model_generate_fn, resolve_model
    from shards.loader import ShardLoader
    from shards.manifest import Manifest

    if not cfg.checkpoint:
        raise cfglib.ConfigError("checkpoint: not set (an exported model file, checkpoint or run directory)")
    device = _device(cfg, rt)
    manifest = Manifest.load(Path(cfg.shards_dir))
    mean, std = (torch.from_numpy(a) for a in manifest.stats())
    source = source or resolve_model(cfg.checkpoint)
    fallback_dim = manifest.pooled_dim if source.meta.get("model") == "motionclip" else manifest.token_dim
    loaded = load_model(source, text_dim=fallback_dim, device=device)
    model, meta = loaded.model, loaded.meta
    _check_stats(model, mean, std, str(loaded.source))
    _check_mode(model.name, manifest.mode(cfg.split), cfg)
    choice = _text_choice(cfg, meta, str(loaded.source))
    loader_cfg = shard_loader_config(
        cfg, cfg.split, choice.source, choice.k, choice.aggregator,
        shuffle=False, drop_last=False, bucket_batches=cfg.bucket_batches,
    )  # fmt: skip
    loader = ShardLoader(loader_cfg, rank=rt.rank, world_size=rt.world_size, manifest=manifest)
    import webdataset.tariterators  # noqa: F401  (the reader imports it lazily: keep ~0.3 s out of the timing)

    batches: Any = iter(loader)
    total = len(loader)
    if cfg.max_batches:
        batches, total = itertools.islice(batches, cfg.max_batches), min(total, cfg.max_batches)
    generate_fn = model_generate_fn(
        model, mean=cfg.mean, fact=cfg.fact, slerp_window=cfg.slerp_window, align=cfg.align, yaw=cfg.yaw
    )
    settings = cfg.scoring()
    extra = build_extra_metrics(cfg, manifest, device)  # None: APE/AVE alone
    result = evaluate(
        batches,
        generate_fn,
        mean,
        std,
        settings=settings,
        skeleton=_skeleton(cfg),
        expected_count=None if cfg.max_batches else loader.num_samples,
        device=device,
        progress=cfg.progress and rt.rank == 0,
        total_batches=total,
        keep_renders=cfg.renders,
        observers=[extra.observe] if extra is not None else (),
    )
    extras = run_extra(extra, cfg, manifest, rt)  # collective: every rank, before rank 0 goes on
    if result is None:
        return None
    model_name = str(meta.get("model"))
    run_meta = {
        "model": model_name,
        "model_label": cfg.model_label or display_name(model_name),
        "method": cfg.method(loader.choice.source),
        "checkpoint": str(loaded.source),
        "step": meta.get("step"),
        "preset": meta.get("preset"),
        "split": cfg.split,
        "text_source": loader.choice.source,
        "k": loader.choice.k,
        "aggregator": loader.choice.aggregator,
        "shards": {"dir": cfg.shards_dir, "digest": manifest.digest(), "embedder": manifest.embedder},
        "config": cfglib.to_dict(cfg),
    }
    out = result.out_dir = Path(cfg.output_dir(loader.choice.source))
    if extras is not None:
        attach_extra(result, extras, run_meta)
        write_extra(extras, out, str(run_meta["model_label"]))
    write_outputs(result, out, run_meta)
    cfglib.save(cfg, out / "config.yaml")
    if cfg.renders and result.renders:
        from cluster.eval_render import write_renders

        write_renders(result.renders, out / "renders", fps=cfg.render_fps)
    m = result.metrics
    log.info(
        "%s %s on %s (%d samples x %d, %d ranks, %.1f samples/s): APE root %.3f traj %.3f local %.3f "
        "global %.3f | AVE root %.3f traj %.3f local %.3f global %.3f -> %s",
        run_meta["model_label"],
        run_meta["method"],
        cfg.split,
        result.num_sequences,
        result.num_samples,
        result.world_size,
        result.samples_per_s,
        m["APE_root"],
        m["APE_traj"],
        m["APE_mean_pose"],
        m["APE_mean_joints"],
        m["AVE_root"],
        m["AVE_traj"],
        m["AVE_mean_pose"],
        m["AVE_mean_joints"],
        out,
    )
    return result


def preflight(cfg: EvalConfig) -> ModelSource:
    """The user-input checks, before any process group exists: every rank fails the same way (exit 2 from the
    command line) instead of one rank aborting the job mid-way. Returns the resolved ``cfg.checkpoint``."""
    from cluster.eval_model import resolve_model
    from shards.manifest import Manifest

    if not cfg.checkpoint:
        raise cfglib.ConfigError("checkpoint: not set (an exported model file, checkpoint or run directory)")
    manifest = Manifest.load(Path(cfg.shards_dir))
    mode = manifest.mode(cfg.split)  # ShardError naming the built splits when missing
    try:
        source = resolve_model(cfg.checkpoint)
    except ValueError as exc:  # not an export / unreadable
        raise cfglib.ConfigError(f"checkpoint: {exc}") from exc
    meta = source.meta
    if meta.get("model"):
        _check_mode(str(meta["model"]), mode, cfg)
    _text_choice(cfg, meta, cfg.checkpoint, warn=False).resolve(manifest.text)
    preflight_extra(cfg, manifest, meta)
    return source


def keep_freed_memory() -> bool:
    """Let this process keep the memory it frees (glibc malloc), instead of returning it to the OS.

    Every batch allocates and frees the same few-MB temporaries (features, joints, metric terms, activations).
    With glibc's defaults most of them are returned to the OS on free (its dynamic mmap threshold and heap
    trimming) and page-faulted back in by the next batch: ~20% of a batched CPU evaluation. Freed memory
    stays in the process after this (up to its peak use, which it reaches anyway). Small allocations, e.g.
    batches of one sample, never went to the OS. A no-op (False) without glibc.
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    # 32 MiB is glibc's largest mmap threshold on 64-bit; bigger blocks (weights) are still mapped
    ok = mallopt(m_mmap_threshold, 32 << 20) == 1
    return mallopt(m_trim_threshold, 1 << 30) == 1 and ok


def run_eval(cfg: EvalConfig) -> EvalResult | None:
    """Set up the process group, evaluate, tear down. Rank 0 returns the result, other ranks None."""
    source = preflight(cfg)
    keep_freed_memory()
    with eval_runtime(cfg.backend, cfg.dist_timeout_s) as rt:
        return evaluate_in_runtime(cfg, rt, source)


# ------------------------------------------------------------------------------------------- compare


def row_config(ccfg: CompareConfig, index: int) -> EvalConfig:
    """The resolved EvalConfig of comparison row ``index`` (base <- row overrides, out_dir per row)."""
    row = ccfg.rows[index]
    data = cfglib.merge(dict(ccfg.base), dict(row.overrides))
    data["out_dir"] = str(Path(ccfg.out_dir) / row.name)
    return cfglib.from_dict(EvalConfig, data, where=f"rows[{index}] ({row.name})")


def _reusable(cfg: EvalConfig) -> bool:
    """The row's metrics.json exists and was made with exactly this config."""
    path = Path(cfg.out_dir) / METRICS_FILE
    if not path.is_file():
        return False
    try:
        return read_metrics(path)["meta"].get("config") == cfglib.to_dict(cfg)
    except (ValueError, KeyError):
        return False


def comparison_table(ccfg: CompareConfig) -> tuple[str, list[dict[str, Any]]]:
    """The table of every row's metrics.json (rows in order) and the rows as plain data."""
    rows, data = [], []
    for i, row in enumerate(ccfg.rows):
        cfg = row_config(ccfg, i)
        payload = read_metrics(cfg.out_dir)
        meta = payload.get("meta", {})
        group = row.group or str(meta.get("model_label") or meta.get("model") or "?")
        label = row.label or cfg.method(meta.get("text_source"))
        rootless = str(meta.get("model", "")).lower() in ROOTLESS_MODELS
        rows.append(TableRow(group, label, payload["metrics"], rootless=rootless))
        data.append(
            {
                "name": row.name,
                "group": group,
                "label": label,
                "dir": cfg.out_dir,
                "metrics": {
                    k: payload["metrics"][k]
                    for k in payload["metrics"]
                    if not k.startswith("num_") and "_pose_" not in k and "_joints_" not in k
                },
                "num_sequences": payload.get("num_sequences"),
            }
        )
    return format_table(rows, headers=ccfg.headers, digits=ccfg.digits), data


def run_compare(ccfg: CompareConfig) -> str | None:
    """Evaluate every row not already evaluated with the same config; rank 0 returns the Markdown table."""
    configs = [row_config(ccfg, i) for i in range(len(ccfg.rows))]
    sources = [preflight(cfg) for cfg in configs]
    keep_freed_memory()
    first = configs[0]
    with eval_runtime(first.backend, first.dist_timeout_s) as rt:
        for i, cfg in enumerate(configs):
            decision = [ccfg.reuse and _reusable(cfg)] if rt.rank == 0 else [None]
            if dist.is_initialized():
                dist.broadcast_object_list(decision, src=0)  # every rank takes the same branch
            if decision[0]:
                if rt.rank == 0:
                    log.info("row %s: reusing %s", ccfg.rows[i].name, Path(cfg.out_dir) / METRICS_FILE)
                continue
            evaluate_in_runtime(cfg, rt, sources[i])
        if rt.rank != 0:
            return None
        table, data = comparison_table(ccfg)
        out = Path(ccfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / TABLE_FILE).write_text(table + "\n")
        (out / "comparison.json").write_text(
            json.dumps(
                {"headers": list(ccfg.headers), "rows": data},
                indent=2,
                default=lambda x: None if isinstance(x, float) and not math.isfinite(x) else str(x),
            )
        )
        cfglib.save(ccfg, out / "config.yaml")
        return table
