"""``selfiter train CONFIG``: train a solver into a run folder (resumable)."""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

from selfiter.cli.common import add_config_args, config_from_args
from selfiter.config import Config, load_config
from selfiter.errors import CheckpointError

#: what a resumed run may change on the command line (the rest would alter the math)
RESUME_FREE = ("train.steps", "train.minutes", "train.log_every", "train.val_every",
               "train.checkpoint_every", "train.device", "train.num_threads")


def configure(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("-o", "--out", default=None, metavar="RUN_DIR",
                   help="run folder (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in RUN_DIR from its last checkpoint, with the config "
                        "it was started with (RUN_DIR/config.yaml; CONFIG is not reread); --set "
                        f"may change only {', '.join(RESUME_FREE)}")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (the trainer's, and the problem's while it loads data)")


def run(args: argparse.Namespace) -> int:
    from selfiter.progress import bars_off
    from selfiter.training import train

    run_dir = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    cfg = resume_config(args, run_dir) if args.resume else config_from_args(args)
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 reports for all
    if args.resume and main_rank:
        print(f"resuming {run_dir} with its saved config {run_dir / 'config.yaml'}")
    with bars_off(args.no_progress):
        ckpt = train(cfg, run_dir, resume=args.resume, progress=not args.no_progress)
    if main_rank:
        for line in summary(run_dir, cfg):
            print(line)
        print(f"checkpoint: {ckpt}")
    return 0


def resume_config(args: argparse.Namespace, run_dir: Path) -> Config:
    """The saved run's config with the command line's ``--set`` applied on top.

    Not CONFIG: the run may have been started with overrides (a data root, a
    budget) that CONFIG lacks, and a resumed run must go on with exactly those.
    An override of anything but :data:`RESUME_FREE` that changes the saved
    value is refused, in one line naming the key, by the trainer's check."""
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise CheckpointError(f"{run_dir}: nothing to resume (no config.yaml in this folder)")
    return load_config(saved, [o for group in args.overrides for o in group])


def summary(run_dir: Path, cfg: Config) -> list[str]:
    """What the run did, read back from its trainer state and ``metrics.jsonl``: steps,
    sampled states, minutes, and the last validation metrics (if it validated)."""
    import torch

    from selfiter.training.trainer import STATE_FILE

    t = cfg.train
    try:
        state = torch.load(run_dir / STATE_FILE, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError):  # the run is written; a summary is only a courtesy
        return []
    records = _records(run_dir / "metrics.jsonl")
    n_stages = 1 if t.mode == "sir" else t.stages
    # a stage's steps and minutes: the trainer state has the last stage's, the log the others'
    steps = {r["stage"]: r["step"] for r in records if "loss" in r}
    minutes = {r["stage"]: r["elapsed_s"] / 60 for r in records if "elapsed_s" in r}
    steps[state["stage"]], minutes[state["stage"]] = state["step"], state["elapsed"] / 60
    total_steps = sum(steps.values())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    states = total_steps * t.batch_size * t.states_per_input * world
    stopped = ("train.minutes ran out" if t.minutes is not None and state["step"] < t.steps
               else "train.steps reached")
    where = "" if n_stages == 1 else f" over {len(steps)}/{n_stages} stages"
    lines = [f"trained: {total_steps:,} steps{where}, {states:,} sampled states "
             f"({t.batch_size} inputs x {t.states_per_input} x {world} process(es) per step), "
             f"{sum(minutes.values()):.1f} min ({stopped})"]
    val = [r for r in records if any(k.startswith("val_") for k in r)]
    if val:
        last = val[-1]
        metrics = "  ".join(f"{k[4:]}={_fmt(v)}" for k, v in last.items() if k.startswith("val_"))
        lines.append(f"last validation ({t.val_split}, step {last['step']}, "
                     f"{cfg.solver.iterations if t.mode == 'sir' else n_stages} iterations): "
                     f"{metrics}")
    return lines


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line cut by a crash
            continue
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)
