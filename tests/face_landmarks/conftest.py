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
