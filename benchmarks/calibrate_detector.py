"""Calibrate a registered face detector to the landmark-box convention, and measure its recall.

The model's face frames are cut around landmark boxes (the square centred on
the 68 ground-truth points' bounding box, side its longer side); a detector
box is placed and sized differently. On the 300-W training faces this script

1. runs the detector (``--detector NAME``, uncalibrated) on every image and
   matches each annotated face to the detection of highest IoU with its
   landmark box (IoU >= ``--match-iou``);
2. fits the calibration over the matched faces (:meth:`BoxCalibration.fit`):
   the centre offset ``(dx, dy)`` in fractions of the detector box's side and
   the side ratio ``scale`` (landmark box / detector box) of highest mean IoU
   with the landmark boxes;
3. writes it to ``plugins/face_landmarks/models/NAME_calibration.json``.

It then reports, on the training faces and on the common test subset
(helen/testset + lfpw/testset, 554 faces): recall (a face counts as found when
a calibrated box overlaps its landmark box with IoU >= 0.5), the IoU of raw and
calibrated boxes, the centre and size errors of calibrated boxes, and the
detections per image; no times (``benchmarks/detector_study.py`` measures
those, one thread, on images of photo sizes). ``--limit N`` uses N evenly
spaced faces of each split (for the slow CNN), ``--param KEY=VALUE`` sets a
detector parameter (e.g. ``min_size=80``); both are written into the JSON.
With ``--checkpoint`` it also scores the solver on the common faces found,
started from the calibrated boxes versus the ground-truth landmark boxes.

    python benchmarks/calibrate_detector.py --detector haar --report docs/results/detector.md
    python benchmarks/calibrate_detector.py --detector dlib_mmod --limit 300 --param min_size=80
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from common import provenance, write_section
from face_landmarks.data.dataset import decode_image
from face_landmarks.data.frame import landmark_boxes
from face_landmarks.data.layout import list_faces
from face_landmarks.data.pts import read_pts
from face_landmarks.detectors.calibration import BoxCalibration, calibration_file, greedy_match
from selfiter import plugins
from selfiter.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
#: a calibrated box this close to the landmark box counts as finding the face
RECALL_IOU = 0.5
#: the results page the ``--report`` section goes to when none is named
TITLE = "Face detectors"


@dataclass
class Detections:
    """A detector's raw boxes on one split: per face, its landmark box and every raw box."""

    gt: np.ndarray  # (N, 4) landmark boxes, px
    raw: list[np.ndarray]  # N arrays (M_i, 4), px
    paths: list[str]


def evenly(items: list, limit: int | None) -> list:
    """``limit`` items spread evenly over ``items`` (all of them when None or more)."""
    if limit is None or limit >= len(items):
        return items
    return [items[i] for i in np.unique(np.linspace(0, len(items) - 1, limit).round().astype(int))]


def detect_split(detector, data_root: Path, split: str, limit: int | None) -> Detections:
    faces = evenly(list_faces(data_root, split), limit)
    gt = landmark_boxes(torch.stack([read_pts(f.pts) for f in faces]), 1.0).numpy()
    raw = [detector.raw_boxes(decode_image(f.image))
           for f in tqdm(faces, desc=f"{split}", unit="image", file=sys.stderr)]
    return Detections(gt, raw, [str(f.image) for f in faces])


def best_match(gt: np.ndarray, boxes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per face (one per image), the detection of highest IoU with its landmark box and
    that IoU (``(N, 4)`` NaN-filled and ``(N,)`` 0 where there is no detection)."""
    matched = np.full_like(gt, np.nan)
    best = np.zeros(len(gt))
    for i, b in enumerate(boxes):
        (j,), (best[i],) = greedy_match(gt[i:i + 1], b, min_iou=0.0)
        if j >= 0:
            matched[i] = b[j]
    return matched, best


def split_stats(d: Detections, cal: BoxCalibration, match_iou: float) -> dict[str, float]:
    """Recall and box quality of the raw and the calibrated detector on one split."""
    raw, raw_iou = best_match(d.gt, d.raw)
    cal_box, cal_iou = best_match(d.gt, [cal.apply(b) for b in d.raw])
    found = cal_iou >= RECALL_IOU
    side = d.gt[:, 2] - d.gt[:, 0]
    centre_err = np.hypot((cal_box[:, 0] + cal_box[:, 2] - d.gt[:, 0] - d.gt[:, 2]) / 2,
                          (cal_box[:, 1] + cal_box[:, 3] - d.gt[:, 1] - d.gt[:, 3]) / 2) / side
    size_ratio = (cal_box[:, 2] - cal_box[:, 0]) / side

    def median(values: np.ndarray) -> float:
        return float(np.median(values)) if len(values) else float("nan")

    return {
        "faces": len(d.gt),
        "any_detection": 100.0 * float(np.mean([len(b) > 0 for b in d.raw])),
        "raw_recall": 100.0 * float(np.mean(raw_iou >= RECALL_IOU)),
        "raw_matched": 100.0 * float(np.mean(raw_iou >= match_iou)),
        "recall": 100.0 * float(found.mean()),
        "raw_iou": median(raw_iou[raw_iou >= match_iou]),
        "iou": median(cal_iou[found]),
        "centre_err": median(centre_err[found]),
        "size_err": median(np.abs(np.log(size_ratio[found]))),
        "per_image": float(np.mean([len(b) for b in d.raw])),
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
    ]
    head = "| | " + " | ".join(stats) + " |\n|---|" + "---:|" * len(stats) + "\n"
    body = "".join(f"| {label} | " + " | ".join(fmt.format(s[key]) for s in stats.values()) + " |\n"
                   for key, label, fmt in rows)
    return head + body


def parse_params(items: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` strings -> a dict, each value read as YAML (``80`` is an int)."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE")
        params[key] = yaml.safe_load(value)
    return params


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detector", default="haar", help="registered detector (default: haar)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a detector parameter, e.g. min_size=80 (repeatable)")
    p.add_argument("--data-root", default=str(REPO.parent / "shared" / "data" / "300w"),
                   help="300-W in its official layout")
    p.add_argument("--out", help="calibration JSON to write (default: the detector's shipped one)")
    p.add_argument("--limit", type=int, help="use this many evenly spaced faces of each split")
    p.add_argument("--match-iou", type=float, default=0.3,
                   help="least IoU of a raw detection with the landmark box to enter the fit")
    p.add_argument("--checkpoint", help="also score this solver from detector vs landmark boxes")
    p.add_argument("--report", help="write the figures as the section 'calibration: NAME' of "
                                    "this Markdown page")
    args = p.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    params = parse_params(args.param)
    out = args.out or str(calibration_file(args.detector))

    detector = plugins.get("detector", args.detector).obj(calibration=None, **params)
    root = Path(args.data_root)
    train = detect_split(detector, root, "train", args.limit)
    total = len(list_faces(root, "train"))
    raw, overlap = best_match(train.gt, train.raw)
    used = overlap >= args.match_iou
    cal = BoxCalibration.fit(train.gt[used], raw[used])
    subset = "" if len(train.gt) == total else (f", an evenly spaced subset of {len(train.gt)} "
                                                 f"of the {total} training faces")
    cal.save(out, fitted_on=f"300-W train, {int(used.sum())} of {len(used)} faces matched "
                            f"(raw IoU >= {args.match_iou}){subset}",
             detector=args.detector, params=params,
             script="benchmarks/calibrate_detector.py")
    print(f"calibration {cal} from {int(used.sum())} faces; wrote {out}", file=sys.stderr)

    common = detect_split(detector, root, "common", args.limit)
    stats = {f"train ({len(train.gt):,})": split_stats(train, cal, args.match_iou),
             f"common ({len(common.gt):,})": split_stats(common, cal, args.match_iou)}
    settings = ", ".join(f"{k} = {v}" for k, v in params.items()) or "its defaults"
    text = (f"Detector `{args.detector}` ({settings}). Calibration: dx = {cal.dx:+.4f}, "
            f"dy = {cal.dy:+.4f} (fractions of the detector box's side), scale = "
            f"{cal.scale:.4f} (the highest mean IoU, `BoxCalibration.fit`), over "
            f"{int(used.sum())} of {len(used)} training faces"
            f"{subset} whose best raw box has IoU >= {args.match_iou} with the landmark box."
            f"\n\n{markdown(stats)}")
    if args.checkpoint:
        nme = solver_scores(args.checkpoint, common, cal)
        text += ("\nSolver on the common faces found, NME (% of inter-ocular distance), "
                 f"checkpoint `{args.checkpoint}`: from calibrated detector boxes "
                 f"{nme['detector']:.2f}, from ground-truth landmark boxes {nme['landmark box']:.2f}.\n")
    print(text)
    if args.report:
        intro = ("On the compact 300-W copy (320 x 320 crops, landmark box about 200 px, one "
                 f"face each). A face is found when a calibrated box has IoU >= {RECALL_IOU} "
                 "with its landmark box (the square of side the longer side of the 68 points' "
                 "bounding box, centred on it). Every face of these crops is large and centred; "
                 "the composed photos above test small, rotated and grouped faces.")
        write_section(args.report, f"calibration: {args.detector}",
                      f"{provenance(__file__, argv)}\n\n{intro}\n\n{text}", TITLE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
