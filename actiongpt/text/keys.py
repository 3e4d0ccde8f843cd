"""Requests and their cache keys.

One request = one description: (label, sample index i). The key is a sha256 over everything that
determines the output (endpoint kind, model, the full rendered prompt or messages, sampling
parameters, i and the per-request seed, and the template), so a changed template or parameter
never reuses a stale answer, and an unchanged one is never paid for twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from actiongpt.config import ConfigError
from actiongpt.text.prompt import PromptTemplate

KEY_VERSION = 1
Endpoint = Literal["chat", "completions", "local", "raw"]


@dataclass
class SamplingConfig:
    """Sampling parameters; defaults are the paper's (§2.2)."""

    temperature: float = 0.5
    top_p: float = 1.0
    max_tokens: int = 128
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    # Not an OpenAI parameter: sent as extra body (vLLM, llama.cpp accept it) and used by the local
    # backend. A mild 1.1 stops small models from looping; 1.3 already destroys coherence.
    repetition_penalty: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError(f"sampling.temperature: {self.temperature} is outside [0, 2]")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"sampling.top_p: {self.top_p} is outside (0, 1]")
        if self.max_tokens < 1:
            raise ConfigError(f"sampling.max_tokens: {self.max_tokens} must be >= 1")
        if self.repetition_penalty is not None and self.repetition_penalty <= 0:
            raise ConfigError(f"sampling.repetition_penalty: {self.repetition_penalty} must be > 0")

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "frequency_penalty": self.frequency_penalty,
            "presence_penalty": self.presence_penalty,
        }
        if self.repetition_penalty is not None:
            out["repetition_penalty"] = self.repetition_penalty
        return out


@dataclass(frozen=True)
class Request:
    """One description request; ``input`` is the chat messages or the completion prompt."""

    key: str
    label: str
    i: int
    seed: int
    endpoint: str
    model: str
    input: Any
    params: dict[str, Any] = field(default_factory=dict)
    template: dict[str, Any] = field(default_factory=dict)


def _seed_from(text: str) -> int:
    # 31 bits: accepted by every server we know of (llama.cpp, vLLM, OpenAI).
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % (2**31 - 1)


def derive_seed(global_seed: int, label: str, i: int) -> int:
    """The per-request seed of description i of ``label``."""
    return _seed_from(f"{global_seed}\x00{label}\x00{i}")


def retry_seed(seed: int, retry: int) -> int:
    """A fresh, still deterministic seed for re-asking after a degenerate answer (retry >= 1);
    re-sending the same seed would often return the same bad answer."""
    return seed if retry == 0 else _seed_from(f"{seed}\x00retry{retry}")


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def request_key(
    *, endpoint: str, model: str, input: Any, params: dict[str, Any], i: int, seed: int, template: dict
) -> str:
    body = {
        "v": KEY_VERSION,
        "endpoint": endpoint,
        "model": model,
        "input": input,
        "params": params,
        "i": i,
        "seed": seed,
        "template": template,
    }
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def make_request(
    label: str,
    i: int,
    *,
    endpoint: str,
    model: str,
    template: PromptTemplate,
    sampling: SamplingConfig,
    global_seed: int,
) -> Request:
    """Render the prompt for ``label`` and compute the key of its i-th description."""
    if endpoint in ("chat", "local"):
        rendered: Any = template.messages(label)
    elif endpoint == "completions":
        rendered = template.completion_prompt(label)
    elif endpoint == "raw":
        rendered = label
    else:
        raise ConfigError(f"unknown endpoint kind {endpoint!r}")
    seed = derive_seed(global_seed, label, i)
    params = sampling.params() if endpoint != "raw" else {}
    tmpl = template.to_dict() if endpoint != "raw" else {"name": "raw_label"}
    key = request_key(
        endpoint=endpoint, model=model, input=rendered, params=params, i=i, seed=seed, template=tmpl
    )
    return Request(key, label, i, seed, endpoint, model, rendered, params, tmpl)


def plan_requests(
    labels: Iterable[str],
    k: int,
    *,
    endpoint: str,
    model: str,
    template: PromptTemplate,
    sampling: SamplingConfig,
    global_seed: int,
) -> list[Request]:
    """All k requests of every label, ordered by i first, then label.

    i-major order means an interrupted run (preemption, a time limit, Ctrl-C) leaves every label with
    the same number of descriptions (give or take one), so the first k' < k are usable everywhere.
    """
    if k < 1:
        raise ConfigError(f"k: {k} must be >= 1")
    labels = list(labels)
    return [
        make_request(
            label,
            i,
            endpoint=endpoint,
            model=model,
            template=template,
            sampling=sampling,
            global_seed=global_seed,
        )
        for i in range(k)
        for label in labels
    ]
