"""The paper's comparisons, trained and scored end to end for a config that trains in minutes.

Trains the variants of one config that the paper compares, then scores every
run after each iteration on the same split with ``compare_runs.py``:

- SIR against the cascaded-regression baseline (Table 4, Fig. 7): cascades of
  ``--stages`` regressors at the same total samples as SIR (each stage
  ``train.steps / K`` steps), and one cascade whose every stage gets SIR's full
  budget, so that neither side is starved;
- the sampling sweeps (Fig. 8): ``sampler.params.sigma`` (around the truth),
  ``sampler.params.sigma_mean`` (around the mean), and one sigma for both, as
  Eq. 4 writes it.

    python benchmarks/paper_comparisons.py examples/curve_fit.yaml \\
        --metrics param_err success --higher-is-better success \\
        --out docs/results/curve_fit_comparisons.md

Runs go to ``--runs/NAME``; a run whose checkpoint is already there is scored,
not trained again (delete the folder to retrain). Training uses one CPU thread
unless ``--set train.num_threads=...`` says otherwise. For the face model, whose
runs need a GPU and several device commands each, ``gpu_session.sh`` trains the
runs and calls ``compare_runs.py`` directly.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import compare_runs
from common import command_line

from selfiter.config import load_config
from selfiter.training import train


def plan(steps: int, stages: list[int], full_stages: int, sigmas: list[float],
         sigma_means: list[float], shared: list[float]) -> dict[str, list[tuple[str, str, list[str]]]]:
    """Comparison title -> its runs as (label, run name, config overrides)."""
    sir = ("SIR", "sir", [])
    cascades = [(f"CR, {k} stages x {steps // k} steps", f"cr{k}",
                 ["train.mode=cascade", f"train.stages={k}", f"train.steps={steps // k}"])
                for k in stages]
    cascades.append((f"CR, {full_stages} stages x {steps} steps", f"cr{full_stages}_full",
                     ["train.mode=cascade", f"train.stages={full_stages}"]))
    return {
        "SIR vs cascaded regression": [sir, *cascades],
        "Sampling sigma around the truth": [
            (f"sigma {v:g}", f"sigma{v:g}", [f"sampler.params.sigma={v}"]) for v in sigmas],
        "Sampling sigma around the mean": [
            (f"sigma_mean {v:g}", f"sigma_mean{v:g}", [f"sampler.params.sigma_mean={v}"])
            for v in sigma_means],
        "One sigma for both (Eq. 4)": [
            (f"sigma = sigma_mean = {v:g}", f"shared{v:g}",
             [f"sampler.params.sigma={v}", f"sampler.params.sigma_mean={v}"]) for v in shared],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--set", dest="overrides", nargs="*", default=[],
                   help="KEY=VALUE overrides for every run")
    p.add_argument("--runs", default="runs/paper_comparisons", help="where the runs are kept")
    p.add_argument("--stages", type=int, nargs="+", default=[2, 4, 8],
                   help="cascade lengths trained at SIR's total samples")
    p.add_argument("--full-stages", type=int, default=4,
                   help="the cascade length trained with SIR's budget per stage")
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.025, 0.05, 0.1, 0.2, 0.4])
    p.add_argument("--sigma-means", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0])
    p.add_argument("--shared-sigmas", type=float, nargs="+", default=[0.2, 0.5, 1.0, 2.0])
    p.add_argument("--only", nargs="*", help="comparison titles to run (default: all)")
    p.add_argument("--split", help="default: evaluate.split of the config")
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--metrics", nargs="+", help="tabled; the first is plotted (default: the "
                   "problem's first)")
    p.add_argument("--higher-is-better", nargs="*", default=[], metavar="METRIC")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="write each comparison as a section of this page")
    args = p.parse_args(argv)
    overrides = ["train.num_threads=1", f"train.device={args.device}", *args.overrides]
    base = load_config(args.config, overrides)
    split = args.split or base.evaluate.split
    comparisons = plan(base.train.steps, args.stages, args.full_stages, args.sigmas,
                       args.sigma_means, args.shared_sigmas)
    unknown = set(args.only or []) - set(comparisons)
    if unknown:
        raise SystemExit(f"--only: unknown comparison(s) {sorted(unknown)}; "
                         f"expected some of {sorted(comparisons)}")
    stem = Path(args.config).stem
    scored_runs: dict[Path, compare_runs.Scored] = {}  # the config's own run is in every comparison
    for title, runs in comparisons.items():
        if args.only and title not in args.only:
            continue
        scored = []
        for label, name, extra in runs:
            cfg = load_config(args.config, [*overrides, *extra])
            if cfg.to_yaml() == base.to_yaml():  # a sweep's value that is the config's own
                name = "sir"
            run = Path(args.runs) / stem / name
            if not (run / "checkpoint.safetensors").is_file():
                print(f"training {name} ...", file=sys.stderr, flush=True)
                train(cfg, run, progress=False)
            if run not in scored_runs:
                scored_runs[run] = compare_runs.score_run(label, str(run), base, split,
                                                          args.iterations, args.device)
            scored.append(dataclasses.replace(scored_runs[run], label=label))
        metrics = args.metrics or [next(iter(scored[0].per_iteration[0]))]
        slug = title.lower().replace(" ", "_").translate({ord(c): None for c in "().,"})
        png = (str(Path(args.out).parent / f"{stem}_{slug}.png") if args.out else None)
        compare_runs.report(scored, metrics, args.iterations, f"{stem}: {title}", split,
                            args.device, command_line(__file__, argv), args.out, png,
                            tuple(args.higher_is_better))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
