"""What defines an experiment, recorded in every checkpoint marker and checked before a resume.

A run directory resumed with another backbone, model shape, text source, number of descriptions,
aggregator, text encoder or shard set would silently continue a different experiment (or fail deep inside
the weight loading). The marker's ``identity`` holds these facts; a resume compares them with the run being
started and refuses any difference, naming each key with both values, before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actiongpt.config import ConfigError
from cluster.train_config import TrainConfig

# The marker/meta keys that define an experiment (``cluster.components.run_meta`` fills the ones beyond the
# config: the resolved model shape, the text width, the embedder and the shards' digest).
IDENTITY_KEYS = (
    "model",
    "preset",
    "model_overrides",
    "text_dim",
    "text_source",
    "k",
    "aggregator",
    "embedder",
    "shards_digest",
)


def experiment_meta(cfg: TrainConfig, extra_meta: Mapping[str, Any]) -> dict[str, Any]:
    """What every checkpoint marker of a run records about it: the config's identity keys, refined by the
    caller's ``extra_meta`` (``cluster.components.run_meta``: resolved model config, k, embedder, shards)."""
    return {
        "model": cfg.model,
        "preset": cfg.preset,
        "model_overrides": cfg.model_overrides,
        "text_source": cfg.text_source,
        "k": cfg.k,
        "aggregator": cfg.aggregator,
        **extra_meta,
    }


def identity_of(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The identity part of a run's meta (the keys it has)."""
    return {k: meta[k] for k in IDENTITY_KEYS if k in meta}


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, recorded value, current value)`` for every identity key both sides hold and that differs;
    nested values (the model config) are compared key by key (``model_overrides.latent_dim``)."""
    a, b = _flat(identity_of(recorded)), _flat(identity_of(current))
    tops = {k.split(".", 1)[0] for k in a} & {k.split(".", 1)[0] for k in b}
    keys = sorted(k for k in set(a) | set(b) if k.split(".", 1)[0] in tops)
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


def check_same_experiment(where: str, recorded: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """Raise ConfigError listing every differing identity key when ``current`` is another experiment."""
    diffs = differences(recorded, current)
    if diffs:
        lines = "; ".join(f"{k}: checkpoint {old!r}, this run {new!r}" for k, old, new in diffs)
        raise ConfigError(
            f"{where} belongs to another experiment ({lines}); use another run_dir for a new experiment, "
            "or the checkpoint's settings to resume it"
        )
