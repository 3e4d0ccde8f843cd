"""RNG state of one rank (python, numpy, torch CPU, CUDA) as plain JSON-safe data.

Plain data (no pickled numpy objects) so checkpoints load with ``weights_only=True`` and the state can be
inspected. Restoring it makes the random draws after a resume identical to an uninterrupted run.
"""

from __future__ import annotations

import base64
import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _unb64(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()


def capture() -> dict[str, Any]:
    """The current RNG state of this process."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {
            "name": name,
            "keys": base64.b64encode(np.asarray(keys, dtype=np.uint32).tobytes()).decode("ascii"),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": _b64(torch.get_rng_state()),
        "cuda": [_b64(s) for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }
    return state


def restore(state: dict[str, Any]) -> None:
    """Restore a state from :func:`capture`; raises ValueError naming the part that is malformed."""
    try:
        py = state["python"]
        random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
        npst = state["numpy"]
        keys = np.frombuffer(base64.b64decode(npst["keys"]), dtype=np.uint32).copy()
        np.random.set_state((npst["name"], keys, npst["pos"], npst["has_gauss"], npst["cached_gaussian"]))
        torch.set_rng_state(_unb64(state["torch"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed RNG state in checkpoint: {exc!r}") from exc
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        if len(cuda) != torch.cuda.device_count():
            # Another GPU layout: only the devices both runs have are restored.
            cuda = cuda[: torch.cuda.device_count()]
        for i, s in enumerate(cuda):
            torch.cuda.set_rng_state(_unb64(s), device=i)


def seed_all(seed: int) -> None:
    """Seed python, numpy and torch (all devices) from one integer."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """Distinct, reproducible seed per (rank, step): ranks must not draw the same noise."""
    return (seed * 1_000_003 + rank * 7919 + step * 104_729) % (2**63 - 1)


@contextlib.contextmanager
def isolated(seed: int | None = None) -> Iterator[None]:
    """Run a block (validation) without disturbing the training RNG streams; optionally seed it."""
    saved = capture()
    try:
        if seed is not None:
            seed_all(seed)
        yield
    finally:
        restore(saved)
