"""The engine interface the trainer drives, and the pieces both engines share (precision, batch moves)."""

from __future__ import annotations

import abc
import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from actiongpt.config import ConfigError
from actiongpt.models.batch import MotionBatch
from cluster.process_group import ProcessGroupInfo
from cluster.train_config import TrainConfig

log = logging.getLogger(__name__)


def resolve_precision(requested: str, device: torch.device) -> str:
    """``auto``: bf16 on a GPU that supports it (else fp16), fp32 on CPU. Half precision on CPU is refused
    rather than silently ignored."""
    if device.type != "cuda":
        if requested in ("bf16", "fp16"):
            raise ConfigError(f"precision: {requested} autocast needs a GPU; use 'auto' or 'fp32' on CPU")
        return "fp32"
    if requested == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return requested


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    if precision == "fp32" or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a (nested) batch to ``device``; other values pass through."""
    if isinstance(batch, torch.Tensor | MotionBatch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def scalar_terms(out: Mapping[str, Any], where: str = "model output") -> dict[str, torch.Tensor]:
    """The scalar loss terms of a model's output dict (detached, fp32); checks the contract."""
    if not isinstance(out, Mapping) or "loss" not in out:
        raise TypeError(f"{where} must be a dict with a 'loss' key, got {type(out).__name__}")
    terms = {}
    for k, v in out.items():
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            terms[k] = v.detach().float().reshape(())
    return terms


def encode_train_state(state: Mapping[str, Any]) -> bytes:
    """Train state -> UTF-8 JSON (fails loudly on values JSON cannot hold, e.g. loader states with arrays)."""
    try:
        return json.dumps(state, sort_keys=True, allow_nan=True).encode()
    except TypeError as exc:
        raise TypeError(
            f"train state is not JSON-serialisable (loader state_dict must be plain data): {exc}"
        ) from exc


def decode_train_state(raw: bytes, where: str) -> dict[str, Any]:
    try:
        return json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: train state is corrupt ({exc})") from exc


class Engine(abc.ABC):
    """One optimizer step = ``accum`` calls of :meth:`forward_backward` then one :meth:`step`."""

    name: str = "engine"

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, pg: ProcessGroupInfo, accum: int):
        self.cfg = cfg
        self.pg = pg
        self.device = pg.device
        self.accum = accum
        self.precision = resolve_precision(cfg.precision, pg.device)

    # --- training
    @property
    @abc.abstractmethod
    def module(self) -> torch.nn.Module:
        """The bare model (no DDP/DeepSpeed wrapper)."""

    @property
    @abc.abstractmethod
    def optimizer(self) -> torch.optim.Optimizer: ...

    @abc.abstractmethod
    def forward_backward(
        self, batch: Mapping[str, Any], last_micro: bool, loss_factor: float | None = None
    ) -> dict[str, torch.Tensor]:
        """Forward and backward of one micro-batch; returns the detached scalar loss terms.

        ``loss_factor`` None: the loss is a micro-batch mean, gradients are averaged over micro-batches and
        ranks. A number: the loss is the micro-batch's share of the global-batch loss; it is multiplied by
        ``loss_factor`` (the world size, undoing the ranks' gradient averaging) and not divided by the
        accumulation steps, so the step's gradient is that of the summed shares.
        """

    @abc.abstractmethod
    def step(self, lr: float) -> float:
        """Apply the accumulated gradients with learning rate ``lr``; returns the gradient norm (pre-clip)."""

    @torch.no_grad()
    def eval_forward(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        batch = to_device(batch, self.device)
        with autocast(self.precision, self.device):
            out = self.module(batch)
        return scalar_terms(out)

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        was_training = self.module.training
        self.module.eval()
        try:
            yield
        finally:
            self.module.train(was_training)

    # --- checkpoints (collective: every rank calls them)
    @abc.abstractmethod
    def save(self, path: Path, train_state: Mapping[str, Any]) -> None: ...

    @abc.abstractmethod
    def load(self, path: Path, meta: Mapping[str, Any]) -> dict[str, Any]:
        """Restore model/optimizer from ``path`` and return the train state stored with them."""

    def extra_state(self) -> dict[str, Any]:
        """Engine state outside model/optimizer (the fp16 loss scaler) for the train state."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        pass
