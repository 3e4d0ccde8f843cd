"""DDP engine: DistributedDataParallel + torch AdamW, checkpoints with torch.distributed.checkpoint (DCP).

DCP writes one file per rank plus ``.metadata`` and reshards on load, so a checkpoint from N ranks loads on
M ranks. The train state (step, schedule, per-rank loader and RNG states) is stored inside the same DCP
checkpoint as a UTF-8 JSON byte tensor: one artefact, no pickled Python objects of ours.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.nn.parallel import DistributedDataParallel as DDP

from cluster.engines.base import (
    Engine,
    autocast,
    decode_train_state,
    encode_train_state,
    scalar_terms,
    to_device,
)
from cluster.process_group import ProcessGroupInfo
from cluster.train_config import TrainConfig

log = logging.getLogger(__name__)

TRAIN_STATE_KEY = "train_state"


class DDPEngine(Engine):
    name = "ddp"

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, pg: ProcessGroupInfo, accum: int):
        super().__init__(model, cfg, pg, accum)
        model.to(self.device)
        self._module = model
        self.ddp = DDP(
            model,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=cfg.find_unused_parameters,
        )
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters")
        self._params = params
        assert cfg.lr is not None
        self._optimizer = torch.optim.AdamW(
            params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay
        )
        # fp16 needs loss scaling; bf16 has fp32's range and does not.
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None

    @property
    def module(self) -> torch.nn.Module:
        return self._module

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._optimizer

    def forward_backward(
        self, batch: Mapping[str, Any], last_micro: bool, loss_factor: float | None = None
    ) -> dict[str, torch.Tensor]:
        batch = to_device(batch, self.device)
        # Gradients are all-reduced only on the last micro-batch of a step (DDP's no_sync).
        sync = contextlib.nullcontext() if last_micro else self.ddp.no_sync()
        with sync:
            with autocast(self.precision, self.device):
                out = self.ddp(batch)
            terms = scalar_terms(out)
            loss = out["loss"].float()
            loss = loss / self.accum if loss_factor is None else loss * loss_factor
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
            else:
                loss.backward()
        return terms

    def step(self, lr: float) -> float:
        for group in self._optimizer.param_groups:
            group["lr"] = lr
        if self.scaler is not None:
            self.scaler.unscale_(self._optimizer)
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(self._params, max_norm)
        if self.scaler is not None:
            self.scaler.step(self._optimizer)
            self.scaler.update()
        else:
            self._optimizer.step()
        self._optimizer.zero_grad(set_to_none=True)
        return float(norm)

    # --- checkpoints
    def save(self, path: Path, train_state: Mapping[str, Any]) -> None:
        model_sd, optim_sd = get_state_dict(self.ddp, self._optimizer)
        blob = torch.frombuffer(bytearray(encode_train_state(train_state)), dtype=torch.uint8)
        dcp.save({"model": model_sd, "optim": optim_sd, TRAIN_STATE_KEY: blob}, checkpoint_id=str(path))

    def load(self, path: Path, meta: Mapping[str, Any]) -> dict[str, Any]:
        reader = dcp.FileSystemReader(str(path))
        md = reader.read_metadata().state_dict_metadata
        if TRAIN_STATE_KEY not in md:
            raise ValueError(f"{path}: not a DDP checkpoint of this trainer (no {TRAIN_STATE_KEY!r} entry)")
        model_sd, optim_sd = get_state_dict(self.ddp, self._optimizer)
        state = {
            "model": model_sd,
            "optim": optim_sd,
            TRAIN_STATE_KEY: torch.empty(tuple(md[TRAIN_STATE_KEY].size), dtype=torch.uint8),
        }
        dcp.load(state, checkpoint_id=str(path))
        set_state_dict(
            self.ddp, self._optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"]
        )
        return decode_train_state(state[TRAIN_STATE_KEY].numpy().tobytes(), str(path))

    def extra_state(self) -> dict[str, Any]:
        return {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(dict(state["scaler"]))
