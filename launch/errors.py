"""The one error-to-exit-code mapping of every entry point (``actiongpt``, ``python -m launch.train``,
the submitit tasks).

Exit codes: 0 done; 1 partial and retryable (a command returns it, e.g. some descriptions failed), or a
bug (an unexpected exception keeps its traceback); 2 bad input or configuration: one line naming the
file, record or key, no traceback (``--debug`` prints it as well; ``-v`` logs it).
"""

from __future__ import annotations

import logging
import sys
import traceback

log = logging.getLogger("actiongpt")

EXIT_OK, EXIT_RETRY, EXIT_BAD_INPUT = 0, 1, 2


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback (exit code 2)."""


# The project's bad-input error types, as "module:Class". A type is looked up only in modules already
# imported (an error cannot come from a module that was never loaded), so this table imports nothing and
# may name types a branch does not have yet. A new typed error for bad input: add its line here.
BAD_INPUT_TYPES: tuple[str, ...] = (
    "launch.errors:UserError",
    "actiongpt.config:ConfigError",
    "actiongpt.data.errors:DataError",
    "actiongpt.motion.smplh:BodyModelError",
    "actiongpt.text.cache:CacheError",
    "actiongpt.text.embedding_store:StoreError",
    "actiongpt.text.embedders:EmbeddingError",
    "actiongpt.text.phrase_embed:PhraseError",
    "shards.format:ShardError",
    "shards.sampler:PlanError",
    "cluster.evaluator:EvalError",
    "cluster.dist_env:DistEnvError",
    "cluster.export:ExportError",
    "builtins:FileNotFoundError",
)


def bad_input_errors() -> tuple[type[BaseException], ...]:
    """The bad-input exception classes among the modules imported so far."""
    out: list[type[BaseException]] = []
    for entry in BAD_INPUT_TYPES:
        module, _, name = entry.partition(":")
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            out.append(cls)
    return tuple(out)


def is_bad_input(exc: BaseException) -> bool:
    return isinstance(exc, bad_input_errors())


def report_bad_input(prog: str, exc: BaseException, debug: bool = False) -> int:
    """Print the one line for a bad-input error (plus its traceback with ``debug``); the exit code 2."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    else:
        log.debug("traceback of the error below", exc_info=exc)
    print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
    return EXIT_BAD_INPUT
