"""Calibrate the Haar face detector to the landmark-box convention, and measure its recall.

The model's face frames are cut around landmark boxes (the square centred on
the 68 ground-truth points' bounding box, side its longer side); a detector
box is placed and sized differently. On the 300-W training faces this script

1. runs the raw cascade on every image and matches each annotated face to the
   detection of highest IoU with its landmark box (IoU >= ``--match-iou``);
2. fits the calibration as medians over the matched faces: the centre offset
   ``(dx, dy)`` in fractions of the detector box's side and the side ratio
   ``scale`` (landmark box / detector box);
3. writes it to ``plugins/face_landmarks/models/haar_calibration.json``.

It then reports, on the training faces and on the common test subset
(helen/testset + lfpw/testset, 554 faces): recall (a face counts as found when
a calibrated box overlaps its landmark box with IoU >= 0.5), the IoU of raw and
calibrated boxes, the centre and size errors of calibrated boxes, and the
detections per image. With ``--checkpoint`` it also scores the solver on the
common faces found, started from the calibrated boxes versus the ground-truth
landmark boxes.

    python benchmarks/calibrate_detector.py --report docs/results/detector.md
    python benchmarks/calibrate_detector.py --checkpoint face300w --report docs/results/detector.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common import write_report
from face_landmarks.data.dataset import decode_image
from face_landmarks.data.frame import landmark_boxes
from face_landmarks.data.layout import list_faces
from face_landmarks.data.pts import read_pts
from face_landmarks.detection import CALIBRATION_FILE, BoxCalibration, HaarFaceDetector, box_iou

REPO = Path(__file__).resolve().parents[1]
#: a calibrated box this close to the landmark box counts as finding the face
RECALL_IOU = 0.5


@dataclass
class Detections:
    """The raw cascade on one split: per face, its landmark box and every raw detection."""

    gt: np.ndarray  # (N, 4) landmark boxes, px
    raw: list[np.ndarray]  # N arrays (M_i, 4), px
    paths: list[str]
    seconds_per_image: float


def detect_split(detector: HaarFaceDetector, data_root: Path, split: str) -> Detections:
    faces = list_faces(data_root, split)
    gt = landmark_boxes(torch.stack([read_pts(f.pts) for f in faces]), 1.0).numpy()
    raw, elapsed = [], 0.0
    for i, f in enumerate(faces):
        image = decode_image(f.image)
        t0 = time.perf_counter()
        raw.append(detector.raw_boxes(image))
        elapsed += time.perf_counter() - t0
        if (i + 1) % 250 == 0:
            print(f"  {split}: {i + 1}/{len(faces)} images", file=sys.stderr)
    return Detections(gt, raw, [str(f.image) for f in faces], elapsed / len(faces))


def best_match(gt: np.ndarray, boxes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per face, the detection of highest IoU with its landmark box and that IoU
    (``(N, 4)`` NaN-filled and ``(N,)`` 0 where there is no detection)."""
    matched = np.full_like(gt, np.nan)
    best = np.zeros(len(gt))
    for i, b in enumerate(boxes):
        if len(b):
            o = box_iou(gt[i:i + 1], b)[0]
            j = int(o.argmax())
            matched[i], best[i] = b[j], o[j]
    return matched, best


def fit_calibration(gt: np.ndarray, det: np.ndarray) -> BoxCalibration:
    """Median offset and scale taking detector boxes ``det: (N, 4)`` to ``gt: (N, 4)``."""
    side = det[:, 2] - det[:, 0]
    dx = ((gt[:, 0] + gt[:, 2]) - (det[:, 0] + det[:, 2])) / 2 / side
    dy = ((gt[:, 1] + gt[:, 3]) - (det[:, 1] + det[:, 3])) / 2 / side
    scale = (gt[:, 2] - gt[:, 0]) / side
    return BoxCalibration(float(np.median(dx)), float(np.median(dy)), float(np.median(scale)))


def split_stats(d: Detections, cal: BoxCalibration, match_iou: float) -> dict[str, float]:
    """Recall and box quality of the raw and the calibrated cascade on one split."""
    raw, raw_iou = best_match(d.gt, d.raw)
    calibrated = [cal.apply(b) for b in d.raw]
    cal_box, cal_iou = best_match(d.gt, calibrated)
    found = cal_iou >= RECALL_IOU
    side = d.gt[:, 2] - d.gt[:, 0]
    centre_err = np.hypot((cal_box[:, 0] + cal_box[:, 2] - d.gt[:, 0] - d.gt[:, 2]) / 2,
                          (cal_box[:, 1] + cal_box[:, 3] - d.gt[:, 1] - d.gt[:, 3]) / 2) / side
    size_ratio = (cal_box[:, 2] - cal_box[:, 0]) / side
    return {
        "faces": len(d.gt),
        "any_detection": 100.0 * float(np.mean([len(b) > 0 for b in d.raw])),
        "raw_recall": 100.0 * float(np.mean(raw_iou >= RECALL_IOU)),
        "raw_matched": 100.0 * float(np.mean(raw_iou >= match_iou)),
        "recall": 100.0 * float(found.mean()),
        "raw_iou": float(np.median(raw_iou[raw_iou >= match_iou])),
        "iou": float(np.median(cal_iou[found])),
        "centre_err": float(np.median(centre_err[found])),
        "size_err": float(np.median(np.abs(np.log(size_ratio[found])))),
        "per_image": float(np.mean([len(b) for b in d.raw])),
        "ms": 1000.0 * d.seconds_per_image,
    }


def solver_scores(checkpoint: str, d: Detections, cal: BoxCalibration) -> dict[str, float]:
    """NME (inter-ocular, %) of the solver on the faces found, from calibrated detector
    boxes and from the ground-truth landmark boxes."""
    from face_landmarks.metrics import face_errors
    from face_landmarks.predict import predict_faces, read_image
    from selfiter.api import load

    solver = load(checkpoint)
    box, overlap = best_match(d.gt, [cal.apply(b) for b in d.raw])
    found = np.flatnonzero(overlap >= RECALL_IOU)
    images = [read_image(d.paths[i]) for i in found]
    truth = torch.stack([read_pts(Path(d.paths[i]).with_suffix(".pts")) for i in found])
    out = {}
    for name, boxes in (("detector", box[found]), ("landmark box", d.gt[found])):
        faces = predict_faces(solver, images, boxes=[[b] for b in boxes])
        pred = torch.tensor([f[0]["points"] for f in faces], dtype=torch.float64)
        err = face_errors(pred.reshape(len(found), -1), truth.reshape(len(found), -1), "io")
        out[name] = 100.0 * float(err.mean())
    return out


def markdown(stats: dict[str, dict[str, float]]) -> str:
    rows = [
        ("faces", "faces", "{:.0f}"),
        ("any_detection", "images with any raw detection (%)", "{:.1f}"),
        ("raw_recall", "recall of raw boxes, IoU >= 0.5 (%)", "{:.1f}"),
        ("recall", "**recall of calibrated boxes, IoU >= 0.5 (%)**", "**{:.1f}**"),
        ("raw_iou", "median IoU, raw box (matched faces)", "{:.3f}"),
        ("iou", "median IoU, calibrated box (faces found)", "{:.3f}"),
        ("centre_err", "median centre error / landmark-box side", "{:.3f}"),
        ("size_err", "median abs log(side ratio)", "{:.3f}"),
        ("per_image", "detections per image", "{:.2f}"),
        ("ms", "cascade time per image (ms)", "{:.1f}"),
    ]
    head = "| | " + " | ".join(stats) + " |\n|---|" + "---:|" * len(stats) + "\n"
    body = "".join(f"| {label} | " + " | ".join(fmt.format(s[key]) for s in stats.values()) + " |\n"
                   for key, label, fmt in rows)
    return head + body


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=str(REPO.parent / "shared" / "data" / "300w"),
                   help="300-W in its official layout")
    p.add_argument("--out", default=str(CALIBRATION_FILE), help="calibration JSON to write")
    p.add_argument("--match-iou", type=float, default=0.3,
                   help="least IoU of a raw detection with the landmark box to enter the fit")
    p.add_argument("--checkpoint", help="also score this solver from detector vs landmark boxes")
    p.add_argument("--report", help="write the figures as Markdown to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    detector = HaarFaceDetector(calibration=None)
    root = Path(args.data_root)
    train = detect_split(detector, root, "train")
    raw, overlap = best_match(train.gt, train.raw)
    used = overlap >= args.match_iou
    cal = fit_calibration(train.gt[used], raw[used])
    cal.save(args.out, fitted_on=f"300-W train, {int(used.sum())} of {len(used)} faces matched "
                                 f"(raw IoU >= {args.match_iou})",
             script="benchmarks/calibrate_detector.py")
    print(f"calibration {cal} from {int(used.sum())} faces; wrote {args.out}", file=sys.stderr)

    common = detect_split(detector, root, "common")
    stats = {"train (2,014)": split_stats(train, cal, args.match_iou),
             "common (554)": split_stats(common, cal, args.match_iou)}
    text = (f"Calibration: dx = {cal.dx:+.4f}, dy = {cal.dy:+.4f} (fractions of the detector box's "
            f"side), scale = {cal.scale:.4f}, medians over {int(used.sum())} of {len(used)} "
            f"training faces whose best raw box has IoU >= {args.match_iou} with the landmark box."
            f"\n\n{markdown(stats)}")
    if args.checkpoint:
        nme = solver_scores(args.checkpoint, common, cal)
        text += ("\nSolver on the common faces found, NME (% of inter-ocular distance), "
                 f"checkpoint `{args.checkpoint}`: from calibrated detector boxes "
                 f"{nme['detector']:.2f}, from ground-truth landmark boxes {nme['landmark box']:.2f}.\n")
    print(text)
    if args.report:
        write_report(args.report, "Face detector: Haar cascade calibrated to landmark boxes", __file__, argv,
                     ("The frontal-face Haar cascade of opencv-python "
            f"(`{detector.scale_factor}` scale step, {detector.min_neighbors} neighbours, "
            f"{detector.min_size} px least face, histogram-equalised grey) on the compact "
            "300-W copy (320 x 320 crops, landmark box about 200 px). A face is found when a "
            f"calibrated box has IoU >= {RECALL_IOU} with its landmark box (the square of side "
            "the longer side of the 68 points' bounding box, centred on it). Times are wall clock "
            "on a machine shared with other work. Every face of these crops is large and centred; "
            "in a full photo, faces under the least size are missed as well."),
                     text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
