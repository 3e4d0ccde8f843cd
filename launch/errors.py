"""Errors shared by the command-line stages."""


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback (exit code 2)."""
