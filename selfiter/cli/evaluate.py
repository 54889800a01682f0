"""``selfiter evaluate CONFIG``: score a trained solver on a split, per iteration."""

from __future__ import annotations

import argparse
import json
import math
from typing import Mapping

from selfiter.atomic import write_text
from selfiter.cli.common import (add_config_args, add_data_root_arg, add_runtime_arg,
                                 add_tta_arg, config_from_args, data_root_override)
from selfiter.errors import ConfigError

#: what a row of the table is, whatever the problem
ROWS = "rows: after each solver iteration (iter 0: the start, before any step)"

def configure(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--checkpoint", help="checkpoint file, run folder or pretrained model name "
                                        "(default: evaluate.checkpoint of the config)")
    p.add_argument("--split", help="split to evaluate (default: evaluate.split of the config)")
    add_data_root_arg(p)
    p.add_argument("--iterations", type=int, help="solver iterations (default: solver.iterations)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    add_runtime_arg(p)
    add_tta_arg(p)
    p.add_argument("--json", metavar="PATH", help="write the scores as JSON")
    p.add_argument("--plot", metavar="DIR", help="write the problem's plots into DIR")


def run(args: argparse.Namespace) -> int:
    from selfiter.api import load
    from selfiter.build import build_problem
    from selfiter.evaluation import score

    extra = data_root_override(args)
    if args.iterations is not None:
        extra.append(f"solver.iterations={args.iterations}")
    if args.tta:
        extra.append("solver.tta=true")
    cfg = config_from_args(args, extra)
    ckpt = args.checkpoint or cfg.evaluate.checkpoint
    if not ckpt:
        raise ConfigError(f"{args.config}: evaluate.checkpoint is not set and no --checkpoint given")
    split = args.split or cfg.evaluate.split
    problem = build_problem(cfg)  # once: the solver is given this one
    data = problem.load(split)  # a missing split is reported before any weights are read
    model = load(ckpt, device=args.device, config=cfg, problem=problem, runtime=args.runtime)
    if model.max_iterations is not None and cfg.solver.iterations > model.max_iterations:
        raise ConfigError(f"solver.iterations={cfg.solver.iterations}: a cascade of "
                          f"{model.max_iterations} stages runs at most {model.max_iterations}")
    print(f"checkpoint: {ckpt}" + ("" if str(ckpt) == model.source else f" ({model.source})"))
    if cfg.solver.tta:
        names = ", ".join(v.name for v in model.test_views())
        print(f"solver.tta: each row is the mean of the plain solve and its views ({names})")
    result = model.solve(data.inputs, progress=True)
    ev = score(model.problem, data.to(model.device), result, split)
    print(format_table(ev.per_iteration, split, ev.n, data.source))
    print(legend(list(ev.per_iteration[0]), getattr(problem, "metric_legend", None)))
    if ev.n_nonfinite:
        print(f"warning: {ev.n_nonfinite} of {ev.n} samples diverged to NaN/inf; their scores are NaN")
    if args.json:
        write_text(args.json, json.dumps(ev.to_json(), indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        for path in model.problem.report(result.trajectory.cpu(), data, args.plot):
            print(f"wrote {path}")
    return 0 if ev.n_nonfinite == 0 else 1


def format_table(rows: list[dict[str, float]], split: str, n: int, source: str | None = None) -> str:
    """Metrics per iteration as an aligned text table, under a line saying what was scored
    (the split, its size and, where the problem names it, where the split was read from)."""
    keys = list(rows[0])
    head = ["iter", *keys]
    body = [[str(k), *(_fmt(r[key]) for key in keys)] for k, r in enumerate(rows)]
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    what = f"split {split}: {n} samples" + ("" if source is None else f" from {source}")
    return "\n".join([what, line(head), *(line(r) for r in body)])


def legend(keys: list[str], described: Mapping[str, str] | None = None) -> str:
    """The table's legend in one line: what a row is, and each metric with its meaning and
    unit where the problem describes it (an optional ``metric_legend`` mapping of the problem
    object, metric -> text); otherwise the metrics are in the problem's own units."""
    described = described if isinstance(described, Mapping) else {}
    if not any(described.get(k) for k in keys):
        return f"legend: {ROWS}; columns: {', '.join(keys)} (the problem's metrics, in its units)"
    cols = "; ".join(f"{k} = {described[k]}" if described.get(k) else k for k in keys)
    return f"legend: {ROWS}; {cols}"


def _fmt(v: float) -> str:
    return "nan" if isinstance(v, float) and math.isnan(v) else f"{v:.4g}"
