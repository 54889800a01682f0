"""What every benchmark script shares: the machine line of a results table and timing."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch


def machine() -> str:
    """CPU model, usable cores and library versions, for the written results."""
    # what `nproc` prints without OMP_NUM_THREADS, which it would obey: the cores this
    # process may run on, not the threads a benchmark chose to use
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
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


def command_line(script: str, argv: list[str] | None = None) -> str:
    """The command that ran ``script`` with ``argv`` (default: this process's arguments),
    with the script's path relative to the repository."""
    import os
    import shlex
    import sys

    repo = Path(__file__).resolve().parents[1]
    args = sys.argv[1:] if argv is None else argv
    return " ".join(shlex.quote(a) for a in ["python", os.path.relpath(script, repo), *args])


def provenance(script: str, argv: list[str] | None, machine_note: str = "") -> str:
    """The ``Command: ...`` and ``Machine: ...`` lines every results text starts with."""
    return f"Command: `{command_line(script, argv)}`\n\nMachine: {machine()}{machine_note}."


def write_report(path: str, title: str, script: str, argv: list[str] | None, intro: str,
                 body: str, machine_note: str = "") -> None:
    """Write a results page: title, the exact command that made it, the machine, then the text."""
    import sys

    from selfiter.atomic import write_text

    write_text(path, f"# {title}\n\n{provenance(script, argv, machine_note)}\n\n{intro}\n\n{body}")
    print(f"wrote {path}", file=sys.stderr)


def write_section(path: str | Path, name: str, body: str, title: str) -> None:
    """Replace the section ``name`` of the page at ``path`` (the text between its
    ``<!-- benchmark: name -->`` markers) by ``body``, keeping the rest of the page;
    a missing section is appended under a ``## name`` heading, a missing page is
    started with ``title``. Hand-written prose around the markers survives reruns."""
    import re
    import sys

    from selfiter.atomic import write_text

    out = Path(path)
    text = out.read_text() if out.is_file() else ""
    begin, end = f"<!-- benchmark: {name} -->", f"<!-- /benchmark: {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        head = text.rstrip() + "\n\n" if text.strip() else f"# {title}\n\n"
        text = f"{head}## `{name}`\n\n{block}\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, text)
    print(f"wrote section {name!r} of {out}", file=sys.stderr)


def method_tables(table: dict[str, dict[str, Any]],
                  columns: Sequence[tuple[str, Callable[[Any], str]]]) -> str:
    """Markdown tables of solver outcomes, one per ``(title, format)`` of ``columns``: a row
    per start (``table``'s keys), a column per method (its rows' keys), each cell
    ``format(outcome)``."""
    methods = list(next(iter(table.values())))
    head = "| start | " + " | ".join(methods) + " |\n|---|" + "---:|" * len(methods) + "\n"
    parts = []
    for title, fmt in columns:
        body = "".join(f"| {label} | " + " | ".join(fmt(row[k]) for k in methods) + " |\n"
                       for label, row in table.items())
        parts.append(f"**{title}**\n\n{head}{body}")
    return "\n".join(parts)
