"""``selfiter train CONFIG``: train a solver into a run folder (resumable)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from selfiter.cli.common import add_config_args, config_from_args


def configure(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("-o", "--out", default=None, metavar="RUN_DIR",
                   help="run folder (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from selfiter.training import train

    cfg = config_from_args(args)
    run_dir = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    ckpt = train(cfg, run_dir, resume=args.resume, progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 reports for all
        print(f"checkpoint: {ckpt}")
    return 0
