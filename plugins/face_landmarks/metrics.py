"""300-W accuracy metrics, batched in torch.

Per face, the error is the mean point-to-point distance normalised by one of:

* inter-pupil distance (``ip``): between the eye centres, the means of 1-based
  points 37-42 and 43-48 (the paper's Table 2);
* inter-ocular distance (``io``): between the outer eye corners, 1-based points
  37 and 46 (the 300-W competition's and MDM's, used for AUC and failure rate).

Errors are computed over all 68 points and over the 51 inner points (1-based
18-68, without the jaw line); the normaliser always comes from the 68 ground-
truth points, since the 51 keep both eyes.

Over a split: NME is the mean normalised error; the CED curve is the fraction
of faces whose error is at most ``e``; AUC at ``alpha`` is the area under the
CED from 0 to ``alpha`` divided by ``alpha``; the failure rate at ``alpha`` is
the fraction of faces with error above ``alpha``. All are in percent. A face
whose error is not finite (a diverged solve) has a NaN NME and counts as a
failure that the CED never reaches.
"""

from __future__ import annotations

from typing import Literal

import torch

#: 0-based indices of the 51 inner points (1-based 18-68)
INNER_51 = slice(17, 68)
#: 0-based indices of the right (image-left) and left eye contours, 1-based 37-42 and 43-48
RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)
#: 0-based indices of the outer eye corners, 1-based 37 and 46
RIGHT_OUTER, LEFT_OUTER = 36, 45
#: the error threshold of AUC and failure rate (fraction of the normaliser)
ALPHA = 0.08

Normalisation = Literal["ip", "io"]


def _points(theta: torch.Tensor, name: str) -> torch.Tensor:
    if theta.ndim != 2 or theta.shape[1] != 136:
        raise ValueError(f"{name}: expected shape (N, 136), got {tuple(theta.shape)}")
    return theta.to(torch.float64).reshape(theta.shape[0], 68, 2)


def normalisers(gt: torch.Tensor) -> dict[Normalisation, torch.Tensor]:
    """Inter-pupil and inter-ocular distances of ground truths ``(N, 136) -> (N,)`` each (px)."""
    g = _points(gt, "gt")
    pupils = g[:, RIGHT_EYE].mean(dim=1) - g[:, LEFT_EYE].mean(dim=1)
    corners = g[:, RIGHT_OUTER] - g[:, LEFT_OUTER]
    return {"ip": pupils.norm(dim=-1), "io": corners.norm(dim=-1)}


def point_distances(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Distance of every predicted point to its truth:
    ``(N, 136), (N, 136) -> (N, 68)`` px, float64."""
    if pred.shape != gt.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ in shape")
    return (_points(pred, "pred") - _points(gt, "gt")).norm(dim=-1)


def _mean_distance(dist: torch.Tensor, inner: bool) -> torch.Tensor:
    return (dist[:, INNER_51] if inner else dist).mean(dim=1)


def face_errors(pred: torch.Tensor, gt: torch.Tensor, norm: Normalisation = "io",
                inner: bool = False) -> torch.Tensor:
    """Normalised mean point-to-point error per face: ``(N, 136), (N, 136) -> (N,)`` float64,
    a fraction of the ``norm`` distance, over 68 points or the 51 ``inner`` ones."""
    return _mean_distance(point_distances(pred, gt), inner) / normalisers(gt)[norm]


def ced_curve(errors: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Cumulative error distribution: percent of ``errors: (N,)`` at most each of
    ``thresholds: (T,)`` -> ``(T,)``."""
    sorted_errors = errors[torch.isfinite(errors)].sort().values
    count = torch.searchsorted(sorted_errors, thresholds.to(sorted_errors), right=True)
    return 100.0 * count.to(torch.float64) / errors.numel()


def auc(errors: torch.Tensor, alpha: float = ALPHA) -> float:
    """Area under the CED of ``errors: (N,)`` from 0 to ``alpha``, over ``alpha``, in percent.

    Exact for the step CED: a face of error ``e`` adds ``max(alpha - e, 0) / N``
    to the integral, so no threshold grid is involved."""
    below = torch.where(torch.isfinite(errors), (alpha - errors).clamp(min=0.0), 0.0)
    return float(100.0 * below.mean() / alpha)


def failure_rate(errors: torch.Tensor, alpha: float = ALPHA) -> float:
    """Percent of ``errors: (N,)`` above ``alpha`` (non-finite errors are failures)."""
    return float(100.0 * (~(errors <= alpha)).to(torch.float64).mean())


def face_metrics(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
    """Scores of ``pred: (N, 136)`` against ``gt: (N, 136)`` (same px units), in percent.

    ``nme_ip`` (the headline), ``nme_io``, ``auc08`` and ``fr08`` (inter-ocular)
    over 68 points, then the same over the 51 inner points with suffix ``_51``."""
    dist = point_distances(pred, gt)
    norms = normalisers(gt)
    out: dict[str, float] = {}
    for inner, suffix in ((False, ""), (True, "_51")):
        mean = _mean_distance(dist, inner)
        e_io = mean / norms["io"]
        out[f"nme_ip{suffix}"] = float(100.0 * (mean / norms["ip"]).mean())
        out[f"nme_io{suffix}"] = float(100.0 * e_io.mean())
        out[f"auc08{suffix}"] = auc(e_io)
        out[f"fr08{suffix}"] = failure_rate(e_io)
    return out
