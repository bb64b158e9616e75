"""Errors kdbench raises for bad input; the CLI prints them without a traceback."""

from __future__ import annotations


class KdbenchError(Exception):
    """A problem with the user's input or environment, explained in the message."""


class DataError(KdbenchError):
    """Bad or missing dataset files: the message names the file, row, column and what was expected."""


class ConfigError(KdbenchError):
    """A malformed configuration file or option: the message names the key and the allowed values."""
