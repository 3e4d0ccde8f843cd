"""Export: one consolidated fp32 model for inference and sharing, from any complete checkpoint (DDP or
DeepSpeed).

An export is two files side by side: ``model.safetensors`` (the tensors, a format that holds only tensors,
so loading it runs no code) and ``model.json``: ``{"format": EXPORT_FORMAT, "weights": {"file", "bytes",
"sha256"}, "meta": {model, preset, model_overrides, text_dim, step, engine, ...}}``. Loading checks the
weights' size and digest against the JSON and never unpickles. The export is how to share a model;
checkpoint directories are for your own runs only (DCP and DeepSpeed read pickled metadata from them).

Exports written before this format (one ``model.pt``, a torch pickle container of tensors and plain data)
still load with ``torch.load(..., weights_only=True)``; ``python -m cluster.export runs/x/model.pt``
rewrites one as ``model.safetensors`` + ``model.json``. Runs in one process without a process group.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from actiongpt.config import ConfigError
from actiongpt.io_utils import atomic_write_bytes, atomic_write_text
from cluster.checkpoint import CheckpointInfo

__all__ = [
    "EXPORT_FILE",
    "EXPORT_FORMAT",
    "LEGACY_EXPORT_FILE",
    "LEGACY_FORMAT",
    "ExportError",
    "export_checkpoint",
    "load_export",
    "load_legacy_export",
    "meta_file",
    "model_state_from_checkpoint",
    "read_export_meta",
    "write_export",
]

log = logging.getLogger(__name__)

EXPORT_FORMAT = "actiongpt.model/2"  # model.safetensors + model.json
LEGACY_FORMAT = "actiongpt.model/1"  # model.pt: {"format", "model_state", "meta"} (torch pickle container)
EXPORT_FILE = "model.safetensors"
LEGACY_EXPORT_FILE = "model.pt"


class ExportError(ConfigError):
    """An export that cannot be read or written; the message names the file and the problem (a bad input:
    the commands exit with status 2)."""


def meta_file(weights: Path) -> Path:
    """The JSON that goes with an export's weights file (``model.safetensors`` -> ``model.json``)."""
    return Path(weights).with_suffix(".json")


# ------------------------------------------------------------------------------- checkpoint -> state


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
    """The full fp32 model state dict of a complete checkpoint (a trusted directory: see the module doc)."""
    engine = info.meta.get("engine")
    if engine == "ddp":
        return _ddp_model_state(info.path)
    if engine == "deepspeed":
        return _deepspeed_model_state(info.path, "ds", int(info.meta.get("zero_stage") or 0))
    raise ValueError(f"{info.path}: unknown engine {engine!r} in the checkpoint marker")


# ------------------------------------------------------------------------------------ write / read


def write_export(state: Mapping[str, torch.Tensor], meta: Mapping[str, Any], out: Path) -> Path:
    """Write ``state`` and ``meta`` as ``out`` (``*.safetensors``) and its JSON, each atomically.

    The weights go first: a crash in between leaves the old JSON, whose digest no longer matches, so the
    half-written export is refused instead of loading mismatched metadata."""
    from safetensors.torch import save

    out = Path(out)
    if out.suffix != ".safetensors":
        raise ExportError(
            f"{out}: an export is written as a .safetensors file (e.g. {out.with_suffix('.safetensors')})"
        )
    try:
        json.dumps(dict(meta))
    except TypeError as exc:
        raise ExportError(f"{out}: the export's metadata must be plain JSON data ({exc})") from exc
    # safetensors stores each tensor's own memory: contiguous, not shared with another entry
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    data = save(tensors, metadata={"format": EXPORT_FORMAT})
    atomic_write_bytes(out, data, fsync=True)
    doc = {
        "format": EXPORT_FORMAT,
        "weights": {"file": out.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        "meta": dict(meta),
    }
    atomic_write_text(meta_file(out), json.dumps(doc, indent=1, sort_keys=True) + "\n", fsync=True)
    return out


def export_checkpoint(info: CheckpointInfo, out: Path, meta: Mapping[str, Any] | None = None) -> Path:
    """Write the consolidated model of ``info`` to ``out`` (``*.safetensors``, plus its JSON)."""
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
    write_export(state, full_meta, Path(out))
    log.info("exported %d tensors from %s to %s", len(state), info.path, out)
    return Path(out)


def read_export_meta(weights: Path) -> dict[str, Any]:
    """The JSON of the export whose weights file is ``weights`` (checked: format and weights entry)."""
    path = meta_file(weights)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ExportError(
            f"{weights}: its metadata file {path.name} is missing (the export writes both)"
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path}: unreadable export metadata ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{path}: not an Action-GPT export (format {EXPORT_FORMAT!r} expected)")
    weights_entry = doc.get("weights")
    if not isinstance(weights_entry, dict) or not isinstance(doc.get("meta"), dict):
        raise ExportError(f"{path}: export metadata without 'weights' or 'meta'")
    return doc


def load_export(
    weights: Path, doc: Mapping[str, Any] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(model state dict, meta) of a safetensors export, read once and checked against its JSON. No pickle."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    weights = Path(weights)
    doc = dict(doc) if doc is not None else read_export_meta(weights)
    try:
        data = weights.read_bytes()
    except FileNotFoundError as exc:
        raise ExportError(f"{weights}: the export's weights file is missing") from exc
    expected = doc["weights"]
    if len(data) != expected.get("bytes") or hashlib.sha256(data).hexdigest() != expected.get("sha256"):
        raise ExportError(
            f"{weights}: the weights do not match {meta_file(weights).name} (size {len(data)}, "
            f"expected {expected.get('bytes')}; damaged, or an interrupted export): export again"
        )
    try:
        state = load(data)
    except SafetensorError as exc:  # pragma: no cover - the digest matched what the export wrote
        raise ExportError(f"{weights}: unreadable safetensors file ({exc})") from exc
    return state, dict(doc["meta"])


def load_legacy_export(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(model state dict, meta) of an export written as ``model.pt`` (tensors and plain data only)."""
    try:
        blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not its format
        raise ExportError(f"{path}: not an exported Action-GPT model ({type(exc).__name__}: {exc})") from exc
    if not isinstance(blob, dict) or blob.get("format") != LEGACY_FORMAT:
        raise ExportError(f"{path}: not an exported Action-GPT model (format {LEGACY_FORMAT!r} expected)")
    log.warning(
        "%s: an export in the older pickle-based format (loaded tensors-only); re-export it without pickle "
        "with: python -m cluster.export %s",
        path,
        path,
    )
    return blob["model_state"], blob["meta"]


def main(argv: list[str] | None = None) -> int:
    """``python -m cluster.export OLD.pt [NEW.safetensors]``: rewrite an older export without pickle."""
    p = argparse.ArgumentParser(prog="python -m cluster.export", description=main.__doc__)
    p.add_argument("src", type=Path, help="an export written as model.pt")
    p.add_argument("dst", type=Path, nargs="?", help="default: model.safetensors next to SRC")
    args = p.parse_args(argv)
    try:
        state, meta = load_legacy_export(args.src)
        out = write_export(state, meta, args.dst or args.src.with_name(EXPORT_FILE))
    except (ExportError, FileNotFoundError) as exc:
        print(f"error: {exc}")
        return 2
    print(f"wrote {out} and {meta_file(out).name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
