"""What every benchmark script shares: the machine line of a results table and timing."""

from __future__ import annotations

import platform
import subprocess
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch


def machine() -> str:
    """CPU model, usable cores and library versions, for the written results."""
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or "?"
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                 if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    return (f"{cpu}, `nproc` = {cores}, "
            f"torch {torch.__version__}, numpy {np.__version__}, Python {platform.python_version()}")


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 0,
                   sync: Callable[[], None] = lambda: None) -> float:
    """Median wall time of ``fn()`` in s over ``repeats`` calls after ``warmup`` calls;
    ``sync`` waits for queued device work (``torch.cuda.synchronize``) before each clock read."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def write_report(path: str, title: str, script: str, argv: list[str] | None, intro: str,
                 body: str, machine_note: str = "") -> None:
    """Write a results page: title, the exact command that made it, the machine, then the text."""
    import os
    import shlex
    import sys

    from selfiter.atomic import write_text

    repo = Path(__file__).resolve().parents[1]
    args = sys.argv[1:] if argv is None else argv
    command = " ".join(shlex.quote(a) for a in ["python", os.path.relpath(script, repo), *args])
    write_text(path, f"# {title}\n\nCommand: `{command}`\n\nMachine: {machine()}{machine_note}.\n\n"
                     f"{intro}\n\n{body}")
    print(f"wrote {path}", file=sys.stderr)
