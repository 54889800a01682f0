"""Face boxes from MTCNN (``mtcnn``): Zhang et al.'s three-stage cascade of small CNNs, calibrated.

The weights are those the ``mtcnn`` wheel ships (MIT; the Keras port of the
authors' Caffe models, ``mtcnn/assets/weights/{pnet,rnet,onet}.lz4``, read
with ``joblib``); the wheel's own code needs TensorFlow and is not used: the
three networks are rebuilt here in PyTorch from those arrays. The port's
kernels already see ordinary (not transposed) ``(B, 3, H, W)`` RGB images scaled
by ``(v - 127.5) / 128``.

The cascade, as in the paper:

1. **P-Net** (a 12 px window, stride 2) runs fully convolutionally over an
   image pyramid, from the scale at which a face of the least size is 12 px,
   down by ``factor`` per level; windows scoring ``thresholds[0]`` or more
   become boxes, moved by its box regression, merged by non-maximum
   suppression within each level and across levels;
2. **R-Net** scores each box's square crop at 24 x 24 px and regresses it again;
3. **O-Net** does the same at 48 x 48 px; its score is the detection's.

Crops are read, all boxes at once, by bilinear sampling (``grid_sample``)
from the level of a halving pyramid where the box is at most twice the crop's
side, so that no crop aliases. The networks run channels-last. Only the final
suppressions loop (over the boxes kept, which is inherently sequential; P-Net's
many windows per level go through one-matrix fast NMS).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from face_landmarks.detectors.base import SHIPPED, CalibratedDetector, require
from face_landmarks.detectors.calibration import box_iou, suppress
from selfiter.errors import ConfigError

#: the window P-Net scores, px of the level it runs on
PNET_WINDOW = 12
#: P-Net's output stride, px of its level
PNET_STRIDE = 2



def weights_folder() -> Path:
    """Where the ``mtcnn`` wheel keeps its weight files, found without importing the package
    (its ``__init__`` imports TensorFlow)."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or spec.origin is None:
        require("mtcnn", "mtcnn")  # raises the one-line install hint
    folder = Path(spec.origin).parent / "assets" / "weights"
    if not folder.is_dir():
        raise ConfigError(f"detector 'mtcnn': the mtcnn package at {Path(spec.origin).parent} "
                          f"has no assets/weights folder; install mtcnn>=1.0")
    return folder


def keras_weights(name: str) -> list[np.ndarray]:
    """The arrays of ``<name>.lz4`` (``pnet``, ``rnet``, ``onet``), in Keras' layer order."""
    joblib = require("joblib", "mtcnn")
    require("lz4", "mtcnn")
    return list(joblib.load(weights_folder() / f"{name}.lz4"))


def _conv(kernel: np.ndarray, bias: np.ndarray) -> nn.Conv2d:
    """A Conv2d from a Keras ``(kh, kw, in, out)`` kernel."""
    k = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    conv = nn.Conv2d(k.shape[1], k.shape[0], tuple(k.shape[2:]))
    conv.weight.data.copy_(k)
    conv.bias.data.copy_(torch.from_numpy(bias))
    return conv


def _prelu(alpha: np.ndarray) -> nn.PReLU:
    p = nn.PReLU(alpha.size)
    p.weight.data.copy_(torch.from_numpy(alpha.reshape(-1)))
    return p


def _dense(kernel: np.ndarray, bias: np.ndarray) -> nn.Linear:
    lin = nn.Linear(*kernel.shape)
    lin.weight.data.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
    lin.bias.data.copy_(torch.from_numpy(bias))
    return lin


def _trunk(w: list[np.ndarray], pools: Sequence[tuple[int, int] | None]) -> nn.Sequential:
    """Conv + PReLU (+ max-pool ``(kernel, stride)``) blocks from ``w`` (kernel, bias, alpha
    per block). Keras' 'same' pooling pads at the end, as ``ceil_mode`` does."""
    layers: list[nn.Module] = []
    for i, pool in enumerate(pools):
        layers += [_conv(w[3 * i], w[3 * i + 1]), _prelu(w[3 * i + 2])]
        if pool is not None:
            layers.append(nn.MaxPool2d(pool[0], pool[1], ceil_mode=True))
    return nn.Sequential(*layers)


class PNet(nn.Module):
    """``(B, 3, H, W) -> (prob: (B, h, w), reg: (B, 4, h, w))``, one window per 2 px."""

    def __init__(self, w: list[np.ndarray]) -> None:
        super().__init__()
        self.trunk = _trunk(w, [(2, 2), None, None])
        self.reg = _conv(w[9], w[10])
        self.cls = _conv(w[11], w[12])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.trunk(x)
        return torch.softmax(self.cls(y), 1)[:, 1], self.reg(y)


class CropNet(nn.Module):
    """R-Net and O-Net: ``(N, 3, side, side) -> (prob: (N,), reg: (N, 4))`` (O-Net's 5
    landmarks are not used). ``pools``: each conv block's max-pool; the dense layers'
    arrays follow the convolutions' in ``w``, the classifier's last."""

    def __init__(self, w: list[np.ndarray], pools: Sequence[tuple[int, int] | None]) -> None:
        super().__init__()
        n = 3 * len(pools)
        self.trunk = _trunk(w, pools)
        self.fc = nn.Sequential(_dense(w[n], w[n + 1]), _prelu(w[n + 2]))
        self.reg = _dense(w[n + 3], w[n + 4])
        self.cls = _dense(w[-2], w[-1])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Keras flattened (x, y, channel): its Permute swapped the spatial axes
        y = self.fc(self.trunk(x).permute(0, 3, 2, 1).flatten(1))
        return torch.softmax(self.cls(y), 1)[:, 1], self.reg(y)


def RNet(w: list[np.ndarray]) -> CropNet:
    """R-Net, on 24 x 24 crops."""
    return CropNet(w, [(3, 2), (3, 2), None])


def ONet(w: list[np.ndarray]) -> CropNet:
    """O-Net, on 48 x 48 crops."""
    return CropNet(w, [(3, 2), (3, 2), (2, 2), None])


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou: float, mode: str = "union") -> torch.Tensor:
    """:func:`~face_landmarks.detectors.calibration.suppress` (greedy, overlap over the
    union or, ``mode="min"``, over the smaller box) on tensors: kept indices, a long tensor."""
    keep = suppress(boxes.detach().cpu().numpy(), scores.detach().cpu().numpy(), iou, over=mode)
    return torch.as_tensor(keep, dtype=torch.long, device=boxes.device)


def fast_nms(boxes: torch.Tensor, scores: torch.Tensor, iou: float, limit: int = 4000
             ) -> torch.Tensor:
    """Indices kept by Bolya et al.'s fast NMS (YOLACT): a box goes when its IoU with any
    better box, kept or not, exceeds ``iou``; only the ``limit`` best boxes are considered.
    One ``(N, N)`` matrix instead of a pass per kept box: it drops a few more boxes than
    greedy suppression, which is harmless among P-Net's thousands of windows per level."""
    order = torch.argsort(scores, descending=True, stable=True)[:limit]
    b = boxes[order].detach().cpu().numpy()
    overlap = np.triu(box_iou(b, b), 1)  # (N, N): row i, a better box than column j
    return order[torch.from_numpy(overlap.max(0, initial=0.0) <= iou).to(order.device)]


def square(boxes: torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` edges -> the squares of the same centres, side the longer side."""
    c = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]).max(1, keepdim=True).values / 2
    return torch.cat([c - half, c + half], 1)


def regress(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    """Boxes ``(N, 4)`` moved by MTCNN's regression ``(N, 4)``: edge offsets in box sides."""
    side = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    return boxes + reg * side


def crops(pyramid: list[torch.Tensor], boxes: torch.Tensor, side: int) -> torch.Tensor:
    """``side x side`` bilinear crops of the square ``boxes: (N, 4)`` (edges, px of level 0)
    from ``pyramid`` (level ``l``: ``(1, 3, h_l, w_l)`` raw RGB values, about ``2^-l`` of
    level 0), each read from the finest level where the box spans at most ``2 * side``
    px; outside the image reads black, as the reference code pads. -> ``(N, 3, side, side)``."""
    height, width = pyramid[0].shape[-2:]
    out = torch.zeros(len(boxes), 3, side, side)
    span = (boxes[:, 2] - boxes[:, 0]).clamp_min(1.0)
    level = torch.ceil(torch.log2(span / (2 * side))).clamp(0, len(pyramid) - 1).long()
    # the crop's pixel centres across the box, in level-0 px; grid_sample's coordinates
    # (align_corners=False) are fractions of the image, the same at every level
    t = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    gx = (boxes[:, None, 0] + t * (boxes[:, None, 2] - boxes[:, None, 0]) + 0.5) / width * 2 - 1
    gy = (boxes[:, None, 1] + t * (boxes[:, None, 3] - boxes[:, None, 1]) + 0.5) / height * 2 - 1
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), -1)  # (N, s, s, 2)
    for lv in torch.unique(level).tolist():
        sel = level == lv
        out[sel] = F.grid_sample(pyramid[lv].expand(int(sel.sum()), -1, -1, -1), grid[sel],
                                 mode="bilinear", padding_mode="zeros", align_corners=False)
    return out


class MtcnnDetector(CalibratedDetector):
    """Faces by MTCNN, boxes calibrated to landmark boxes.

    ``pnet_threshold``, ``rnet_threshold``, ``threshold``: the least P-Net, R-Net and
    O-Net scores kept (the paper's 0.6, 0.7, 0.7; O-Net's is the detection's score);
    ``factor``: the pyramid's step (0.709: each level half the area of the last);
    ``min_size`` (30 px by default, not the 40 of the other detectors: a face barely the
    size the pyramid starts at is often missed, so on the composed photos of
    ``benchmarks/detector_study.py`` starting at 40 px found 81 % of the faces of 40-60
    px, starting at 30 px 97 %); ``max_side`` (the image is only ever shrunk to it; the
    pyramid, not a working scale, sets the least face) and ``calibration`` as in
    :class:`~face_landmarks.detectors.base.CalibratedDetector`.
    Runs on the CPU with the threads torch has.
    """

    name = "mtcnn"
    native_min = float(PNET_WINDOW)

    def __init__(self, threshold: float = 0.7, pnet_threshold: float = 0.6,
                 rnet_threshold: float = 0.7, factor: float = 0.709, min_size: float = 30,
                 max_side: int = 4096, calibration: str | Path | None = SHIPPED) -> None:
        thresholds = (pnet_threshold, rnet_threshold, threshold)
        for key, t in zip(("pnet_threshold", "rnet_threshold", "threshold"), thresholds):
            if not 0.0 < t < 1.0:
                raise ConfigError(f"mtcnn: {key} must be in (0, 1), got {t}")
        if not 0.1 <= factor < 1.0:
            raise ConfigError(f"mtcnn: factor must be in [0.1, 1), got {factor}")
        super().__init__(min_size, max_side, calibration)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        self.pnet, self.rnet, self.onet = (net(keras_weights(n)).eval() for net, n in
                                           ((PNet, "pnet"), (RNet, "rnet"), (ONet, "onet")))

    def working_scale(self, height: int, width: int) -> float:
        """Only ever shrink (to ``max_side``): the pyramid finds small faces."""
        return min(1.0, self.max_side / max(height, width))

    def scales(self, height: int, width: int, min_raw: float) -> list[float]:
        """The pyramid: from the scale where a face of ``min_raw`` px fills P-Net's window,
        times ``factor`` per level, while the image still holds one window."""
        s = PNET_WINDOW / min_raw
        out = []
        while min(height, width) * s >= PNET_WINDOW:
            out.append(s)
            s *= self.factor
        return out

    def levels(self, image: np.ndarray, min_raw: float) -> list[tuple[np.ndarray, float, float]]:
        """The pyramid P-Net runs on: ``(level image, x scale, y scale)`` per scale of
        :meth:`scales`. Each level is shrunk from the one before (area averaging over a
        less than 2x step) rather than from the full image: the same pixels for a fraction
        of the time; the first from the image by a whole factor first (OpenCV's fast path)."""
        h, w = image.shape[:2]
        out: list[tuple[np.ndarray, float, float]] = []
        prev, cover_w, cover_h = image, float(w), float(h)  # the image px prev spans
        for s in self.scales(h, w, min_raw):
            size = (max(1, round(w * s)), max(1, round(h * s)))
            n = int(prev.shape[1] / size[0])
            if n >= 2:
                # the last n - 1 columns and rows at most are left out of the whole blocks
                ph, pw = prev.shape[0] // n * n, prev.shape[1] // n * n
                cover_w, cover_h = cover_w * pw / prev.shape[1], cover_h * ph / prev.shape[0]
                prev = cv2.resize(prev[:ph, :pw], (pw // n, ph // n), interpolation=cv2.INTER_AREA)
            level = prev if (prev.shape[1], prev.shape[0]) == size else cv2.resize(
                prev, size, interpolation=cv2.INTER_AREA if size[0] < prev.shape[1] else cv2.INTER_LINEAR)
            out.append((level, size[0] / cover_w, size[1] / cover_h))
            prev = level
        return out

    def proposals(self, image: np.ndarray, min_raw: float) -> torch.Tensor:
        """Stage 1: ``(N, 4)`` squares (edges, px) for R-Net."""
        found = []
        for level, sx, sy in self.levels(image, min_raw):
            # channels last: PyTorch's CPU max-pooling is several times faster so
            x = torch.from_numpy(level).permute(2, 0, 1)[None].float().sub_(127.5).div_(128)
            prob, reg = self.pnet(x.contiguous(memory_format=torch.channels_last))
            iy, ix = torch.nonzero(prob[0] >= self.thresholds[0], as_tuple=True)
            if len(iy) == 0:
                continue
            # window (ix, iy) covers level pixels 2 ix .. 2 ix + 11, edges 2 ix - 0.5 ..
            # 2 ix + 11.5 (pixel centres at integers); an edge x_l is (x_l + 0.5) / s - 0.5
            x0 = PNET_STRIDE * ix.float() / sx - 0.5
            y0 = PNET_STRIDE * iy.float() / sy - 0.5
            boxes = torch.stack([x0, y0, x0 + PNET_WINDOW / sx, y0 + PNET_WINDOW / sy], 1)
            boxes = regress(boxes, reg[0, :, iy, ix].T)
            score = prob[0, iy, ix]
            keep = fast_nms(boxes, score, 0.5)
            found.append(torch.cat([boxes[keep], score[keep, None]], 1))
        if not found:
            return torch.zeros(0, 4)
        b = torch.cat(found)
        return square(b[nms(b[:, :4], b[:, 4], 0.7), :4])

    def refine(self, net: nn.Module, pyramid: list[torch.Tensor], boxes: torch.Tensor,
               side: int, threshold: float, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Stages 2 and 3: ``net`` scores the ``side`` px crops of the squares ``boxes:
        (N, 4)``; those at ``threshold`` or more are regressed and suppressed -> ``(M, 4)``
        boxes and ``(M,)`` scores."""
        if len(boxes) == 0:
            return boxes, boxes[:, 0]
        x = crops(pyramid, boxes, side).sub_(127.5).div_(128)
        prob, reg = net(x.contiguous(memory_format=torch.channels_last))
        keep = prob >= threshold
        b, score = regress(boxes[keep], reg[keep]), prob[keep]
        k = nms(b, score, 0.7, mode)
        return b[k], score[k]

    @torch.no_grad()
    def _detect(self, image: np.ndarray, min_raw: float) -> tuple[np.ndarray, np.ndarray]:
        boxes = self.proposals(image, min_raw)
        if len(boxes) == 0:  # no proposal (most images without a face): no crop pyramid
            return np.zeros((0, 4)), np.zeros(0)
        # for the crops: each level half the last (rounded up, so that every level spans
        # the whole image, as crops' coordinates assume), down to 4 O-Net crops
        halves = [image]
        while min(halves[-1].shape[:2]) >= 4 * 48:
            h, w = halves[-1].shape[:2]
            halves.append(cv2.resize(halves[-1], (-(-w // 2), -(-h // 2)),
                                     interpolation=cv2.INTER_AREA))
        pyramid = [torch.from_numpy(lv).permute(2, 0, 1)[None].float() for lv in halves]
        boxes, _ = self.refine(self.rnet, pyramid, boxes, 24, self.thresholds[1], "union")
        boxes, scores = self.refine(self.onet, pyramid, square(boxes), 48, self.thresholds[2], "min")
        return boxes.double().numpy(), scores.double().numpy()
