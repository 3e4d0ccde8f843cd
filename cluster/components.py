"""Build the real pieces a :class:`TrainConfig` names: the backbone (model registry) and the shard loaders.

Kept apart from the trainer so that the trainer runs any model with a ``forward(batch) -> {"loss", ...}``
and any loader meeting ``cluster.loader_protocol`` (the tests drive it with toy ones).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from actiongpt import config as cfglib
from actiongpt.config import ConfigError
from actiongpt.models.registry import backbone
from cluster.dist_env import DistEnv
from cluster.train_config import TrainConfig


def model_config(cfg: TrainConfig) -> Any:
    """The backbone's config dataclass (:meth:`TrainConfig.model_config`)."""
    return cfg.model_config()


def text_dim_for(cfg: TrainConfig, manifest: Any) -> int:
    return backbone(cfg.model).text_dim(manifest.pooled_dim, manifest.token_dim)


def load_manifest(cfg: TrainConfig) -> Any:
    from shards.manifest import Manifest

    manifest = Manifest.load(Path(cfg.shards_dir))
    mode = manifest.mode(cfg.train_split)
    spec = backbone(cfg.model)
    want_pairs = spec.pairs
    if want_pairs != (mode == "pairs") and not spec.either_layout:
        raise ConfigError(
            f"shards_dir {cfg.shards_dir}: split {cfg.train_split!r} holds {mode!r} samples but model "
            f"{cfg.model!r} trains on {'pairs' if want_pairs else 'single actions (seg/seq)'}"
        )
    return manifest


def build_model(cfg: TrainConfig, manifest: Any) -> torch.nn.Module:
    """The backbone for these shards, with the train-split feature statistics (features are normalised)."""
    from actiongpt.models.registry import build_model as registry_build

    model = registry_build(cfg.model, model_config(cfg), text_dim_for(cfg, manifest))
    mean, std = manifest.stats()
    model.set_feature_stats(torch.as_tensor(mean), torch.as_tensor(std))
    return model


def shard_loader_config(
    stage: Any, split: str, text_source: str, k: int | None, aggregator: str | None, **fields: Any
) -> Any:
    """The ``LoaderConfig`` of a stage (training or evaluation): the fields every stage config shares
    (``shards_dir``, ``batch_size``, ``num_workers``, ``seed``), the text choice, then ``fields``."""
    from shards.loader import LoaderConfig

    data: dict[str, Any] = {
        "root": stage.shards_dir,
        "split": split,
        "batch_size": stage.batch_size,
        "num_workers": stage.num_workers,
        "seed": stage.seed,
        "text_source": text_source,
        "k": k,
        "aggregator": aggregator,
        **fields,
    }
    return cfglib.from_dict(LoaderConfig, data, where="loader")


def loader_config(cfg: TrainConfig, split: str, train: bool) -> Any:
    from shards.loader import LoaderConfig

    assert cfg.batch_size is not None
    fields = {f.name for f in dataclasses.fields(LoaderConfig)}
    unknown = sorted(set(cfg.loader_overrides) - fields)
    if unknown:
        raise ConfigError(
            f"loader_overrides: unknown LoaderConfig field(s) {unknown}; valid: {sorted(fields)}"
        )
    extra = dict(cfg.loader_overrides)
    if not train:
        extra["shuffle"] = False  # validation sees the same batches every time
    return shard_loader_config(cfg, split, cfg.text_source, cfg.k, cfg.aggregator, **extra)


def build_loaders(cfg: TrainConfig, env: DistEnv, manifest: Any) -> tuple[Any, Any]:
    """(train loader, validation loader or None when validation is off) for this rank.

    First the shard files against the manifest (``shard_check``): a bad shard is named before step 1."""
    from shards.loader import ShardLoader
    from shards.verify import check_shard_files

    if cfg.shard_check != "off":
        splits = [
            cfg.train_split,
            *([cfg.val_split] if cfg.val_every and cfg.val_split in manifest.splits else []),
        ]
        check_shard_files(manifest, splits, digests=cfg.shard_check == "digests")
    train = ShardLoader(
        loader_config(cfg, cfg.train_split, True), rank=env.rank, world_size=env.world_size, manifest=manifest
    )
    val = None
    if cfg.val_every:
        if cfg.val_split not in manifest.splits:
            raise ConfigError(
                f"val_every={cfg.val_every} but {cfg.shards_dir} has no split {cfg.val_split!r} "
                f"(built: {manifest.splits}); set val_every=0 or build it"
            )
        val = ShardLoader(
            loader_config(cfg, cfg.val_split, False),
            rank=env.rank,
            world_size=env.world_size,
            manifest=manifest,
        )
    return train, val


def run_meta(cfg: TrainConfig, manifest: Any) -> dict[str, Any]:
    """What an exported model needs besides weights to be rebuilt (stored in checkpoint markers and exports).

    ``model_overrides`` holds the *complete* resolved model config, so a loader that applies it over any
    preset (``cluster.eval_model``) rebuilds exactly this model, also when the preset was a YAML file.
    """
    return {
        "preset": cfg.preset if cfg.preset in ("paper", "tiny") else "paper",
        "model_overrides": cfglib.to_dict(model_config(cfg)),
        "text_dim": text_dim_for(cfg, manifest),
        "text_source": cfg.text_source,
        # the text path as trained, so sampling/evaluation default to the same k and aggregation
        "k": cfg.k if cfg.k is not None else manifest.text.get("k"),
        "aggregator": cfg.aggregator or manifest.text.get("aggregator") or "original",
        "embedder": manifest.embedder.get("name"),
        "shards_digest": manifest.digest(),
    }
