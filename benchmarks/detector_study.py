"""Face detectors on composed photos: recall by face size, false detections, time, landmark NME.

Every registered detector (or those named with ``--detectors``, each ``NAME`` or
``NAME:KEY=VALUE,...`` for a variant, e.g. ``blazeface_full:tile=false``) runs on
the composed set of ``benchmarks/composed_faces.py`` (real 300-W common-split
faces, 30-300 px, rotated up to 30 degrees, in groups on real backgrounds, and
images with no face). Per detector:

* recall: a face is found when one calibrated box has IoU >= 0.5 with its
  landmark box, boxes and faces matched one to one, pairs of highest IoU first;
  by landmark-box side (the bins of ``composed_faces.SIZE_BINS``), over the
  faces of 40 px and more, and over all;
* false detections per image: boxes matched to no face, on the images with
  faces and on the images without;
* time per image: the median wall-clock time of ``detect`` over the images of
  640 x 480, 1920 x 1080 and 4000 x 3000 px (either orientation), one thread
  or ``--threads N`` (``cv2.setNumThreads``, ``torch.set_num_threads``; MediaPipe's
  TensorFlow Lite runtime is not told), after one warm-up call;
* the NME (% of the inter-ocular distance, ``face_landmarks.metrics``) of the
  landmark model (``--model``, default ``face300w``) on the faces the detector
  found, solved from its boxes, next to the NME from the faces' true landmark
  boxes on the same faces.

It writes the section ``detector study`` of ``--report`` (a table, and the plots
``detector_recall.png`` and ``detector_time.png`` beside it; another ``--section NAME``,
e.g. a timing at two threads, gets the tables only) and, with
``--json``, every per-face and per-image record. ``--limit N`` runs the first
N images only (a smoke test; do not report those figures).

    python benchmarks/detector_study.py --report docs/results/detector.md --json detector_study.json
    python benchmarks/detector_study.py --limit 10 --report /tmp/detector.md
    python benchmarks/detector_study.py --detectors mtcnn --threads 2 --no-nme \
        --section "detector study, 2 threads" --report docs/results/detector.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from calibrate_detector import parse_params
from common import provenance, write_section
from composed_faces import EMPTY_EVERY, MAX_ANGLE, SIZE_BINS, composed_set
from face_landmarks.detectors.calibration import greedy_match
from selfiter import plugins
from selfiter.errors import SelfiterError

REPO = Path(__file__).resolve().parents[1]
#: a calibrated box this close to a landmark box finds its face
RECALL_IOU = 0.5
#: image sizes timed, as (longer side, shorter side) -> column label
TIMED = {(640, 480): "640 x 480", (1920, 1080): "1920 x 1080", (4000, 3000): "4000 x 3000"}
#: the issue's goals for the default detector
GOAL_RECALL, GOAL_FALSE, GOAL_MS, GOAL_MIN_SIDE = 98.0, 0.1, 50.0, 40
TITLE = "Face detectors"
#: the section of the results page written by default
SECTION = "detector study"


@dataclass
class Record:
    """What one detector did on the whole set."""

    label: str
    #: per face of the set: found, and NME (%) from its box (NaN when not found or no model)
    found: list[bool] = field(default_factory=list)
    nme: list[float] = field(default_factory=list)
    #: per image: unmatched boxes, detect time (s)
    false: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def parse_detector(spec: str) -> tuple[str, dict[str, object]]:
    """``NAME`` or ``NAME:KEY=VALUE,KEY=VALUE`` -> the registered name and its parameters."""
    name, _, rest = spec.partition(":")
    return name, parse_params([p for p in rest.split(",") if p]) if rest else {}


def nme_per_face(solver, image: np.ndarray, boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Inter-ocular NME (%) of the model on each face of ``image`` solved from ``boxes:
    (K, 4)``, against ``points: (K, 68, 2)``; NaN for a face whose solve diverged."""
    from face_landmarks.metrics import face_errors
    from face_landmarks.predict import fit_faces

    if len(boxes) == 0:
        return np.zeros(0)
    fit = fit_faces(solver, [image], boxes, [0] * len(boxes))
    err = face_errors(torch.as_tensor(fit.points).reshape(len(boxes), -1),
                      torch.as_tensor(points, dtype=torch.float64).reshape(len(boxes), -1), "io")
    err = 100.0 * err.numpy()
    err[fit.nonfinite] = np.nan
    return err


def size_key(image: np.ndarray) -> tuple[int, int]:
    h, w = image.shape[:2]
    return max(h, w), min(h, w)


def threads_text(n: int) -> str:
    return "one thread" if n == 1 else f"{n} threads"


def roll_degrees(points: np.ndarray) -> np.ndarray:
    """``points: (K, 68, 2)`` px -> ``(K,)`` the angle of the line from the left eye's
    centre to the right eye's to the image's rows, degrees: the face's roll in the photo,
    its source photo's own roll included (the set turns each face by up to
    ``MAX_ANGLE`` more)."""
    d = points[:, 42:48].mean(1) - points[:, 36:42].mean(1)
    return np.degrees(np.arctan2(d[:, 1], d[:, 0]))


def summarise(records: list[Record], sides: np.ndarray, nme_gt: np.ndarray,
              sizes: list[tuple[int, int]], empty: np.ndarray, threads: int,
              rolls: np.ndarray) -> tuple[str, dict[str, dict]]:
    """The Markdown tables and the figures behind them, per detector label; ``rolls``:
    each face's :func:`roll_degrees`."""
    bins = [(lo, hi, (sides >= lo) & (sides < hi)) for lo, hi in SIZE_BINS]
    bins[-1] = (bins[-1][0], bins[-1][1], (sides >= bins[-1][0]) & (sides <= bins[-1][1]))
    big = sides >= GOAL_MIN_SIDE
    level = big & (np.abs(rolls) <= MAX_ANGLE)
    figures: dict[str, dict] = {}
    for r in records:
        found = np.array(r.found, dtype=bool)
        nme = np.array(r.nme, dtype=np.float64)
        false = np.array(r.false, dtype=np.float64)
        secs = np.array(r.seconds)
        both = found & np.isfinite(nme) & np.isfinite(nme_gt)
        ms = {label: 1000.0 * float(np.median(secs[[s == key for s in sizes]]))
              if any(s == key for s in sizes) else float("nan") for key, label in TIMED.items()}
        figures[r.label] = {
            "recall_bins": [100.0 * float(found[m].mean()) if m.any() else float("nan")
                            for _, _, m in bins],
            "recall_40": 100.0 * float(found[big].mean()) if big.any() else float("nan"),
            "recall_40_level": 100.0 * float(found[level].mean()) if level.any() else float("nan"),
            "recall_all": 100.0 * float(found.mean()) if len(found) else float("nan"),
            "false_faces": float(false[~empty].mean()) if (~empty).any() else float("nan"),
            "false_empty": float(false[empty].mean()) if empty.any() else float("nan"),
            "ms": ms,
            "nme": float(np.mean(nme[both])) if both.any() else float("nan"),
            "nme_gt": float(np.mean(nme_gt[both])) if both.any() else float("nan"),
            "nme_faces": int(both.sum()),
        }

    def pct(v: float) -> str:
        return "-" if not np.isfinite(v) else f"{v:.1f}"

    def num(v: float) -> str:
        return "-" if not np.isfinite(v) else f"{v:.2f}"

    head = ("| detector | " + " | ".join(f"{lo}-{hi} px ({int(m.sum())})" for lo, hi, m in bins)
            + f" | >= {GOAL_MIN_SIDE} px ({int(big.sum())}) | >= {GOAL_MIN_SIDE} px, roll <= "
            f"{MAX_ANGLE:g} deg ({int(level.sum())}) | all ({len(sides)}) |\n"
            + "|---|" + "---:|" * (len(bins) + 3) + "\n")
    recall = head + "".join(
        f"| `{k}` | " + " | ".join(pct(v) for v in f["recall_bins"])
        + f" | **{pct(f['recall_40'])}** | {pct(f['recall_40_level'])} | {pct(f['recall_all'])} |\n"
        for k, f in figures.items())
    labels = list(TIMED.values())
    head = ("| detector | false / image with faces | false / image without | "
            + " | ".join(f"ms per {lab}" for lab in labels)
            + " | NME from its boxes | NME from true boxes | faces | goals met |\n"
            + "|---|" + "---:|" * (5 + len(labels)) + "---|\n")
    rows = []
    for k, f in figures.items():
        goals = [f["recall_40"] >= GOAL_RECALL,
                 max(f["false_faces"], f["false_empty"]) <= GOAL_FALSE,
                 f["ms"]["1920 x 1080"] < GOAL_MS]
        rows.append(f"| `{k}` | {f['false_faces']:.2f} | {f['false_empty']:.2f} | "
                    + " | ".join("-" if not np.isfinite(f["ms"][lab]) else f"{f['ms'][lab]:.1f}"
                                 for lab in labels)
                    + f" | {num(f['nme'])} | {num(f['nme_gt'])} | {f['nme_faces']} | "
                    + ", ".join(n for n, ok in zip(("recall", "false", "time"), goals) if ok)
                    + (" |" if any(goals) else "none |") + "\n")
    n_sizes = {lab: sum(s == key for s in sizes) for key, lab in TIMED.items()}
    text = ("**Recall (%) by landmark-box side** (faces in each bin in brackets; found: a "
            f"calibrated box with IoU >= {RECALL_IOU}; roll: the eye line's angle to the "
            f"horizontal, the source photo's own roll plus up to {MAX_ANGLE:g} degrees of "
            f"the composition)\n\n{recall}\n"
            f"**False detections, time and landmark error** (times at {threads_text(threads)}: "
            "median over "
            + ", ".join(f"{n} images of {lab}" for lab, n in n_sizes.items())
            + "; NME: % of the inter-ocular distance, mean over the faces found whose solve "
            "stayed finite, from the detector's box and from the true landmark box of the "
            "same faces)\n\n" + head + "".join(rows)
            + f"\nGoals (issue 12): recall >= {GOAL_RECALL:g} % on faces of {GOAL_MIN_SIDE} px "
            f"and more, <= {GOAL_FALSE:g} false detections per image, under {GOAL_MS:g} ms for "
            "a 1920 x 1080 image.\n")
    return text, figures


def plot(figures: dict[str, dict], folder: Path) -> list[str]:
    """``detector_recall.png`` and ``detector_time.png`` in ``folder``; their names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    centres = [np.sqrt(lo * hi) for lo, hi in SIZE_BINS]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, f in figures.items():
        ax.plot(centres, f["recall_bins"], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xticks(centres, [f"{lo}-{hi}" for lo, hi in SIZE_BINS])
    ax.minorticks_off()
    ax.set_xlabel("landmark-box side (px)")
    ax.set_ylabel("recall (%)")
    ax.set_ylim(0, 101)
    ax.axhline(GOAL_RECALL, color="grey", lw=0.8, ls="--")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "detector_recall.png", dpi=110)
    plt.close(fig)

    labels = list(TIMED.values())
    fig, ax = plt.subplots(figsize=(7, 4.2))
    width = 0.8 / max(1, len(labels))
    x = np.arange(len(figures))
    for i, lab in enumerate(labels):
        ax.bar(x + (i - (len(labels) - 1) / 2) * width,
               [f["ms"][lab] for f in figures.values()], width, label=lab)
    ax.set_xticks(x, list(figures), rotation=20, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("ms per image (median, one thread)")
    ax.axhline(GOAL_MS, color="grey", lw=0.8, ls="--")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "detector_time.png", dpi=110)
    plt.close(fig)
    return ["detector_recall.png", "detector_time.png"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detectors", nargs="+", metavar="SPEC",
                   help="NAME or NAME:KEY=VALUE,... (default: every registered detector)")
    p.add_argument("--data-root", default=str(REPO.parent / "shared" / "data" / "300w"),
                   help="300-W in its official layout (its common split is composed)")
    p.add_argument("--images", type=int, default=200, help="images in the set (default: 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="run the first N images only (smoke test)")
    p.add_argument("--model", default="face300w", help="landmark model for the NME")
    p.add_argument("--no-nme", action="store_true", help="skip the landmark model")
    p.add_argument("--report", help="write the section 'detector study' of this Markdown page")
    p.add_argument("--section", default=SECTION, help=f"the section written (default: {SECTION})")
    p.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (default: 1)")
    p.add_argument("--json", help="write every per-face and per-image record here")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error(f"--threads must be 1 or more, got {args.threads}")
    cv2.setNumThreads(args.threads)
    torch.set_num_threads(args.threads)

    specs = args.detectors or sorted(plugins.components("detector"))
    detectors, skipped = {}, {}
    warm = np.full((480, 640, 3), 128, np.uint8)
    for spec in specs:
        name, params = parse_detector(spec)
        try:
            detectors[spec] = plugins.get("detector", name).obj(**params)
        except SelfiterError as exc:
            skipped[spec] = str(exc)
            print(f"skipped {spec}: {exc}", file=sys.stderr)
            continue
        detectors[spec].detect(warm)
    solver = None
    if not args.no_nme:
        from selfiter.api import load

        solver = load(args.model)
    records = [Record(label) for label in detectors]
    sides, rolls, nme_gt, sizes, empty = [], [], [], [], []
    n_images = args.images if args.limit is None else min(args.limit, args.images)
    totals = dict.fromkeys(detectors, 0.0)
    started = time.perf_counter()
    bar = tqdm(composed_set(args.data_root, args.images, args.seed, args.limit), total=n_images,
               desc="detector study", unit="image", file=sys.stderr, mininterval=2)
    for comp in bar:
        sides += list(comp.boxes[:, 2] - comp.boxes[:, 0])
        rolls += list(roll_degrees(comp.points))
        sizes.append(size_key(comp.image))
        empty.append(len(comp.boxes) == 0)
        gt_err = (nme_per_face(solver, comp.image, comp.boxes, comp.points) if solver
                  else np.full(len(comp.boxes), np.nan))
        nme_gt += list(gt_err)
        for rec, (spec, det) in zip(records, detectors.items()):
            t0 = time.perf_counter()
            boxes = np.asarray(det.detect(comp.image), dtype=np.float64).reshape(-1, 4)
            dt = time.perf_counter() - t0
            totals[spec] += dt
            match, _ = greedy_match(comp.boxes, boxes, RECALL_IOU)
            hit = match >= 0
            err = np.full(len(comp.boxes), np.nan)
            if solver and hit.any():
                err[hit] = nme_per_face(solver, comp.image, boxes[match[hit]], comp.points[hit])
            rec.found += list(hit)
            rec.nme += list(err)
            rec.false.append(int(len(boxes) - hit.sum()))
            rec.seconds.append(dt)
        bar.set_postfix(faces=len(sides))
    bar.close()
    elapsed = time.perf_counter() - started
    print(f"{n_images} images, {len(sides)} faces in {elapsed:.0f} s; detect time per "
          "detector: " + ", ".join(f"{k} {v:.0f} s" for k, v in totals.items()), file=sys.stderr)

    sides_a, nme_gt_a, empty_a = np.array(sides), np.array(nme_gt), np.array(empty, dtype=bool)
    text, figures = summarise(records, sides_a, nme_gt_a, sizes, empty_a, args.threads,
                              np.array(rolls))
    n_empty = int(empty_a.sum())
    intro = (f"The composed set (`benchmarks/composed_faces.py`, seed {args.seed}): "
             f"{n_images} images, {n_images - n_empty} with {len(sides)} faces and {n_empty} "
             f"without (every {EMPTY_EVERY}th). Landmark model `{args.model}`"
             + (" (not run)" if solver is None else "") + ". Detectors with their defaults "
             "unless a parameter is named."
             + "".join(f" Not run: `{k}` ({v})." for k, v in skipped.items()))
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "faces": {"side": sides, "roll": rolls, "nme_true_box": nme_gt},
            "images": {"size": sizes, "empty": empty},
            "detectors": {r.label: {"found": r.found, "nme": r.nme, "false": r.false,
                                    "seconds": r.seconds} for r in records},
            "figures": figures}, default=float) + "\n")
    if args.report:
        # the plots compare the detectors: drawn for the main section only
        names = plot(figures, Path(args.report).parent) if args.section == SECTION else []
        images = "\n\n".join(f"![{n[:-4].replace('_', ' ')}]({n})" for n in names)
        write_section(args.report, args.section,
                      f"{provenance(__file__, argv)}\n\n{intro}\n\n{text}\n{images}\n", TITLE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
