"""The Landmarks-Attention Network (LAN): one small CNN per landmark, then a shared head."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from face_landmarks.networks.lan_bmm import trunk_bmm
from selfiter.interfaces import Regressor

#: conv widths of the per-landmark sub-network of Table 1
LAN_WIDTHS = (16, 32, 64)


def trunk_side(patch_size: int) -> int:
    """Side of the last feature map for ``patch_size`` inputs: three ceil-mode 2x2 pools
    after size-preserving convolutions (57 -> 29 -> 15 -> 8)."""
    side = patch_size
    for _ in range(3):
        side = math.ceil(side / 2)
    return side


def conv_trunk(in_ch: int, widths: tuple[int, int, int], groups: int) -> nn.Sequential:
    """Table 1's three conv + ReLU + pool stages, ``groups`` independent copies side by side.

    ``widths`` are the totals over all groups. conv1 is 3x3 with padding 1;
    conv2 and conv3 are 2x2 'same' (one extra row and column at the bottom
    and right, like TensorFlow), so only the pools shrink the map.
    """
    w1, w2, w3 = widths

    def pool() -> nn.MaxPool2d:
        return nn.MaxPool2d(2, ceil_mode=True)

    def relu() -> nn.ReLU:
        # in place: the first maps are 68 x 16 x 57 x 57 per face, and writing a second
        # copy costs memory bandwidth (on 2 CPU cores training ran 12% and batch-32
        # inference 19% faster); convolution backward needs no output, so it is safe
        return nn.ReLU(inplace=True)

    def same() -> nn.ZeroPad2d:  # explicit: Conv2d's padding="same" warns for even kernels
        return nn.ZeroPad2d((0, 1, 0, 1))

    return nn.Sequential(
        nn.Conv2d(in_ch, w1, 3, padding=1, groups=groups), relu(), pool(),
        same(), nn.Conv2d(w1, w2, 2, groups=groups), relu(), pool(),
        same(), nn.Conv2d(w2, w3, 2, groups=groups), relu(), pool(),
    )


def regression_head(in_features: int, hidden: int, theta_dim: int) -> nn.Sequential:
    """``in_features -> hidden -> ReLU -> theta_dim``, the last layer initialised small."""
    head = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, theta_dim))
    nn.init.kaiming_normal_(head[0].weight, nonlinearity="relu")
    nn.init.zeros_(head[0].bias)
    # 1/100 of the He scale: an untrained regressor proposes increments far below
    # output_scale, so early solver steps and the first training losses stay tame.
    nn.init.normal_(head[2].weight, std=0.01 / math.sqrt(hidden))
    nn.init.zeros_(head[2].bias)
    return head


def init_trunk(trunk: nn.Sequential) -> None:
    """He initialisation of the convolutions (their fan-in is per group), zero biases."""
    for m in trunk:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


def check_feature_shape(feature_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(L, C, P, P) -> (L, C, P)``, or a ValueError naming the shape."""
    if len(feature_shape) != 4 or feature_shape[2] != feature_shape[3]:
        raise ValueError(f"feature_shape must be (L, C, P, P) patches, got {tuple(feature_shape)}")
    n_pts, ch, p, _ = feature_shape
    return n_pts, ch, p


class LandmarksAttentionNetwork(Regressor):
    """``patches: (B, L, C, P, P) -> delta_theta: (B, theta_dim)`` (paper Fig. 2b, Table 1).

    Every landmark has its own sub-network (conv 3x3x16, pool, conv 2x2x32,
    pool, conv 2x2x64, pool, fc to ``feature_dim``, ReLU) with its own weights;
    they run together as grouped convolutions (``groups = L``) and one batched
    matrix product. The L feature vectors are concatenated and mapped by
    ``fc(L * feature_dim -> hidden)``, ReLU, ``fc(hidden -> theta_dim)`` to the
    increment, multiplied by ``output_scale`` (px per unit of output).

    For 68 landmarks of 3 x 57 x 57 the parameters number
    ``68 * 51,754 + 209,288 = 3,728,560`` (the paper's 3.72M).

    ``impl`` picks how the sub-networks run, with the same parameters (so a
    checkpoint loads into either): ``"grouped"``, the reference, as grouped
    convolutions; ``"bmm"``, as batched matrix products over landmarks
    (:mod:`face_landmarks.networks.lan_bmm`), meant for GPUs, where grouped
    convolutions with many small groups are slow. On the CPU the reference is
    the faster (``docs/benchmarks.md``).
    """

    #: faces per trunk pass in CPU inference; see :meth:`landmark_features`
    CPU_CHUNK = 1

    def __init__(self, feature_shape: tuple[int, ...], theta_dim: int, hidden: int = 256,
                 feature_dim: int = 10, output_scale: float = 1.0,
                 impl: Literal["grouped", "bmm"] = "grouped") -> None:
        super().__init__()
        if impl not in ("grouped", "bmm"):
            raise ValueError(f"impl must be 'grouped' or 'bmm', got {impl!r}")
        self.impl = impl
        self.feature_shape = tuple(feature_shape)
        self.theta_dim = theta_dim
        self.output_scale = output_scale
        n_pts, ch, p = check_feature_shape(self.feature_shape)
        self.trunk = conv_trunk(ch * n_pts, tuple(w * n_pts for w in LAN_WIDTHS), groups=n_pts)
        init_trunk(self.trunk)
        flat = LAN_WIDTHS[-1] * trunk_side(p) ** 2
        # fc1 of every landmark: (L, 4096, feature_dim), applied in one einsum
        self.fc1_weight = nn.Parameter(torch.randn(n_pts, flat, feature_dim) * math.sqrt(2.0 / flat))
        self.fc1_bias = nn.Parameter(torch.zeros(n_pts, feature_dim))
        self.head = regression_head(n_pts * feature_dim, hidden, theta_dim)

    def landmark_features(self, features: torch.Tensor) -> torch.Tensor:
        """Each landmark's own feature vector: ``(B, L, C, P, P) -> (B, L, feature_dim)``.

        Landmark ``l``'s vector depends on patch ``l`` only."""
        if self.impl == "bmm":
            x = trunk_bmm(self.trunk, features)
        elif (features.device.type == "cpu" and not torch.is_grad_enabled()
              and not torch.compiler.is_compiling() and not torch.jit.is_tracing()
              and features.shape[0] > self.CPU_CHUNK):
            # One face's first activations (68 x 16 x 57 x 57 floats, 14 MB) fit in
            # the CPU's cache, a batch's do not, and ReLU and pooling then run at
            # memory speed: on 2 cores a batch of 32 takes 3x longer per face in one
            # pass than face by face (docs/benchmarks.md). Training keeps all
            # activations for the backward pass, so there this buys nothing.
            x = torch.cat([self._trunk_grouped(f) for f in features.split(self.CPU_CHUNK)])
        else:
            x = self._trunk_grouped(features)
        return F.relu(torch.einsum("blk,lkf->blf", x, self.fc1_weight) + self.fc1_bias)

    def _trunk_grouped(self, features: torch.Tensor) -> torch.Tensor:
        """The reference trunk: ``(B, L, C, P, P) -> (B, L, 64*s*s)``, each landmark's
        maps flattened in (C, H, W) order."""
        b, n_pts = features.shape[:2]
        # (B, L, C, P, P) -> (B, L*C, P, P): group l holds landmark l's C channels.
        # Channels-last makes these many-group convolutions, backward above all,
        # about 1.4x faster with oneDNN on the CPU.
        x = features.reshape(b, -1, *features.shape[-2:]).contiguous(memory_format=torch.channels_last)
        return self.trunk(x).reshape(b, n_pts, -1)  # (B, 64L, s, s) -> (B, L, 64*s*s)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.landmark_features(features).flatten(1)) * self.output_scale
