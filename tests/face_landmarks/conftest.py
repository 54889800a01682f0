"""Face-model fixtures: a tiny checkpoint of the right shape, and the real model when there is one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from selfiter import plugins
from selfiter.api import TrainedSolver, load
from selfiter.config import load_config
from selfiter.training import train

REPO = Path(__file__).resolve().parents[2]
FACE_CONFIG = REPO / "examples" / "face300w.yaml"
#: 2 steps on 4 sample faces: the LAN's shapes and a fitted face model, not its accuracy
TINY = ["train.steps=2", "train.batch_size=2", "train.split=common", "problem.params.limit=4",
        "train.val_split=null", "train.device=cpu", "train.checkpoint_every=1000"]


@pytest.fixture(scope="session")
def tiny_face_checkpoint(tmp_path_factory) -> Path:
    """A face checkpoint after 2 training steps: right architecture, meaningless accuracy."""
    run = tmp_path_factory.mktemp("tiny_face")
    return train(load_config(FACE_CONFIG, TINY), run / "run", progress=False)


@pytest.fixture(scope="session")
def tiny_face_model(tiny_face_checkpoint) -> TrainedSolver:
    return load(tiny_face_checkpoint)


ENCODED_CONFIG = REPO / "examples" / "face300w_encoded.yaml"
#: the encoded-grid model at toy size (32 px frames, a 3-stage encoder), 2 steps, 2 states per face
TINY_ENCODED = TINY + [
    "problem.params.frame_size=32", "features.params.input_size=32",
    "features.params.widths=[4,8,8]", "features.params.blocks=[0,1,0]",
    "features.params.out_channels=6", "features.params.spacing=2.0", "regressor.params.reduced=4",
    "regressor.params.hidden=16", "train.states_per_input=2", "train.minutes=null"]


@pytest.fixture(scope="session")
def tiny_encoded_checkpoint(tmp_path_factory) -> Path:
    """An encoded-grid face checkpoint after 2 training steps: right kind, meaningless accuracy."""
    run = tmp_path_factory.mktemp("tiny_encoded")
    return train(load_config(ENCODED_CONFIG, TINY_ENCODED), run / "run", progress=False)


@pytest.fixture(scope="session")
def lan_model() -> TrainedSolver:
    """The bundled ``face300w_lan`` model (the paper's LAN, trained on a CPU); skips, saying
    why, when it is not there."""
    if "face300w_lan" not in plugins.components("model"):
        pytest.skip("the bundled model plugins/face_landmarks/models/face300w_lan.safetensors "
                    "is not there")
    return load("face300w_lan")


@pytest.fixture(scope="session")
def face_model() -> TrainedSolver:
    """The bundled ``face300w`` model, for accuracy tests; SELFITER_FACE_MODEL (a checkpoint
    or run folder) stands in for it. Skips, saying why, when neither is there."""
    override = os.environ.get("SELFITER_FACE_MODEL")
    if override:
        return load(override)
    if "face300w" not in plugins.components("model"):
        pytest.skip("the bundled model plugins/face_landmarks/models/face300w.safetensors is not "
                    "there yet (set SELFITER_FACE_MODEL to a checkpoint to run this test)")
    return load("face300w")
