"""Real processes: a training killed with SIGKILL resumes to the same weights,
and two-process data-parallel training under torchrun (gloo, CPU) works."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import selfiter

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "examples" / "curve_fit.yaml"
SHORT = ["train.steps=240", "train.checkpoint_every=40", "train.log_every=40", "train.val_every=0",
         "train.batch_size=64", "problem.params.n_train=2000", "train.warmup_steps=0",
         "train.val_split=null"]


#: the face model with a learned encoder, at toy size, on the 12 bundled sample faces
ENCODED = (REPO / "examples" / "face300w_encoded.yaml", [
    "train.steps=240", "train.checkpoint_every=40", "train.log_every=40", "train.val_split=null",
    "train.minutes=null", "train.split=common", "train.batch_size=4", "train.states_per_input=3",
    "train.device=cpu", "problem.params.frame_size=32", "features.params.input_size=32",
    "features.params.widths=[4,8,8]", "features.params.blocks=[0,1,0]",
    "features.params.out_channels=6", "features.params.spacing=2.0",
    "regressor.params.reduced=4", "regressor.params.hidden=16"])
RUNS = {"curve_fit": (CONFIG, SHORT), "learned_encoder": ENCODED}


def _cmd(run: Path, *extra: str, kind: str = "curve_fit") -> list[str]:
    config, short = RUNS[kind]
    return [sys.executable, "-m", "selfiter", "train", str(config), "-o", str(run), "--no-progress",
            "--set", *short, *extra]


def _step_of(run: Path) -> int:
    state = run / "trainer_state.pt"
    if not state.exists():
        return -1
    try:
        return int(torch.load(state, weights_only=False)["step"])
    except Exception:  # being replaced right now: read it next time
        return -1


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(RUNS))
def test_sigkilled_training_resumes_to_the_same_weights(tmp_path, kind):
    full, cut = tmp_path / "full", tmp_path / "cut"
    subprocess.run(_cmd(full, kind=kind), check=True, capture_output=True)
    proc = subprocess.Popen(_cmd(cut, kind=kind), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _step_of(cut) < 80 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _step_of(cut)
    assert 80 <= killed_at < 240
    subprocess.run([*_cmd(cut, kind=kind), "--resume"], check=True, capture_output=True)
    a = load_file(str(full / "checkpoint.safetensors"))
    b = load_file(str(cut / "checkpoint.safetensors"))
    assert a.keys() == b.keys()
    assert (kind == "learned_encoder") == any(k.startswith("extractor.") for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
                    reason="torchrun is not on PATH")
def test_two_process_gloo_training_with_torchrun(tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "selfiter", "train", str(CONFIG),
           "-o", str(run), "--no-progress", "--set", *SHORT, "train.steps=160"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("checkpoint:") == 1  # rank 0 alone reports
    model = selfiter.load(run)
    test = model.problem.load("test")
    out = model.solve(test.inputs, iterations=2)  # 160 steps: a short, early model
    start = model.problem.metrics(out.trajectory[0], test)["param_err"]
    final = model.problem.metrics(out.theta, test)["param_err"]
    assert final < 0.95 * start
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4  # rank 0 alone writes: steps 40, 80, 120, 160
    # resume under torchrun continues the same run
    res = subprocess.run(cmd[:-1] + ["train.steps=200", "--resume"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 5
