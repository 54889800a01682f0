"""The official 300-W folder layout and its named splits.

A data root holds (any subset of) the official folders::

    afw/  helen/trainset/  helen/testset/  lfpw/trainset/  lfpw/testset/
    ibug/  300W/01_Indoor/  300W/02_Outdoor/

each with images (``.jpg``, ``.jpeg``, ``.png``) beside same-named ``.pts``
files. A split is one of :data:`SPLITS` or a comma-separated list of folders
under the root (``"helen/testset,lfpw/testset"``). Every folder a split needs
must be there: a missing one is an error, never a smaller test set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from selfiter.errors import DataError

#: every folder of the official layout
FOLDERS: tuple[str, ...] = (
    "afw", "helen/trainset", "helen/testset", "lfpw/trainset", "lfpw/testset",
    "ibug", "300W/01_Indoor", "300W/02_Outdoor",
)

#: the named splits of the 300-W protocol -> their folders, in loading order
SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("afw", "helen/trainset", "lfpw/trainset"),
    "common": ("helen/testset", "lfpw/testset"),
    "challenging": ("ibug",),
    "full": ("helen/testset", "lfpw/testset", "ibug"),
    "competition": ("300W/01_Indoor", "300W/02_Outdoor"),
}

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")

#: the 12 faces bundled with the plugin (6 of helen/testset, 6 of lfpw/testset)
SAMPLE_ROOT = Path(__file__).resolve().parents[1] / "samples" / "300w"


@dataclass(frozen=True)
class FaceFiles:
    """One annotated face: its image and its ``.pts`` file."""

    image: Path
    pts: Path


def split_folders(split: str) -> tuple[str, ...]:
    """The folders of a named split, or of a comma-separated folder list."""
    if split in SPLITS:
        return SPLITS[split]
    folders = tuple(f.strip().strip("/") for f in split.split(",") if f.strip().strip("/"))
    if not folders:
        raise DataError(f"split {split!r}: expected one of {', '.join(SPLITS)} "
                        "or a comma-separated list of folders")
    return folders


def list_faces(data_root: str | Path, split: str) -> list[FaceFiles]:
    """The faces of ``split`` under ``data_root``: folder by folder, files sorted by name.

    Raises :class:`DataError` naming every missing folder and the root, an
    empty folder, an image without ``.pts`` or a ``.pts`` without image."""
    root = Path(data_root)
    folders = split_folders(split)
    missing = [f for f in folders if not (root / f).is_dir()]
    if missing:
        hint = "" if root.is_dir() else " (the data root itself does not exist)"
        named = "" if split in SPLITS else f"; named splits are {', '.join(SPLITS)}"
        raise DataError(f"split {split!r}: folder{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(missing)} missing under data root {root}{hint}{named}")
    faces: list[FaceFiles] = []
    for folder in folders:
        faces.extend(_folder_faces(root / folder))
    return faces


def _folder_faces(folder: Path) -> list[FaceFiles]:
    # Dotfiles are skipped: copies made on macOS carry "._NAME.jpg" resource forks.
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    annotations = {p.stem: p for p in files if p.suffix.lower() == ".pts"}
    if not images:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    seen: dict[str, Path] = {}
    for image in images:
        if image.stem in seen:
            raise DataError(f"{image}: two images share one annotation: {seen[image.stem].name} "
                            f"and {image.name}")
        seen[image.stem] = image
        if image.stem not in annotations:
            raise DataError(f"{image}: image has no annotation {image.with_suffix('.pts').name}")
    orphans = sorted(set(annotations) - set(seen))
    if orphans:
        plural = "s" if len(orphans) > 1 else ""
        raise DataError(f"{annotations[orphans[0]]}: annotation has no image "
                        f"({len(orphans)} such .pts file{plural} in {folder})")
    return [FaceFiles(image, annotations[image.stem]) for image in images]
