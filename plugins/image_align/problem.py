"""Planar image alignment on real photographs: recover the homography between a template
and an image of the same scene, as the template's 4 corner displacements."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from image_align.homography import corners_to_matrix, template_corners
from image_align.metrics import alignment_metrics
from image_align.photos import DEFAULT_TEST_PHOTOS, load_300w, load_packaged
from image_align.synthesis import PairSettings, make_pairs
from selfiter.errors import DataError
from selfiter.interfaces import Problem, ProblemData, View

_SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}


class ImageAlign(Problem):
    """Pairs ``inputs: (N, 2, size, size)`` uint8 (template, image) and their true corner
    displacements ``theta_gt: (N, 8)`` px (see :mod:`image_align.homography`).

    Splits, each a fixed number of pairs drawn (see :mod:`image_align.synthesis`) from
    its own generator seeded by ``(seed, split)``:

    * ``train``: ``n_train`` pairs from the 300-W training photos under ``data_root``
      (``afw``, ``helen/trainset``, ``lfpw/trainset``; faces and their backgrounds);
    * ``val``: ``n_val`` pairs from the 300-W common test photos (``helen/testset``,
      ``lfpw/testset``), other photos than training's;
    * ``test``: ``n_test`` pairs from ``test_photos``, photographs shipped in packages
      (scikit-image's by default) and never trained on; no ``data_root`` needed.

    ``limit_photos`` keeps the first photos of a 300-W split (small tests). Photos are
    grey ``photo_side`` px squares (:mod:`image_align.photos`). The pair settings
    (``size``, ``max_shift``, ``contrast``, ``brightness``, ``gradient``, ``blur``,
    ``noise``) are those of :class:`~image_align.synthesis.PairSettings`, with the ``box``
    law; ``ring_share`` and ``ring_min`` apply to the training pairs only (validation and
    test keep the box law, so that runs compare). ``dihedral`` augments training batches
    by 4 of the symmetries of the square (the pair and its corners together: an exact new
    pair for free).
    """

    splits = ("train", "val", "test")

    def __init__(self, data_root: Path | None = None, size: int = 128, photo_side: int = 320,
                 n_train: int = 10000, n_val: int = 500, n_test: int = 500,
                 max_shift: float = 32.0, contrast: float = 0.3, brightness: float = 0.1,
                 gradient: float = 0.2, blur: float = 1.0, noise: float = 3.0,
                 test_photos: Sequence[str] | None = None, limit_photos: int | None = None,
                 dihedral: bool = True, seed: int = 0, ring_share: float = 0.0,
                 ring_min: float = 0.0) -> None:
        if min(n_train, n_val, n_test) < 1:
            raise ValueError(f"split sizes must be >= 1, got {n_train}/{n_val}/{n_test}")
        if photo_side < size:
            raise ValueError(f"photo_side ({photo_side} px) must be at least size ({size} px)")
        if limit_photos is not None and limit_photos < 1:
            raise ValueError(f"limit_photos must be >= 1 or null, got {limit_photos}")
        self.settings = PairSettings(size=size, shift_law="box", max_shift=max_shift,
                                     contrast=contrast, brightness=brightness, gradient=gradient,
                                     blur=blur, noise=noise)
        self.train_settings = dataclasses.replace(self.settings, ring_share=ring_share,
                                                  ring_min=ring_min)
        self.data_root = None if data_root is None else Path(data_root)
        self.photo_side = photo_side
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.test_photos = tuple(DEFAULT_TEST_PHOTOS if test_photos is None else test_photos)
        self.limit_photos = limit_photos
        self.dihedral = dihedral
        self.seed = seed

    @property
    def size(self) -> int:
        """The side of template and image, px."""
        return self.settings.size

    def photos(self, split: str) -> tuple[torch.Tensor, list[str]]:
        """The photos a split's pairs are cut from: ``(P, side, side)`` uint8 and their names."""
        if split not in self.sizes:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(self.splits)}")
        if split == "test":
            return load_packaged(self.test_photos, self.photo_side), list(self.test_photos)
        if self.data_root is None:
            raise DataError(f"split {split!r} needs the 300-W photos: set "
                            "problem.params.data_root to a 300-W folder (afw/, helen/, lfpw/)")
        return load_300w(self.data_root, split, self.photo_side, self.limit_photos)

    def generator(self, split: str) -> torch.Generator:
        """The generator of a split's pairs, seeded by ``(seed, split)``."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + _SPLIT_OFFSET[split])

    def load(self, split: str) -> ProblemData:
        photos, names = self.photos(split)
        settings = self.train_settings if split == "train" else self.settings
        inputs, theta, which = make_pairs(photos, self.sizes[split], settings,
                                          self.generator(split))
        shown = ", ".join(self.test_photos[:2]) + (", ..." if len(self.test_photos) > 2 else "")
        source = (f"{len(self.test_photos)} packaged photos ({shown})" if split == "test"
                  else str(self.data_root))
        return ProblemData(inputs, theta, {"photo": [names[i] for i in which.tolist()]}, source)

    def augment(self, inputs: torch.Tensor, theta: torch.Tensor,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """With ``dihedral``: each pair mirrored left-right with probability 1/2, then
        transposed with probability 1/2: 4 of the 8 symmetries of the square (the identity,
        the mirror, the transpose and a quarter turn)."""
        if not self.dihedral:
            return inputs, theta
        b = inputs.shape[0]
        u = torch.rand(b, 2, generator=generator, device=inputs.device) < 0.5  # (B, 2)
        inputs, theta = _where_pair(u[:, 0], *mirror(inputs, theta), inputs, theta)
        return _where_pair(u[:, 1], *transpose(inputs, theta), inputs, theta)

    def test_views(self) -> tuple[View, ...]:
        """The pair mirrored, transposed, and both (``solver.tta``): the three symmetries
        besides the identity that ``dihedral`` training draws."""
        return tuple(DihedralView(f, t) for f, t in ((True, False), (False, True), (True, True)))

    def metrics(self, theta: torch.Tensor, data: ProblemData) -> dict[str, float]:
        """See :func:`image_align.metrics.alignment_metrics`: ``corner_err`` (px) first."""
        return alignment_metrics(theta, data.theta_gt)

    def predict(self, solver: Any, raw: Any, iterations: int | None = None) -> list[dict[str, Any]]:
        """Align ``raw = (template, image)``: two grey ``(size, size)`` arrays (or
        ``(N, size, size)`` stacks), uint8 grey levels. Returns one dict per pair:
        ``corners`` (4 x 2, px, where the template's corners lie in the image, clockwise
        from top-left) and ``H`` (3 x 3, template px -> image px)."""
        try:
            template, image = raw
        except (TypeError, ValueError):
            raise ValueError("expected raw = (template, image), two grey arrays") from None
        t = torch.as_tensor(np.asarray(template))
        i = torch.as_tensor(np.asarray(image))
        s = self.size
        if t.shape != i.shape or t.shape[-2:] != (s, s) or t.dim() not in (2, 3):
            raise ValueError(f"template and image must both be ({s}, {s}) or (N, {s}, {s}) grey "
                             f"arrays, got {tuple(t.shape)} and {tuple(i.shape)}")
        pairs = torch.stack([t, i], -3).reshape(-1, 2, s, s)
        theta = solver.solve(pairs, iterations=iterations).theta.cpu().double()  # (N, 8)
        h = corners_to_matrix(theta, s)
        corners = template_corners(s, torch.float64) + theta.reshape(-1, 4, 2)
        return [{"corners": c.tolist(), "H": m.tolist()} for c, m in zip(corners, h)]


def _where_pair(mask: torch.Tensor, inputs_a: torch.Tensor, theta_a: torch.Tensor,
                inputs_b: torch.Tensor, theta_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair ``a`` where ``mask: (B,)``, pair ``b`` elsewhere."""
    return (torch.where(mask[:, None, None, None], inputs_a, inputs_b),
            torch.where(mask[:, None], theta_a, theta_b))


def mirror(inputs: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pair mirrored left-right: ``x -> S-1-x`` in template and image alike (see
    :func:`mirror_theta`)."""
    return inputs.flip(-1), mirror_theta(theta)


def mirror_theta(theta: torch.Tensor) -> torch.Tensor:
    """The corner displacements ``(B, 8)`` of the mirrored pair: the corners swap (0 <-> 1,
    2 <-> 3) and their x displacements change sign. An involution."""
    d = theta.reshape(-1, 4, 2)[:, [1, 0, 3, 2]] * d_sign(theta, (-1.0, 1.0))
    return d.reshape(-1, 8)


def transpose(inputs: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pair transposed: ``(x, y) -> (y, x)`` (see :func:`transpose_theta`)."""
    return inputs.transpose(-1, -2), transpose_theta(theta)


def transpose_theta(theta: torch.Tensor) -> torch.Tensor:
    """The corner displacements ``(B, 8)`` of the transposed pair: corners 1 and 3 swap
    and each displacement's x and y swap. An involution."""
    return theta.reshape(-1, 4, 2)[:, [0, 3, 2, 1]].flip(-1).reshape(-1, 8)


class DihedralView(View):
    """A pair mirrored left-right (``flip``), then transposed (``swap``): one of the
    symmetries of the square that training's ``dihedral`` augmentation draws, as a test
    view (``solver.tta``)."""

    def __init__(self, flip: bool, swap: bool) -> None:
        self.flip, self.swap = flip, swap
        self.name = "+".join(n for n, on in (("mirror", flip), ("transpose", swap)) if on)

    def inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        inputs = inputs.flip(-1) if self.flip else inputs
        return inputs.transpose(-1, -2) if self.swap else inputs

    def theta(self, theta: torch.Tensor) -> torch.Tensor:
        theta = mirror_theta(theta) if self.flip else theta
        return transpose_theta(theta) if self.swap else theta

    def theta_back(self, theta: torch.Tensor) -> torch.Tensor:
        theta = transpose_theta(theta) if self.swap else theta
        return mirror_theta(theta) if self.flip else theta


def d_sign(theta: torch.Tensor, sign: tuple[float, float]) -> torch.Tensor:
    """``(1, 1, 2)`` factors of a displacement's (x, y), in theta's dtype and device."""
    return torch.tensor(sign, dtype=theta.dtype, device=theta.device).reshape(1, 1, 2)

