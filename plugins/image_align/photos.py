"""The photographs pairs are cut from: the 300-W face photos (training, validation) and
photos that ship inside Python packages (the test set, never trained on).

Every photo is made grey (ITU-R 601 luma, PIL's ``convert("L")``), resized so that its
shorter side is ``side`` px (bicubic, antialiased) and centre-cropped to a ``side x side``
square, so that all photos stack into one ``(N, side, side)`` uint8 tensor and share one
scale: a 128 px template then covers a similar share of every scene.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from selfiter.errors import DataError

#: 300-W folders by split: the official training folders train, the common test subset
#: validates (other photos than training's; the test split uses package photos instead)
FOLDERS_300W = {
    "train": ("afw", "helen/trainset", "lfpw/trainset"),
    "val": ("helen/testset", "lfpw/testset"),
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

#: the default test photos: every photograph stored inside scikit-image's wheel (no
#: download). Skipped: drawings and synthetic images (logo, horse, colorwheel), and
#: the stereo pair, whose loader needs a second file
SKIMAGE_PHOTOS = ("astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass",
                  "gravel", "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina",
                  "rocket", "text")
DEFAULT_TEST_PHOTOS = tuple(f"skimage:{n}" for n in SKIMAGE_PHOTOS)

INSTALL_HINT = "pip install -e '.[image_align]' (scikit-image)"


def square_grey(image: Image.Image | np.ndarray, side: int) -> np.ndarray:
    """A photo (PIL image or ``(H, W)`` / ``(H, W, 3|4)`` array) as a grey ``(side, side)``
    uint8 array: shorter side resized to ``side``, then the centre square."""
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    img = img.convert("L")
    w, h = img.size
    f = side / min(w, h)
    nw, nh = max(side, round(w * f)), max(side, round(h * f))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    x0, y0 = (nw - side) // 2, (nh - side) // 2
    return np.asarray(img.crop((x0, y0, x0 + side, y0 + side)), dtype=np.uint8)


def files_300w(root: Path, split: str) -> list[Path]:
    """The photo files of a 300-W split under ``root``, sorted (so a seed means one set)."""
    if split not in FOLDERS_300W:
        raise ValueError(f"300-W photos come in splits {', '.join(FOLDERS_300W)}, not {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: 300-W folder not found (set problem.params.data_root to a "
                        "300-W copy holding afw/, helen/, lfpw/)")
    files: list[Path] = []
    for sub in FOLDERS_300W[split]:
        folder = root / sub
        if folder.is_dir():
            files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{root}: no photos in {', '.join(FOLDERS_300W[split])} (the 300-W "
                        f"{split} folders); set problem.params.data_root to a 300-W copy")
    return files


def load_300w(root: Path, split: str, side: int, limit: int | None = None
              ) -> tuple[torch.Tensor, list[str]]:
    """The 300-W photos of ``split`` (the first ``limit`` of them, sorted by path):
    ``(N, side, side)`` uint8 and their paths relative to ``root``."""
    files = files_300w(root, split)[:limit]
    out = np.empty((len(files), side, side), dtype=np.uint8)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as img:
                out[i] = square_grey(img, side)
        except OSError as exc:
            raise DataError(f"{path}: cannot read this photo ({exc})") from None
    return torch.from_numpy(out), [str(p.relative_to(root)) for p in files]


def package_photo(name: str) -> np.ndarray:
    """One packaged photo by name: ``skimage:NAME`` (a function of ``skimage.data``) or
    ``sklearn:NAME`` (``sklearn.datasets.load_sample_image``, e.g. ``sklearn:china.jpg``)."""
    source, _, item = name.partition(":")
    if source == "skimage":
        try:
            import skimage.data
        except ImportError:
            raise DataError(f"test photo {name!r} needs scikit-image: {INSTALL_HINT}") from None
        loader = getattr(skimage.data, item, None)
        if loader is None or not callable(loader):
            raise DataError(f"test photo {name!r}: skimage.data has no image {item!r}")
        arr = loader()
    elif source == "sklearn":
        try:
            from sklearn.datasets import load_sample_image
        except ImportError:
            raise DataError(f"test photo {name!r} needs scikit-learn (pip install scikit-learn)") \
                from None
        arr = load_sample_image(item)
    else:
        raise DataError(f"test photo {name!r}: expected 'skimage:NAME' or 'sklearn:NAME'")
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:  # float images in [0, 1], booleans
        arr = (np.clip(arr.astype(np.float64), 0, 1) * 255).round().astype(np.uint8)
    return arr


def load_packaged(names: Sequence[str], side: int) -> torch.Tensor:
    """Packaged photos by name (see :func:`package_photo`): ``(N, side, side)`` uint8."""
    if not names:
        raise DataError("problem.params.test_photos: empty; list at least one photo")
    return torch.from_numpy(np.stack([square_grey(package_photo(n), side) for n in names]))
