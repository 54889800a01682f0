"""Progress bars with one process-wide switch: ``selfiter train --no-progress`` turns off
the trainer's bars and also those a problem draws while it loads its data."""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator

from tqdm.auto import tqdm

_off = False


@contextlib.contextmanager
def bars_off(off: bool = True) -> Iterator[None]:
    """Inside, with ``off``, every :func:`bar` is silent."""
    global _off
    before = _off
    _off = before or off
    try:
        yield
    finally:
        _off = before


def bar(iterable: Iterable[Any] | None = None, **options: Any) -> tqdm:
    """``tqdm(iterable, **options)``, disabled also inside :func:`bars_off`."""
    return tqdm(iterable, **{**options, "disable": _off or options.get("disable", False)})
