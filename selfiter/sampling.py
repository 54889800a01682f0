"""The Gaussian-union sampler of Eq. 4: states around the mean and around the truth."""

from __future__ import annotations

from typing import Literal

import torch

from selfiter.interfaces import ParameterModel, Sampler


class GaussianUnionSampler(Sampler):
    """Draws ``S ~ N(S0, sigma) U N(S_gt, sigma)`` (Eq. 4), on the device of ``s_gt``.

    ``sigma`` is in units of each dimension's spread over the training data
    (:meth:`ParameterModel.s_std`), so one number means the same for every
    dimension. ``sigmas`` overrides it per dimension: keys are prefixes of the
    model's ``s_names`` (``{"alpha": 0.3, "beta": 0.1}``), the longest match wins.

    A draw is centred on the mean with probability ``p_mean`` and on the truth
    otherwise; ``per="sample"`` picks the centre once per state,
    ``per="dimension"`` independently for every dimension of S.
    ``sigma_mean`` (if set) replaces ``sigma`` for the draws around the mean,
    since the coarse stage needs wider starts than the fine stage. ``p_near`` (default
    0) of the draws around the truth use ``sigma_near`` instead of ``sigma`` (and its
    ``sigmas``): a third, narrow Gaussian for the last iterations, whose states
    ``N(S_gt, sigma)`` of a wide ``sigma`` seldom come close enough to teach a
    precise finish. With ``p_near = 0`` no extra number is drawn, so a config
    without it samples exactly as before.
    """

    def __init__(
        self,
        sigma: float = 0.2,
        p_mean: float = 0.5,
        per: Literal["sample", "dimension"] = "sample",
        sigmas: dict[str, float] | None = None,
        sigma_mean: float | None = None,
        sigma_near: float = 0.0,
        p_near: float = 0.0,
    ) -> None:
        for key, value in (("sigma", sigma), ("sigma_mean", sigma_mean), ("sigma_near", sigma_near)):
            if value is not None and not value >= 0:
                raise ValueError(f"{key} must be >= 0, got {value}")
        for key, value in (("p_mean", p_mean), ("p_near", p_near)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{key} must be in [0, 1], got {value}")
        if per not in ("sample", "dimension"):
            raise ValueError(f"per must be 'sample' or 'dimension', got {per!r}")
        self.sigma = sigma
        self.sigma_mean = sigma if sigma_mean is None else sigma_mean
        self.p_mean = p_mean
        self.sigma_near = sigma_near
        self.p_near = p_near
        self.per = per
        self.sigmas = dict(sigmas or {})

    def sigma_vector(self, model: ParameterModel, base: float) -> torch.Tensor:
        """Per-dimension sigma in units of S: ``(P,)`` = normalised sigma * s_std."""
        rel = []
        for name in model.s_names:
            match = max((k for k in self.sigmas if name.startswith(k)), key=len, default=None)
            rel.append(self.sigmas[match] if match is not None else base)
        std = model.s_std()
        return torch.tensor(rel, dtype=std.dtype, device=std.device) * std

    def sample(
        self, model: ParameterModel, s_gt: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        b, p = s_gt.shape  # s_gt: (B, P)
        mean = model.s_mean().to(s_gt)  # (P,)
        sig_gt = self.sigma_vector(model, self.sigma).to(s_gt)  # (P,)
        sig_mean = self.sigma_vector(model, self.sigma_mean).to(s_gt)  # (P,)
        shape = (b, 1) if self.per == "sample" else (b, p)
        u = torch.rand(shape, generator=generator, device=s_gt.device, dtype=s_gt.dtype)
        around_mean = u < self.p_mean  # (B, 1) or (B, P)
        centre = torch.where(around_mean, mean.expand(b, p), s_gt)
        sig = torch.where(around_mean, sig_mean.expand(b, p), sig_gt.expand(b, p))
        if self.p_near > 0:
            near = torch.rand(shape, generator=generator, device=s_gt.device,
                              dtype=s_gt.dtype) < self.p_near  # (B, 1) or (B, P)
            sig_near = self.sigma_near * model.s_std().to(s_gt)  # (P,)
            sig = torch.where(near & ~around_mean, sig_near.expand(b, p), sig)
        noise = torch.randn((b, p), generator=generator, device=s_gt.device, dtype=s_gt.dtype)
        return centre + sig * noise
