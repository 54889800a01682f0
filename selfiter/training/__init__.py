"""Training: Eq. 6 with online sampling (SIR) or stage by stage (cascaded regression)."""

from selfiter.training.trainer import train

__all__ = ["train"]
