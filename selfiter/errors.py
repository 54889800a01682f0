"""Errors that reach the user as one line (the CLI prints them and exits 2).

The CLI's exit statuses: 0 all fine, 1 some inputs failed or had no result,
2 a :class:`SelfiterError` (bad usage, config or data), 3 an internal error."""

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
