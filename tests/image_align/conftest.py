"""Fixtures of the image_align tests: the packaged test photos (skipped, saying why,
without scikit-image). The 300-W photos come from the root conftest's ``data_300w``."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def skimage_data():
    """scikit-image's sample photos (the default test split)."""
    return pytest.importorskip(
        "skimage.data", reason="scikit-image is not installed (pip install -e '.[image_align]')")
