"""Which exceptions are bad input (exit code 2, one line, no traceback) rather than bugs.

Kept below ``launch/`` so that the training runtime can tell them apart as well (a rank that fails on bad
input ends the job with the same one line). Types are named as "module:Class" and looked up only in modules
already imported: an error cannot come from a module that was never loaded, so the table imports nothing
(no layer is imported upwards) and may name types a branch does not have yet.
"""

from __future__ import annotations

import sys

# The project's bad-input error types. A new typed error for bad input: add its line here (or subclass one).
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
