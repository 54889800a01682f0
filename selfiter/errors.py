"""Errors that reach the user as one line (the CLI prints them and exits 2)."""

from __future__ import annotations


class SelfiterError(Exception):
    """A user-facing error: bad config, missing data, bad input file.

    The message names the file, key or value and says what was expected."""


class ConfigError(SelfiterError):
    """A config file or override that does not validate."""


class DataError(SelfiterError):
    """Data that is missing or malformed (a folder, an annotation, an image)."""


class PluginError(SelfiterError):
    """A plugin that fails to load, or a component name that is unknown or taken twice."""


class CheckpointError(SelfiterError):
    """A checkpoint that is missing, corrupt, or does not fit the config."""


class TrainingError(SelfiterError):
    """Training that cannot go on, e.g. a loss that became NaN or infinite."""
