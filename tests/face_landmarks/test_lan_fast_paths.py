"""LAN's other execution paths against its reference: the batched-matmul trunk (``impl="bmm"``,
meant for GPUs) and face-by-face CPU inference. Same parameters, same numbers."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from face_landmarks.networks import LandmarksAttentionNetwork
from face_landmarks.networks.lan_bmm import trunk_bmm
from selfiter.build import build_problem
from selfiter.config import load_config
from selfiter.solver import SIRSolver
from tests.face_landmarks.conftest import FACE_CONFIG


def twin_networks(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0):
    """A reference LAN and a ``bmm`` one holding the same weights."""
    torch.manual_seed(seed)
    ref = LandmarksAttentionNetwork(shape, 2 * shape[0], hidden=16, feature_dim=4).to(dtype)
    fast = LandmarksAttentionNetwork(shape, 2 * shape[0], hidden=16, feature_dim=4, impl="bmm").to(dtype)
    fast.load_state_dict(ref.state_dict())
    return ref, fast


@st.composite
def lan_inputs(draw):
    """(patches: (B, L, C, P, P), dtype): odd and even sides, so ceil-mode pooling and the
    'same' padding of the 2x2 convolutions are both exercised."""
    b, n_pts, ch = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    p = draw(st.integers(3, 19))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    seed = draw(st.integers(0, 2**31 - 1))
    x = torch.rand(b, n_pts, ch, p, p, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return x - 0.5, dtype


def tolerance(dtype: torch.dtype) -> dict:
    return {"atol": 1e-12, "rtol": 1e-10} if dtype == torch.float64 else {"atol": 1e-5, "rtol": 1e-4}


@settings(max_examples=25, deadline=None)
@given(lan_inputs())
def test_bmm_trunk_equals_grouped_convolutions(case):
    x, dtype = case
    ref, _ = twin_networks(tuple(x.shape[1:]), dtype)
    b, n_pts = x.shape[:2]
    expected = ref.trunk(x.reshape(b, -1, *x.shape[-2:])).reshape(b, n_pts, -1)
    assert_close(trunk_bmm(ref.trunk, x), expected, **tolerance(dtype))


@settings(max_examples=10, deadline=None)
@given(lan_inputs())
def test_bmm_network_output_and_gradients_equal_the_reference(case):
    x, dtype = case
    ref, fast = twin_networks(tuple(x.shape[1:]), dtype)
    out_ref, out_fast = ref(x), fast(x)
    assert_close(out_fast, out_ref, **tolerance(dtype))
    weights = torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    (out_ref * weights).sum().backward()
    (out_fast * weights).sum().backward()
    # The pools differ only in how a tie splits its gradient; ties fall on ReLU zeros,
    # whose gradient is zero either way, so the parameter gradients agree.
    for (name, p_ref), p_fast in zip(ref.named_parameters(), fast.parameters()):
        assert_close(p_fast.grad, p_ref.grad, **tolerance(dtype), msg=name)


def test_bmm_paper_network_matches_reference_in_float32():
    ref, fast = twin_networks((68, 3, 57, 57), torch.float32)
    x = torch.rand(2, 68, 3, 57, 57, generator=torch.Generator().manual_seed(0)) - 0.5
    with torch.no_grad():
        assert_close(fast(x), ref(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("batch", [2, 5])
def test_cpu_inference_face_by_face_equals_one_pass(batch):
    ref, _ = twin_networks((6, 3, 21, 21), torch.float64)
    x = torch.rand(batch, 6, 3, 21, 21, generator=torch.Generator().manual_seed(batch),
                   dtype=torch.float64)
    one_pass = ref(x).detach()  # grad enabled: a single pass over the batch
    with torch.no_grad():
        assert_close(ref(x), one_pass, atol=1e-12, rtol=1e-10)


def test_bad_impl_is_rejected():
    with pytest.raises(ValueError, match="impl must be 'grouped' or 'bmm', got 'conv'"):
        LandmarksAttentionNetwork((68, 3, 57, 57), 136, impl="conv")


def test_bundled_model_solves_the_same_with_the_bmm_path(lan_model):
    """The whole solver, 4 iterations on the bundled sample faces: the two paths agree
    within 1e-3 px."""
    faces = build_problem(load_config(FACE_CONFIG)).load("common").inputs[:4]  # bundled samples
    ref_reg = lan_model.regressors[0]
    kwargs = {k: getattr(ref_reg, k) for k in ("theta_dim", "output_scale")}
    fast_reg = LandmarksAttentionNetwork(ref_reg.feature_shape, impl="bmm",
                                         hidden=ref_reg.head[0].out_features,
                                         feature_dim=ref_reg.fc1_weight.shape[-1], **kwargs)
    fast_reg.load_state_dict(ref_reg.state_dict())
    fast_reg.eval()
    theta0 = lan_model.initial_theta(len(faces))
    with torch.no_grad():
        a = lan_model.solver.solve(faces, theta0, 4).theta
        b = SIRSolver(lan_model.extractor, fast_reg).solve(faces, theta0, 4).theta
    assert (a - b).abs().max() < 1e-3
