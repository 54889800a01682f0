"""``selfiter track VIDEO``: 68 landmarks of one face through every frame of a video.

See :mod:`face_landmarks.tracking` for how frames follow each other and when
the track is lost and the detector called again. Writes a CSV (``frame,
x1, y1, ..., x68, y68``, 0-based frame index, 0-based px; the coordinates are
empty for a frame without a face) and an annotated copy of the video, and
prints the frames per second of the whole loop (decoding, detection,
solving and writing) at the end. The exit code is 1 when some frame has no
face (the summary line counts them), 2 for a video that cannot be read.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from tqdm.auto import tqdm

from face_landmarks.detectors import DEFAULT_DETECTOR
from selfiter.atomic import atomic_path
from selfiter.cli.common import add_runtime_arg, add_tta_arg
from selfiter.errors import ConfigError, DataError

if TYPE_CHECKING:
    import cv2

#: containers the annotated video may be written in, and their codec
VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}
#: the annotated video's rate when the input does not say its own
DEFAULT_FPS = 25.0


EXIT_CODES = """exit status:
  0  every frame has a face
  1  some frames have no face (their CSV cells are empty; the summary line counts them)
  2  bad usage, or a video that cannot be opened or decoded"""


def configure(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EXIT_CODES
    p.add_argument("video", help="a video file OpenCV can read (mp4, avi, ...)")
    p.add_argument("--model", default="face300w",
                   help="pretrained model name, checkpoint file or run folder (default: face300w)")
    p.add_argument("--out", metavar="VIDEO", help="write the annotated video (.mp4 or .avi)")
    p.add_argument("--csv", metavar="PATH", help="write frame, x1, y1, ..., x68, y68 per frame")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    add_runtime_arg(p)
    p.add_argument("--iterations", type=int, help="solver iterations per frame (default: the model's)")
    add_tta_arg(p)
    p.add_argument("--detector", default=DEFAULT_DETECTOR,
                   help=f"registered face detector (default: {DEFAULT_DETECTOR})")
    p.add_argument("--start", default="pose", choices=["pose", "points"],
                   help="a frame starts from the previous frame's pose with the mean shape, or "
                        "from its points (for a model that converges; default: pose)")
    p.add_argument("--lost-step", type=float, default=4.0, metavar="PX",
                   help="a last solver step longer than this (RMS, frame px) loses the track "
                        "(default: 4)")
    p.add_argument("--min-similarity", type=float, default=0.5, metavar="R",
                   help="a face whose grey image correlates less than this with the previous "
                        "frame's loses the track (default: 0.5)")
    p.add_argument("--verify-every", type=int, default=5, metavar="N",
                   help="check with the detector every N tracked frames that the face is still "
                        "there (0: never; default: 5)")


def csv_header(n_points: int = 68) -> str:
    """``frame,x1,y1,...,xL,yL``."""
    return ",".join(["frame", *(f"{c}{i}" for i in range(1, n_points + 1) for c in "xy")])


def csv_row(index: int, points, n_points: int = 68) -> str:
    """One frame's line: the index then ``2 L`` coordinates (6 decimals), or empty cells."""
    cells = [f"{v:.6f}" for v in points.reshape(-1)] if points is not None else [""] * (2 * n_points)
    return ",".join([str(index), *cells])


def video_codec(path: Path) -> str:
    """The FourCC the annotated video at ``path`` is written with, by its suffix."""
    codec = VIDEO_CODECS.get(path.suffix.lower())
    if codec is None:
        raise ConfigError(f"--out {path}: expected a {' or '.join(VIDEO_CODECS)} file")
    return codec


@contextlib.contextmanager
def video_writer(path: Path, fps: float, size: tuple[int, int]) -> Iterator[cv2.VideoWriter]:
    """A ``cv2.VideoWriter`` of frames ``size = (W, H)`` whose file replaces ``path`` only
    once it is complete.

    OpenCV picks the container by the file's suffix, so the temporary file keeps it."""
    import cv2  # here, not at the top: listing the CLI's commands must not import OpenCV

    codec = video_codec(path)
    with atomic_path(path) as tmp:
        partial = tmp.with_suffix(path.suffix)
        writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*codec), fps, size)
        try:
            if not writer.isOpened():
                raise DataError(f"{path}: OpenCV cannot write {codec} video here")
            yield writer
            writer.release()
            os.replace(partial, tmp)
        finally:
            writer.release()
            partial.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    import cv2

    from face_landmarks.predict import draw_faces
    from face_landmarks.problem import Face300W
    from face_landmarks.tracking import FaceTracker
    from selfiter.api import load

    if not Path(args.video).is_file():
        raise DataError(f"{args.video}: no such video file")
    if args.out:
        video_codec(Path(args.out))
    capture = cv2.VideoCapture(args.video)
    if not capture.isOpened():
        raise DataError(f"{args.video}: OpenCV cannot open this video")
    solver = load(args.model, device=args.device, runtime=args.runtime)
    if not isinstance(solver.problem, Face300W):
        raise ConfigError(f"{args.model}: a {type(solver.problem).__name__} model, not a face "
                          "landmark model")
    try:
        tracker = FaceTracker(solver, args.detector, args.iterations, args.start,
                              lost_step=args.lost_step, tta=args.tta or None,
                              min_similarity=args.min_similarity, verify_every=args.verify_every)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    fps_in = capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    frames = with_face = detections = 0
    with contextlib.ExitStack() as stack:
        csv = None
        if args.csv:
            csv = stack.enter_context(atomic_path(args.csv)).open("w")
            stack.callback(csv.close)
            csv.write(csv_header() + "\n")
        writer = None
        bar = stack.enter_context(tqdm(total=total, desc="track", unit="frame"))
        t0 = time.perf_counter()
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            step = tracker.update(rgb)
            with_face += step.points is not None
            detections += step.detected and step.points is not None
            if csv is not None:
                csv.write(csv_row(frames, step.points) + "\n")
            if args.out:
                if writer is None:  # sized by the decoded frames: a rotated phone video is turned
                    writer = stack.enter_context(
                        video_writer(Path(args.out), fps_in, (rgb.shape[1], rgb.shape[0])))
                faces = [] if step.points is None else [{"box": step.box.tolist(),
                                                         "points": step.points.tolist()}]
                writer.write(draw_faces(rgb, faces))
            frames += 1
            bar.update()
        elapsed = time.perf_counter() - t0
        capture.release()
        if frames == 0:  # raised inside the stack, so that no empty output replaces a file
            raise DataError(f"{args.video}: no frame could be decoded")
    without = frames - with_face
    print(f"track: {frames} frames, {with_face} with a face"
          + (f", {without} without (no face found by detector {args.detector!r})" if without else "")
          + f", {detections} (re)detection(s); "
          f"{frames / elapsed:.2f} frames/s on {solver.device}"
          + (f"; wrote {args.csv}" if args.csv else "") + (f"; wrote {args.out}" if args.out else ""),
          file=sys.stderr)
    return 0 if without == 0 else 1
