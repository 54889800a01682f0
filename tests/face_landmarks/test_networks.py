"""LAN (Table 1, one sub-network per landmark) and SIR-Stack (Fig. 5, same parameter budget)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from face_landmarks.networks import LandmarksAttentionNetwork, StackNetwork

PAPER_SHAPE = (68, 3, 57, 57)
PAPER_PARAMS = 68 * 51_754 + 209_288  # = 3,728,560, the paper's "3.72M"


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def lan() -> LandmarksAttentionNetwork:
    torch.manual_seed(0)
    return LandmarksAttentionNetwork(PAPER_SHAPE, 136)


def patches(b: int, shape=PAPER_SHAPE, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, *shape, generator=g, dtype=dtype) - 0.5)


def test_lan_parameter_count_is_the_papers(lan):
    assert PAPER_PARAMS == 3_728_560
    assert n_params(lan) == PAPER_PARAMS
    assert n_params(lan.head) == 209_288  # fc 680 -> 256 -> 136
    assert lan.fc1_weight.shape == (68, 4096, 10)  # Table 1: 8 x 8 x 64 -> 10 per landmark


def test_stack_parameter_count_matches_lan():
    stack = StackNetwork(PAPER_SHAPE, 136)
    assert stack.widths == (20, 40, 80)
    assert abs(n_params(stack) / PAPER_PARAMS - 1) < 0.02


def test_lan_trunk_follows_table_1(lan):
    x = patches(1).reshape(1, -1, 57, 57)
    sides = []
    for layer in lan.trunk:
        x = layer(x)
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.MaxPool2d)):
            sides.append((x.shape[1] // 68, x.shape[-1]))
    assert sides == [(16, 57), (16, 29), (32, 29), (32, 15), (64, 15), (64, 8)]


def test_lan_equals_independent_per_landmark_networks():
    torch.manual_seed(1)
    n_pts = 3
    net = LandmarksAttentionNetwork((n_pts, 3, 57, 57), 2 * n_pts)
    x = patches(2, (n_pts, 3, 57, 57))
    convs = [m for m in net.trunk if isinstance(m, torch.nn.Conv2d)]
    for l in range(n_pts):
        h = x[:, l]
        for i, conv in enumerate(convs):
            o = conv.out_channels // n_pts
            w, b = conv.weight[l * o:(l + 1) * o], conv.bias[l * o:(l + 1) * o]
            h = F.conv2d(h, w, b, padding=1) if i == 0 else F.conv2d(F.pad(h, (0, 1, 0, 1)), w, b)
            h = F.max_pool2d(F.relu(h), 2, ceil_mode=True)
        expected = F.relu(h.flatten(1) @ net.fc1_weight[l] + net.fc1_bias[l])
        assert_close(net.landmark_features(x)[:, l], expected, atol=1e-5, rtol=1e-4)


def test_lan_landmark_features_see_only_their_own_patch():
    torch.manual_seed(2)
    net = LandmarksAttentionNetwork((4, 3, 17, 17), 8)
    x = patches(2, (4, 3, 17, 17))
    y = x.clone()
    y[:, 2] = -y[:, 2]
    a, b = net.landmark_features(x), net.landmark_features(y)
    assert_close(a[:, [0, 1, 3]], b[:, [0, 1, 3]], atol=0, rtol=0)
    assert not torch.allclose(a[:, 2], b[:, 2])


@pytest.mark.parametrize("cls", [LandmarksAttentionNetwork, StackNetwork])
def test_output_shape_scale_and_small_start(cls, lan):
    net = lan if cls is LandmarksAttentionNetwork else StackNetwork(PAPER_SHAPE, 136)
    x = patches(2)
    with torch.no_grad():
        out = net(x)
        assert out.shape == (2, 136) and out.dtype == torch.float32
        # the last layer starts small: an untrained net barely moves the landmarks
        assert float(out.abs().max()) < 0.1
        scaled = cls(PAPER_SHAPE, 136, output_scale=20.0)
        scaled.load_state_dict(net.state_dict())
        assert_close(scaled(x), 20.0 * out, rtol=1e-5, atol=1e-6)


def test_lan_backward_reaches_every_landmark(lan):
    lan.zero_grad()
    lan(patches(2)).pow(2).sum().backward()
    for name, p in lan.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # every landmark's first conv gets a gradient of its own
    per_landmark = lan.trunk[0].weight.grad.reshape(68, -1).abs().sum(1)
    assert (per_landmark > 0).all()
    lan.zero_grad()


@pytest.mark.parametrize("cls", [LandmarksAttentionNetwork, StackNetwork])
def test_gradcheck_on_a_tiny_network(cls):
    torch.manual_seed(3)
    shape = (2, 3, 6, 6)
    net = cls(shape, 4, hidden=5, feature_dim=3, output_scale=3.0).double()
    x = patches(2, shape, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(net, (x,), eps=1e-6, atol=1e-5, fast_mode=True)


def test_bad_feature_shape_is_rejected():
    with pytest.raises(ValueError, match="feature_shape"):
        LandmarksAttentionNetwork((68, 3, 57), 136)
    with pytest.raises(ValueError, match="feature_shape"):
        StackNetwork((68, 3, 57, 50), 136)
