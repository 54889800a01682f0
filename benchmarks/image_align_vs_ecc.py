"""Learned (SIR) versus classical image alignment from the same starts: OpenCV's ECC and
Gauss-Newton (Lucas-Kanade) on the pixel residual.

Test pairs are cut from the photos of the trained problem's test split (scikit-image's
sample photos by default, never trained on) with the problem's own template size and
photo scale. For each start displacement ``r`` (px) every corner of the true homography
is moved by exactly ``r`` in a random direction from the template's corner, so the
identity start, which every method uses, has a corner error of exactly ``r``. Each
``r`` is run under two lights:

* ``same light``: no photometric change (sensor noise and blur as the problem has them);
* ``light change``: contrast gain ``exp(U(-c, c))``, brightness ``U(-b, b) * 255`` and an
  illumination ramp (``--contrast``, ``--brightness``, ``--gradient``).

Methods:

* SIR: the trained solver, ``K`` iterations, batched;
* SIR, 4 views: the same, averaged with its solves of the pair mirrored, transposed and
  turned a quarter (``solver.tta``: the problem's test views), one batch of 4 N;
* GN: coarse-to-fine Gauss-Newton on the pixel residual (blur 4, 2, 1 px, 10 iterations
  each, a 32 x 32 grid of residual points), batched, forward-mode Jacobians
  (the core's :class:`selfiter.solver.GaussNewtonSolver`, ``jacobian="forward"``);
* ECC: ``cv2.findTransformECC`` with ``MOTION_HOMOGRAPHY`` (``--ecc-iterations``,
  eps 1e-5, Gaussian filter 5), one pair at a time; a pair it gives up on fails;
* SIR, then ECC: ECC started from SIR's result (its time is the sum of both).

A solve succeeds when its mean corner error is below 1 px (and, second table, 3 px).
Time per problem is wall time over the whole batch divided by its size, on ONE CPU
thread for every method.

    python benchmarks/image_align_vs_ecc.py --checkpoint runs/image_align --out docs/results/image_align.md
    python benchmarks/image_align_vs_ecc.py --checkpoint runs/image_align --n 20 --radii 4 16
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from common import method_tables, write_report

from image_align.classical import DEFAULT_LEVELS, ecc_align, gauss_newton_align
from image_align.metrics import corner_error
from image_align.synthesis import make_pairs
from selfiter.api import TrainedSolver, load

TITLE = "image_align: learned (SIR) vs OpenCV ECC and Gauss-Newton from the same starts"


@dataclass
class Outcome:
    """One method on one set of pairs."""

    #: % of pairs with a final mean corner error below 1 px / 3 px
    success_1: float
    success_3: float
    #: median final corner error, px (a failure counts as +inf)
    median_err: float
    #: wall time per pair, ms
    ms: float


def outcome(theta: torch.Tensor, theta_gt: torch.Tensor, ms: float) -> Outcome:
    err = corner_error(theta.double(), theta_gt.double())  # (N,) px, inf where not finite
    return Outcome(float((err < 1).double().mean() * 100), float((err < 3).double().mean() * 100),
                   float(err.median()), ms)


def timed(fn: Callable[[], torch.Tensor], n: int) -> tuple[torch.Tensor, float]:
    """Run ``fn`` once; return its result and the wall time per problem in ms."""
    t0 = time.perf_counter()
    theta = fn()
    return theta, (time.perf_counter() - t0) * 1e3 / n


def test_pairs(model: TrainedSolver, n: int, radius: float, light: dict[str, float], seed: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` pairs ``(n, 2, S, S)`` uint8 and their truths ``(n, 8)`` px: the problem's
    test photos and settings, the ring law at ``radius`` px and the given light."""
    problem = model.problem
    photos, _ = problem.photos("test")
    settings = dataclasses.replace(problem.settings, shift_law="ring", max_shift=radius, **light)
    inputs, theta, _ = make_pairs(photos, n, settings, torch.Generator().manual_seed(seed))
    return inputs, theta


def run_all(model: TrainedSolver, n: int, radii: list[float], lights: dict[str, dict[str, float]],
            iterations: int, ecc_iterations: int, seed: int) -> dict[str, dict[str, Outcome]]:
    """Every method on every (light, radius): ``{row label: {method: Outcome}}``."""
    table: dict[str, dict[str, Outcome]] = {}
    warm, _ = test_pairs(model, 4, radii[0], lights["same light"], seed)
    # the first calls pay one-off costs (vmap tracing, allocator warm-up) that are no solver's
    model.solve(warm, iterations=1)
    gauss_newton_align(warm, torch.zeros(4, 8), levels=DEFAULT_LEVELS[:1])
    for li, (light_name, light) in enumerate(lights.items()):
        for ri, r in enumerate(radii):
            inputs, gt = test_pairs(model, n, r, light, seed + 1000 * li + ri)
            start = torch.zeros_like(gt)  # the identity: corner error exactly r
            row: dict[str, Outcome] = {}
            sir, sir_ms = timed(lambda: model.solve(inputs, start, iterations=iterations).theta, n)
            row[f"SIR x{iterations}"] = outcome(sir, gt, sir_ms)
            # averaged with its solves of the mirrored, transposed and turned pair (solver.tta)
            theta, ms = timed(lambda: model.solve(inputs, start, iterations=iterations,
                                                  tta=True).theta, n)
            row[f"SIR x{iterations}, 4 views"] = outcome(theta, gt, ms)
            # the learned solver's basin, then the classical solver's sub-pixel polish
            theta, ms = timed(lambda: ecc_align(inputs, sir, iterations=ecc_iterations), n)
            row[f"SIR x{iterations}, then ECC"] = outcome(theta, gt, sir_ms + ms)
            theta, ms = timed(lambda: gauss_newton_align(inputs, start), n)
            row["GN (coarse-to-fine)"] = outcome(theta, gt, ms)
            theta, ms = timed(lambda: ecc_align(inputs, start, iterations=ecc_iterations), n)
            row["ECC"] = outcome(theta, gt, ms)
            label = f"{light_name}, r = {r:g} px"
            table[label] = row
            print(f"  {label}: " + ", ".join(f"{k} {v.success_1:.0f}% / {v.success_3:.0f}%"
                                             for k, v in row.items()), file=sys.stderr, flush=True)
    return table


def markdown(table: dict[str, dict[str, Outcome]]) -> str:
    """Four Markdown tables (success < 1 px, < 3 px, median error, ms per pair), one row each."""
    return method_tables(table, (
        ("Success rate, % of pairs with mean corner error < 1 px", lambda o: f"{o.success_1:.1f}"),
        ("Success rate, % of pairs with mean corner error < 3 px", lambda o: f"{o.success_3:.1f}"),
        ("Median final mean corner error, px", lambda o: f"{o.median_err:.3g}"),
        ("Time per pair, ms (one CPU thread)", lambda o: f"{o.ms:.2f}"),
    ))


def plot(table: dict[str, dict[str, Outcome]], radii: list[float], path: Path) -> None:
    """Success (< 3 px) against the start displacement, one panel per light."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lights = list(dict.fromkeys(label.split(", r =")[0] for label in table))
    methods = list(next(iter(table.values())))
    fig, axes = plt.subplots(1, len(lights), figsize=(5 * len(lights), 3.6), sharey=True,
                             squeeze=False)
    for ax, light in zip(axes[0], lights):
        for m in methods:
            ys = [table[f"{light}, r = {r:g} px"][m].success_3 for r in radii]
            ax.plot(radii, ys, marker="o", label=m)
        ax.set_xscale("log", base=2)
        ax.set_xticks(radii, [f"{r:g}" for r in radii])
        ax.set_xlabel("start corner displacement r, px")
        ax.set_title(light)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("success (< 3 px), %")
    axes[0][0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="a trained image_align checkpoint or run folder")
    p.add_argument("--n", type=int, default=200, help="pairs per (light, displacement)")
    p.add_argument("--radii", type=float, nargs="+", default=[4, 8, 16, 32],
                   help="start corner displacements r, px")
    p.add_argument("--contrast", type=float, default=0.5, help="light change: contrast (log gain)")
    p.add_argument("--brightness", type=float, default=0.2, help="light change: brightness / 255")
    p.add_argument("--gradient", type=float, default=0.3, help="light change: illumination ramp")
    p.add_argument("--iterations", type=int, help="SIR iterations (default: solver.iterations)")
    p.add_argument("--ecc-iterations", type=int, default=100, help="ECC's iteration limit")
    p.add_argument("--seed", type=int, default=0, help="seed of the test pairs")
    p.add_argument("--out", help="write the results page (Markdown) here, and the plot beside it")
    args = p.parse_args(argv)
    # One thread for every method, so that time per problem compares like with like
    # and the benchmark leaves the other cores of a shared machine alone.
    torch.set_num_threads(1)
    model = load(args.checkpoint)
    size = model.problem.size
    too_far = [r for r in args.radii if r >= size / 3]
    if too_far:
        p.error(f"--radii {too_far}: must be below size / 3 = {size / 3:.3g} px")
    iterations = args.iterations or model.config.solver.iterations
    none = dict(contrast=0.0, brightness=0.0, gradient=0.0)
    lights = {"same light": none,
              "light change": dict(contrast=args.contrast, brightness=args.brightness,
                                   gradient=args.gradient)}
    table = run_all(model, args.n, args.radii, lights, iterations, args.ecc_iterations, args.seed)
    text = markdown(table)
    print(text)
    if args.out:
        out = Path(args.out)
        png = out.with_suffix(".png")
        plot(table, args.radii, png)
        s = model.problem.settings
        intro = (
            f"Checkpoint `{args.checkpoint}`. {args.n} pairs per row, {size} px templates cut "
            f"from the problem's test photos ({len(model.problem.test_photos)} packaged photos, "
            f"never trained on) at a {model.problem.photo_side} px photo scale. Every corner "
            "of the true homography is `r` px from the template's corner (random direction); "
            "every method starts from the identity. Blur up to "
            f"{s.blur:g} px and noise up to {s.noise:g} grey levels as in training; the light "
            f"change is a contrast gain exp(U(-{args.contrast:g}, {args.contrast:g})), a "
            f"brightness offset U(-{args.brightness:g}, {args.brightness:g}) x 255 and an "
            f"illumination ramp of up to +-{args.gradient:g}. SIR runs {iterations} "
            "iterations; GN is coarse-to-fine Gauss-Newton on the pixel residual (blur "
            + ", ".join(f"{lv.sigma:g}" for lv in DEFAULT_LEVELS) + " px, "
            + ", ".join(str(lv.iterations) for lv in DEFAULT_LEVELS) + " iterations); ECC is "
            f"`cv2.findTransformECC` (MOTION_HOMOGRAPHY, {args.ecc_iterations} iterations, "
            "eps 1e-5, Gaussian filter 5). SIR and GN solve a row as one batch, ECC one pair "
            "at a time. Times are wall clock on one thread on a machine that may be shared: "
            "compare them within a row.\n\n"
            f"![success against start displacement]({png.name})")
        write_report(str(out), TITLE, __file__, argv, intro, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
