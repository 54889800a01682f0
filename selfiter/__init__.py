"""selfiter: learned iterative solvers for non-linear least squares (Self-Iterative Regression).

>>> import selfiter
>>> model = selfiter.load("face300w")          # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from selfiter.api import TrainedSolver


def load(name_or_path, device="cpu", config=None, problem=None, runtime="torch") -> "TrainedSolver":
    """Load a pretrained solver by registered name or checkpoint path (see :func:`selfiter.api.load`
    for ``config``, ``problem`` and ``runtime``)."""
    from selfiter.api import load as _load

    return _load(name_or_path, device=device, config=config, problem=problem, runtime=runtime)


__all__ = ["load", "__version__"]
