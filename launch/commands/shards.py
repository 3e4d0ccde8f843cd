"""``actiongpt shards``: embed descriptions once, write WebDataset shards, verify them.

    actiongpt shards embed  -c configs/shards/default.yaml              # label + description embeddings
    actiongpt shards build  -c configs/shards/default.yaml              # embeds what is missing, then shards
    actiongpt shards build  -c configs/shards/default.yaml --part 1/4   # builder 1 of 4 (or array task/RANK)
    actiongpt shards verify data/embedded/shards/pairs-minilm           # every shard against the manifest
    actiongpt shards info   data/embedded/shards/pairs-minilm           # counts and bytes per sample

Parallel runs: under torchrun/srun (RANK, WORLD_SIZE, MASTER_ADDR set) the parts synchronise with a gloo
barrier and rank 0 merges. As Slurm array tasks or with ``--part i/n`` each part merges when it finds all
parts complete; run ``embed`` on every part before ``build``. Both stages resume: rerunning skips finished
work. Exit codes: 0 this part's work is done (the last part to finish merges); 1 verify found problems;
2 user error (bad config, missing data, a label without descriptions, a non-finite embedding, ...).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from actiongpt import config as cfglib
from actiongpt.text.cache import load_descriptions
from actiongpt.text.embed_stage import EmbedConfig, EmbedResult, run_embed_stage, token_stats
from actiongpt.text.embedder_registry import build_embedder
from actiongpt.text.embedders import EmbeddingError
from actiongpt.text.embedding_store import EmbeddingStore, StoreError
from actiongpt.text.partition import part_from_env
from launch.config_args import add_config_args, resolve
from launch.errors import UserError
from shards.config import ShardsConfig
from shards.format import ShardError

log = logging.getLogger("actiongpt.shards")
DEFAULT_CONFIG = "configs/shards/default.yaml"


# Parts finish at different times (one may still embed for hours): the barrier waits that long.
BARRIER_TIMEOUT = datetime.timedelta(hours=12)


def _process_group() -> Callable[[], None] | None:
    """A barrier when launched as ranks of one job (torchrun, srun, submitit), else None (array tasks)."""
    import torch.distributed as dist

    from cluster import process_group
    from cluster.dist_env import detect

    if dist.is_available() and dist.is_initialized():
        return dist.barrier
    env = detect()
    if env.world_size > 1:
        # barriers only: gloo, also on GPU nodes
        process_group.init(env, backend="gloo", timeout_s=BARRIER_TIMEOUT.total_seconds())
        return dist.barrier
    return None


def _part(explicit: str | None, cfg_part: str | None) -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and not (explicit or cfg_part):
        return dist.get_rank(), dist.get_world_size()
    part = part_from_env(os.environ, explicit or cfg_part)
    return part.index, part.count


def run_embed(
    cfg: EmbedConfig, part: tuple[int, int], barrier: Callable[[], None] | None, progress: bool
) -> EmbedResult:
    try:
        descs = load_descriptions(cfg.descriptions, k=cfg.k, model=cfg.model_filter)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(f"descriptions {cfg.descriptions}: {exc}") from exc
    if not descs:
        raise UserError(f"no descriptions found in {cfg.descriptions}")

    def factory():
        return build_embedder(
            cfg.embedder,
            cfg.model,
            device=cfg.device,
            compute_dtype=cfg.compute_dtype,
            max_tokens=cfg.max_tokens,
        )

    try:
        return run_embed_stage(
            descs,
            cfg.out,
            factory,
            spec=cfg.spec(),
            num_chunks=cfg.chunks,
            batch_size=cfg.batch_size,
            part=part[0],
            num_parts=part[1],
            barrier=barrier,
            progress=progress,
        )
    except EmbeddingError as exc:
        raise UserError(str(exc)) from exc


def cmd_embed(args: argparse.Namespace) -> int:
    cfg = resolve(ShardsConfig, args)
    part = _part(args.part, cfg.embed.part or cfg.part)
    res = run_embed(cfg.embed, part, _process_group(), not args.no_progress)
    print(
        f"embed: {res.chunks_embedded} chunks embedded, {res.chunks_reused} reused of {res.chunks_total} "
        f"({res.texts_embedded} texts, {res.seconds:.1f} s) -> {res.folder}"
        + ("" if res.merged else "; waiting for other parts before the merge"),
        file=sys.stderr,
    )
    if res.merged:
        store = EmbeddingStore(res.folder)
        stats = token_stats(store)
        print(
            f"embed: {len(store)} labels, {store.embedder['name']} ({store.token_dim}-d tokens, "
            f"{store.pooled_dim}-d pooled); mean tokens per label {stats['label_tokens_mean']:.1f}, per "
            f"description {stats['description_tokens_mean']:.1f} (max {store.embedder['max_tokens']})",
            file=sys.stderr,
        )
    return 0  # this part is done; the store is merged by whichever part finishes last


def _sources(cfg: ShardsConfig, progress: bool) -> dict:
    from actiongpt.data.dataset import MotionDataset
    from actiongpt.data.errors import DataError
    from shards.source import DatasetSource

    out = {}
    for split in cfg.splits:
        data_cfg = dataclasses.replace(cfg.data, split=split)
        try:
            ds = MotionDataset.from_config(data_cfg, progress=progress)
        except (DataError, FileNotFoundError) as exc:
            raise UserError(f"dataset split {split!r}: {exc}") from exc
        if len(ds) == 0:
            raise UserError(
                f"dataset split {split!r} ({cfg.data.babel_dir}, mode {cfg.data.mode}) has no samples"
            )
        out[split] = DatasetSource(ds, cfg.canonicalize)
    return out


def cmd_build(args: argparse.Namespace) -> int:
    from shards.merge import describe_summary
    from shards.writer import build_shards

    cfg = resolve(ShardsConfig, args)
    part = _part(args.part, cfg.part)
    barrier = _process_group()
    if not (Path(cfg.embed.out) / "index.json").is_file() or not args.skip_embed:
        res = run_embed(cfg.embed, part, barrier, not args.no_progress)
        if not res.merged:
            raise UserError(
                f"the embedding store {cfg.embed.out} is not complete yet: run `actiongpt shards embed` "
                "on every part first (or launch the parts together under torchrun/srun)"
            )
    try:
        store = EmbeddingStore(cfg.embed.out)
        sources = _sources(cfg, not args.no_progress)
        result = build_shards(
            cfg,
            sources,
            store,
            part=part[0],
            num_parts=part[1],
            barrier=barrier,
            progress=not args.no_progress,
        )
    except (ShardError, StoreError) as exc:
        raise UserError(str(exc)) from exc
    cfglib.save(cfg, Path(cfg.out) / "build_config.yaml")
    print(
        f"build: part {part[0]}/{part[1]} wrote {result.items_written}, reused {result.items_reused} of "
        f"{result.items_total} files in {result.seconds:.1f} s",
        file=sys.stderr,
    )
    if result.summary:
        print(describe_summary(result.summary), file=sys.stderr)
        print(f"manifest: {result.manifest}", file=sys.stderr)
        return 0
    if result.manifest:
        print(f"build: manifest written by part 0: {result.manifest}", file=sys.stderr)
        return 0
    # this part's work is done (exit 0 so Slurm dependencies proceed); the last part to finish merges
    print("build: other parts are still running; the last one to finish writes the manifest", file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from shards.verify import verify_shards

    try:
        report = verify_shards(
            args.root, args.split, checksum=not args.no_checksum, progress=not args.no_progress
        )
    except ShardError as exc:
        raise UserError(str(exc)) from exc
    print(report.summary())
    for p in report.problems[1 : args.max_problems]:
        print(f"  also: {p}")
    return 0 if report.ok else 1


def cmd_info(args: argparse.Namespace) -> int:
    from shards.manifest import Manifest

    try:
        m = Manifest.load(args.root)
    except ShardError as exc:
        raise UserError(str(exc)) from exc
    info = {
        "embedder": m.embedder["name"],
        "token_dim": m.token_dim,
        "pooled_dim": m.pooled_dim,
        "text": m.text,
        "motion": m.data["motion"],
        "splits": {},
    }
    for split in m.splits:
        s = m.split(split)
        info["splits"][split] = {
            "mode": s["mode"],
            "samples": s["num_samples"],
            "shards": len(s["shards"]),
            "labels": s["num_labels"],
            **{k: round(v, 1) for k, v in s["bytes"].items()},
        }
    print(json.dumps(info, indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "shards",
        help="embed descriptions, write and verify WebDataset shards",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="shards_command", metavar="SUBCOMMAND", required=True)

    emb = sub.add_parser("embed", help="embed every label and its descriptions once (distributed, resumable)")
    add_config_args(emb, [DEFAULT_CONFIG])
    emb.add_argument("--part", help="i/n: this process's share (default: process group, Slurm array, RANK)")
    emb.add_argument("--no-progress", action="store_true")
    emb.set_defaults(func=cmd_embed)

    build = sub.add_parser("build", help="write shards + manifest from a dataset split and the embeddings")
    add_config_args(build, [DEFAULT_CONFIG])
    build.add_argument("--part", help="i/n: this builder's share (default: process group, Slurm array, RANK)")
    build.add_argument("--skip-embed", action="store_true", help="use the embedding store as it is")
    build.add_argument("--no-progress", action="store_true")
    build.set_defaults(func=cmd_build)

    ver = sub.add_parser("verify", help="check every shard against the manifest")
    ver.add_argument("root", help="shard folder (holds manifest.json)")
    ver.add_argument("--split", action="append", help="only this split (repeatable)")
    ver.add_argument("--no-checksum", action="store_true", help="skip the sha256 comparison")
    ver.add_argument("--max-problems", type=int, default=20)
    ver.add_argument("--no-progress", action="store_true")
    ver.set_defaults(func=cmd_verify)

    info = sub.add_parser("info", help="summary of a shard folder")
    info.add_argument("root")
    info.set_defaults(func=cmd_info)
