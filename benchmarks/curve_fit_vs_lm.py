"""Learned (SIR) versus classical solvers on damped-sinusoid fitting, from the same starts.

For each start distribution -- ``theta* + d * s_std * N(0, 1)`` for several
distances ``d`` (``s_std``: the spread of each parameter over the training
set), and the training mean -- every method solves the same test problems
from the same starting points:

* SIR: the trained solver, ``K`` iterations, batched;
* SIR + GN: the same, then a few Gauss-Newton steps to polish the fit;
* GN: the core's :class:`~selfiter.solver.GaussNewtonSolver` (fixed Levenberg
  damping, no step control), batched;
* scipy ``least_squares`` with ``method='lm'`` and ``'trf'`` (analytic
  Jacobian, default tolerances), one problem at a time.

A solve succeeds when its final normalised parameter error (phase modulo
2 pi, each parameter's error divided by the width of the problem's box) is
below :data:`curve_fit.problem.SUCCESS_THRESHOLD`; a non-finite result is a
failure. Time per problem is wall time over the whole batch divided by its
size, on ONE CPU thread for every method.

Without ``--checkpoint`` the config (``--config``, default
``examples/curve_fit.yaml``) is trained first and the training time is
reported. ``--out`` writes this config's results into a Markdown file as one
section between ``<!-- benchmark: NAME -->`` markers: a rerun replaces that
section only, so one file holds the results of several configs and the prose
around them.

    python benchmarks/curve_fit_vs_lm.py --out docs/results/curve_fit.md
    python benchmarks/curve_fit_vs_lm.py --config examples/curve_fit_wide.yaml --out docs/results/curve_fit.md
    python benchmarks/curve_fit_vs_lm.py --checkpoint runs/curve_fit --n 200
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from common import command_line, machine, method_tables, write_section
from scipy.optimize import least_squares

from curve_fit.problem import SUCCESS_THRESHOLD
from curve_fit.signal import NAMES, UNITS, residual_fn
from selfiter.api import TrainedSolver, load
from selfiter.config import load_config
from selfiter.solver import GaussNewtonSolver
from selfiter.training import train

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Outcome:
    """One method on one start distribution."""

    #: % of problems whose final normalised parameter error is under the threshold
    success: float
    #: median final normalised parameter error (dimensionless; NaN counts as +inf)
    median_err: float
    #: wall time per problem, ms
    ms: float


def _np_model(t: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Curve ``(T,)`` and Jacobian ``(T, 4)`` of one parameter vector ``(4,)``, float64."""
    a, l, w, p = theta
    e = np.exp(-l * t)
    s, c = np.sin(w * t + p), np.cos(w * t + p)
    f = a * e * s
    jac = np.stack([e * s, -t * f, a * e * t * c, a * e * c], axis=1)
    return f, jac


def scipy_fit(method: str, t: torch.Tensor, inputs: torch.Tensor, theta0: torch.Tensor) -> torch.Tensor:
    """``least_squares`` per problem (the baseline's own Python loop): ``(N, T), (N, 4) -> (N, 4)``."""
    tt = t.double().numpy()
    out = np.empty(tuple(theta0.shape))
    for i, (y, x0) in enumerate(zip(inputs.double().numpy(), theta0.double().numpy())):
        def fun(x: np.ndarray, y: np.ndarray = y) -> np.ndarray:
            return _np_model(tt, x)[0] - y

        def jac(x: np.ndarray) -> np.ndarray:
            return _np_model(tt, x)[1]

        with np.errstate(all="ignore"):  # far starts overflow exp; lm/trf report it as a failed fit
            try:
                out[i] = least_squares(fun, x0, jac=jac, method=method).x
            except ValueError:  # "residuals are not finite in the initial point"
                out[i] = np.nan
    return torch.from_numpy(out).float()


def timed(fn: Callable[[], torch.Tensor], n: int) -> tuple[torch.Tensor, float]:
    """Run ``fn`` once; return its result and the wall time per problem in ms."""
    t0 = time.perf_counter()
    theta = fn()
    return theta, (time.perf_counter() - t0) * 1e3 / n


def outcome(model: TrainedSolver, theta: torch.Tensor, theta_gt: torch.Tensor, ms: float) -> Outcome:
    err = model.problem.normalised_error(theta, theta_gt)  # (N,)
    err = torch.where(torch.isfinite(err), err, torch.full_like(err, float("inf")))
    return Outcome(float((err < SUCCESS_THRESHOLD).float().mean() * 100), float(err.median()), ms)


def starts(model: TrainedSolver, theta_gt: torch.Tensor, distances: list[float],
           seed: int) -> dict[str, torch.Tensor]:
    """Start points ``(N, 4)`` by label: ``d = ...`` around the truth, and ``mean``."""
    g = torch.Generator().manual_seed(seed)
    s_std = model.parameter_model.s_std().to(theta_gt)  # (4,)
    out = {f"d = {d:g}": theta_gt + d * s_std * torch.randn(theta_gt.shape, generator=g)
           for d in distances}
    out["mean"] = model.initial_theta(len(theta_gt)).to(theta_gt)
    return out


def run_all(model: TrainedSolver, n: int, distances: list[float], iterations: int,
            gn_iterations: int, polish: int, damping: float, seed: int
            ) -> dict[str, dict[str, Outcome]]:
    """Every method on every start distribution: ``{start: {method: Outcome}}``."""
    data = model.problem.load("test")
    data = data.subset(torch.arange(min(n, len(data))))
    t = model.problem.t  # (T,) s
    gn = GaussNewtonSolver(residual_fn(t), damping=damping)
    y, gt = data.inputs, data.theta_gt
    m = len(data)
    # The first calls pay one-off costs (vmap tracing, allocator warm-up) that are no solver's.
    gn.solve(y[:8], model.initial_theta(8), 1)
    model.solve(y[:8], iterations=1)
    table: dict[str, dict[str, Outcome]] = {}
    for label, theta0 in starts(model, gt, distances, seed).items():
        row: dict[str, Outcome] = {}
        sir, ms = timed(lambda: model.solve(y, theta0, iterations=iterations, tol=0.0).theta, m)
        row["SIR"] = outcome(model, sir, gt, ms)
        polished, ms_p = timed(lambda: gn.solve(y, sir, polish).theta, m)
        row[f"SIR + {polish} GN"] = outcome(model, polished, gt, ms + ms_p)
        theta, ms = timed(lambda: gn.solve(y, theta0, gn_iterations).theta, m)
        row[f"GN x{gn_iterations}"] = outcome(model, theta, gt, ms)
        for method in ("lm", "trf"):
            theta, ms = timed(lambda: scipy_fit(method, t, y, theta0), m)
            row[f"scipy {method}"] = outcome(model, theta, gt, ms)
        table[label] = row
        print(f"  {label}: " + ", ".join(f"{k} {v.success:.1f}%" for k, v in row.items()),
              file=sys.stderr, flush=True)
    return table


def markdown(table: dict[str, dict[str, Outcome]]) -> str:
    """Three Markdown tables (success %, median error, ms per problem), one row per start."""
    return method_tables(table, (
        (f"Success rate, % of problems with final error < {SUCCESS_THRESHOLD}",
         lambda o: f"{o.success:.1f}"),
        ("Median final normalised parameter error", lambda o: f"{o.median_err:.4g}"),
        ("Time per problem, ms (one CPU thread)", lambda o: f"{o.ms:.3f}"),
    ))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(REPO / "examples" / "curve_fit.yaml"),
                   help="config to train when no --checkpoint is given")
    p.add_argument("--checkpoint", help="a trained curve_fit checkpoint or run folder (skips training)")
    p.add_argument("--run-dir", help="where to train (default: a temporary folder)")
    p.add_argument("--n", type=int, default=500, help="test problems per start distribution")
    p.add_argument("--distances", type=float, nargs="+", default=[0.25, 0.5, 1, 2, 4],
                   help="start distances d, in units of each parameter's training spread")
    p.add_argument("--iterations", type=int, help="SIR iterations (default: solver.iterations)")
    p.add_argument("--polish", type=int, default=3, help="GN steps after SIR (SIR + GN)")
    p.add_argument("--gn-iterations", type=int, default=50, help="GN steps from the start")
    p.add_argument("--gn-damping", type=float, default=1e-3, help="GN's Levenberg damping")
    p.add_argument("--seed", type=int, default=0, help="seed of the start points")
    p.add_argument("--out", help="also write the results as Markdown into this file (see above)")
    p.add_argument("--name", help="the section's name in --out (default: the config file's name, "
                                  "or the checkpoint's when --checkpoint is given)")
    args = p.parse_args(argv)
    # One thread for every method, so that time per problem compares like with like
    # and the benchmark leaves the other cores of a shared machine alone.
    torch.set_num_threads(1)

    train_note = ""
    if args.checkpoint:
        ckpt = args.checkpoint
        name = args.name or Path(args.checkpoint).name
    else:
        cfg = load_config(args.config)
        name = args.name or Path(args.config).name
        run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="curve_fit_"))
        t0 = time.perf_counter()
        ckpt = train(cfg, run_dir, progress=False)
        train_note = (f"Training `{Path(args.config).name}` ({cfg.train.steps} steps of batch "
                      f"{cfg.train.batch_size}, {cfg.train.num_threads or 'default'} thread(s)) "
                      f"took {time.perf_counter() - t0:.0f} s on this machine.\n")
        print(train_note, file=sys.stderr)
    model = load(ckpt)
    iterations = args.iterations or model.config.solver.iterations
    n = min(args.n, len(model.problem.load("test")))
    table = run_all(model, n, args.distances, iterations, args.gn_iterations, args.polish,
                    args.gn_damping, args.seed)
    text = markdown(table)
    print(text)
    if args.out:
        setup = (
            f"{problem_summary(model)}. {n} test problems per start; starts are "
            "`theta* + d * s_std * N(0, 1)` (s_std: each parameter's spread over the training "
            "set) or the training mean, the same for every method. SIR runs "
            f"{iterations} iterations; GN is the core's GaussNewtonSolver with damping "
            f"{args.gn_damping:g}; scipy uses an analytic Jacobian and its default tolerances. "
            "Success: final normalised parameter error (RMS over a, l, w, p of the error "
            "divided by the width of the parameter's box, after mapping the solution to its "
            "canonical form a, w >= 0, phase modulo 2 pi) below "
            f"{SUCCESS_THRESHOLD}. SIR and GN solve all problems of a row as one batch; "
            "scipy is called once per problem, so its time includes Python overhead per call. "
            "Times are wall clock on a machine shared with other work: compare them within a "
            "row, not to the last digit.\n"
        )
        body = (f"Command: `{command_line(__file__, argv)}`\n\nMachine: {machine()}.\n\n"
                f"{train_note}\n{setup}\n{text}")
        write_section(args.out, name, body, TITLE)
    return 0


def problem_summary(model: TrainedSolver) -> str:
    """The problem's box, grid and noise in words, e.g. for the written results."""
    prob = model.problem
    box = ", ".join(f"{n} in [{lo:.3g}, {hi:.3g})" + ("" if u == "1" else f" {u}")
                    for n, u, lo, hi in zip(NAMES, UNITS, prob.low.tolist(), prob.high.tolist()))
    t = prob.t
    return (f"Ground truths uniform in {box}; {len(t)} samples on [0, {float(t[-1]):g}] s, "
            f"noise std {prob.noise:g}")


#: the title a new results file starts with
TITLE = "curve_fit: learned (SIR) vs classical solvers from the same starts"


if __name__ == "__main__":
    raise SystemExit(main())
