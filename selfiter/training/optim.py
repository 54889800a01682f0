"""Optimizer and learning-rate schedule from the config."""

from __future__ import annotations

import math
from typing import Iterable

import torch

from selfiter.config import TrainConfig


def make_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adadelta (the paper: lr 0.1, weight decay 1e-4), AdamW, Adam or SGD with momentum."""
    params = list(params)
    if cfg.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def lr_factor(cfg: TrainConfig, progress: float, step: int) -> float:
    """Multiplier of the base lr at ``step``, ``progress`` in [0, 1] of the run.

    A pure function of the position in the run, so a resumed run follows the
    same schedule without any scheduler state."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.schedule == "cosine":
        return warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return warm
