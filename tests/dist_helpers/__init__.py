"""Importable spawn targets and small data builders for multi-process tests."""
