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
from cluster.dist_env import DistEnv
from cluster.train_config import TrainConfig

# Which text width each backbone consumes: TEMOS/TEACH read per-token embeddings, MotionCLIP the pooled one.
POOLED_TEXT_MODELS = {"motionclip"}
# The shard mode each backbone trains on (TEACH: action pairs with transitions; the others: single actions).
PAIR_MODELS = {"teach"}
# Models that train on either layout (the text-motion evaluator: each action of a pair is an item).
ANY_LAYOUT_MODELS = {"evaluator"}


def model_config(cfg: TrainConfig) -> Any:
    """The backbone's config dataclass: preset (paper | tiny | YAML path) <- ``model_overrides``."""
    from actiongpt.models.registry import config_class

    cls = config_class(cfg.model)
    if cfg.preset in ("paper", "tiny"):
        base = cfglib.to_dict(getattr(cls, cfg.preset)())
    else:
        path = Path(cfg.preset)
        if not path.is_file():
            raise ConfigError(f"preset: {cfg.preset!r} is neither 'paper', 'tiny' nor an existing YAML file")
        base = cfglib.to_dict(cfglib.load(cls, [path]))
    return cfglib.from_dict(cls, cfglib.merge(base, cfg.model_overrides), where="model")


def text_dim_for(cfg: TrainConfig, manifest: Any) -> int:
    return manifest.pooled_dim if cfg.model.lower() in POOLED_TEXT_MODELS else manifest.token_dim


def load_manifest(cfg: TrainConfig) -> Any:
    from shards.manifest import Manifest

    manifest = Manifest.load(Path(cfg.shards_dir))
    mode = manifest.mode(cfg.train_split)
    want_pairs = cfg.model.lower() in PAIR_MODELS
    if want_pairs != (mode == "pairs") and cfg.model.lower() not in ANY_LAYOUT_MODELS:
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


def loader_config(cfg: TrainConfig, split: str, train: bool) -> Any:
    from shards.loader import LoaderConfig

    assert cfg.batch_size is not None
    fields = {f.name for f in dataclasses.fields(LoaderConfig)}
    unknown = sorted(set(cfg.loader_overrides) - fields)
    if unknown:
        raise ConfigError(
            f"loader_overrides: unknown LoaderConfig field(s) {unknown}; valid: {sorted(fields)}"
        )
    data: dict[str, Any] = {
        "root": cfg.shards_dir,
        "split": split,
        "batch_size": cfg.batch_size,
        "num_workers": cfg.num_workers,
        "seed": cfg.seed,
        "text_source": cfg.text_source,
        "k": cfg.k,
        "aggregator": cfg.aggregator,
        **cfg.loader_overrides,
    }
    if not train:
        data["shuffle"] = False  # validation sees the same batches every time
    return cfglib.from_dict(LoaderConfig, data, where="loader")


def build_loaders(cfg: TrainConfig, env: DistEnv, manifest: Any) -> tuple[Any, Any]:
    """(train loader, validation loader or None when validation is off) for this rank."""
    from shards.loader import ShardLoader

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
