"""Export: one consolidated fp32 model file for inference, from any complete checkpoint (DDP or DeepSpeed).

The file holds only tensors and plain data, so it loads with ``torch.load(..., weights_only=True)``:
``{"format": EXPORT_FORMAT, "model_state": {name: tensor}, "meta": {model, preset, model_overrides,
text_dim, step, engine, ...}}``. Runs in one process without a process group.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cluster.checkpoint import CheckpointInfo, read_marker

log = logging.getLogger(__name__)

EXPORT_FORMAT = "actiongpt.model/1"


def _ddp_model_state(path: Path) -> dict[str, torch.Tensor]:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    md = dcp.FileSystemReader(str(path)).read_metadata().state_dict_metadata
    target = {
        key[len("model.") :]: torch.empty(tuple(m.size), dtype=m.properties.dtype)
        for key, m in md.items()
        if key.startswith("model.") and isinstance(m, TensorStorageMetadata)
    }
    if not target:
        raise ValueError(f"{path}: no model tensors in this DCP checkpoint")
    state = {"model": target}
    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.filterwarnings("ignore", message=".*load in a single process.*")
        dcp.load(state, checkpoint_id=str(path), no_dist=True)
    return state["model"]


def _deepspeed_model_state(path: Path, tag: str, zero_stage: int) -> dict[str, torch.Tensor]:
    if zero_stage > 0:
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        sd = get_fp32_state_dict_from_zero_checkpoint(str(path), tag=tag)
    else:
        # Without ZeRO the full module sits in the model-states file (plain tensors and data: loads safely).
        states = torch.load(
            Path(path) / tag / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=True
        )
        sd = states["module"]
    return {k: v.detach().float().clone() if v.is_floating_point() else v.clone() for k, v in sd.items()}


def model_state_from_checkpoint(info: CheckpointInfo) -> dict[str, torch.Tensor]:
    """The full fp32 model state dict of a complete checkpoint."""
    engine = info.meta.get("engine")
    if engine == "ddp":
        return _ddp_model_state(info.path)
    if engine == "deepspeed":
        return _deepspeed_model_state(info.path, "ds", int(info.meta.get("zero_stage") or 0))
    raise ValueError(f"{info.path}: unknown engine {engine!r} in the checkpoint marker")


def export_checkpoint(info: CheckpointInfo, out: Path, meta: Mapping[str, Any] | None = None) -> Path:
    """Write the consolidated model of ``info`` to ``out`` (atomically) and return ``out``."""
    state = model_state_from_checkpoint(info)
    full_meta: dict[str, Any] = {
        "step": info.step,
        "engine": info.meta.get("engine"),
        "source": str(info.path),
    }
    for key in ("model", "preset", "model_overrides", "text_dim", "epoch"):
        if key in info.meta:
            full_meta[key] = info.meta[key]
    full_meta.update(meta or {})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save({"format": EXPORT_FORMAT, "model_state": state, "meta": full_meta}, tmp)
    os.replace(tmp, out)
    log.info("exported %d tensors from %s to %s", len(state), info.path, out)
    return out


def export_path(path: Path, out: Path) -> Path:
    """Export from a checkpoint directory given by path (must be complete)."""
    meta = read_marker(Path(path))
    if meta is None:
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no valid COMPLETE marker)")
    return export_checkpoint(CheckpointInfo(Path(path), meta["step"], meta), out)


def load_exported(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(model state dict, meta) of an exported file; checks the format."""
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{path}: not an exported Action-GPT model (format {EXPORT_FORMAT!r} expected)")
    return blob["model_state"], blob["meta"]
