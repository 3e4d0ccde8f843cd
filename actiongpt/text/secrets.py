"""Keep API keys out of logs, error messages and files."""

from __future__ import annotations

import logging
import re

# OpenAI-style keys that a server might echo back in an error body.
_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-]{6,}|Bearer\s+[A-Za-z0-9_\-\.]{6,})")


def redact(text: str, *secrets: str | None) -> str:
    """Replace every given secret and anything that looks like an API key by ``***``."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return _KEY_PATTERN.sub("***", text)


class RedactingFilter(logging.Filter):
    """A logging filter that removes ``secrets`` from formatted messages."""

    def __init__(self, *secrets: str | None) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg, *self.secrets)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


def install_log_redaction(*secrets: str | None) -> RedactingFilter:
    """Attach a redacting filter to every handler of the root logger (records from child loggers
    such as ``openai`` and ``httpx`` pass through the handlers, not the root logger's filters)."""
    filt = RedactingFilter(*secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(filt)
    return filt
