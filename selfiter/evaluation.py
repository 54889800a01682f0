"""Batched solving and per-iteration scoring of a trained solver on a problem's split."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from selfiter.interfaces import ParameterModel, Problem, ProblemData
from selfiter.solver import IterativeSolver, SolveResult


def initial_theta(model: ParameterModel, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The solver's start for ``n`` samples: theta of the mean state S0, ``(n, D)``."""
    s0 = model.s_mean().to(device=device, dtype=torch.float32)  # (P,)
    return model.theta(s0.unsqueeze(0)).expand(n, -1).clone()


def inference_autocast(device: torch.device, amp: bool):
    """The autocast of a solve: bf16 on CUDA with ``amp`` (``train.amp``), else none (a CPU
    solves in float32 whatever ``train.amp_cpu`` says: that setting is the training step's)."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def solve_batched(
    solver: IterativeSolver,
    model: ParameterModel,
    inputs: torch.Tensor,
    iterations: int,
    tol: float = 0.0,
    batch_size: int = 256,
    theta0: torch.Tensor | None = None,
    amp: bool = False,
    progress: bool = False,
) -> SolveResult:
    """Solve ``inputs: (N, ...)`` in chunks of ``batch_size`` (from the mean state unless
    ``theta0: (N, D)`` is given) and concatenate the results."""
    n = inputs.shape[0]
    device = inputs.device
    if theta0 is None:
        theta0 = initial_theta(model, n, device)
    parts: list[SolveResult] = []
    with inference_autocast(device, amp):
        starts = range(0, n, batch_size)
        # no bar object at all without progress: a one-face fit calls this for every face
        for a in tqdm(starts, desc="solve", unit="batch") if progress else starts:
            parts.append(solver.solve(inputs[a:a + batch_size], theta0[a:a + batch_size].to(device),
                                      iterations, tol))
    if len(parts) == 1:  # one batch (a one-face fit): nothing to join
        return parts[0]
    return SolveResult(
        theta=torch.cat([p.theta for p in parts]),
        trajectory=torch.cat([p.trajectory for p in parts], dim=1),
        steps=torch.cat([p.steps for p in parts]),
        converged=torch.cat([p.converged for p in parts]),
        nonfinite=torch.cat([p.nonfinite for p in parts]),
    )


@dataclass
class Evaluation:
    """Scores of one solve: ``per_iteration[k]`` is the metrics after k iterations (k=0: the start)."""

    split: str
    n: int
    metrics: dict[str, float]
    per_iteration: list[dict[str, float]]
    n_nonfinite: int
    result: SolveResult = field(repr=False)

    def to_json(self) -> dict:
        return {"split": self.split, "n": self.n, **self.metrics, "n_nonfinite": self.n_nonfinite,
                "per_iteration": [{"iteration": k, **m} for k, m in enumerate(self.per_iteration)]}


def score(problem: Problem, data: ProblemData, result: SolveResult, split: str) -> Evaluation:
    """Metrics at every iteration of ``result``; non-finite samples are counted, not hidden."""
    per_iter = [problem.metrics(result.trajectory[k], data) for k in range(result.trajectory.shape[0])]
    return Evaluation(split=split, n=len(data), metrics=per_iter[-1], per_iteration=per_iter,
                      n_nonfinite=int(result.nonfinite.sum()), result=result)
