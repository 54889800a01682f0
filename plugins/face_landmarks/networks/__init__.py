"""Regressors for face landmarks: LAN (the paper's) and SIR-Stack (its baseline)."""

from face_landmarks.networks.lan import LandmarksAttentionNetwork
from face_landmarks.networks.stack import StackNetwork

__all__ = ["LandmarksAttentionNetwork", "StackNetwork"]
