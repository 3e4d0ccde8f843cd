"""The stages of ``actiongpt demo`` (the command itself: ``launch/commands/demo.py``).

``context`` (DemoConfig, run folder layout, Stage), ``stamps`` (skip work whose inputs did not change),
``runner`` (the project's commands in-process or under torchrun), ``text_stages`` (describe, embed),
``model_stages`` (shards, train, eval), ``report`` (results.md), ``stages`` (their order and the runner).
"""
