"""The core's generic pyramid encoder: output shape and placement, the blocks it stacks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from selfiter.encoders import BLOCKS, PyramidEncoder, Residual, SeparableResidual


@settings(max_examples=15, deadline=None)
@given(stages=st.integers(1, 3), stride_level=st.integers(0, 2), cells=st.integers(1, 4),
       block=st.sampled_from(sorted(BLOCKS)), out=st.integers(1, 8))
def test_the_map_has_out_channels_at_the_asked_stride(stages, stride_level, cells, block, out):
    stride = 2 ** (min(stride_level, stages - 1) + 1)
    side = cells * 2 ** stages  # every stage halves it exactly
    enc = PyramidEncoder(2, [4 * (i + 1) for i in range(stages)], [1] * stages, out, stride,
                         block).eval()
    maps = enc(torch.randn(2, 2, side, side))
    assert maps.shape == (2, out, side // stride, side // stride)


@pytest.mark.parametrize("block", [Residual, SeparableResidual])
def test_a_fresh_block_is_the_identity_on_rectified_inputs(block):
    x = torch.rand(3, 8, 6, 6)  # >= 0, as after the stage's ReLU
    torch.testing.assert_close(block(8).eval()(x), x)


def test_the_separable_block_is_the_cheaper_one():
    def params(m):
        return sum(p.numel() for p in m.parameters())

    assert params(SeparableResidual(48)) < params(Residual(48)) / 4


def test_an_unknown_block_is_refused_by_name():
    with pytest.raises(ValueError, match="block must be one of residual, separable, got 'dense'"):
        PyramidEncoder(block="dense")
