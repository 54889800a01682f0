"""The facial landmarks model of Eq. 3: PCA shape coefficients and a similarity pose."""

from __future__ import annotations

from typing import Mapping

import torch

from selfiter.interfaces import ParameterModel

#: points of the 68-point (Multi-PIE) annotation; fit_data/load_state_dict take the
#: number from the data, this is only what the names say before either is called
N_POINTS_68 = 68


def _rot90(p: torch.Tensor) -> torch.Tensor:
    """Each point turned by +90 degrees: ``(..., L, 2)`` ``(x, y) -> (-y, x)``."""
    return torch.stack((-p[..., 1], p[..., 0]), dim=-1)


def _similarity_to(c: torch.Tensor, s0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares ``c ≈ [a -b; b a] s0`` for centred shapes ``c: (B, L, 2)``, ``s0: (L, 2)``.

    Returns ``a, b: (B,)``. Closed form because ``s0`` and its 90-degree turn
    are orthogonal and of equal norm.
    """
    norm2 = (s0 * s0).sum()
    a = (c * s0).sum((-2, -1)) / norm2
    b = (c * _rot90(s0)).sum((-2, -1)) / norm2
    return a, b


def _unrotate_scale(c: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``R_beta^-1 c / f`` for ``a = f cos(beta)``, ``b = f sin(beta)``: ``(B, L, 2)``.

    ``[a -b; b a]^-1 = [a b; -b a] / (a^2 + b^2)``, so no trigonometry is needed.
    """
    a, b = a[:, None], b[:, None]
    inv = 1.0 / (a * a + b * b)
    x, y = c[..., 0], c[..., 1]
    return torch.stack(((a * x + b * y) * inv, (a * y - b * x) * inv), dim=-1)


def _normalise(shape: torch.Tensor) -> torch.Tensor:
    """``(L, 2)`` centred and scaled to unit RMS radius (mean squared point norm 1)."""
    c = shape - shape.mean(0)
    return c / c.pow(2).sum(-1).mean().sqrt()


class PcaSimilarityModel(ParameterModel):
    """``theta(S) = f * R_beta * (S0 + A alpha) + t`` (Eq. 3) fitted to training shapes.

    **Locations** ``theta: (B, 2L)`` are landmark coordinates in frame pixels,
    flattened ``x_1, y_1, x_2, y_2, ...`` (x to the right, y down).

    **Parameters** ``S: (B, K + 4) = [alpha_1 .. alpha_K, tx, ty, beta, f]``,
    normalised as follows:

    * ``S0: (2L,)`` is the generalised-Procrustes mean shape, centred on the
      origin and scaled to unit RMS radius (``mean_l |S0_l|^2 = 1``), its
      rotation anchored to the mean of the training shapes as annotated (so an
      upright training face has ``beta`` near 0).
    * ``A: (2L, K)`` has orthonormal columns, the first K principal directions
      of the Procrustes-aligned shapes, made exactly orthogonal to ``S0``, to
      ``S0`` turned by 90 degrees and to the two translations. ``alpha_k`` is
      therefore dimensionless, in units of S0's RMS radius summed over points:
      ``alpha_k = 1`` moves the points by an RMS of ``1 / sqrt(L)`` radii
      (``f / sqrt(L)`` px in the frame).
    * ``tx, ty`` (px) are exactly the centroid of the landmarks, because S0 and
      A are centred.
    * ``beta`` (rad, in ``(-pi, pi]``) is the in-plane rotation of the face
      against S0, positive from +x towards +y (clockwise on screen, y down).
    * ``f`` (px/unit, > 0) is the face's RMS radius in frame pixels.

    Because A is orthogonal to the similarity tangent space of S0,
    :meth:`fit` (the least-squares similarity from S0 to theta, then the
    projection of the residual onto A) inverts :meth:`theta` exactly:
    ``fit(theta(S)) == S`` for any ``f > 0`` and ``beta`` in ``(-pi, pi]``.

    :meth:`s_mean` is ``alpha = 0`` with the training mean pose (the circular
    mean for ``beta``); :meth:`s_std` is the spread of every dimension of S over
    the training shapes, pose included, so a sampler's ``sigma = 1`` draws as
    widely as the training set varies.

    ``variance`` keeps the fewest components explaining that fraction of the
    aligned shapes' variance; ``n_components`` (if set) fixes K instead.
    """

    theta_unit = "px"

    def __init__(self, variance: float = 0.97, n_components: int | None = None) -> None:
        if not 0.0 < variance <= 1.0:
            raise ValueError(f"variance must be in (0, 1], got {variance}")
        if n_components is not None and n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.variance = variance
        self.n_components = n_components
        self._set_names(N_POINTS_68, 0)
        self._s0: torch.Tensor | None = None  # (L, 2) float64, CPU
        self._a: torch.Tensor | None = None  # (2L, K) float64, CPU
        self._mean = torch.zeros(0, dtype=torch.float64)
        self._std = torch.zeros(0, dtype=torch.float64)
        # S0 and A converted per (device, dtype), so repeated calls on a GPU copy them once
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def _set_names(self, n_points: int, k: int) -> None:
        self.theta_names = tuple(f"{c}_{i}" for i in range(1, n_points + 1) for c in "xy")
        self.s_names = (*(f"alpha_{i}" for i in range(1, k + 1)), "tx", "ty", "beta", "f")
        self.s_units = ("1",) * k + ("px", "px", "rad", "px/unit")

    @property
    def k(self) -> int:
        """K, the number of PCA shape components."""
        return self.s_dim - 4

    def _require_fitted(self) -> None:
        if self._s0 is None:
            raise RuntimeError(
                "PcaSimilarityModel has no fitted state: call fit_data or load_state_dict first")

    def _basis(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``S0: (L, 2)`` and ``A: (2L, K)`` on ``like``'s device and dtype."""
        self._require_fitted()
        key = (like.device, like.dtype)
        if key not in self._cache:
            self._cache[key] = (self._s0.to(like), self._a.to(like))
        return self._cache[key]

    def _set_state(self, s0: torch.Tensor, a: torch.Tensor, mean: torch.Tensor,
                   std: torch.Tensor) -> None:
        self._s0 = s0.detach().to("cpu", torch.float64).reshape(-1, 2)
        self._a = a.detach().to("cpu", torch.float64)
        self._mean = mean.detach().to("cpu", torch.float64)
        self._std = std.detach().to("cpu", torch.float64)
        self._cache.clear()
        self._set_names(self._s0.shape[0], self._a.shape[1])

    def fit_data(self, theta_train: torch.Tensor) -> None:
        """Procrustes mean, PCA basis and S statistics of ``theta_train: (N, 2L)`` (px).

        Computed in float64 on the CPU (a few thousand shapes take milliseconds,
        and not every accelerator has float64)."""
        if theta_train.dim() != 2 or theta_train.shape[1] % 2 or theta_train.shape[1] < 6:
            raise ValueError(
                f"theta_train must be (N, 2L) with L >= 3, got {tuple(theta_train.shape)}")
        x = theta_train.detach().to("cpu", torch.float64)
        if not torch.isfinite(x).all():
            raise ValueError("theta_train holds non-finite coordinates")
        n, d = x.shape
        pts = x.reshape(n, -1, 2)
        c = pts - pts.mean(1, keepdim=True)  # (N, L, 2)
        s0 = self._procrustes_mean(c)
        s0_flat = s0.reshape(-1)

        # Residuals in S0's tangent plane: exactly what fit() projects onto A.
        a, b = _similarity_to(c, s0)
        resid = (_unrotate_scale(c, a, b) - s0).reshape(n, d)  # (N, 2L)
        resid = resid - resid.mean(0)
        _, sv, vh = torch.linalg.svd(resid, full_matrices=False)
        ratio = sv.pow(2).cumsum(0) / sv.pow(2).sum()
        # At most 2L - 4 directions are left once the 4 similarity ones are removed.
        k_max = min(d - 4, n - 1)
        if self.n_components is not None:
            if self.n_components > k_max:
                raise ValueError(f"n_components={self.n_components} exceeds the {k_max} available "
                                 f"from {n} shapes of {d // 2} points")
            k = self.n_components
        else:
            wanted = torch.tensor(self.variance, dtype=ratio.dtype)
            k = min(int(torch.searchsorted(ratio, wanted)) + 1, k_max)
        basis = vh[:k].T  # (2L, K)

        # Remove the similarity tangent space explicitly so fit() inverts theta() to
        # rounding error, not merely to the accuracy of the Procrustes iteration.
        ex = torch.zeros_like(s0)
        ex[:, 0] = 1.0
        ey = torch.zeros_like(s0)
        ey[:, 1] = 1.0
        sim = torch.stack([s0, _rot90(s0), ex, ey]).reshape(4, d).T  # (2L, 4)
        sim_q, _ = torch.linalg.qr(sim)
        basis = basis - sim_q @ (sim_q.T @ basis)
        q, r = torch.linalg.qr(basis)
        q = q * torch.sign(torch.diagonal(r))  # keep each direction's sign from the SVD
        # A deterministic sign: each component's largest entry is positive.
        peak = q.gather(0, q.abs().argmax(0, keepdim=True))
        q = q * torch.sign(peak)

        # Placeholder statistics: fit() needs only S0 and A.
        self._set_state(s0_flat, q, torch.zeros(k + 4), torch.ones(k + 4))
        s_train = self.fit(x)  # (N, K + 4)
        mean = s_train.mean(0)
        beta = s_train[:, k + 2]
        mean[k + 2] = torch.atan2(beta.sin().mean(), beta.cos().mean())
        dev = s_train - mean
        # beta's spread is measured around its circular mean, wrapped to (-pi, pi]
        dev[:, k + 2] = torch.atan2(dev[:, k + 2].sin(), dev[:, k + 2].cos())
        std = dev.std(0) if n > 1 else torch.zeros_like(mean)
        # s_std must be > 0: a dimension without spread (one shape, a constant pose)
        # gets a tiny one rather than a zero that would make every sigma meaningless.
        std = std.clamp_min(1e-12 * float(std.max().clamp_min(1.0)))
        mean[:k] = 0.0
        self._set_state(s0_flat, q, mean, std)

    @staticmethod
    def _procrustes_mean(c: torch.Tensor, tol: float = 1e-12, max_iter: int = 200) -> torch.Tensor:
        """Generalised Procrustes mean of centred shapes ``c: (N, L, 2)`` -> ``(L, 2)``.

        Each iteration aligns every shape to the current mean by the similarity
        that maps the mean onto it (so aligned shapes lie in the mean's tangent
        plane, ``<aligned, S0> = |S0|^2``), averages, and normalises; the new
        mean is turned back onto the first reference so the iteration cannot
        drift in rotation. Stops when no coordinate moves by more than ``tol``.
        """
        rms = c.pow(2).sum(-1).mean(-1).sqrt()  # (N,)
        ref = _normalise((c / rms[:, None, None]).mean(0))
        s0 = ref
        for _ in range(max_iter):
            a, b = _similarity_to(c, s0)
            new = _normalise(_unrotate_scale(c, a, b).mean(0))
            ra, rb = _similarity_to(new[None], ref)  # new ≈ f R ref: undo R, keep |new|
            new = _unrotate_scale(new[None], ra, rb)[0] * torch.hypot(ra, rb)
            done = float((new - s0).abs().max()) < tol
            s0 = new
            if done:
                break
        return s0

    def theta(self, s: torch.Tensor) -> torch.Tensor:
        """``s: (B, K + 4) -> theta: (B, 2L)`` in px (Eq. 3)."""
        s0, a = self._basis(s)
        k = a.shape[1]
        if s.dim() != 2 or s.shape[1] != k + 4:
            raise ValueError(f"s must be (B, {k + 4}), got {tuple(s.shape)}")
        shape = (s0.reshape(-1) + s[:, :k] @ a.T).reshape(s.shape[0], -1, 2)  # (B, L, 2)
        beta, f = s[:, k + 2, None], s[:, k + 3, None]
        fcos, fsin = beta.cos() * f, beta.sin() * f
        x, y = shape[..., 0], shape[..., 1]
        out = torch.stack((fcos * x - fsin * y + s[:, k, None],
                           fsin * x + fcos * y + s[:, k + 1, None]), -1)
        return out.reshape(s.shape[0], -1)

    def fit(self, theta: torch.Tensor) -> torch.Tensor:
        """``theta: (B, 2L) -> s: (B, K + 4)``: least-squares similarity from S0, then alpha."""
        s0, a = self._basis(theta)
        if theta.dim() != 2 or theta.shape[1] != s0.numel():
            raise ValueError(f"theta must be (B, {s0.numel()}), got {tuple(theta.shape)}")
        pts = theta.reshape(theta.shape[0], -1, 2)
        t = pts.mean(1)  # (B, 2)
        c = pts - t[:, None]
        ca, cb = _similarity_to(c, s0)
        resid = (_unrotate_scale(c, ca, cb) - s0).reshape(theta.shape[0], -1)
        alpha = resid @ a  # (B, K)
        pose = torch.stack((t[:, 0], t[:, 1], torch.atan2(cb, ca), torch.hypot(ca, cb)), -1)
        return torch.cat((alpha, pose), -1)

    def s_mean(self) -> torch.Tensor:
        """``(K + 4,)`` float64: alpha = 0 and the training mean pose."""
        self._require_fitted()
        return self._mean

    def s_std(self) -> torch.Tensor:
        """``(K + 4,)`` float64: each dimension's standard deviation over training."""
        self._require_fitted()
        return self._std

    def state_dict(self) -> dict[str, torch.Tensor]:
        """``S0: (2L,)``, ``A: (2L, K)``, ``mean``, ``std``: ``(K + 4,)``, all float64."""
        if self._s0 is None:
            return {}
        return {"S0": self._s0.reshape(-1), "A": self._a, "mean": self._mean, "std": self._std}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        missing = {"S0", "A", "mean", "std"} - set(state)
        if missing:
            raise ValueError(f"PcaSimilarityModel state lacks {sorted(missing)}")
        s0, a, mean, std = state["S0"], state["A"], state["mean"], state["std"]
        k = a.shape[1] if a.dim() == 2 else -1
        if (k < 1 or s0.numel() % 2 or a.shape[0] != s0.numel()
                or mean.shape != (k + 4,) or std.shape != (k + 4,)):
            raise ValueError(
                f"PcaSimilarityModel state does not fit together: S0 {tuple(s0.shape)}, "
                f"A {tuple(a.shape)}, mean {tuple(mean.shape)}, std {tuple(std.shape)}")
        self._set_state(s0, a, mean, std)
