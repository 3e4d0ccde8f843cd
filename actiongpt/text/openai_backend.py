"""OpenAI-compatible backend (OpenAI, vLLM, llama.cpp server, Ollama) through the ``openai`` client.

One HTTP request per (label, i) with its own seed: many local servers ignore ``n`` and the seed makes
each description reproducible where the server honours it. The client's own retries are off
(``max_retries=0``): the runner retries, honours Retry-After and counts every attempt.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any, Literal

import openai
from openai import AsyncOpenAI

from actiongpt.text.backends import Completion, FatalError, PermanentError, TransientError
from actiongpt.text.keys import Request
from actiongpt.text.secrets import redact


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` (OpenAI), ``retry-after`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def build_body(
    request: Request,
    seed: int,
    *,
    model: str,
    endpoint: str,
    max_tokens_field: str = "max_tokens",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request body for ``endpoint`` as (standard fields, non-standard extra fields).

    ``repetition_penalty`` is not an OpenAI parameter: it goes into the extra fields, which vLLM and
    llama.cpp read from the body (OpenAI itself would reject it).
    """
    params = dict(request.params)
    rep = params.pop("repetition_penalty", None)
    max_tokens = params.pop("max_tokens")
    body: dict[str, Any] = {"model": model, "n": 1, "seed": seed, **params}
    body[max_tokens_field if endpoint == "chat" else "max_tokens"] = max_tokens
    if endpoint == "chat":
        body["messages"] = request.input
    elif endpoint == "completions":
        body["prompt"] = request.input
    else:
        raise ValueError(f"endpoint must be 'chat' or 'completions', got {endpoint!r}")
    return body, ({"repetition_penalty": rep} if rep is not None else {})


class OpenAIBackend:
    """Async client for chat or legacy completion endpoints."""

    batch_size = 1

    def __init__(
        self,
        *,
        model: str,
        endpoint: Literal["chat", "completions"] = "chat",
        base_url: str | None = None,
        api_key: str,
        timeout: float = 60.0,
        organization: str | None = None,
        max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens",
    ) -> None:
        if endpoint not in ("chat", "completions"):
            raise ValueError(f"endpoint must be 'chat' or 'completions', got {endpoint!r}")
        self.model = model
        self.endpoint = endpoint
        self.base_url = base_url
        self.max_tokens_field = max_tokens_field
        self._secret = api_key
        self._client = AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0, organization=organization
        )

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "openai",
            "endpoint": self.endpoint,
            "model": self.model,
            "base_url": str(self._client.base_url),
        }

    async def aclose(self) -> None:
        await self._client.close()

    def _kwargs(self, request: Request, seed: int) -> dict[str, Any]:
        body, extra = build_body(
            request, seed, model=self.model, endpoint=self.endpoint, max_tokens_field=self.max_tokens_field
        )
        if extra:
            body["extra_body"] = extra
        return body

    async def complete(self, request: Request, seed: int) -> Completion:
        kwargs = self._kwargs(request, seed)
        try:
            if self.endpoint == "chat":
                resp = await self._client.chat.completions.create(**kwargs)
            else:
                resp = await self._client.completions.create(**kwargs)
        except openai.RateLimitError as exc:
            raise TransientError(
                "429 rate limited", retry_after=parse_retry_after(exc.response.headers), rate_limited=True
            ) from None
        except openai.APITimeoutError:
            raise TransientError("timeout") from None
        except openai.APIConnectionError as exc:
            raise TransientError(redact(f"connection error: {_short(exc)}", self._secret)) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise FatalError(
                redact(
                    f"{exc.status_code} authentication/permission error: {_short(exc.message)}", self._secret
                )
            ) from None
        except openai.NotFoundError as exc:
            raise FatalError(
                redact(f"404 model {self.model!r} or endpoint not found: {_short(exc.message)}", self._secret)
            ) from None
        except openai.APIStatusError as exc:
            reason = redact(f"HTTP {exc.status_code}: {_short(exc.message)}", self._secret)
            if exc.status_code >= 500 or exc.status_code in (408, 409, 425):
                raise TransientError(reason, retry_after=parse_retry_after(exc.response.headers)) from None
            raise PermanentError(reason) from None
        except (openai.APIResponseValidationError, json.JSONDecodeError) as exc:
            raise TransientError(redact(f"malformed response: {_short(exc)}", self._secret)) from None
        return self._parse(resp)

    def _parse(self, resp: Any) -> Completion:
        try:
            choice = resp.choices[0]
            text = choice.message.content if self.endpoint == "chat" else choice.text
            if text is not None and not isinstance(text, str):
                raise TypeError(f"text is {type(text).__name__}")
            usage = resp.usage
            return Completion(
                text=text or "",
                finish_reason=choice.finish_reason,
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0) if usage else 0,
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0) if usage else 0,
                fingerprint=getattr(resp, "system_fingerprint", None),
                response_model=getattr(resp, "model", None),
            )
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise TransientError(f"malformed response: {type(exc).__name__}: {_short(exc)}") from None
