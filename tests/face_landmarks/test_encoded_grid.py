"""The encoded-grid face model: a CNN encoding of the frame sampled around every landmark,
and the per-landmark-reduction MLP on it. Laws of the sampling, of encode-once solving
and of M states sharing one encoding, on real sample faces."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from face_landmarks.data.dataset import load_faces
from face_landmarks.encoded_grid import EncodedGridExtractor
from face_landmarks.networks.landmark_mlp import LandmarkMLP
from selfiter.solver import LearnedModel, make_solver

SAMPLES = Path(__file__).resolve().parents[2] / "plugins" / "face_landmarks" / "samples" / "300w"
TINY = dict(input_size=32, widths=(4, 8, 8), blocks=(0, 1, 0), out_channels=6, stride=4, grid=3,
            spacing=2.0)


@pytest.fixture(scope="module")
def faces():
    """The 12 bundled real test faces in 32 x 32 frames."""
    return load_faces(SAMPLES, "common", 32, 1.4, None)


def tiny_model(seed: int = 0) -> LearnedModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ex = EncodedGridExtractor(**TINY)
        reg = LandmarkMLP(ex.feature_shape((3, 32, 32), 136), 136, reduced=4, hidden=16)
    return LearnedModel(ex, [reg])


def test_feature_shape_and_a_frame_of_the_wrong_size_is_named():
    ex = EncodedGridExtractor(**TINY)
    assert ex.feature_shape((3, 32, 32), 136) == (68, 6 * 9)
    with pytest.raises(ValueError, match=r"frames must be \(3, 32, 32\) .*frame_size.*got \(3, 64, 64\)"):
        ex.feature_shape((3, 64, 64), 136)
    with pytest.raises(ValueError, match="stride must be one of"):
        EncodedGridExtractor(widths=(4, 8), blocks=(0, 0), stride=8)


@st.composite
def ramp_cases(draw):
    """(extractor, maps, theta, expected): a map linear in x and y, which bilinear sampling
    reads exactly, and landmarks whose whole grid lies inside it."""
    stride = draw(st.sampled_from([2, 4]))
    # whole numbers of cells take the shared-weight block read, others the point read
    grid = draw(st.integers(1, 4))
    spacing = draw(st.one_of(st.floats(0.5, 3.0), st.sampled_from([1.0, 2.0]).map(lambda c: c * stride)))
    widths = (4, 4) if stride == 4 else (4,)
    ex = EncodedGridExtractor(input_size=32, widths=widths, blocks=(0,) * len(widths),
                              out_channels=2, stride=stride, grid=grid, spacing=spacing)
    h = w = 32 // stride
    b, n_pts = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    a = torch.randn(2, 3, generator=g, dtype=torch.float64)  # per channel: x, y, constant
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                            torch.arange(w, dtype=torch.float64), indexing="ij")
    maps = (a[:, 0, None, None] * xx + a[:, 1, None, None] * yy + a[:, 2, None, None])
    maps = maps.expand(b, -1, -1, -1).contiguous()
    reach = (grid - 1) / 2 * spacing
    lo, hi = reach, (w - 1) * stride - reach
    pts = lo + torch.rand(b, n_pts, 2, generator=g, dtype=torch.float64) * (hi - lo)
    offs = (torch.arange(grid, dtype=torch.float64) - (grid - 1) / 2) * spacing
    oy, ox = torch.meshgrid(offs, offs, indexing="ij")
    gx = (pts[..., 0, None] + ox.reshape(-1)) / stride  # (B, L, G*G) map cells
    gy = (pts[..., 1, None] + oy.reshape(-1)) / stride
    expected = (a[:, 0, None, None, None] * gx[None] + a[:, 1, None, None, None] * gy[None]
                + a[:, 2, None, None, None])  # (K, B, L, G*G)
    expected = expected.permute(1, 2, 0, 3).reshape(b, n_pts, -1)
    return ex, maps, pts.reshape(b, -1), expected


@settings(max_examples=40)
@given(ramp_cases())
def test_features_read_the_map_at_the_grid_around_each_landmark(case):
    ex, maps, theta, expected = case
    got = ex.features(ex.context_of(maps), theta)
    assert got.shape == expected.shape
    assert_close(got.double(), expected, atol=1e-4, rtol=1e-4)


def test_landmarks_far_outside_the_frame_read_zeros():
    ex = EncodedGridExtractor(**TINY)
    assert ex.cell_step is None  # spacing 2 px at stride 4: each point read alone
    block = EncodedGridExtractor(**{**TINY, "spacing": 4.0})
    assert block.cell_step == 1
    maps = torch.ones(2, 6, 8, 8)
    for e in (ex, block):
        for far in (-500.0, 500.0):
            assert (e.features(e.context_of(maps), torch.full((2, 136), far)) == 0).all()


def test_solving_real_faces_on_the_cached_encoding_equals_encoding_every_iteration(faces):
    model = tiny_model().eval()
    theta0 = faces.theta_gt.mean(0, keepdim=True).expand(len(faces), -1).clone()
    out = make_solver(model).solve(faces.inputs, theta0, 3)
    theta, expected = theta0.clone(), [theta0]
    with torch.no_grad():
        for k in range(3):
            theta = theta + model.step(model.encode(faces.inputs), theta, k)
            expected.append(theta)
    assert_close(out.trajectory, torch.stack(expected))


@pytest.mark.parametrize("m", [1, 3, 8])
def test_m_states_of_a_real_face_sharing_one_encoding_equal_m_copies(faces, m):
    model = tiny_model(seed=m).train()  # batch norm on batch statistics, as in training
    g = torch.Generator().manual_seed(m)
    inputs = faces.inputs[:4]
    theta = faces.theta_gt[:4].repeat_interleave(m, 0) + torch.randn(4 * m, 136, generator=g)

    def loss_and_grads(x):
        model.zero_grad()
        delta = model(x, theta)[0]
        delta.square().mean().backward()
        return delta.detach(), [p.grad.clone() for p in model.parameters()]

    shared, shared_g = loss_and_grads(inputs)
    copied, copied_g = loss_and_grads(inputs.repeat_interleave(m, 0))
    assert_close(shared, copied, atol=1e-5, rtol=1e-4)
    for a, b in zip(shared_g, copied_g):
        assert_close(a, b, atol=1e-5, rtol=1e-3)


def test_landmark_mlp_reduces_each_landmark_by_its_own_map():
    reg = LandmarkMLP((5, 7), 10, reduced=3, hidden=8)
    x = torch.randn(2, 5, 7)
    y = x.clone()
    y[:, 2] += 1.0  # landmark 2's features only
    # before the ReLU, which could zero a landmark's whole change and hide where it went
    red = lambda f: torch.einsum("blf,lfr->blr", f, reg.reduce_weight) + reg.reduce_bias  # noqa: E731
    changed = (red(x) != red(y)).any(-1).any(0)
    assert changed.tolist() == [False, False, True, False, False]
    assert reg(x).shape == (2, 10)
    with pytest.raises(ValueError, match=r"feature_shape must be \(L, F\)"):
        LandmarkMLP((5, 7, 1), 10)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_a_local_head_starts_as_the_model_without_it_and_moves_only_its_landmark(b, n_pts, local,
                                                                                 seed):
    torch.manual_seed(seed)
    plain = LandmarkMLP((n_pts, 7), 2 * n_pts, reduced=3, hidden=8)
    with_local = LandmarkMLP((n_pts, 7), 2 * n_pts, reduced=3, hidden=8, local=local)
    loaded = with_local.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(loaded.missing_keys) == ["local_bias", "local_out", "local_weight"]
    x = torch.randn(b, n_pts, 7)
    assert_close(with_local(x), plain(x))  # the local head's last layer starts at zero
    # with the MLP silenced and the local head live, landmark l's features move landmark l
    with torch.no_grad():
        with_local.head[2].weight.zero_()
        with_local.head[2].bias.zero_()
        with_local.local_out.normal_()
        with_local.reduce_bias.fill_(100.0)  # every unit on, so that each change shows
        with_local.local_weight.abs_()
    y = x.clone()
    y[:, n_pts - 1] += 1.0
    moved = (with_local(x) != with_local(y)).reshape(b, n_pts, 2).any(-1).any(0)
    assert moved.tolist() == [False] * (n_pts - 1) + [True]


def test_a_local_head_needs_an_x_y_per_landmark():
    with pytest.raises(ValueError, match="theta_dim must be 10, got 9"):
        LandmarkMLP((5, 7), 9, local=4)
    with pytest.raises(ValueError, match="local must be >= 0"):
        LandmarkMLP((5, 7), 10, local=-1)


@settings(max_examples=40)
@given(st.integers(1, 3), st.integers(1, 5), st.integers(2, 9), st.integers(2, 9),
       st.integers(1, 40), st.integers(0, 2**31 - 1),
       st.sampled_from([torch.float32, torch.float64]))
def test_bilinear_gather_equals_grid_sample_inside_and_outside_the_map(b, k, h, w, n, seed, dtype):
    from face_landmarks.encoded_grid import bilinear_gather, layout

    g = torch.Generator().manual_seed(seed)
    border = 1 + seed % 3
    maps = torch.randn(b, k, h, w, generator=g, dtype=dtype)
    # points up to two cells beyond every edge, some exactly on cell centres
    pts = torch.rand(b, n, 2, generator=g, dtype=dtype) * torch.tensor([w + 3.0, h + 3.0],
                                                                        dtype=dtype) - 2.0
    pts[:, : n // 3] = pts[:, : n // 3].round()
    scale = torch.tensor([2.0 / (w - 1), 2.0 / (h - 1)], dtype=dtype)
    ref = torch.nn.functional.grid_sample(maps, (pts * scale - 1.0).unsqueeze(2), mode="bilinear",
                                          padding_mode="zeros", align_corners=True)  # (B, K, N, 1)
    size = (h + 2 * border, w + 2 * border)
    got = bilinear_gather(layout(maps, border), size, border, pts[..., 0], pts[..., 1])
    assert_close(got, ref[..., 0].transpose(1, 2))


@settings(max_examples=60)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(2, 9), st.integers(2, 9),
       st.integers(1, 12), st.integers(1, 4), st.integers(1, 3), st.integers(0, 2**31 - 1),
       st.sampled_from([torch.float32, torch.float64]))
def test_a_grid_read_as_one_block_equals_reading_each_point(b, k, h, w, n, grid, step, seed,
                                                            dtype):
    from face_landmarks.encoded_grid import bilinear_gather, bilinear_gather_grid, layout

    g = torch.Generator().manual_seed(seed)
    maps = torch.randn(b, k, h, w, generator=g, dtype=dtype)
    border = (grid - 1) * step + 2
    context, size = layout(maps, border), (h + 2 * border, w + 2 * border)
    # squares inside, across every edge and far beyond it (clamped into the border)
    reach = (grid - 1) * step
    first = (torch.rand(b, n, 2, generator=g, dtype=dtype) * torch.tensor(
        [w + 2.0 * reach + 6, h + 2.0 * reach + 6], dtype=dtype) - reach - 3)
    first[:, : n // 4] *= 40.0
    first[:, n // 4: n // 2] = first[:, n // 4: n // 2].round()
    along = torch.arange(grid, dtype=dtype) * step
    oy, ox = torch.meshgrid(along, along, indexing="ij")
    pts = first.unsqueeze(2) + torch.stack((ox, oy), -1).reshape(-1, 2)  # (B, L, G*G, 2)
    expected = bilinear_gather(context, size, border, pts[..., 0], pts[..., 1])  # (B, L, G*G, K)
    got = bilinear_gather_grid(context, size, border, first[..., 0], first[..., 1], grid, step)
    assert_close(got, expected)


def test_states_sharing_an_encoding_select_rows_not_copies_of_the_maps(faces):
    ex = tiny_model().extractor.eval()
    with torch.no_grad():
        context = ex.encode(faces.inputs[:3])
        rows = torch.tensor([2, 0, 0, 1])
        picked = ex.select(context, rows)
        assert picked.cells is context.cells
        theta = faces.theta_gt[rows]
        assert_close(ex.features(picked, theta), ex.features(ex.encode(faces.inputs[rows]), theta))
