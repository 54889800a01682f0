"""The paper's sampling alone against sampling along the solver's own trajectory.

Trains a config twice with the same seed and budget, once as it is
(``train.trajectory = 0``: states around the mean and the truth only) and once
with ``train.trajectory = SHARE`` (that share of every batch first moved by
the regressor being trained, 1 to ``train.trajectory_steps`` times), then
scores both on the test split after every iteration up to ``--iterations``.

    python benchmarks/trajectory_sampling.py examples/curve_fit.yaml \
        --metrics param_err success rmse --out docs/results/curve_fit.md

``--out`` writes one section per config between ``<!-- benchmark: NAME -->``
markers, as ``curve_fit_vs_lm.py`` does.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import command_line, machine, write_section

from selfiter.api import load
from selfiter.config import load_config
from selfiter.evaluation import score
from selfiter.training import train

SHOWN = (1, 2, 3, 4, 8, 16, 32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--share", type=float, default=0.5, help="train.trajectory of the second run")
    p.add_argument("--iterations", type=int, default=16, help="solver iterations scored")
    p.add_argument("--split", default="test")
    p.add_argument("--set", dest="overrides", nargs="*", default=[],
                   help="KEY=VALUE overrides for both runs")
    p.add_argument("--metrics", nargs="*", help="the problem's metrics to show (default: all)")
    p.add_argument("--out", help="write the results as a section of this Markdown file")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # both runs alike, and the other core left to other work
    root = Path(tempfile.mkdtemp(prefix="trajectory_"))
    rows, notes = {}, []
    for label, share in (("paper sampling", 0.0), (f"trajectory {args.share:g}", args.share)):
        cfg = load_config(args.config, [*args.overrides, f"train.trajectory={share}"])
        t0 = time.perf_counter()
        model = load(train(cfg, root / f"run{share}", progress=False))
        seconds = time.perf_counter() - t0
        data = model.problem.load(args.split)
        ev = score(model.problem, data, model.solve(data.inputs, iterations=args.iterations),
                   args.split)
        rows[label] = ev.per_iteration
        notes.append(f"{label}: {cfg.train.steps} steps of batch {cfg.train.batch_size} "
                     f"in {seconds:.0f} s")
        print(notes[-1], file=sys.stderr, flush=True)
    keys = args.metrics or list(next(iter(rows.values()))[0])
    shown = [k for k in SHOWN if k <= args.iterations]
    head = "| iteration | " + " | ".join(f"{k} ({label})" for label in rows for k in keys) + " |"
    lines = [head, "|---|" + "---:|" * (len(keys) * len(rows))]
    for it in shown:
        cells = [f"{rows[label][it][k]:.4g}" for label in rows for k in keys]
        lines.append(f"| {it} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        cfg_name = Path(args.config).name
        body = (f"Command: `{command_line(__file__, argv)}`\n\nMachine: {machine()}, one thread.\n\n"
                f"Training: {'; '.join(notes)}. Scores on the {len(data)} problems of the "
                f"`{args.split}` split, from the training mean, after each iteration.\n\n{table}\n")
        write_section(args.out, f"trajectory: {cfg_name}", body,
                      "Sampling along the solver's trajectory")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
