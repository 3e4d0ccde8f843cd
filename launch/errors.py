"""Errors shared by the command-line stages."""

from __future__ import annotations


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback (exit code 2)."""


def bad_input_errors() -> tuple[type[BaseException], ...]:
    """The project's typed bad-input errors: each ends a command with its one-line message and exit 2.

    Imported lazily so that a stage pays only for the modules it already uses.
    """
    from actiongpt.config import ConfigError
    from actiongpt.data.errors import DataError
    from actiongpt.motion.smplh import BodyModelError
    from actiongpt.text.cache import CacheError
    from shards.format import ShardError

    return (UserError, ConfigError, DataError, CacheError, ShardError, BodyModelError, FileNotFoundError)
