"""Training metrics: JSON lines always, TensorBoard when it is installed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class MetricsLog:
    """Appends one JSON object per record to ``run_dir/metrics.jsonl``.

    On resume, records past the resumed position are dropped first, so the
    file reads as if the run had never stopped."""

    def __init__(self, run_dir: Path, resume_at: tuple[int, int] | None = None) -> None:
        self.path = run_dir / "metrics.jsonl"
        if resume_at is None:
            self.path.write_text("")
        elif self.path.exists():
            keep = [
                line for line in self.path.read_text().splitlines()
                if line.strip() and (json.loads(line)["stage"], json.loads(line)["step"]) <= resume_at
            ]
            self.path.write_text("".join(line + "\n" for line in keep))
        self._tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # TensorBoard is optional
            SummaryWriter = None
        if SummaryWriter is not None:
            self._tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self._tb is not None:
            step = record["stage"] * 10**9 + record["step"]
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("stage", "step"):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
