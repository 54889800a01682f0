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
   down by ``factor`` per level (the small levels packed onto one canvas, one
   pass for all of them); windows scoring ``thresholds[0]`` or more that
   peak among their neighbours become boxes, moved by its box regression,
   merged by non-maximum suppression within each level and across levels;
2. **R-Net** scores each box's square crop at 24 x 24 px and regresses it again;
3. **O-Net** does the same at 48 x 48 px; its score is the detection's.

Every level and crop is read from a halving pyramid (OpenCV's area halving),
each from the finest level at most twice its size, so that nothing aliases:
P-Net's levels by a bilinear resize, the crops of all boxes at once by one
bilinear ``remap`` in 8 bits. The networks run channels-last, P-Net and R-Net in
bfloat16 where the CPU has bfloat16 dot products (``precision="auto"``); the
suppressions are OpenCV's greedy NMS, except O-Net's overlap over the smaller
box. Measured steps and figures: ``docs/results/detector.md``.
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
from face_landmarks.detectors.calibration import suppress
from selfiter.errors import ConfigError

#: the window P-Net scores, px of the level it runs on
PNET_WINDOW = 12
#: P-Net's output stride, px of its level
PNET_STRIDE = 2
#: the ``precision`` values of :class:`MtcnnDetector`
PRECISIONS = ("auto", "float32", "bfloat16")


def native_bfloat16() -> bool:
    """Whether this CPU has bfloat16 dot products (AVX512-BF16 or AMX), where P-Net and
    R-Net were measured faster in bfloat16 (``docs/results/detector.md``); elsewhere
    PyTorch emulates bfloat16, and float32 is kept."""
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(probe is not None and probe())



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


class RowPReLU(nn.PReLU):
    """PReLU whose channels-last ``(B, C, H, W)`` inputs are read as ``(B * H, W * C)`` rows
    with the weights tiled ``W`` times: the same values, but PyTorch's PReLU over a
    channels-last tensor walks it channel by channel, six times slower on P-Net's first
    level than over contiguous rows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or not x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x)
        b, c, h, w = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(b * h, w * c)  # a view: (B * H, W * C)
        return F.prelu(rows, self.weight.repeat(w)).view(b, h, w, c).permute(0, 3, 1, 2)


def _prelu(alpha: np.ndarray) -> RowPReLU:
    p = RowPReLU(alpha.size)
    p.weight.data.copy_(torch.from_numpy(alpha.reshape(-1)))
    return p


def max_pool(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """``MaxPool2d(kernel, stride, ceil_mode=True)`` of a channels-last ``(B, C, H, W)``, one
    axis at a time, as maxima of ``kernel`` strided views (several times faster than
    PyTorch's channels-last max-pooling, twenty times its channels-first one)
    -> ``(B, C, h, w)``, channels-last. Ceil mode as PyTorch's: a last, partial window
    when one starts inside the axis."""
    v = x.permute(0, 2, 3, 1)  # (B, H, W, C), contiguous
    for axis in (1, 2):
        n = v.shape[axis]
        full = max(0, (n - kernel) // stride + 1)  # windows inside the axis
        size = max(1, -(-(n - kernel) // stride) + 1)
        if (size - 1) * stride >= n:
            size -= 1
        shape = list(v.shape)
        shape[axis] = size
        out = v.new_empty(shape)
        if full:
            span = stride * (full - 1) + 1
            head = out.narrow(axis, 0, full)
            taps = [v.narrow(axis, j, span).unfold(axis, 1, stride).squeeze(-1)
                    for j in range(kernel)]
            torch.maximum(taps[0], taps[1], out=head)
            for tap in taps[2:]:
                torch.maximum(head, tap, out=head)
        if size > full:  # the partial last window
            tail = v.narrow(axis, full * stride, n - full * stride).amax(axis, keepdim=True)
            out.narrow(axis, full, 1).copy_(tail)
        v = out
    return v.permute(0, 3, 1, 2)


def _dense(kernel: np.ndarray, bias: np.ndarray) -> nn.Linear:
    lin = nn.Linear(*kernel.shape)
    lin.weight.data.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
    lin.bias.data.copy_(torch.from_numpy(bias))
    return lin


class MaxPool(nn.Module):
    """:func:`max_pool` as a layer."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool(x, self.kernel, self.stride)


def _trunk(w: list[np.ndarray], pools: Sequence[tuple[int, int] | None]) -> nn.Sequential:
    """Conv + PReLU (+ max-pool ``(kernel, stride)``) blocks from ``w`` (kernel, bias, alpha
    per block). Keras' 'same' pooling pads at the end, as ``ceil_mode`` does."""
    layers: list[nn.Module] = []
    for i, pool in enumerate(pools):
        layers += [_conv(w[3 * i], w[3 * i + 1]), _prelu(w[3 * i + 2])]
        if pool is not None:
            layers.append(MaxPool(*pool))
    return nn.Sequential(*layers)


class PNet(nn.Module):
    """``(B, 3, H, W) -> (logit: (B, h, w), features: (B, 32, h, w))``, one window per 2 px.

    The face probability is ``sigmoid(logit)`` (the two-class softmax, one difference of
    the classifier's rows), and the box regression (:meth:`regression`) is read only at
    the windows kept: on a 1080p image's pyramid both heads over every window cost a
    third of the trunk."""

    def __init__(self, w: list[np.ndarray]) -> None:
        super().__init__()
        self.trunk = _trunk(w, [(2, 2), None, None])
        self.reg = _dense(w[9][0, 0], w[10])  # a 1 x 1 convolution: (32,) -> (4,)
        cls = _dense(w[11][0, 0], w[12])
        self.logit = nn.Conv2d(cls.in_features, 1, 1)
        self.logit.weight.data.copy_((cls.weight[1] - cls.weight[0]).detach().view(1, -1, 1, 1))
        self.logit.bias.data.copy_((cls.bias[1:] - cls.bias[:1]).detach())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.trunk(x)
        return self.logit(y)[:, 0], y

    def regression(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, 32)`` features of kept windows -> ``(N, 4)`` edge offsets in box sides."""
        return self.reg(features)


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


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou: float, mode: str = "union",
        groups: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`~face_landmarks.detectors.calibration.suppress` (greedy, overlap over the
    union or, ``mode="min"``, over the smaller box) on tensors: kept indices, a long tensor.
    ``groups: (N,)`` integers: boxes suppress only boxes of their own group (P-Net's
    pyramid levels). Over the union, boxes of positive size go through OpenCV's
    ``NMSBoxes`` or ``NMSBoxesBatched`` (the same greedy rule in C++, five times faster on
    P-Net's thousands of proposals), given each box's rank as its score: OpenCV reads
    scores as float32, and ranks keep float64's order and ties exactly."""
    b = boxes.detach().cpu().double().numpy().reshape(-1, 4)
    s = scores.detach().cpu().double().numpy()
    g = None if groups is None else groups.detach().cpu().numpy().astype(np.int32)
    size = b[:, 2:] - b[:, :2]
    if not len(b):
        keep = np.zeros(0, dtype=int)
    elif mode != "union" or (size <= 0).any():
        if g is None:
            keep = suppress(b, s, iou, over=mode)
        else:
            keep = np.concatenate([np.flatnonzero(g == k)[suppress(b[g == k], s[g == k], iou,
                                                                   over=mode)]
                                   for k in np.unique(g)])
    else:
        order = np.argsort(-s, kind="stable")
        rank = np.empty(len(s), np.float32)
        rank[order] = np.arange(len(s), 0, -1)
        rects = np.concatenate([b[:, :2], size], 1)
        keep = np.asarray(cv2.dnn.NMSBoxes(rects, rank, 0.0, iou) if g is None else
                          cv2.dnn.NMSBoxesBatched(rects, rank, g, 0.0, iou),
                          dtype=int).reshape(-1)
    return torch.as_tensor(keep, dtype=torch.long, device=boxes.device)


def peaks(score: torch.Tensor, least: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and columns of the cells of ``score: (h, w)`` that are ``least`` or more and
    no less than any of their 8 neighbours. On P-Net's map a neighbour is a window 2 px
    away, overlapping with IoU > 0.5, that the level's suppression would drop anyway:
    keeping only peaks cuts thousands of windows per level to hundreds. The 3 x 3 maximum
    is taken one axis at a time from shifted views: on a map of a few hundred cells a
    side, much faster than PyTorch's max-pool or than reading the neighbours of the
    thousands of cells above ``least``."""
    padded = F.pad(score[None], (1, 1, 1, 1), value=float("-inf"))[0]  # (h + 2, w + 2)
    across = torch.maximum(torch.maximum(padded[:, :-2], padded[:, 1:-1]), padded[:, 2:])
    around = torch.maximum(torch.maximum(across[:-2], across[1:-1]), across[2:])  # (h, w)
    return torch.nonzero((score >= least) & (score >= around), as_tuple=True)


def square(boxes: torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` edges -> the squares of the same centres, side the longer side."""
    c = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]).max(1, keepdim=True).values / 2
    return torch.cat([c - half, c + half], 1)


def regress(boxes: torch.Tensor, reg: torch.Tensor, angles: torch.Tensor | None = None
            ) -> torch.Tensor:
    """Boxes ``(N, 4)`` moved by MTCNN's regression ``(N, 4)``: edge offsets in box sides.
    ``angles: (N,)`` radians: the crop the offsets were read from was turned by that
    much about the box's centre (:func:`crops`), so they move the edges along its turned
    axes; the moved box's centre is turned back into the image and its sides kept, an
    axis-aligned box (its angle stays with it for the next stage)."""
    side = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    moved = boxes + reg * side
    if angles is None:
        return moved
    c = (boxes[:, :2] + boxes[:, 2:]) / 2  # (N, 2)
    local = (moved[:, :2] + moved[:, 2:]) / 2 - c  # the moved centre in the crop's axes
    cos, sin = torch.cos(angles)[:, None], torch.sin(angles)[:, None]
    centre = c + torch.cat([cos * local[:, :1] - sin * local[:, 1:],
                            sin * local[:, :1] + cos * local[:, 1:]], 1)
    half = (moved[:, 2:] - moved[:, :2]) / 2
    return torch.cat([centre - half, centre + half], 1)


def crops(pyramid: list[np.ndarray], boxes: torch.Tensor, side: int,
          angles: torch.Tensor | None = None) -> torch.Tensor:
    """``side x side`` bilinear crops of the square ``boxes: (N, 4)`` (edges, px of level 0)
    from ``pyramid`` (level ``l``: an ``(h_l, w_l, 3)`` RGB image, about ``2^-l`` of level
    0, e.g. :func:`halving_pyramid`), each read from the finest level where the box spans
    at most ``2 * side`` px, so that no crop aliases; outside the image reads black, as
    the reference code pads. ``angles: (N,)`` radians: each crop's axes turned by that
    much about its box's centre (clockwise on the screen, y pointing down), as if the
    image were turned the other way first. -> ``(N, 3, side, side)``, raw values,
    channels-last."""
    height, width = pyramid[0].shape[:2]
    out = torch.zeros(len(boxes), side, side, 3)
    span = (boxes[:, 2] - boxes[:, 0]).clamp_min(1.0)
    level = torch.ceil(torch.log2(span / (2 * side))).clamp(0, len(pyramid) - 1).long()
    # the crop's pixel centres across the box, in level-0 px with centres at integers,
    # + 0.5: the level-0 "edge" coordinates that scale with a level's size
    t = (torch.arange(side, dtype=torch.float32) + 0.5) / side - 0.5  # (s,) in box sides
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + 0.5  # (N, 2)
    size = boxes[:, 2:] - boxes[:, :2]  # (N, 2)
    dx, dy = t * size[:, :1], t * size[:, 1:]  # (N, s): along x, along y
    a = torch.zeros(len(boxes)) if angles is None else angles
    cos, sin = torch.cos(a)[:, None, None], torch.sin(a)[:, None, None]
    x = centre[:, :1, None] + cos * dx[:, None, :] - sin * dy[:, :, None]  # (N, s rows, s cols)
    y = centre[:, 1:, None] + sin * dx[:, None, :] + cos * dy[:, :, None]
    for lv in torch.unique(level).tolist():
        sel = level == lv
        image = pyramid[lv]
        # a level spans the whole image, so a level-0 edge x is x * w_l / w in level l
        u = (x[sel] * (image.shape[1] / width) - 0.5).reshape(-1, side).numpy()
        v = (y[sel] * (image.shape[0] / height) - 0.5).reshape(-1, side).numpy()
        # OpenCV's remap reads the image in its own dtype, the crops stacked in a map of
        # fewer than 2^15 rows: grid_sample needs a float copy of the level, which for
        # level 0 of a 1080p image cost more than all the crops
        rows = (2 ** 15 - 1) // side * side
        read = np.concatenate([cv2.remap(image, u[i:i + rows], v[i:i + rows], cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                               for i in range(0, len(u), rows)])
        out[sel] = torch.from_numpy(read).view(-1, side, side, 3).float()
    return out.permute(0, 3, 1, 2)


def halving_pyramid(image: np.ndarray, least: int) -> list[np.ndarray]:
    """``image`` and its halves by area averaging, each from the last (sides rounded up, so
    that every level spans the whole image, as :func:`crops` and the P-Net levels
    assume), while the shorter side stays ``least`` px or more."""
    halves = [image]
    while min(halves[-1].shape[:2]) >= 2 * least:
        h, w = halves[-1].shape[:2]
        halves.append(cv2.resize(halves[-1], (-(-w // 2), -(-h // 2)),
                                 interpolation=cv2.INTER_AREA))
    return halves


#: pyramid levels of at most this many px share one P-Net pass (:func:`pack_levels`)
PACK_AREA = 60_000


def pack_levels(levels: Sequence[tuple[np.ndarray, float, float]], area: int = PACK_AREA
                ) -> list[tuple[np.ndarray, torch.Tensor]]:
    """P-Net's passes over ``levels`` (``(image (h, w, 3), x scale, y scale)``, largest
    first, even sides): each level larger than ``area`` px alone, the smaller ones on one
    canvas, in shelves as wide as the widest of them, each placed on the first shelf with
    room. -> ``(canvas (H, W, 3), places (L, 6))`` per pass, a place being the level's top,
    left, height and width in canvas px (even) and its two scales. On a 1080p image's
    pyramid the eight levels from the third on are that small; alone, each pass's fixed
    cost was most of their time (``docs/results/detector.md`` measures both ways)."""

    def place(rows: list[list[float]]) -> torch.Tensor:
        return torch.tensor(rows, dtype=torch.float32).reshape(-1, 6)

    out = [(img, place([[0, 0, *img.shape[:2], sx, sy]])) for img, sx, sy in levels
           if img.shape[0] * img.shape[1] > area]
    small = [lv for lv in levels if lv[0].shape[0] * lv[0].shape[1] <= area]
    if not small:
        return out
    width = max(img.shape[1] for img, _, _ in small)
    shelves: list[list[int]] = []  # top, height, width used
    rows = []
    for img, sx, sy in small:
        h, w = img.shape[:2]
        shelf = next((sh for sh in shelves if sh[2] + w <= width and h <= sh[1]), None)
        if shelf is None:
            shelf = [shelves[-1][0] + shelves[-1][1] if shelves else 0, h, 0]
            shelves.append(shelf)
        rows.append([shelf[0], shelf[2], h, w, sx, sy])
        shelf[2] += w
    canvas = np.zeros((shelves[-1][0] + shelves[-1][1], width, 3), np.uint8)
    for (img, _, _), (top, left, h, w, _, _) in zip(small, rows):
        canvas[top:top + h, left:left + w] = img
    return out + [(canvas, place(rows))]


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
    :class:`~face_landmarks.detectors.base.CalibratedDetector`; ``precision``: P-Net's
    and R-Net's weights and activations, ``"float32"``, ``"bfloat16"`` or ``"auto"``
    (bfloat16 where :func:`native_bfloat16`; O-Net, whose box is the detection's, stays
    float32); ``pack_area``: pyramid levels of at most this many px share one P-Net pass
    (:func:`pack_levels`; 0: each level alone); ``roll`` (degrees, 0: off) and
    ``roll_floor``: a proposal R-Net scores from ``roll_floor`` up to its threshold is
    scored again turned by ``+-roll`` (R-Net and O-Net were trained on upright faces and
    turn away faces rolled by 20 degrees and more, which P-Net still proposes), and
    keeps its best turn through O-Net. Runs on the CPU with the threads torch has.
    """

    name = "mtcnn"
    native_min = float(PNET_WINDOW)

    def __init__(self, threshold: float = 0.7, pnet_threshold: float = 0.6,
                 rnet_threshold: float = 0.7, factor: float = 0.709, min_size: float = 30,
                 max_side: int = 4096, precision: str = "auto", pack_area: int = PACK_AREA,
                 roll: float = 25.0, roll_floor: float = 0.2,
                 calibration: str | Path | None = SHIPPED) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"mtcnn: precision must be one of {', '.join(PRECISIONS)}, "
                              f"got {precision!r}")
        thresholds = (pnet_threshold, rnet_threshold, threshold)
        for key, t in zip(("pnet_threshold", "rnet_threshold", "threshold"), thresholds):
            if not 0.0 < t < 1.0:
                raise ConfigError(f"mtcnn: {key} must be in (0, 1), got {t}")
        if not 0.1 <= factor < 1.0:
            raise ConfigError(f"mtcnn: factor must be in [0.1, 1), got {factor}")
        if not isinstance(pack_area, int) or pack_area < 0:
            raise ConfigError(f"mtcnn: pack_area must be an integer >= 0 (px), got {pack_area!r}")
        self.pack_area = pack_area
        if not 0.0 <= roll <= 90.0:
            raise ConfigError(f"mtcnn: roll must be in [0, 90] degrees, got {roll}")
        if not 0.0 <= roll_floor <= 1.0:
            raise ConfigError(f"mtcnn: roll_floor must be in [0, 1], got {roll_floor}")
        self.roll, self.roll_floor = float(roll), float(roll_floor)
        super().__init__(min_size, max_side, calibration)
        self.thresholds = tuple(float(t) for t in thresholds)
        self._pnet_logit = float(np.log(pnet_threshold / (1 - pnet_threshold)))
        self.factor = float(factor)
        if precision == "auto":
            precision = "bfloat16" if native_bfloat16() else "float32"
        self.precision = precision
        self.pnet, self.rnet, self.onet = (net(keras_weights(n)).eval() for net, n in
                                           ((PNet, "pnet"), (RNet, "rnet"), (ONet, "onet")))
        if precision == "bfloat16":
            # weights converted once (autocast would recast them at every call); O-Net,
            # whose regression is the detection's box, stays float32
            self.pnet.to(torch.bfloat16)
            self.rnet.to(torch.bfloat16)

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

    def levels(self, halves: list[np.ndarray], min_raw: float
               ) -> list[tuple[np.ndarray, float, float]]:
        """The pyramid P-Net runs on: ``(level image, x scale, y scale)`` per scale of
        :meth:`scales`, each resized bilinearly from the finest of ``halves`` (the image
        halved by area averaging, :func:`halving_pyramid`) that is at most twice its size:
        a bilinear step of less than 2x reads every source pixel, so no level aliases,
        and OpenCV's exact halving and bilinear paths are several times faster than area
        averaging by other factors (13 ms for a 1080p image's pyramid before). Sides are
        rounded to even numbers: P-Net's 2 x 2 pooling then has no partial window at a
        level's edge, so a level computes the same windows alone or packed with others
        (:func:`pack_levels`); the scales are the sides' own."""
        h, w = halves[0].shape[:2]
        out: list[tuple[np.ndarray, float, float]] = []
        for s in self.scales(h, w, min_raw):
            size = (2 * max(1, round(w * s / 2)), 2 * max(1, round(h * s / 2)))
            source = next(lv for lv in reversed(halves) if lv.shape[1] >= size[0]
                          and lv.shape[0] >= size[1])
            level = source if (source.shape[1], source.shape[0]) == size else cv2.resize(
                source, size, interpolation=cv2.INTER_LINEAR)
            out.append((level, size[0] / w, size[1] / h))  # every level spans the image
        return out

    def proposals(self, halves: list[np.ndarray], min_raw: float) -> torch.Tensor:
        """Stage 1: ``(N, 4)`` squares (edges, px of ``halves[0]``) for R-Net."""
        # no level at all when the least face is larger than the image
        b = torch.cat([torch.zeros(0, 5)] + [self.canvas_proposals(*c) for c in
                                             pack_levels(self.levels(halves, min_raw),
                                                         self.pack_area)])
        if not len(b):
            return torch.zeros(0, 4)
        return square(b[nms(b[:, :4], b[:, 4], 0.7), :4])

    def canvas_proposals(self, canvas: np.ndarray, places: torch.Tensor) -> torch.Tensor:
        """One P-Net pass over ``canvas: (H, W, 3)``, which holds pyramid levels at
        ``places: (L, 6)`` (top, left, height, width in canvas px, all even, and the
        level's x and y scale over level 0's): the windows P-Net keeps, suppressed within
        each level -> ``(K, 5)``, edges in px of level 0 and scores."""
        # channels last, the canvas' own layout; the batch axis added to the float copy,
        # not to the uint8 view (whose size-1 axis gets stride 0, which sends oneDNN's
        # convolution down a path five times slower); (v - 127.5) / 128 of 8-bit values
        # is exact in bfloat16 too
        dtype = self.pnet.logit.weight.dtype
        x = torch.from_numpy(canvas).to(dtype).sub_(127.5).div_(128)[None].permute(0, 3, 1, 2)
        logit, features = self.pnet(x)
        logit = logit[0].float()  # (H / 2 - 5, W / 2 - 5)
        # window (ix, iy) covers canvas pixels 2 ix .. 2 ix + 11: a level's own windows
        # are those wholly inside it; the others read neighbours or the empty canvas, and
        # as -inf they are also the borders that peaks() gives a level alone
        owner = torch.full(logit.shape, -1, dtype=torch.long)
        cells = places[:, :4].long() // PNET_STRIDE
        for k, (top, left, h, w) in enumerate(cells.tolist()):
            owner[top:top + h - 5, left:left + w - 5] = k
        logit[owner < 0] = float("-inf")
        iy, ix = peaks(logit, self._pnet_logit)
        if len(iy) == 0:
            return torch.zeros(0, 5)
        k = owner[iy, ix]
        top, left, _, _, sx, sy = places[k].T
        # the window's edges in its level, 2 j - 0.5 .. 2 j + 11.5 (pixel centres at
        # integers); an edge x_l is (x_l + 0.5) / s - 0.5 in level 0
        x0 = (PNET_STRIDE * ix - left) / sx - 0.5
        y0 = (PNET_STRIDE * iy - top) / sy - 0.5
        boxes = torch.stack([x0, y0, x0 + PNET_WINDOW / sx, y0 + PNET_WINDOW / sy], 1)
        boxes = regress(boxes, self.pnet.regression(features[0, :, iy, ix].T).float())
        score = torch.sigmoid(logit[iy, ix])
        keep = nms(boxes, score, 0.5, groups=k)
        return torch.cat([boxes[keep], score[keep, None]], 1)

    def refine(self, net: nn.Module, pyramid: list[np.ndarray], boxes: torch.Tensor,
               angles: torch.Tensor, side: int, threshold: float, mode: str,
               turns: Sequence[float] = ()) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stages 2 and 3: ``net`` scores the ``side`` px crops of the squares ``boxes:
        (N, 4)``, each turned by its ``angles: (N,)`` radians; those at ``threshold`` or
        more are regressed and suppressed -> ``(M, 4)`` boxes, ``(M,)`` scores and
        ``(M,)`` angles. ``turns``: angles (radians) also tried, added to a box's own, for
        the boxes scoring from ``roll_floor`` up to ``threshold``; a box keeps its best."""
        if len(boxes) == 0:
            return boxes, boxes[:, 0], angles
        dtype = next(net.parameters()).dtype

        def rate(b: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = crops(pyramid, b, side, a).sub_(127.5).div_(128)
            x = x.to(dtype).contiguous(memory_format=torch.channels_last)
            prob, reg = net(x)
            return prob.float(), reg.float()

        prob, reg = rate(boxes, angles)
        retry = torch.nonzero((prob < threshold) & (prob >= self.roll_floor))[:, 0] \
            if len(turns) else boxes.new_zeros(0, dtype=torch.long)  # (R,)
        if len(retry):
            tried = torch.cat([angles[retry] + t for t in turns])  # (T * R,)
            p2, r2 = rate(boxes[retry].repeat(len(turns), 1), tried)
            best = p2.view(len(turns), -1).argmax(0)  # (R,): each retried box's best turn
            pick = best * len(retry) + torch.arange(len(retry))
            p_best, r_best, a_best = p2[pick], r2[pick], tried[pick]
            better = p_best > prob[retry]
            rows = retry[better]
            angles = angles.clone()
            prob[rows], reg[rows], angles[rows] = p_best[better], r_best[better], a_best[better]
        keep = prob >= threshold
        b, score, a = regress(boxes[keep], reg[keep], angles[keep]), prob[keep], angles[keep]
        k = nms(b, score, 0.7, mode)
        return b[k], score[k], a[k]

    @torch.no_grad()
    def _detect(self, image: np.ndarray, min_raw: float) -> tuple[np.ndarray, np.ndarray]:
        halves = halving_pyramid(image, PNET_WINDOW)
        boxes = self.proposals(halves, min_raw)
        if len(boxes) == 0:
            return np.zeros((0, 4)), np.zeros(0)
        turn = float(np.radians(self.roll))
        boxes, _, angles = self.refine(self.rnet, halves, boxes, torch.zeros(len(boxes)), 24,
                                       self.thresholds[1], "union",
                                       (turn, -turn) if self.roll > 0 else ())
        boxes, scores, _ = self.refine(self.onet, halves, square(boxes), angles, 48,
                                       self.thresholds[2], "min")
        return boxes.double().numpy(), scores.double().numpy()
