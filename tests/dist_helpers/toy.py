"""A toy model and a deterministic stateful loader with the real batch schema, for runtime tests.

The loader orders each epoch by a permutation from ``(seed, epoch)`` and hands out *global* batches:
global batch g holds permutation entries ``[g*W*B, (g+1)*W*B)``; rank r takes its slice of B. The consumed
samples of an epoch are therefore always a prefix of the permutation, whatever the world size, which is
what lets a run continue at another world size without repeating or skipping a sample.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

FEAT, TEXT_DIM, TEXT_LEN, FRAMES = 6, 4, 5, 8


def make_sample(index: int, seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed * 100_003 + index)
    length = int(torch.randint(FRAMES // 2, FRAMES + 1, (1,), generator=g))
    text = torch.randn(TEXT_LEN, TEXT_DIM, generator=g)
    mask = torch.ones(TEXT_LEN, dtype=torch.bool)
    mask[int(torch.randint(2, TEXT_LEN + 1, (1,), generator=g)) :] = False
    # The motion depends on the text, so the toy model has something to learn.
    motion = torch.zeros(FRAMES, FEAT)
    base = (text * mask[:, None]).sum(0) @ torch.linspace(-1, 1, TEXT_DIM * FEAT).reshape(TEXT_DIM, FEAT)
    motion[:length] = base + 0.1 * torch.randn(length, FEAT, generator=g)
    return {"key": f"s{index:05d}", "motion": motion, "length": length, "text": text, "mask": mask}


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "keys": [s["key"] for s in samples],
        "motion": torch.stack([s["motion"] for s in samples]),
        "lengths": torch.tensor([s["length"] for s in samples], dtype=torch.int64),
        "text": torch.stack([s["text"] for s in samples]),
        "text_mask": torch.stack([s["mask"] for s in samples]),
        "text_pooled": torch.stack([s["text"][s["mask"]].mean(0) for s in samples]),
    }


class ToyLoader:
    """Stateful loader satisfying ``cluster.loader_protocol`` (including world-size resharding)."""

    def __init__(self, num_samples: int, batch_size: int, rank: int, world_size: int, seed: int = 0):
        if num_samples < batch_size * world_size:
            raise ValueError("fewer samples than one global batch")
        self.n, self.b, self.rank, self.world, self.seed = num_samples, batch_size, rank, world_size, seed
        self.epoch = 0
        self.position = 0  # samples of the epoch's permutation consumed by all ranks together

    def __len__(self) -> int:
        return self.n // (self.b * self.world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position = epoch, 0

    def permutation(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        perm = self.permutation(self.epoch)
        gb = self.b * self.world
        while self.position + gb <= self.n:
            start = self.position + self.rank * self.b
            idx = perm[start : start + self.b]
            self.position += gb  # counted when handed out: state_dict() after a step = consumed batches
            yield collate([make_sample(i, self.seed) for i in idx])

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "num_samples": self.n,
            "seed": self.seed,
            "world_size": self.world,
            "batch_size": self.b,
        }

    def _check(self, state: dict[str, Any]) -> None:
        if state["num_samples"] != self.n or state["seed"] != self.seed:
            raise ValueError(f"loader state for another dataset: {state}")

    def load_state_dict(self, state: dict[str, Any] | list[dict[str, Any]]) -> None:
        """One rank's state (same world size), or every old rank's states (any world size)."""
        if isinstance(state, list):
            for s in state:
                self._check(s)
            positions = {(s["epoch"], s["position"]) for s in state}
            if len(positions) != 1:
                raise ValueError(f"ranks disagree on the epoch position: {positions}")
            # The consumed samples are a prefix of the permutation; continue after it with this world size.
            self.epoch, self.position = positions.pop()
            return
        self._check(state)
        if state["world_size"] != self.world or state["batch_size"] != self.b:
            raise ValueError("state from another world size / batch size: pass every old rank's state")
        self.epoch, self.position = state["epoch"], state["position"]


class ToyModel(nn.Module):
    """Text -> motion with a reparameterised latent (draws noise) and dropout: exercises the RNG restore."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.enc = nn.Sequential(
            nn.Linear(TEXT_DIM, hidden), nn.GELU(), nn.Dropout(0.1), nn.Linear(hidden, 2 * hidden)
        )
        self.dec = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, FRAMES * FEAT))

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        mask = batch["text_mask"].unsqueeze(-1).float()
        pooled = (batch["text"] * mask).sum(1) / mask.sum(1).clamp(min=1)
        mu, logvar = self.enc(pooled).chunk(2, dim=-1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        pred = self.dec(z).view(-1, FRAMES, FEAT)
        frames = torch.arange(FRAMES, device=pred.device)[None, :] < batch["lengths"][:, None]
        err = ((pred - batch["motion"]) ** 2).mean(-1)
        recons = (err * frames).sum() / frames.sum()
        kl = 1e-3 * (-0.5 * (1 + logvar - mu**2 - logvar.exp()).mean())
        return {"loss": recons + kl, "recons": recons, "kl": kl}
