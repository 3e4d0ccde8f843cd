"""The stages of ``actiongpt results`` (the command itself: ``launch/commands/results.py``).

``config`` (ExperimentConfig, the planned runs), ``training`` (every run under torchrun), ``evaluation``
(``actiongpt eval compare`` of every run), ``report`` (results.md). The data stages are the demo's.
"""
