"""The face solver exported every way `selfiter export` can: export time, file size, agreement
with PyTorch and inference time, on the 12 sample faces.

Each variant is traced on 2 faces and then run on all 12 (so the batch dimension
is checked to be free), from the mean start, and compared with
``TrainedSolver.solve`` on the same faces: the largest absolute difference of
any coordinate of any iterate (frame px). Inference times are the median of
``--repeats`` runs on one batch of 12, on the CPU threads torch uses.

    python benchmarks/export_timings.py --checkpoint face300w --report docs/results/export.md
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from common import median_seconds, write_report
from face_landmarks.data.dataset import load_faces
from face_landmarks.data.layout import SAMPLE_ROOT
from selfiter.api import load
from selfiter.export import export, run_onnx, run_torchscript

REPO = Path(__file__).resolve().parents[1]
#: (label, format, part, ONNX exporter)
VARIANTS = [
    ("ONNX, dynamo exporter", "onnx", "solver", "dynamo"),
    ("ONNX, legacy exporter", "onnx", "solver", "legacy"),
    ("TorchScript (trace)", "torchscript", "solver", "dynamo"),
    ("ONNX regressor alone, dynamo", "onnx", "regressor", "dynamo"),
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="face300w", help="model name, checkpoint or run folder")
    p.add_argument("--iterations", type=int, default=4, help="iterations unrolled")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per inference figure")
    p.add_argument("--report", help="write the table as Markdown to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    model = load(args.checkpoint)
    # the 12 sample faces in the model's own framing, (12, 3, S, S) uint8
    faces = load_faces(SAMPLE_ROOT, "common", model.problem.frame_size,
                       model.problem.box_scale).inputs
    theta0 = model.initial_theta(len(faces))
    ref = model.solve(faces, theta0, iterations=args.iterations)
    with torch.no_grad():
        features = model.extractor.features(model.model.encode(faces), theta0)
        ref_delta = model.regressors[0](features)
    # a learned extractor's encoding belongs to the solver: its regressor alone is no graph
    variants = [v for v in VARIANTS if v[2] == "solver" or not model.model.learned_extractor]
    torch_solver_s = median_seconds(lambda: model.solve(faces, theta0, iterations=args.iterations),
                                    args.repeats)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, fmt, part, exporter in variants:
            path = Path(tmp) / f"{fmt}-{part}-{exporter}"
            result = export(model, path, faces[:2], fmt, part, args.iterations, exporter)
            run = run_onnx if fmt == "onnx" else run_torchscript
            call_args = (faces, theta0) if part == "solver" else (features,)
            out = run(path, call_args)
            expected = [ref.theta, ref.trajectory] if part == "solver" else [ref_delta]
            diff = max(float(np.abs(o - e.numpy()).max()) for o, e in zip(out, expected))
            infer_s = median_seconds(lambda: run(path, call_args), args.repeats)
            rows.append((label, result.seconds, path.stat().st_size / 2**20, diff, infer_s))
            print(f"{label}: {rows[-1]}", file=sys.stderr)
    table = ("| variant | export (s) | file (MiB) | max abs diff vs PyTorch (px) | run on 12 faces (s) |\n"
             "|---|---:|---:|---:|---:|\n"
             + "".join(f"| {label} | {e:.1f} | {mb:.1f} | {d:.2g} | {r:.2f} |\n"
                       for label, e, mb, d, r in rows)
             + f"| PyTorch `TrainedSolver.solve` | | | | {torch_solver_s:.2f} |\n")
    text = (f"Checkpoint `{args.checkpoint}`, {args.iterations} iterations unrolled; the regressor "
            "row runs one regressor call on the features at the mean start, the others the whole "
            f"solve.\n\n{table}")
    print(text)
    if args.report:
        write_report(args.report, "Exporting the face solver (ONNX, TorchScript)", __file__, argv,
                     ("Each variant is traced on 2 sample faces, then run on all 12 and compared with "
            "PyTorch's solve of the same faces from the same start (the features, the regressor, "
            "the update, every iterate). Times are wall clock on a machine shared with other "
            "work, medians of a few runs."),
                     text, machine_note=", onnxruntime on its CPU provider")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
