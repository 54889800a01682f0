"""The same code on CUDA: skipped cleanly where torch.cuda.is_available() is false."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import selfiter
from selfiter.config import config_from_dict, load_config
from selfiter.training import train
from tests.core.toy_plugin import toy_config

pytestmark = pytest.mark.gpu
REPO = Path(__file__).resolve().parents[2]


def test_training_and_solving_on_cuda_match_the_cpu_solver(tmp_path):
    cfg = config_from_dict(toy_config(device="cuda", steps=100))
    ckpt = train(cfg, tmp_path / "run", progress=False)
    gpu = selfiter.load(ckpt, device="cuda")
    cpu = selfiter.load(ckpt, device="cpu")
    data = cpu.problem.load("test")
    a = gpu.solve(data.inputs).theta.cpu()
    b = cpu.solve(data.inputs).theta
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_face_features_and_lan_on_cuda_match_cpu():
    cfg = load_config(REPO / "examples" / "face300w.yaml", ["problem.params.limit=4"])
    from selfiter.build import build_components

    parts = build_components(cfg)
    faces = parts.problem.load("common")
    parts.parameter_model.fit_data(faces.theta_gt)
    reg = parts.make_regressor((68, 3, 57, 57)).eval()
    with torch.no_grad():
        f_cpu = parts.extractor.features(faces.inputs, faces.theta_gt)
        f_gpu = parts.extractor.features(faces.inputs.cuda(), faces.theta_gt.cuda())
        torch.testing.assert_close(f_gpu.cpu(), f_cpu, atol=1e-5, rtol=1e-5)
        out_cpu = reg(f_cpu)
        out_gpu = reg.cuda()(f_gpu)
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, atol=1e-3, rtol=1e-3)


def test_bf16_autocast_training_step_runs(tmp_path):
    cfg = config_from_dict(toy_config(device="cuda", steps=20, amp=True))
    assert train(cfg, tmp_path / "amp", progress=False).is_file()


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16"])
def test_lan_bmm_path_on_cuda_matches_the_grouped_reference_on_cpu(amp):
    from face_landmarks.networks import LandmarksAttentionNetwork

    torch.manual_seed(0)
    ref = LandmarksAttentionNetwork((68, 3, 57, 57), 136, output_scale=10.0).eval()
    fast = LandmarksAttentionNetwork((68, 3, 57, 57), 136, output_scale=10.0, impl="bmm")
    fast.load_state_dict(ref.state_dict())
    fast = fast.cuda().eval()
    x = torch.rand(64, 68, 3, 57, 57, generator=torch.Generator().manual_seed(0)) - 0.5
    with torch.no_grad():
        expected = ref(x)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            got = fast(x.cuda()).float().cpu()
    # fp32: TF32 may be on for matmuls; bf16: 8 bits of mantissa through three layers
    tol = 2e-2 if amp else 1e-3
    torch.testing.assert_close(got, expected, atol=tol * float(expected.abs().max()), rtol=0)
