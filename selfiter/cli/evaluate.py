"""``selfiter evaluate CONFIG``: score a trained solver on a split, per iteration."""

from __future__ import annotations

import argparse
import json
import math

from selfiter.atomic import write_text
from selfiter.cli.common import add_config_args, config_from_args
from selfiter.errors import ConfigError


def configure(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--checkpoint", help="checkpoint file, run folder or pretrained model name "
                                        "(default: evaluate.checkpoint of the config)")
    p.add_argument("--split", help="split to evaluate (default: evaluate.split of the config)")
    p.add_argument("--data-root", help="set problem.params.data_root")
    p.add_argument("--iterations", type=int, help="solver iterations (default: solver.iterations)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--json", metavar="PATH", help="write the scores as JSON")
    p.add_argument("--plot", metavar="DIR", help="write the problem's plots into DIR")


def run(args: argparse.Namespace) -> int:
    from selfiter.api import load
    from selfiter.build import build_problem
    from selfiter.evaluation import score

    extra = [f"problem.params.data_root={args.data_root}"] if args.data_root else []
    if args.iterations is not None:
        extra.append(f"solver.iterations={args.iterations}")
    cfg = config_from_args(args, extra)
    ckpt = args.checkpoint or cfg.evaluate.checkpoint
    if not ckpt:
        raise ConfigError(f"{args.config}: evaluate.checkpoint is not set and no --checkpoint given")
    split = args.split or cfg.evaluate.split
    problem = build_problem(cfg)
    data = problem.load(split)  # a missing split is reported before any weights are read
    model = load(ckpt, device=args.device, config=cfg)
    model.problem = problem
    if model.max_iterations is not None and cfg.solver.iterations > model.max_iterations:
        raise ConfigError(f"solver.iterations={cfg.solver.iterations}: a cascade of "
                          f"{model.max_iterations} stages runs at most {model.max_iterations}")
    result = model.solve(data.inputs, progress=True)
    ev = score(model.problem, data.to(model.device), result, split)
    print(format_table(ev.per_iteration, split, ev.n))
    if ev.n_nonfinite:
        print(f"warning: {ev.n_nonfinite} of {ev.n} samples diverged to NaN/inf; their scores are NaN")
    if args.json:
        write_text(args.json, json.dumps(ev.to_json(), indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        for path in model.problem.report(result.trajectory.cpu(), data, args.plot):
            print(f"wrote {path}")
    return 0 if ev.n_nonfinite == 0 else 1


def format_table(rows: list[dict[str, float]], split: str, n: int) -> str:
    """Metrics per iteration as an aligned text table."""
    keys = list(rows[0])
    head = ["iter", *keys]
    body = [[str(k), *(_fmt(r[key]) for key in keys)] for k, r in enumerate(rows)]
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([f"split {split}: {n} samples", line(head), *(line(r) for r in body)])


def _fmt(v: float) -> str:
    return "nan" if isinstance(v, float) and math.isnan(v) else f"{v:.4g}"



