"""A generic parameter model: S is theta itself, with statistics fitted from data."""

from __future__ import annotations

from typing import Mapping

import torch

from selfiter.interfaces import ParameterModel


class IdentityModel(ParameterModel):
    """``S = theta``: for problems whose locations are already compact.

    ``names`` and ``units`` label the dimensions; :meth:`fit_data` records the
    mean and spread of the training locations so samplers can scale to them.
    ``periods`` marks periodic dimensions (an angle has period ``2 pi``; null for
    the others): their training targets take the shortest way round.
    """

    def __init__(self, names: list[str], units: list[str] | None = None,
                 theta_unit: str = "1", periods: list[float | None] | None = None) -> None:
        if not names:
            raise ValueError("names must list at least one dimension")
        if units is not None and len(units) != len(names):
            raise ValueError(f"units has {len(units)} entries but names has {len(names)}")
        if periods is not None and len(periods) != len(names):
            raise ValueError(f"periods has {len(periods)} entries but names has {len(names)}")
        if periods is not None and any(p is not None and not p > 0 for p in periods):
            raise ValueError(f"periods must be > 0 or null, got {periods}")
        self.periods = list(periods) if periods is not None else [None] * len(names)
        self.s_names = tuple(names)
        self.theta_names = tuple(names)
        self.s_units = tuple(units) if units is not None else (theta_unit,) * len(names)
        self.theta_unit = theta_unit
        self._mean = torch.zeros(len(names))
        self._std = torch.ones(len(names))

    def fit_data(self, theta_train: torch.Tensor) -> None:
        # theta_train: (N, D)
        self._mean = theta_train.mean(0).detach().cpu()
        self._std = theta_train.std(0).clamp_min(1e-8).detach().cpu()

    def theta(self, s: torch.Tensor) -> torch.Tensor:
        return s

    def fit(self, theta: torch.Tensor) -> torch.Tensor:
        return theta

    def difference(self, theta_to: torch.Tensor, theta_from: torch.Tensor) -> torch.Tensor:
        d = theta_to - theta_from  # (B, D)
        if all(p is None for p in self.periods):
            return d
        period = torch.tensor([p if p is not None else float("inf") for p in self.periods],
                              dtype=d.dtype, device=d.device)  # (D,)
        wrapped = torch.remainder(d + period / 2, period) - period / 2
        return torch.where(torch.isinf(period), d, wrapped)

    def s_mean(self) -> torch.Tensor:
        return self._mean

    def s_std(self) -> torch.Tensor:
        return self._std

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self._mean, "std": self._std}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        self._mean = state["mean"].detach().cpu()
        self._std = state["std"].detach().cpu()
