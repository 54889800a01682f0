"""CED and worst-face plots: PNG files written in one rename."""

from __future__ import annotations

import math

import pytest
import torch
from matplotlib.figure import Figure

from face_landmarks.report import ced_plot, worst_faces

PNG = b"\x89PNG\r\n\x1a\n"


def _faces(n: int = 5, size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    gt = torch.rand(n, 136, generator=g, dtype=torch.float64) * (size - 1)
    pred = gt + torch.randn(n, 136, generator=g, dtype=torch.float64)
    return images, pred, gt


def test_ced_plot_writes_png(tmp_path):
    errors = torch.rand(50, dtype=torch.float64) * 0.1
    path = ced_plot({"68 points": errors, "51 points": errors * 0.8}, tmp_path / "sub" / "ced.png")
    assert path == tmp_path / "sub" / "ced.png"
    assert path.read_bytes().startswith(PNG)
    assert sorted(p.name for p in path.parent.iterdir()) == ["ced.png"]


def test_ced_plot_accepts_nan_errors(tmp_path):
    path = ced_plot({"iteration 4": torch.tensor([0.01, math.nan])}, tmp_path / "ced.png")
    assert path.read_bytes().startswith(PNG)


def test_worst_faces_writes_png(tmp_path):
    images, pred, gt = _faces()
    pred[2] = math.nan  # a diverged face is drawn (first) without its prediction
    errors = torch.tensor([0.1, 0.02, math.nan, 0.3, 0.05])
    path = worst_faces(images, pred, gt, errors, tmp_path / "worst.png", n=8,
                       names=[f"face{i}.jpg" for i in range(5)])
    assert path.read_bytes().startswith(PNG)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["worst.png"]


def test_worst_faces_needs_a_face(tmp_path):
    images, pred, gt = _faces()
    with pytest.raises(ValueError, match="at least one face"):
        worst_faces(images[:0], pred[:0], gt[:0], torch.zeros(0), tmp_path / "w.png")


def test_failed_plot_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ced.png"
    path.write_bytes(b"old plot")

    def half_write(self, fname, **kwargs):
        open(fname, "wb").write(PNG[:4])
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_write)
    with pytest.raises(OSError, match="disk full"):
        ced_plot({"68 points": torch.rand(10)}, path)
    assert path.read_bytes() == b"old plot"
    assert [p.name for p in tmp_path.iterdir()] == ["ced.png"]
