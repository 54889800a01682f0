"""68 landmarks on raw photos: read, find faces, cut their frames, solve in one batch, map back.

Conventions of every function here:

* images are ``(H, W, 3)`` uint8 **RGB** arrays (the training data's channel
  order; an OpenCV ``imread`` result is BGR and must be flipped first), in
  their displayed orientation. :func:`to_rgb8` brings grey ``(H, W)`` or
  ``(H, W, 1)``, RGBA ``(H, W, 4)`` and 16-bit arrays to that; :func:`read_image`
  decodes a file and applies its EXIF orientation;
* points and boxes are in 0-based pixels of the original image with the
  pixel-centre convention of :mod:`face_landmarks.data.frame`;
* a face's box is a *landmark box* estimate: the square around the face's 68
  points (:func:`~face_landmarks.data.frame.landmark_boxes` with scale 1),
  which the calibrated detector returns and given boxes are taken to be; the
  frame around it is ``box_scale`` times larger, as in training.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from face_landmarks.data.dataset import decode_image
from face_landmarks.data.frame import box_frames, frame_to_image, image_to_frame, warp_to_frame
from face_landmarks.detectors import DEFAULT_DETECTOR
from face_landmarks.interfaces import Detector
from selfiter import plugins
from selfiter.errors import CheckpointError, ConfigError, DataError

#: what :func:`predict_faces` takes for one image: an array, a PIL image or a file path
ImageInput = Union[np.ndarray, Image.Image, str, Path]
#: a face box ``(x0, y0, x1, y1)`` in image px
Box = Sequence[float]

_EXIF_ORIENTATION_TAG = 0x0112
#: EXIF orientation -> the transform from the stored pixel grid to the displayed image
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def exif_orientation(path: str | Path) -> int:
    """The EXIF orientation tag of an image file (1-8), 1 when it has none or the
    file has no EXIF block PIL can read."""
    try:
        with Image.open(path) as im:
            value = im.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return 1
    return int(value) if value in _ORIENT else 1


def read_image(path: str | Path) -> np.ndarray:
    """An image file as displayed: ``(H, W, 3)`` uint8 RGB, its EXIF orientation applied.

    :func:`~face_landmarks.data.dataset.decode_image` keeps the stored pixel
    grid (300-W annotations refer to it; its ``IMREAD_UNCHANGED``, needed for
    16-bit and alpha, ignores the tag, whereas ``cv2.imread``'s default
    ``IMREAD_COLOR`` would apply it); a photo from a phone is stored sideways
    with an orientation tag, and its landmarks are wanted upright. Raises
    :class:`DataError` naming the file when it cannot be read."""
    image = decode_image(path)
    turn = _ORIENT.get(exif_orientation(path))
    return image if turn is None else np.ascontiguousarray(turn(image))


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """An RGB-ordered array as ``(H, W, 3)`` uint8: grey is replicated, alpha dropped,
    16-bit scaled to 8-bit. Raises :class:`DataError` for any other shape or type."""
    a = np.asarray(image)
    if a.dtype == np.uint16:
        a = np.round(a / 257.0).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise DataError(f"image array of type {a.dtype}: expected uint8 or uint16")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    elif a.ndim != 3 or a.shape[2] not in (3, 4):
        raise DataError(f"image array of shape {a.shape}: expected (H, W), (H, W, 3) or (H, W, 4)")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise DataError(f"image array of shape {a.shape} has no pixels")
    return np.ascontiguousarray(a[..., :3])


def load_image(image: ImageInput) -> np.ndarray:
    """A path (:func:`read_image`), a PIL image (its EXIF orientation applied, then
    ``convert("RGB")``: palette, grey, alpha and CMYK images alike) or an RGB array
    (:func:`to_rgb8`) as ``(H, W, 3)`` uint8."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, Image.Image):
        return to_rgb8(np.asarray(ImageOps.exif_transpose(image).convert("RGB")))
    return to_rgb8(image)


@functools.lru_cache(maxsize=8)
def make_detector(name: str, **params: Any) -> Detector:
    """The registered detector ``name``, built with its defaults and ``params`` (e.g.
    ``min_size=60``), once per process and parameters. A detector that takes no such
    parameter, or whose optional package is missing, raises a one-line :class:`ConfigError`."""
    factory = plugins.get("detector", name).obj
    if params:
        try:
            inspect.signature(factory).bind(**params)
        except TypeError:
            raise ConfigError(f"detector {name!r} takes no {', '.join(sorted(params))} "
                              "parameter") from None
    return factory(**params)


def resolve_detector(detector: str | Detector | None) -> Detector | None:
    """A detector instance from a registered name, an instance, or None."""
    return make_detector(detector) if isinstance(detector, str) else detector


@dataclass
class FaceFit:
    """The solves of N faces (any number of images)."""

    #: landmarks in image px, ``(N, 68, 2)`` float64
    points: np.ndarray
    #: the landmark boxes the frames were cut around, ``(N, 4)`` float64 image px
    boxes: np.ndarray
    #: RMS over the 136 coordinates of each face's last solver step, ``(N,)`` frame px
    last_step: np.ndarray
    #: faces whose solve went non-finite, ``(N,)`` bool
    nonfinite: np.ndarray


def fit_faces(solver: Any, images: Sequence[np.ndarray], boxes: np.ndarray,
              owners: Sequence[int], start: np.ndarray | None = None,
              iterations: int | None = None, tta: bool | None = None) -> FaceFit:
    """Solve N faces together, each in the frame of its box.

    ``images``: RGB ``(H, W, 3)`` uint8 arrays; ``boxes: (N, 4)`` landmark boxes
    (image px); ``owners: (N,)`` the index into ``images`` of each face;
    ``start: (N, 68, 2)`` image px starting points, or None for the model's
    mean shape in every frame; ``iterations`` and ``tta`` (also solve the mirrored
    frames and average) default to the solver config's.
    ``solver`` is a :class:`selfiter.api.TrainedSolver` of :class:`Face300W`."""
    problem = solver.problem
    n = len(owners)
    b = torch.as_tensor(np.asarray(boxes, dtype=np.float64).reshape(n, 4))
    if n == 0:
        empty = np.zeros(0)
        return FaceFit(np.zeros((0, 68, 2)), b.numpy(), empty, empty.astype(bool))
    # the frame is box_scale times the landmark box, exactly the training framing
    affines = box_frames(b, problem.frame_size, scale=problem.box_scale)  # (N, 2, 3) float64
    frames = np.stack([warp_to_frame(images[o], a, problem.frame_size)
                       for o, a in zip(owners, affines.numpy())])
    inputs = torch.from_numpy(frames).permute(0, 3, 1, 2)  # (N, 3, S, S) uint8
    theta0 = None
    if start is not None:
        theta0 = image_to_frame(torch.as_tensor(start, dtype=torch.float64), affines)
        theta0 = theta0.reshape(n, -1).to(torch.float32)
    result = solver.solve(inputs, theta0, iterations=iterations, tta=tta)
    traj = result.trajectory.cpu()  # (K+1, N, 136) frame px
    last_step = ((traj[-1] - traj[-2]).pow(2).mean(1).sqrt() if traj.shape[0] > 1
                 else torch.zeros(n))
    points = frame_to_image(result.theta.cpu().to(torch.float64).reshape(n, -1, 2), affines)
    return FaceFit(points.numpy(), b.numpy(), last_step.numpy(), result.nonfinite.cpu().numpy())


def check_iterations(solver: Any, iterations: int | None) -> None:
    """Refuse a solver that is no face model (a checkpoint of another problem), or an
    iteration count it cannot run (< 0, or past a cascade's stages)."""
    from face_landmarks.problem import Face300W
    from selfiter.checkpoint import model_signature

    if not isinstance(solver.problem, Face300W):
        raise CheckpointError(f"checkpoint {solver.source} holds a "
                              f"{model_signature(solver.config.to_yaml())} model; 68 face "
                              "landmarks need a face300w model")
    if iterations is None:
        return
    if iterations < 0:
        raise ConfigError(f"iterations must be >= 0, got {iterations}")
    if solver.max_iterations is not None and iterations > solver.max_iterations:
        raise ConfigError(f"iterations={iterations}: a cascade of {solver.max_iterations} stages "
                          f"runs at most {solver.max_iterations}")


def predict_faces(solver: Any, images: ImageInput | Sequence[ImageInput],
                  boxes: Sequence[Box] | Sequence[Sequence[Box] | None] | None = None,
                  detector: str | Detector | None = DEFAULT_DETECTOR,
                  iterations: int | None = None,
                  tta: bool | None = None) -> list[list[dict[str, list]]]:
    """68 landmarks of every face in every image, all faces solved in one batch.

    ``images``: one image or a list of them, each a file path or an RGB array
    (see the module's conventions). ``boxes``: the faces' landmark boxes
    ``(x0, y0, x1, y1)``, one list per image (for a single image, its list);
    an image whose entry is None, or every image when ``boxes`` is None, has
    its faces found by ``detector`` (a registered detector name or a
    :class:`Detector`). Every face starts from the model's mean shape in its
    frame; ``iterations`` defaults to the solver config's, and so does ``tta``: also
    solve every face mirrored and average the two (about 3 % less error, twice the
    solver's work).

    Returns one list per image (also for a single image) of faces, each
    ``{"box": [x0, y0, x1, y1], "points": [[x, y]] * 68}``: plain floats in
    0-based px of the image as displayed, ready for ``json.dumps``. An image
    without a face gives ``[]``; a face whose solve diverged to NaN is left
    out. Raises :class:`DataError` for an unreadable image,
    :class:`ConfigError` for bad options."""
    check_iterations(solver, iterations)
    single = isinstance(images, (str, Path, np.ndarray, Image.Image))
    items = [images] if single else list(images)
    if boxes is None:
        per_image: list[Any] = [None] * len(items)
    else:
        per_image = [boxes] if single else list(boxes)
        if len(per_image) != len(items):
            raise ConfigError(f"boxes: {len(per_image)} lists for {len(items)} images")
    arrays = [load_image(x) for x in items]
    found: list[np.ndarray] = []
    for image, given in zip(arrays, per_image):
        if given is None:
            det = resolve_detector(detector)
            if det is None:
                raise ConfigError("no boxes given and no detector to find the faces")
            given = det.detect(image)
        b = np.asarray(given, dtype=np.float64).reshape(-1, 4)
        if not (np.isfinite(b).all() and (b[:, 2:] > b[:, :2]).all()):
            raise ConfigError("boxes must be finite (x0, y0, x1, y1) with x1 > x0, y1 > y0; "
                              f"got {b.tolist()}")
        found.append(b)
    owners = [i for i, b in enumerate(found) for _ in range(len(b))]
    fit = fit_faces(solver, arrays, np.concatenate(found) if found else np.zeros((0, 4)), owners,
                    iterations=iterations, tta=tta)
    out: list[list[dict[str, list]]] = [[] for _ in items]
    for box, points, owner, bad in zip(fit.boxes, fit.points, owners, fit.nonfinite):
        if not bad:
            out[owner].append({"box": box.tolist(), "points": points.tolist()})
    return out


def draw_faces(image: np.ndarray, faces: Sequence[dict[str, list]]) -> np.ndarray:
    """A BGR copy of ``image: (H, W, 3)`` uint8 RGB with each face's box (blue) and
    points (green) drawn, sized to the face; ready for ``cv2.imencode``/``VideoWriter``."""
    canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    for face in faces:
        x0, y0, x1, y1 = face["box"]
        thick = max(1, round((x1 - x0) / 150))
        cv2.rectangle(canvas, (round(x0), round(y0)), (round(x1), round(y1)), (255, 128, 0), thick)
        for x, y in face["points"]:
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(canvas, (round(x), round(y)), thick + 1, (0, 255, 0), -1, cv2.LINE_AA)
    return canvas
