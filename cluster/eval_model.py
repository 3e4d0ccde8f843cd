"""Loading a trained model for evaluation, and the real backbones as the evaluator's ``generate_fn``.

``resolve_model(path)`` is the one place that decides what a path holds, reading only metadata (or, for an
older ``model.pt`` export, the file once, kept for the load):

- a ``*.safetensors`` file (or its ``*.json``): an export (``cluster.export``; no pickle);
- a ``*.pt`` file: an export in the older format (tensors-only unpickling, with a note on re-exporting);
- a folder with a completion marker: a checkpoint (consolidated in memory; trusted, your own runs);
- a run folder: its ``model.safetensors`` (or older ``model.pt``) if there, else its newest complete
  checkpoint.

``load_model`` rebuilds the backbone from the recorded ``model``, ``preset`` and ``model_overrides`` and the
text width ``text_dim`` (or, for exports that lack it, the caller's fallback: the shards' embedder).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from actiongpt.models.base import MotionModel
from actiongpt.models.generate import generate_features
from actiongpt.models.inputs import lengths_to_mask, text_from_batch
from actiongpt.models.registry import build_model
from actiongpt.models.sequence import sequence_features
from cluster.checkpoint import CheckpointInfo, newest_usable, read_marker
from cluster.evaluator import GenerateFn, is_pair_batch
from cluster.export import (
    EXPORT_FILE,
    LEGACY_EXPORT_FILE,
    load_export,
    load_legacy_export,
    model_state_from_checkpoint,
    read_export_meta,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ModelSource:
    """What a model path holds: ``kind`` "export", "legacy_export" or "checkpoint", the file or folder it
    resolved to, and the recorded ``meta`` (model, preset, text_source, ...)."""

    kind: str
    path: Path
    meta: dict[str, Any]
    _doc: dict[str, Any] | None = None  # an export's JSON, read once
    _state: dict[str, Tensor] | None = None  # an older export's weights, read with its meta

    def state_dict(self) -> dict[str, Tensor]:
        """The model's weights (read here, once; the older export's were read by ``resolve_model``)."""
        if self._state is not None:
            state, self._state = self._state, None
            return state
        if self.kind == "export":
            return load_export(self.path, self._doc)[0]
        return model_state_from_checkpoint(CheckpointInfo(self.path, int(self.meta["step"]), self.meta))


def _export_source(weights: Path) -> ModelSource:
    doc = read_export_meta(weights)
    return ModelSource("export", weights, dict(doc["meta"]), _doc=doc)


def _legacy_source(path: Path) -> ModelSource:
    state, meta = load_legacy_export(path)
    return ModelSource("legacy_export", path, dict(meta), _state=state)


def resolve_model(path: str | Path) -> ModelSource:
    """What ``path`` (an export file, a checkpoint folder or a run folder) holds; see the module doc."""
    path = Path(path)
    if path.is_file():
        if path.suffix in (".safetensors", ".json"):
            return _export_source(path.with_suffix(".safetensors"))
        return _legacy_source(path)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    marker = read_marker(path)
    if marker is not None:  # a checkpoint step directory
        return ModelSource("checkpoint", path, marker)
    if (path / EXPORT_FILE).is_file():  # a run directory with its export
        return _export_source(path / EXPORT_FILE)
    if (path / LEGACY_EXPORT_FILE).is_file():
        return _legacy_source(path / LEGACY_EXPORT_FILE)
    info = newest_usable(path / "checkpoints")
    if info is None:
        raise FileNotFoundError(
            f"{path}: not an exported model file, a complete checkpoint or a run directory with "
            f"{EXPORT_FILE} or checkpoints/step-*/COMPLETE"
        )
    return ModelSource("checkpoint", info.path, dict(info.meta))


@dataclasses.dataclass
class LoadedModel:
    model: MotionModel
    meta: dict[str, Any]
    source: Path


def model_config(name: str, preset: str = "paper", overrides: Mapping[str, Any] | None = None) -> Any:
    """The backbone config the trainer builds for (model, preset, model_overrides): ``cluster.components``."""
    from cluster.components import model_config as train_model_config
    from cluster.train_config import TrainConfig

    return train_model_config(TrainConfig(model=name, preset=preset, model_overrides=dict(overrides or {})))


def load_model(
    path: str | Path | ModelSource, *, text_dim: int | None = None, device: str | torch.device = "cpu"
) -> LoadedModel:
    """Rebuild and load a trained backbone in eval mode. ``text_dim``: fallback when the file lacks it."""
    src = path if isinstance(path, ModelSource) else resolve_model(path)
    meta, source = src.meta, src.path
    name = meta.get("model")
    if not name:
        raise ValueError(f"{source}: the checkpoint does not say which model it holds (meta 'model' missing)")
    dim = meta.get("text_dim") or text_dim
    if not dim:
        raise ValueError(f"{source}: no text_dim recorded and none given")
    cfg = model_config(name, meta.get("preset", "paper"), meta.get("model_overrides"))
    model = build_model(name, cfg, int(dim))
    missing, unexpected = model.load_state_dict(src.state_dict(), strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{source}: weights do not fit {name} (preset {meta.get('preset')!r}, text_dim {dim}): "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.require_feature_stats(f"evaluating {source}")
    model.to(device).eval()
    return LoadedModel(model, dict(meta), source)


def model_generate_fn(
    model: MotionModel,
    *,
    mean: bool = False,
    fact: float = 1.0,
    slerp_window: int | None = 8,
    align: str = "full",
    yaw: str = "original",
) -> GenerateFn:
    """``generate_fn`` for the evaluator: the batch's precomputed text embeddings and reference lengths ->
    unnormalised features, noise from the per-sample seeds.

    Single actions (TEMOS, MotionCLIP): one decode per sample. Pairs (TEACH): ``forward_seq`` over the two
    actions with lengths ``[l_0, l_1]`` (``l_1`` includes the transition), slerp window and alignment as the
    original's evaluation (``slerp_ws 8``, ``align full``). MotionCLIP is deterministic (its text latent is
    the embedding itself); ``mean`` is forced for it.
    """
    pooled_only = model.name == "motionclip"
    use_mean = mean or not getattr(model, "variational", False)

    @torch.no_grad()
    def generate(batch: Mapping[str, Any], seeds: list[int]) -> Tensor:
        if is_pair_batch(batch):
            texts = [text_from_batch(batch, f"_{a}", pooled_only) for a in (0, 1)]
            lengths = torch.stack([batch["lengths_0"], batch["lengths_1"]], dim=1).long()
            return sequence_features(
                model,
                texts,
                lengths,
                seeds,
                mean=use_mean,
                fact=fact,
                slerp_window=slerp_window,
                align=align,
                yaw=yaw,
            )
        lengths = batch["lengths"].long()
        feats = generate_features(
            model, text_from_batch(batch, "", pooled_only), lengths, seeds=seeds, mean=use_mean, fact=fact
        )
        mask = lengths_to_mask(lengths.to(feats.device), feats.shape[1])
        return model.denormalize(feats) * mask[..., None]

    return generate
