"""Strict reader and writer of the 300-W ``.pts`` landmark format.

The official format, one item per line::

    version: 1
    n_points: 68
    {
    x1 y1
    ...
    x68 y68
    }

Coordinates in the file are 1-based pixel centres (the centre of the top-left
pixel is ``1 1``); in memory they are 0-based (``0 0``), the convention of
every other part of this plugin. Blank lines may follow the closing brace;
anything else out of place is an error naming the file and the line.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch

from selfiter.atomic import write_text
from selfiter.errors import DataError

#: landmarks of the 300-W (Multi-PIE) markup
N_POINTS = 68

_VERSION = re.compile(r"version:\s*1")
_N_POINTS = re.compile(r"n_points:\s*(\d+)")


def read_pts(path: str | Path, n_points: int = N_POINTS) -> torch.Tensor:
    """The points of one ``.pts`` file, 0-based: ``(n_points, 2)`` float64, x then y, in px.

    Raises :class:`DataError` ``"FILE:LINE: ..."`` on any departure from the format."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataError(f"{p}: cannot read landmark file: {exc.strerror or exc}") from None
    try:
        # split on "\n" alone so line numbers match an editor's (strip() drops any "\r")
        lines = raw.decode("ascii").removesuffix("\n").split("\n")
    except UnicodeDecodeError as exc:
        line_no = raw[:exc.start].count(b"\n") + 1
        raise DataError(f"{p}:{line_no}: non-ASCII byte; not a .pts text file") from None

    def line(i: int) -> str:
        if i >= len(lines):
            raise DataError(f"{p}:{i + 1}: file ends early; expected {n_points} points "
                            f"between '{{' and '}}'")
        return lines[i].strip()

    if not _VERSION.fullmatch(line(0)):
        raise DataError(f"{p}:1: expected 'version: 1', got {lines[0]!r}")
    m = _N_POINTS.fullmatch(line(1))
    if m is None or int(m.group(1)) != n_points:
        raise DataError(f"{p}:2: expected 'n_points: {n_points}', got {lines[1]!r}")
    if line(2) != "{":
        raise DataError(f"{p}:3: expected '{{', got {lines[2]!r}")
    values = np.empty((n_points, 2), dtype=np.float64)
    for k in range(n_points):
        i = 3 + k
        text = line(i)
        if text == "}":
            raise DataError(f"{p}:{i + 1}: '}}' after {k} points; expected {n_points}")
        fields = text.split()
        if len(fields) != 2:
            raise DataError(f"{p}:{i + 1}: expected 'x y', got {lines[i]!r}")
        try:
            x, y = float(fields[0]), float(fields[1])
        except ValueError:
            raise DataError(f"{p}:{i + 1}: expected two numbers 'x y', got {lines[i]!r}") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise DataError(f"{p}:{i + 1}: coordinates must be finite, got {lines[i]!r}")
        values[k] = (x, y)
    close = 3 + n_points
    if line(close) != "}":
        raise DataError(f"{p}:{close + 1}: expected '}}' after {n_points} points, "
                        f"got {lines[close]!r}")
    for i in range(close + 1, len(lines)):
        if lines[i].strip():
            raise DataError(f"{p}:{i + 1}: unexpected text after '}}': {lines[i]!r}")
    return torch.from_numpy(values - 1.0)


def format_pts(points: torch.Tensor | np.ndarray) -> str:
    """The ``.pts`` text of 0-based ``points: (K, 2)`` (px), written 1-based with 6 decimals."""
    pts = torch.as_tensor(points, dtype=torch.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"expected points of shape (K, 2), got {tuple(pts.shape)}")
    if not torch.isfinite(pts).all():
        raise ValueError("points must be finite to be written to a .pts file")
    body = "\n".join(f"{x:.6f} {y:.6f}" for x, y in (pts + 1.0).tolist())
    return f"version: 1\nn_points: {pts.shape[0]}\n{{\n{body}\n}}\n"


def write_pts(path: str | Path, points: torch.Tensor | np.ndarray) -> None:
    """Atomically write 0-based ``points: (K, 2)`` (px) to ``path`` in the official format."""
    write_text(path, format_pts(points))
