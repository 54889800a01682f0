"""Plots of a face-alignment solve: CED curves and the worst faces, written as PNG.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot state, no
display needed) and each file is replaced in one rename, so a reader never sees
a half-written plot.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from face_landmarks.metrics import ALPHA, auc, ced_curve, failure_rate
from selfiter.atomic import atomic_path

#: thresholds the CED is drawn at, as fractions of the normaliser
_CED_STEPS = 801


def _save(fig: Figure, path: str | Path) -> Path:
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


def ced_plot(errors: Mapping[str, torch.Tensor], path: str | Path, alpha: float = ALPHA,
             x_max: float = 0.1, title: str = "Cumulative error distribution") -> Path:
    """Draw one CED curve per entry of ``errors`` (label -> ``(N,)`` normalised
    errors, e.g. ``{"68 points": ..., "51 points": ...}`` or one per iteration)
    from 0 to ``x_max``, with AUC and failure rate at ``alpha`` in the legend."""
    fig = Figure(figsize=(6, 4.5), dpi=100)
    ax = fig.add_subplot()
    thresholds = torch.linspace(0.0, x_max, _CED_STEPS, dtype=torch.float64)
    for label, e in errors.items():
        e = e.detach().cpu().to(torch.float64)
        ax.plot(thresholds.numpy(), ced_curve(e, thresholds).numpy(),
                label=f"{label}: AUC {auc(e, alpha):.2f}%, failures {failure_rate(e, alpha):.2f}%")
    ax.axvline(alpha, color="grey", linestyle=":", linewidth=1)
    ax.set(xlim=(0.0, x_max), ylim=(0.0, 100.0), title=title,
           xlabel="point-to-point error / inter-ocular distance", ylabel="faces (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return _save(fig, path)


def worst_faces(images: torch.Tensor, pred: torch.Tensor, gt: torch.Tensor, errors: torch.Tensor,
                path: str | Path, n: int = 8, names: Sequence[str] | None = None) -> Path:
    """A grid of the ``n`` faces of largest error: ``images: (N, 3, S, S)`` uint8 with
    ``gt: (N, 136)`` (green) and ``pred: (N, 136)`` (red) in the images' px, titled
    by ``errors: (N,)`` (normalised, shown in percent) and ``names`` (N strings)."""
    count = min(n, int(errors.numel()))
    if count == 0:
        raise ValueError("worst_faces needs at least one face")
    # a diverged face (NaN error) is the worst of all
    ranked = torch.nan_to_num(errors.detach().cpu().to(torch.float64), nan=math.inf)
    worst = ranked.topk(count).indices
    cols = min(4, count)
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(3 * cols, 3.5 * rows), dpi=100, layout="constrained")
    for slot, i in enumerate(worst.tolist()):
        ax = fig.add_subplot(rows, cols, slot + 1)
        ax.imshow(images[i].detach().cpu().permute(1, 2, 0).numpy())
        g = gt[i].detach().cpu().reshape(-1, 2).numpy()
        p = pred[i].detach().cpu().to(torch.float32).reshape(-1, 2).numpy()
        ax.scatter(g[:, 0], g[:, 1], s=6, c="lime", label="truth")
        ax.scatter(p[:, 0], p[:, 1], s=6, c="red", label="prediction")
        name = f"{names[i]}\n" if names is not None else ""
        ax.set_title(f"{name}error {100.0 * float(errors[i]):.1f}%", fontsize="small")
        ax.set_axis_off()
    fig.axes[0].legend(loc="upper left", fontsize="x-small")
    return _save(fig, path)
