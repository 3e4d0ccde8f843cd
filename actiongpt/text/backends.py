"""What every description backend returns and raises.

The runner (``describe.py``) only sees these types, so retry and bookkeeping logic is shared by the
OpenAI-compatible client, the in-process local model and the raw-label baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from actiongpt.text.keys import Request


@dataclass
class Completion:
    """One answer: the raw text plus what the server said about it."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    fingerprint: str | None = None  # system_fingerprint (API) or a model-file hash (local)
    response_model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class BackendError(Exception):
    """Base class; ``reason`` is a short, secret-free description."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientError(BackendError):
    """Worth retrying (429, 5xx, timeout, connection error, malformed body)."""

    def __init__(self, reason: str, retry_after: float | None = None, rate_limited: bool = False) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class PermanentError(BackendError):
    """This request will not succeed as sent (e.g. 400): recorded as a failure, the run goes on."""


class FatalError(BackendError):
    """No request can succeed (bad key, unknown model): the run stops."""


class Backend(Protocol):
    """``describe`` drives either ``complete`` (one request, awaited concurrently) or, when
    ``batch_size`` > 1, ``complete_batch`` (many requests in one call, e.g. batched local generation)."""

    batch_size: int

    async def complete(self, request: Request, seed: int) -> Completion: ...

    async def complete_batch(self, requests: list[Request], seeds: list[int]) -> list[Completion]: ...

    def describe(self) -> dict[str, Any]:
        """Provenance: model, endpoint, file hashes; never secrets."""
        ...

    async def aclose(self) -> None: ...


class RawLabelBackend:
    """The baseline without an LLM: the description is the action phrase itself."""

    batch_size = 1

    async def complete(self, request: Request, seed: int) -> Completion:
        return Completion(text=request.label, finish_reason="raw")

    async def complete_batch(self, requests: list[Request], seeds: list[int]) -> list[Completion]:
        return [await self.complete(r, s) for r, s in zip(requests, seeds)]

    def describe(self) -> dict[str, Any]:
        return {"backend": "raw", "model": "raw-label"}

    async def aclose(self) -> None:
        return None
