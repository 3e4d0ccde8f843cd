"""The one error-to-exit-code mapping of every entry point (``actiongpt``, ``python -m launch.train``,
the submitit tasks); which errors are bad input is ``cluster.errors`` (the runtime ends ranks by it too).

Exit codes: 0 done; 1 partial and retryable (a command returns it, e.g. some descriptions failed), or a
bug (an unexpected exception keeps its traceback); 2 bad input or configuration: one line naming the
file, record or key, no traceback (``--debug`` prints it as well; ``-v`` logs it).
"""

from __future__ import annotations

import logging
import sys
import traceback

from cluster.errors import BAD_INPUT_TYPES, bad_input_errors, is_bad_input

__all__ = [
    "BAD_INPUT_TYPES",
    "EXIT_BAD_INPUT",
    "EXIT_OK",
    "EXIT_RETRY",
    "UserError",
    "bad_input_errors",
    "is_bad_input",
    "report_bad_input",
]
log = logging.getLogger("actiongpt")

EXIT_OK, EXIT_RETRY, EXIT_BAD_INPUT = 0, 1, 2


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback (exit code 2)."""


def report_bad_input(prog: str, exc: BaseException, debug: bool = False) -> int:
    """Print the one line for a bad-input error (plus its traceback with ``debug``); the exit code 2."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    else:
        log.debug("traceback of the error below", exc_info=exc)
    print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
    return EXIT_BAD_INPUT
