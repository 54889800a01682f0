"""``selfiter landmarks IMAGE_OR_FOLDER...``: 68 points on every face of every photo.

Faces are found by a calibrated detector (``--detector``, faces of ``--min-face``
px and more) or given with ``--box`` (the same boxes for every image), solved in
batches of images, written as JSON ``{image_path: [{"box": [...], "points": [[x, y]] * 68}]}`` (0-based
px of the image as displayed) and, with ``--out``, drawn on an overlay PNG per
image. A file that cannot be read, or an image without a face, gets one line
on stderr and the batch goes on: the JSON is written with every image that was
read (an image without a face maps to ``[]``) and the exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from face_landmarks.data.layout import IMAGE_SUFFIXES
from face_landmarks.detectors import DEFAULT_DETECTOR
from selfiter.atomic import atomic_path, write_text
from selfiter.cli.common import add_runtime_arg, add_tta_arg
from selfiter.errors import ConfigError, DataError

#: files a folder is searched for (explicitly named files are tried whatever their suffix)
FOLDER_SUFFIXES = (*IMAGE_SUFFIXES, ".bmp", ".tif", ".tiff", ".webp")
#: more images than this show a progress bar
PROGRESS_MIN_IMAGES = 4


EXIT_CODES = """exit status:
  0  every input was read and every image has at least one face
  1  some inputs could not be read or have no face (one line each on stderr); the JSON
     and overlays are still written for the images that were read
  2  bad usage: an unknown option, model or detector, a bad --batch, --iterations, --box
     or --min-face, or a detector whose optional package is not installed (the line names
     the pip command)"""


def configure(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EXIT_CODES
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER",
                   help="image files, or folders searched (recursively, sorted) for images")
    p.add_argument("--model", default="face300w",
                   help="pretrained model name, checkpoint file or run folder (default: face300w)")
    p.add_argument("--out", metavar="DIR", help="write an overlay PNG per image into DIR")
    p.add_argument("--json", metavar="PATH",
                   help="write {image: faces} as JSON to PATH (default: print it)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    add_runtime_arg(p)
    p.add_argument("--iterations", type=int, help="solver iterations (default: the model's)")
    add_tta_arg(p)
    p.add_argument("--detector", default=DEFAULT_DETECTOR,
                   help=f"registered face detector (default: {DEFAULT_DETECTOR}; `selfiter plugins` "
                        "lists them)")
    p.add_argument("--min-face", type=float, metavar="PX",
                   help="least side (px of the image) of a face the detector looks for "
                        "(default: the detector's own, e.g. 30 for haar)")
    p.add_argument("--box", action="append", metavar="X0,Y0,X1,Y1",
                   help="a face's box (px, the square around its landmarks) instead of the "
                        "detector; repeat for several faces; used for every input image "
                        "(--box=-5,... when X0 is negative)")
    p.add_argument("--batch", type=int, default=16, metavar="N",
                   help="images whose faces are solved together (default: 16)")


def collect_images(inputs: list[str]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """``(image, overlay name)`` pairs in order, and one error line per input that is
    missing or a folder without images. The overlay name mirrors a folder's layout
    (``DIR/sub/a.jpg`` -> ``sub/a.png``); a named file gives its own name."""
    found: list[tuple[Path, Path]] = []
    errors: list[str] = []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            images = []
            for folder, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                images += [Path(folder) / f for f in sorted(files)
                           if not f.startswith(".") and Path(f).suffix.lower() in FOLDER_SUFFIXES]
            if not images:
                errors.append(f"{p}: no images ({', '.join(FOLDER_SUFFIXES)}) in this folder")
            found += [(f, f.relative_to(p).with_suffix(".png")) for f in images]
        elif p.exists():
            found.append((p, Path(p.name).with_suffix(".png")))
        else:
            errors.append(f"{p}: no such file or folder")
    return found, errors


def parse_box(text: str) -> list[float]:
    """``"x0,y0,x1,y1"`` -> four finite floats with ``x1 > x0`` and ``y1 > y0``, or a
    :class:`ConfigError` naming the value."""
    parts = text.split(",")
    try:
        box = [float(v) for v in parts]
    except ValueError:
        box = []
    if len(box) != 4 or not np.isfinite(box).all():
        raise ConfigError(f"--box {text!r}: expected four numbers X0,Y0,X1,Y1 (px), e.g. "
                          "--box 40,60,240,260")
    if not (box[2] > box[0] and box[3] > box[1]):
        raise ConfigError(f"--box {text!r}: needs X1 > X0 and Y1 > Y0")
    return box


def unique_names(names: list[Path]) -> list[Path]:
    """``names`` with a ``-2``, ``-3``... suffix on repeats, so no overlay overwrites another."""
    seen: dict[Path, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else n.with_name(f"{n.stem}-{seen[n]}{n.suffix}"))
    return out


def write_overlay(path: Path, image_bgr: np.ndarray) -> None:
    """One PNG of ``image_bgr: (H, W, 3)`` uint8 BGR, replaced atomically."""
    import cv2  # here, not at the top: listing the CLI's commands must not import OpenCV

    ok, data = cv2.imencode(".png", image_bgr)
    if not ok:
        raise DataError(f"{path}: cannot encode the overlay as PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())


def run(args: argparse.Namespace) -> int:
    from face_landmarks.predict import (
        check_iterations, draw_faces, make_detector, predict_faces, read_image)
    from face_landmarks.problem import Face300W
    from selfiter.api import load

    if args.batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {args.batch}")
    solver = load(args.model, device=args.device, runtime=args.runtime)
    if not isinstance(solver.problem, Face300W):
        raise ConfigError(f"{args.model}: a {type(solver.problem).__name__} model, not a face "
                          "landmark model")
    check_iterations(solver, args.iterations)
    boxes = [parse_box(b) for b in args.box] if args.box else None
    if args.min_face is not None:
        if boxes:
            raise ConfigError("--min-face sets the detector's least face; with --box no "
                              "detector runs")
        if not (np.isfinite(args.min_face) and args.min_face > 0):
            raise ConfigError(f"--min-face must be > 0 px, got {args.min_face:g}")
    params = {} if args.min_face is None else {"min_size": args.min_face}
    detector = None if boxes else make_detector(args.detector, **params)
    least = getattr(detector, "min_size", None)
    least = "" if least is None else f", least face {least:g} px: see --min-face"
    images, errors = collect_images(args.inputs)
    overlays = unique_names([name for _, name in images])
    results: dict[str, list] = {}
    n_faces = no_face = 0
    bar = tqdm(total=len(images), desc="landmarks", unit="image",
               disable=len(images) <= PROGRESS_MIN_IMAGES)

    def fail(line: str) -> None:
        errors.append(line)
        tqdm.write(line, file=sys.stderr)

    for line in errors:
        tqdm.write(line, file=sys.stderr)
    for start in range(0, len(images), args.batch):
        chunk = list(zip(images[start:start + args.batch], overlays[start:start + args.batch]))
        readable = []
        for (path, _), overlay in chunk:
            try:
                readable.append((path, overlay, read_image(path)))
            except DataError as exc:
                fail(str(exc))
        # a chunk whose every file is unreadable has nothing to solve
        faces = predict_faces(solver, [img for _, _, img in readable],
                              boxes=None if boxes is None else [boxes] * len(readable),
                              detector=detector, iterations=args.iterations,
                              tta=args.tta or None) if readable else []
        for (path, overlay, image), found in zip(readable, faces):
            results[str(path)] = found
            n_faces += len(found)
            if not found:
                no_face += 1
                if boxes is not None:  # only a solve gone non-finite drops a given box
                    fail(f"{path}: the solve diverged in every --box; listed in the JSON "
                         "with no faces")
                else:
                    fail(f"{path}: no face found by detector {args.detector!r} "
                         f"({image.shape[1]} x {image.shape[0]} px{least}; listed in the "
                         "JSON with no faces)")
            if args.out:
                write_overlay(Path(args.out) / overlay, draw_faces(image, found))
        bar.update(len(chunk))
    bar.close()
    text = json.dumps(results, indent=1) + "\n"
    if args.json:
        write_text(args.json, text)
    else:
        sys.stdout.write(text)
    unreadable = len(errors) - no_face
    summary = (f"landmarks: {len(results)} image(s) read, {n_faces} face(s)"
               + (f"; {unreadable} input(s) not read, {no_face} image(s) without a face "
                  "(listed above)" if errors else ""))
    if args.json:
        summary += f"; wrote {args.json}"
    if args.out:
        summary += f"; overlays in {args.out}"
    print(summary, file=sys.stderr)
    return 1 if errors else 0
