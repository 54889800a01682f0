"""The parameter model of a homography: S = theta = the template's 4 corner displacements."""

from __future__ import annotations

from typing import Mapping

import torch

from selfiter.interfaces import ParameterModel

#: the 8 dimensions of theta (and S): corner i's displacement in x and in y, px
CORNER_NAMES = ("dx0", "dy0", "dx1", "dy1", "dx2", "dy2", "dx3", "dy3")


class CornerModel(ParameterModel):
    """``S = theta: (B, 8)`` px, the displacements of the template's corners (see
    :mod:`image_align.homography` for their order); :func:`~image_align.homography.corners_to_matrix`
    turns them into the 3x3 matrix.

    The mean state is the identity (all zeros), whatever the training data: the solver
    starts every alignment from "template and image coincide". The spread
    :meth:`s_std`, which the sampler's sigmas are in units of, is the per-dimension
    standard deviation of the training displacements (:meth:`fit_data`) unless
    ``scale`` (px) fixes it for all 8 dimensions, e.g. to set sigmas in px directly
    (``scale: 1``).
    """

    s_names = CORNER_NAMES
    s_units = ("px",) * 8
    theta_names = CORNER_NAMES
    theta_unit = "px"

    def __init__(self, scale: float | None = None) -> None:
        if scale is not None and not scale > 0:
            raise ValueError(f"scale must be > 0 px (or null to fit it), got {scale}")
        self.scale = scale
        self._std = torch.full((8,), 1.0 if scale is None else float(scale))

    def fit_data(self, theta_train: torch.Tensor) -> None:
        """Record the spread of the training displacements ``theta_train: (N, 8)`` px
        (about their mean of zero: the identity is the model's centre), unless ``scale`` is set."""
        if theta_train.dim() != 2 or theta_train.shape[1] != 8:
            raise ValueError(f"theta_train must be (N, 8) corner displacements, got "
                             f"{tuple(theta_train.shape)}")
        if self.scale is None:
            self._std = theta_train.pow(2).mean(0).sqrt().clamp_min(1e-6).detach().cpu()

    def theta(self, s: torch.Tensor) -> torch.Tensor:
        return s

    def fit(self, theta: torch.Tensor) -> torch.Tensor:
        return theta

    def s_mean(self) -> torch.Tensor:
        return torch.zeros(8)

    def s_std(self) -> torch.Tensor:
        return self._std

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"std": self._std}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        if set(state) != {"std"}:
            raise ValueError(f"CornerModel's state has the key 'std', got {sorted(state)}")
        self._std = state["std"].detach().cpu()
