"""Features of a damped-sinusoid state: the residual on the grid, the current curve, the state."""

from __future__ import annotations

import torch

from curve_fit.signal import damped_sine, time_grid
from selfiter.interfaces import FeatureExtractor


#: |f(theta)| is capped here in the features. A curve that grows (``l < 0``) overflows
#: float32 once ``-l t_max`` passes about 88, and a cascade's early stages or a bad
#: step can reach such states; the network then sees inf and trains to NaN. Every
#: curve of the parameter box stays below 2 and the samplers' widest draws below
#: about 1e4, so the cap changes no feature that training can draw on purpose.
CURVE_LIMIT = 1e6


class ResidualFeatures(FeatureExtractor):
    """``inputs: (B, T)`` noisy curves, ``theta: (B, 4) -> (B, F)``.

    The features are, in order: the residual ``y - f(theta)`` on the grid
    (``T`` values, units of y); ``f(theta)`` itself when ``with_curve`` is set
    (``T`` values); ``theta`` itself when ``with_theta`` is set (4 values, each
    in its unit). The residual alone says how far the state is from the data;
    the curve says where the state is, which the regressor needs because the
    step that cancels a residual depends on the state (the model is not
    linear). The curve cannot tell apart states that draw the same curve --
    ``p`` and ``p + 2 pi``, ``(a, p)`` and ``(-a, p + pi)``, ``(w, p)`` and
    ``(-w, pi - p)`` -- yet the step to the truth differs between them, so
    without ``theta`` a start that crosses to ``w < 0`` or ``a < 0`` is given
    the step of its mirror image and runs away. The curve is capped at
    ``+-CURVE_LIMIT`` so that every finite state gives finite features.

    ``t_points`` and ``t_max`` (s) must be the problem's.
    """

    def __init__(self, t_points: int = 64, t_max: float = 4.0, with_curve: bool = True,
                 with_theta: bool = True) -> None:
        self.t = time_grid(t_points, t_max)  # (T,) s
        self.with_curve = with_curve
        self.with_theta = with_theta

    def features(self, inputs: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        curve = damped_sine(theta, self.t.to(theta.device))  # (B, T)
        # inf * sin(0) is NaN: map it to 0 (the overflowing curve crosses zero there)
        curve = torch.nan_to_num(curve, nan=0.0, posinf=CURVE_LIMIT, neginf=-CURVE_LIMIT)
        curve = curve.clamp(-CURVE_LIMIT, CURVE_LIMIT)
        parts = [inputs.to(curve) - curve]
        if self.with_curve:
            parts.append(curve)
        if self.with_theta:
            parts.append(theta)
        return torch.cat(parts, dim=1)

    def feature_shape(self, input_shape: tuple[int, ...], theta_dim: int) -> tuple[int, ...]:
        t_points = self.t.shape[0]
        if tuple(input_shape) != (t_points,):
            raise ValueError(f"inputs of shape {tuple(input_shape)} per sample do not match the "
                             f"grid of {t_points} points; set features.params.t_points (and "
                             "t_max) to the problem's")
        if theta_dim != 4:
            raise ValueError(f"a damped sinusoid has 4 parameters, the parameter model has {theta_dim}")
        return (t_points * (1 + self.with_curve) + 4 * self.with_theta,)
