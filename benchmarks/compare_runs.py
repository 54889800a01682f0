"""Several trained runs of one problem, scored after every iteration on the same split.

The paper's comparisons are all of this shape -- SIR against the cascade
(Table 4, Fig. 7: error and model memory per iteration count), LAN against
SIR-Stack (Fig. 6), the sigma sweep (Fig. 8) -- so one script serves them:
give each run a label, get one table (metric per iteration, the parameters and
memory of the model, the samples it was trained on) and one plot of the metric
against the iteration.

    python benchmarks/compare_runs.py examples/face300w.yaml --split common \\
        --set problem.params.data_root=../shared/data/300w \\
        --run "SIR, LAN=runs/sir" --run "cascade, 4 stages=runs/cr" \\
        --title "SIR vs cascaded regression" --out docs/results/face300w_comparisons.md \\
        --plot docs/results/sir_vs_cr.png

A cascade is scored up to its number of stages (it has no regressor for more).
The config supplies the problem and its data; each run's own checkpoint
supplies everything that must match its weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from common import command_line, machine, write_section

from selfiter.api import from_checkpoint_data
from selfiter.checkpoint import load_checkpoint, resolve_checkpoint
from selfiter.config import config_from_dict, load_config
from selfiter.evaluation import score


@dataclass
class Scored:
    label: str
    source: str
    mode: str
    regressor: str
    n_params: int
    n_regressors: int  # 1 for SIR, the stages of a cascade
    samples: int
    minutes: float | None
    n: int  # samples scored
    per_iteration: list[dict[str, float]]  # [k] = metrics after k iterations
    theta: torch.Tensor  # (N, D) after the last iteration scored
    theta_gt: torch.Tensor  # (N, D)


def parse_run(text: str) -> tuple[str, str]:
    label, sep, path = text.rpartition("=")
    if not sep or not label or not path:
        raise SystemExit(f"--run {text!r}: expected LABEL=CHECKPOINT")
    return label, path


def training_minutes(source: str) -> float | None:
    """Wall-clock minutes of the run, all stages, from the ``metrics.jsonl`` beside its
    checkpoint (each stage's clock starts at 0, so the stages' last readings add up)."""
    log = Path(source).parent / "metrics.jsonl"
    if not log.is_file():
        return None
    per_stage: dict[int, float] = {}
    for line in log.read_text().splitlines():
        rec = json.loads(line) if line else {}
        if rec.get("elapsed_s") is not None:
            per_stage[rec.get("stage", 0)] = rec["elapsed_s"]
    return sum(per_stage.values()) / 60 if per_stage else None


def score_run(label: str, name_or_path: str, cfg, split: str, iterations: int,
              device: str) -> Scored:
    path = resolve_checkpoint(name_or_path)
    ckpt = load_checkpoint(path)
    own = config_from_dict(yaml.safe_load(ckpt.config_yaml), source=str(path))  # as trained
    model = from_checkpoint_data(ckpt, device, str(path), config=cfg)  # scored on cfg's problem
    data = model.problem.load(split)
    k = iterations if model.max_iterations is None else min(iterations, model.max_iterations)
    ev = score(model.problem, data.to(model.device), model.solve(data.inputs, iterations=k), split)
    return Scored(
        label=label, source=str(path), mode=ckpt.mode, regressor=own.regressor.name,
        # every learned weight: a learned feature extractor's too
        n_params=sum(p.numel() for p in model.model.parameters()),
        n_regressors=len(ckpt.regressors),
        samples=ckpt.step * len(ckpt.regressors) * own.train.batch_size * own.train.states_per_input,
        minutes=training_minutes(str(path)), n=ev.n, per_iteration=ev.per_iteration,
        theta=ev.result.theta.cpu(), theta_gt=data.theta_gt.cpu(),
    )


def table(runs: list[Scored], metric: str, iterations: int, higher_is_better: bool = False) -> str:
    its = list(range(1, iterations + 1))
    head = ("| run | mode | regressor | parameters | fp32 MB | samples | minutes | "
            + " | ".join(f"{metric} @{k}" for k in its) + " | best (iteration) |")
    lines = [head, "|---|---|---|---:|---:|---:|---:|" + "---:|" * len(its) + "---:|"]
    for r in runs:
        vals = [r.per_iteration[k][metric] if k < len(r.per_iteration) else None for k in its]
        cells = ["" if v is None else f"{v:.4g}" for v in vals]
        done = [(v, k) for v, k in zip(vals, its) if v is not None]
        best, at = max(done, key=lambda vk: (vk[0], -vk[1])) if higher_is_better else min(done)
        minutes = "" if r.minutes is None else f"{r.minutes:.1f}"
        lines.append(f"| {r.label} | {r.mode} | {r.regressor} | {r.n_params:,} | "
                     f"{r.n_params * 4 / 2**20:.1f} | {r.samples:,} | {minutes} | "
                     + " | ".join(cells) + f" | {best:.4g} ({at}) |")
    return "\n".join(lines)


def plot(runs: list[Scored], metric: str, title: str, path: str) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from selfiter.atomic import atomic_path

    # with a cascade among the runs, a second panel shows the model memory that k
    # iterations need (the paper's Fig. 7, bottom): a cascade needs its first k stages
    memory = any(r.n_regressors > 1 for r in runs)
    fig, axes = plt.subplots(2 if memory else 1, 1, figsize=(6, 6.5 if memory else 4), sharex=True,
                             squeeze=False)
    ax = axes[0, 0]
    for r in runs:
        ks = list(range(1, len(r.per_iteration)))
        line, = ax.plot(ks, [r.per_iteration[k][metric] for k in ks], marker="o", label=r.label)
        if memory:
            mb = [min(k, r.n_regressors) / r.n_regressors * r.n_params * 4 / 2**20 for k in ks]
            axes[1, 0].plot(ks, mb, marker="o", color=line.get_color())
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.legend()
    if memory:
        axes[1, 0].set_ylabel("model memory for k iterations, fp32 MB")
    for a in axes[:, 0]:
        a.grid(alpha=0.3)
    axes[-1, 0].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[-1, 0].set_xlabel("iteration")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
    print(f"wrote {path}", file=sys.stderr)


def face_ced(runs: list[Scored], title: str, path: str) -> None:
    """Cumulative error distributions (inter-ocular NME, 68 points) of face runs, one curve
    per run, after the last iteration scored."""
    from face_landmarks.metrics import face_errors
    from face_landmarks.report import ced_plot

    ced_plot({r.label: face_errors(r.theta, r.theta_gt, "io") for r in runs}, Path(path),
             title=title)
    print(f"wrote {path}", file=sys.stderr)


def report(runs: list[Scored], metrics: list[str], iterations: int, title: str, split: str,
           device: str, command: str, out: str | None = None, plot_path: str | None = None,
           higher_is_better: tuple[str, ...] = (), ced_path: str | None = None) -> str:
    """Print one table per metric; plot the first metric and write the tables as the
    section ``title`` of ``out``, with the command that made them. Returns the tables.
    The best iteration is the lowest value, or the highest for ``higher_is_better``."""
    tables = "\n\n".join((f"**{m}**\n\n" if len(metrics) > 1 else "")
                         + table(runs, m, iterations, m in higher_is_better) for m in metrics)
    print(tables)
    if plot_path:
        plot(runs, metrics[0], title, plot_path)
    if ced_path:
        face_ced(runs, title, ced_path)
    if out:
        image = f"\n\n![{title}]({Path(plot_path).name})" if plot_path else ""
        image += f"\n\n![{title}: CED]({Path(ced_path).name})" if ced_path else ""
        gpu = f", {torch.cuda.get_device_name()}" if device.startswith("cuda") else ""
        body = (f"Command: `{command}`\n\nMachine: {machine()}{gpu}.\n\n"
                f"{', '.join(metrics)} on the {runs[0].n} samples of the `{split}` split after each "
                f"iteration, from the mean start. Parameters: every learned weight (a learned feature "
                f"extractor's too). Samples: training states, optimizer steps x batch size x "
                f"states per input (x stages).\n\n"
                f"{tables}{image}\n")
        write_section(out, title, body, "Comparisons")
    return tables


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="supplies the problem (and its data) the runs are scored on")
    p.add_argument("--run", action="append", required=True, metavar="LABEL=CHECKPOINT",
                   help="a labelled checkpoint, run folder or model name; repeat per run")
    p.add_argument("--set", dest="overrides", nargs="*", default=[])
    p.add_argument("--split", help="default: evaluate.split of the config")
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--metrics", nargs="+",
                   help="the metrics tabled; the first is plotted (default: the problem's first)")
    p.add_argument("--higher-is-better", nargs="*", default=[], metavar="METRIC",
                   help="metrics whose best iteration is the highest value (e.g. success, auc)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--title", default="Runs compared")
    p.add_argument("--out", help="write the tables as a section (named by --title) of this page")
    p.add_argument("--plot", help="write the metric-per-iteration plot here (PNG)")
    p.add_argument("--ced", help="face runs: write the CED plot (inter-ocular NME after the last "
                                 "iteration) here (PNG)")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    split = args.split or cfg.evaluate.split
    runs = []
    for text in args.run:
        label, ckpt = parse_run(text)
        runs.append(score_run(label, ckpt, cfg, split, args.iterations, args.device))
        print(f"scored {label}", file=sys.stderr, flush=True)
    metrics = args.metrics or [next(iter(runs[0].per_iteration[0]))]
    report(runs, metrics, args.iterations, args.title, split, args.device,
           command_line(__file__, argv), args.out, args.plot, tuple(args.higher_is_better),
           args.ced)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
