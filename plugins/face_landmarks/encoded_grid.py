"""Encode once, iterate cheaply: a CNN encoding of the face frame, computed once per face,
sampled bilinearly on a small grid around every current landmark at each iteration."""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

from selfiter.encoders import PyramidEncoder
from selfiter.interfaces import LearnedFeatureExtractor


class EncodedGridExtractor(LearnedFeatureExtractor):
    """``encode: frames (B, C, S, S) uint8 -> context``, the feature maps ``(B, K,
    S/stride, S/stride)`` laid out for sampling (a :class:`GridContext`, see
    :meth:`context_of`); ``features(context, theta: (B, 2L)) -> (B, L, K * grid * grid)``
    float32.

    The encoder is the core's :class:`~selfiter.encoders.PyramidEncoder`
    (``widths``, ``blocks``, ``block``, ``out_channels`` = K, ``stride``) over frames of
    ``input_size`` px (the problem's ``frame_size``), grey levels mapped to
    ``x / 255 - 0.5``. Landmark ``l`` reads the map at a ``grid x grid`` square of
    points ``spacing`` frame px apart centred on it (pixel column ``c`` centred at
    ``x = c``); map cell ``j`` sits at frame px ``j * stride``. Outside the map
    the samples are zero. One batched gather reads every landmark of every face; when
    ``spacing`` is a whole number of map cells (``spacing / stride`` an integer, as in the
    bundled model), a landmark's points share their bilinear weights and read one block
    of cells (:func:`bilinear_gather_grid`), else each point is read alone
    (:func:`bilinear_gather`); the values are the same.
    """

    def __init__(self, input_size: int = 128, in_channels: int = 3,
                 widths: Sequence[int] = (24, 48, 64, 96), blocks: Sequence[int] = (0, 1, 1, 1),
                 out_channels: int = 48, stride: int = 4, grid: int = 3,
                 spacing: float = 4.0, block: str = "residual") -> None:
        super().__init__()
        if input_size < 2 * stride:
            raise ValueError(f"input_size must be at least 2 * stride = {2 * stride}, got {input_size}")
        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        if not spacing > 0:
            raise ValueError(f"spacing must be > 0, got {spacing}")
        self.input_size = input_size
        self.in_channels = in_channels
        self.grid = grid
        self.spacing = float(spacing)
        self.encoder = PyramidEncoder(in_channels, widths, blocks, out_channels, stride, block)
        cells = self.spacing / stride
        #: the grid's spacing in map cells when it is a whole number, else None
        self.cell_step: int | None = round(cells) if cells == round(cells) else None
        #: zero cells around the map in the context: enough that a clamped block reads zeros
        self.border = (grid - 1) * self.cell_step + 2 if self.cell_step else 1
        #: (h, w) of the map with its border: constants, so that an exported graph
        #: computes no shapes at each iteration
        side = input_size // stride + 2 * self.border
        self.context_size = (side, side)
        offsets = (torch.arange(grid, dtype=torch.float32) - (grid - 1) / 2) * self.spacing
        oy, ox = torch.meshgrid(offsets, offsets, indexing="ij")
        # (G*G, 2) frame px from the landmark; a buffer, so it follows the module's device
        self.register_buffer("offsets", torch.stack((ox, oy), -1).reshape(-1, 2), persistent=False)

    def feature_shape(self, input_shape: tuple[int, ...], theta_dim: int) -> tuple[int, ...]:
        """``(L, K * grid * grid)`` for frames ``(C, S, S)`` with ``S == input_size``."""
        expected = (self.in_channels, self.input_size, self.input_size)
        if tuple(input_shape) != expected:
            raise ValueError(f"frames must be {expected} per sample (input_size {self.input_size}: "
                             f"set the problem's frame_size to match), got {tuple(input_shape)}")
        if theta_dim % 2:
            raise ValueError(f"theta_dim must be even (x, y per landmark), got {theta_dim}")
        return (theta_dim // 2, self.encoder.out_channels * self.grid ** 2)

    def encode(self, inputs: torch.Tensor) -> GridContext:
        if inputs.dim() != 4 or tuple(inputs.shape[1:]) != (self.in_channels, self.input_size,
                                                             self.input_size):
            raise ValueError(f"frames must be (B, {self.in_channels}, {self.input_size}, "
                             f"{self.input_size}) for input_size {self.input_size}, got "
                             f"{tuple(inputs.shape)}")
        x = inputs.to(torch.float32).mul(1.0 / 255.0).sub(0.5)
        return self.context_of(self.encoder(x.contiguous(memory_format=torch.channels_last)))

    def context_of(self, maps: torch.Tensor) -> GridContext:
        """``maps: (B, K, h, w)``, ``h = w = input_size / stride``, laid out once per input
        for the gathers of every iteration (see :class:`GridContext`)."""
        expected = self.input_size // self.encoder.stride
        if maps.dim() != 4 or tuple(maps.shape[2:]) != (expected, expected):
            raise ValueError(f"maps must be (B, K, {expected}, {expected}), got {tuple(maps.shape)}")
        return layout(maps, self.border)

    @staticmethod
    def select(context: GridContext, index: torch.Tensor) -> GridContext:
        """Samples ``index: (A,)`` of the batch: their rows of ``first``, the same cells
        (several states of one input share its maps without copying them)."""
        return GridContext(context.cells, context.first[index])

    @staticmethod
    def detach(context: GridContext) -> GridContext:
        return GridContext(context.cells.detach(), context.first)

    def features(self, context: GridContext, theta: torch.Tensor) -> torch.Tensor:
        if theta.dim() != 2 or theta.shape[0] != context.first.shape[0] or theta.shape[1] % 2:
            raise ValueError(f"theta must be (B={context.first.shape[0]}, 2L), got "
                             f"{tuple(theta.shape)}")
        dtype, stride = context.cells.dtype, self.encoder.stride
        # strided columns rather than a reshape: (B, L) each, no shape computed
        x, y = theta[:, 0::2].to(dtype), theta[:, 1::2].to(dtype)
        if self.cell_step is not None:
            ox, oy = self.offsets[0].to(dtype)  # the square's top-left point
            out = bilinear_gather_grid(context, self.context_size, self.border, (x + ox) / stride,
                                       (y + oy) / stride, self.grid, self.cell_step)
        else:
            off = self.offsets.to(dtype)  # (G*G, 2)
            out = bilinear_gather(context, self.context_size, self.border,
                                  (x.unsqueeze(-1) + off[:, 0]) / stride,
                                  (y.unsqueeze(-1) + off[:, 1]) / stride)
        # (B, L, G*G, K) -> (B, L, K*G*G): each landmark's samples channel by channel
        return out.transpose(2, 3).flatten(2).float()


class GridContext(NamedTuple):
    """Feature maps laid out for bilinear gathers: ``cells: (B*hp*wp, K)``, every map
    channels last inside a border of zero cells (``hp x wp`` cells each), and ``first:
    (A, 1)`` long, the row of cell ``(0, 0)`` (border included) of each sample's map.
    Cell ``(i, j)`` of sample ``a``'s map is row ``first[a] + i * wp + j``; samples may
    share a map (rows of ``first`` repeated)."""

    cells: torch.Tensor
    first: torch.Tensor


def layout(maps: torch.Tensor, border: int) -> GridContext:
    """``maps: (B, K, h, w)`` -> their :class:`GridContext` with ``border`` zero cells
    (``hp, wp = h + 2 * border, w + 2 * border``), one map per sample."""
    b, k, h, w = maps.shape
    p = border
    cells = F.pad(maps, (p, p, p, p)).permute(0, 2, 3, 1).reshape(-1, k)
    first = torch.arange(b, device=maps.device).view(b, 1) * ((h + 2 * p) * (w + 2 * p))
    return GridContext(cells, first)


def rows(cells: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``cells: (R, K)`` at ``index: (...)`` long -> ``(..., K)``. As an embedding lookup,
    whose backward on the CPU sums the gradients of repeated rows in a fixed order (that
    of ``cells[index]`` does not, so a resumed training would not repeat its weights bit
    for bit) and faster; onnx exports it as one Gather."""
    return F.embedding(index, cells)


def _corner_weights(fx: torch.Tensor, fy: torch.Tensor) -> torch.Tensor:
    """Bilinear weights of the corners (0, 0), (0, 1), (1, 0), (1, 1) (y, x), stacked
    last, for fractional positions ``fx, fy`` of any shape."""
    return torch.stack(((1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx), -1)


def bilinear_gather(context: GridContext, size: tuple[int, int], border: int, x: torch.Tensor,
                    y: torch.Tensor) -> torch.Tensor:
    """Each sample's map read at points ``x, y: (A, ...)`` (cells of the map, cell
    ``(i, j)`` centred at ``x = j, y = i``) -> ``(A, ..., K)``, bilinear, zero outside the
    map. ``context`` has maps of ``size = (hp, wp)`` cells with ``border >= 1`` zero cells.

    The same values as ``F.grid_sample(..., align_corners=True, padding_mode="zeros")``
    on the map, as one gather of the four corners: a corner outside the map is clamped
    onto the zero border, so no validity masks are needed. onnxruntime runs this several
    times faster than its GridSample (and than four masked gathers); PyTorch about as fast."""
    hp, wp = size
    x, y = x + border, y + border  # cells of the bordered map
    x0, y0 = x.floor(), y.floor()
    corner_x = torch.tensor([0.0, 1.0, 0.0, 1.0], device=x.device, dtype=x.dtype)
    corner_y = torch.tensor([0.0, 0.0, 1.0, 1.0], device=x.device, dtype=x.dtype)
    cx = (x0.unsqueeze(-1) + corner_x).clamp(0, wp - 1)  # (A, ..., 4)
    cy = (y0.unsqueeze(-1) + corner_y).clamp(0, hp - 1)
    first = context.first.reshape((-1,) + (1,) * x.dim())  # (A, 1, ..., 1)
    index = first + (cy * wp + cx).long()  # (A, ..., 4)
    weight = _corner_weights(x - x0, y - y0).unsqueeze(-1)  # (A, ..., 4, 1)
    return (rows(context.cells, index) * weight).sum(-2)  # (A, ..., 4, K) -> (A, ..., K)


def bilinear_gather_grid(context: GridContext, size: tuple[int, int], border: int,
                         x: torch.Tensor, y: torch.Tensor, grid: int, step: int) -> torch.Tensor:
    """Each sample's map read at a ``grid x grid`` square of points ``step`` cells apart
    (an integer) per centre, ``x, y: (A, L)`` the square's top-left point (cells) ->
    ``(A, L, grid * grid, K)``, row-major within each square; ``context`` as in
    :func:`bilinear_gather`, with ``border >= (grid - 1) * step + 2``.

    The same values as :func:`bilinear_gather` at those points, but the points of a
    square share their fractional position: each square reads the cells its points'
    corners cover once, as one ``n x n`` block (``n = grid + 1`` for ``step`` 1, where
    neighbouring points share corners: 16 cells for a 3 x 3 grid against 36 read corner
    by corner), and interpolates the block by two small matrix products, ``W_y block
    W_x^T``, whose ``(grid, n)`` matrices hold each point's two bilinear weights. As
    products, forward and backward run as batched matmuls: a training step of the face
    model (16 faces x 8 states, 2-core CPU) took 115 ms, against 178 ms with four weighted
    corner gathers per point and 159 ms interpolating slices of the block. A square lying wholly outside the map is clamped to a place in the zero
    border, which it reads as zeros, as it should."""
    hp, wp = size
    a, n_pts = x.shape
    span = (grid - 1) * step + 1  # cells from a square's first corner to its last
    x, y = x + border, y + border  # cells of the bordered map
    x0, y0 = x.floor(), y.floor()
    # wholly left of / above the map from border - span - 1 on, wholly right of / below it
    # from border + w on: clamped there, every cell it reads is a border cell
    base = context.first + (y0.clamp(border - span - 1, hp - border) * wp
                            + x0.clamp(border - span - 1, wp - border)).long()  # (A, L)
    offset, lower, upper = block_layout(grid, step, wp, x.device)  # (n*n,), (G, n), (G, n)
    n = lower.shape[1]
    lower, upper = lower.to(x.dtype), upper.to(x.dtype)
    w_x = lower + (x - x0).reshape(-1, 1, 1) * (upper - lower)  # (A*L, G, n)
    w_y = lower + (y - y0).reshape(-1, 1, 1) * (upper - lower)
    block = rows(context.cells, base.unsqueeze(-1) + offset)  # (A, L, n*n, K)
    k = block.shape[-1]
    along_y = torch.bmm(w_y, block.reshape(a * n_pts, n, n * k))  # (A*L, G, n*K)
    out = torch.matmul(w_x.unsqueeze(1), along_y.reshape(a * n_pts, grid, n, k))  # (A*L, G, G, K)
    return out.reshape(a, n_pts, grid * grid, k)


@functools.lru_cache(maxsize=None)
def block_layout(grid: int, step: int, wp: int, device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """How :func:`bilinear_gather_grid` reads a square, built once per layout, not at
    every iteration: ``offsets: (n * n,)`` long, the rows from the square's first corner
    cell of the ``n x n`` block of cells (row-major) that its points' corners cover, in
    maps ``wp`` cells wide (``n = grid + 1`` for ``step`` 1, else ``2 grid``);
    ``lower, upper: (grid, n)`` float, one-hot: the block column of each point's lower
    and upper corner along an axis."""
    along = torch.arange(grid, device=device) * step  # (G,) each point's lower corner
    cells = torch.unique(torch.cat((along, along + 1)))  # (n,) sorted
    at = torch.searchsorted(cells, along)  # (G,) its column in the block
    onehot = torch.eye(len(cells), device=device)
    return (cells.view(-1, 1) * wp + cells.view(1, -1)).reshape(-1), onehot[at], onehot[at + 1]
