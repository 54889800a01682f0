"""Shared fixtures: where the real 300-W copy is, float32/float64, CPU threads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

# Timing deadlines would make property tests flaky on a loaded 2-core CI machine;
# speed is measured in benchmarks/, never in tests.
settings.register_profile("selfiter", deadline=None, max_examples=50)
settings.load_profile("selfiter")

REPO = Path(__file__).resolve().parents[1]
#: the real 300-W copy beside the checkout (CI always has it); SELFITER_300W overrides
SHARED_300W = Path(os.environ.get("SELFITER_300W", REPO.parent / "shared" / "data" / "300w"))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def data_300w() -> Path:
    """The real 300-W faces; the test skips, saying why, where they are absent."""
    if not (SHARED_300W / "helen").is_dir():
        pytest.skip(f"real 300-W data not found at {SHARED_300W} (set SELFITER_300W to its folder)")
    return SHARED_300W


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request) -> torch.dtype:
    return request.param


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA; torch.cuda.is_available() is false here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
