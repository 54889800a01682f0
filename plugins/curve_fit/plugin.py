"""Hook implementations of the curve_fit plugin."""

from selfiter.hookspecs import hookimpl  # noqa: F401
