"""Export a trained solver as one graph, for runtimes without Python or without selfiter.

``part="solver"``: the whole iterative solve unrolled ``K`` times, feature
extraction included (the per-input encoding once, then at every iteration the
features at theta, e.g. the ``grid_sample`` patches of faces), as a module
``(inputs: (B, ...), theta0: (B, D)) -> (theta: (B, D), trajectory: (K+1, B, D))``.
Unlike :meth:`selfiter.solver.IterativeSolver.solve` it always runs all ``K``
steps (no tolerance stop, no per-sample freezing of a non-finite theta): a
fixed graph. ``part="regressor"``: the regressor alone,
``features: (B, *feature_shape) -> delta: (B, D)``; the caller extracts
features. The batch dimension ``B`` stays dynamic in both.

Formats: ONNX through ``torch.onnx.export`` (the ``torch.export``-based
exporter, which needs ``onnxscript``, or the legacy TorchScript-based one) and
TorchScript through ``torch.jit.trace``.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
import torch
from torch import nn

from selfiter.atomic import atomic_path
from selfiter.errors import ConfigError, SelfiterError
from selfiter.solver import LearnedModel

Part = Literal["solver", "regressor"]
Format = Literal["onnx", "torchscript"]
Exporter = Literal["dynamo", "legacy"]

#: ONNX opset of both exporters (GridSample needs >= 16)
DEFAULT_OPSET = 18
#: names of each part's graph inputs and outputs
IO_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "solver": (("inputs", "theta0"), ("theta", "trajectory")),
    "regressor": (("features",), ("delta",)),
}


class UnrolledSolver(nn.Module):
    """``K`` iterations of a learned solver as one module:
    ``(inputs: (B, ...), theta0: (B, D)) -> (theta_K: (B, D), trajectory: (K+1, B, D))``.

    The inputs are encoded once, then every iteration takes ``model.step``, the
    same step the solver loop and training take. The model is a submodule, so
    its weights become the graph's parameters, not constants folded into it."""

    def __init__(self, model: LearnedModel, iterations: int) -> None:
        super().__init__()
        self.model = model
        self.iterations = iterations

    def forward(self, inputs: torch.Tensor, theta0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        context = self.model.encode(inputs)
        theta = theta0
        trajectory = [theta]
        for k in range(self.iterations):
            theta = theta + self.model.step(context, theta, k).to(theta.dtype)
            trajectory.append(theta)
        return theta, torch.stack(trajectory)


@dataclass
class ExportResult:
    """What :func:`export` wrote."""

    path: Path
    format: str
    part: str
    #: unrolled iterations (None for the regressor)
    iterations: int | None
    #: the example arguments the graph was traced with, and PyTorch's outputs on them
    args: tuple[torch.Tensor, ...]
    outputs: tuple[torch.Tensor, ...]
    #: wall time of the export, s
    seconds: float


def export_module(model: Any, part: Part, iterations: int) -> nn.Module:
    """The module to export for ``model`` (a :class:`selfiter.api.TrainedSolver`), in eval mode."""
    if part == "regressor":
        if model.model.learned_extractor:
            raise ConfigError("--part regressor: this model's feature extractor has learned "
                              "weights of its own; export the solver instead")
        if len(model.regressors) != 1:
            raise ConfigError(f"--part regressor: a cascade has {len(model.regressors)} regressors; "
                              "export the solver instead")
        return model.regressors[0].eval()
    if part != "solver":
        raise ConfigError(f"part {part!r}: expected solver or regressor")
    if iterations < 1:
        raise ConfigError(f"iterations must be >= 1 to export, got {iterations}")
    if model.max_iterations is not None and iterations > model.max_iterations:
        raise ConfigError(f"iterations={iterations}: a cascade of {model.max_iterations} stages "
                          f"runs at most {model.max_iterations}")
    return UnrolledSolver(model.model, iterations).eval()


def example_args(model: Any, part: Part, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Graph arguments built from a batch of real ``inputs: (B, ...)``: the inputs and
    the mean start (solver), or their features at the mean start (regressor), on the CPU."""
    inputs = inputs.cpu()
    theta0 = model.initial_theta(inputs.shape[0]).cpu()
    if part == "solver":
        return inputs, theta0
    with torch.no_grad():
        return (model.extractor.features(inputs, theta0),)


def export(model: Any, path: str | Path, inputs: torch.Tensor, fmt: Format = "onnx",
           part: Part = "solver", iterations: int | None = None, exporter: Exporter = "dynamo",
           opset: int = DEFAULT_OPSET) -> ExportResult:
    """Write ``model``'s solver or regressor to ``path`` (atomically), traced on a batch of
    real ``inputs: (B, ...)`` (B >= 2, so that the batch size is not taken for a constant).

    ``iterations`` defaults to the config's ``solver.iterations``. The model
    must be on the CPU (``selfiter.load(..., device="cpu")``)."""
    if model.device.type != "cpu":
        raise ConfigError(f"export runs on the CPU; the model is on {model.device}")
    if inputs.shape[0] < 2:
        raise ConfigError(f"export needs a batch of at least 2 example inputs, got {inputs.shape[0]}")
    k = model.config.solver.iterations if iterations is None else iterations
    module = export_module(model, part, k)
    args = example_args(model, part, inputs)
    with torch.no_grad():
        outputs = module(*args)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    in_names, out_names = IO_NAMES[part]
    t0 = time.perf_counter()
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # tracing warns about every shape read as a Python number: the graph is
        # checked against PyTorch on real inputs instead (see check_onnx)
        warnings.simplefilter("ignore")
        if fmt == "onnx":
            _export_onnx(module, args, tmp, in_names, out_names, exporter, opset)
        elif fmt == "torchscript":
            with torch.no_grad():
                torch.jit.trace(module, args).save(str(tmp))
        else:
            raise ConfigError(f"format {fmt!r}: expected onnx or torchscript")
    return ExportResult(Path(path), fmt, part, k if part == "solver" else None, args, outputs,
                        time.perf_counter() - t0)


class _NoTorchvisionNotes(logging.Filter):
    """Drops the dynamo exporter's "torchvision is not installed. Skipping ..." warnings: it
    logs one per torchvision op it knows, although no selfiter graph uses torchvision."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("torchvision is not installed")


#: the logger of torch's ONNX op registry, which writes those warnings
_REGISTRY_LOGGER = "torch.onnx._internal.exporter._registration"


@contextlib.contextmanager
def quiet_torchvision_notes() -> Iterator[None]:
    """While exporting, without the exporter's torchvision warnings (other warnings pass)."""
    logger, note = logging.getLogger(_REGISTRY_LOGGER), _NoTorchvisionNotes()
    logger.addFilter(note)
    try:
        yield
    finally:
        logger.removeFilter(note)


def _export_onnx(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path,
                 in_names: tuple[str, ...], out_names: tuple[str, ...], exporter: Exporter,
                 opset: int) -> None:
    # the trajectory's batch is its second dimension
    batch_dim = {name: (1 if name == "trajectory" else 0) for name in (*in_names, *out_names)}
    if exporter == "dynamo":
        batch = torch.export.Dim("batch")
        with quiet_torchvision_notes():
            program = torch.onnx.export(
                module, args, input_names=list(in_names), output_names=list(out_names),
                dynamic_shapes=tuple({0: batch} for _ in in_names), dynamo=True,
                opset_version=opset, verbose=False)
        program.save(str(path))
    elif exporter == "legacy":
        torch.onnx.export(
            module, args, str(path), input_names=list(in_names), output_names=list(out_names),
            dynamic_axes={n: {d: "batch"} for n, d in batch_dim.items()}, dynamo=False,
            opset_version=opset)
    else:
        raise ConfigError(f"exporter {exporter!r}: expected dynamo or legacy")


def run_onnx(path: str | Path, args: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    """Run an exported ONNX graph with onnxruntime on the CPU (raises :class:`SelfiterError`
    when onnxruntime is not installed)."""
    try:
        import onnxruntime
    except ImportError:
        raise SelfiterError("onnxruntime is not installed (pip install -e '.[onnx]')") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)}
    return session.run(None, feeds)


def run_torchscript(path: str | Path, args: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    """Run a TorchScript file written by :func:`export` on the CPU."""
    with torch.no_grad():
        out = torch.jit.load(str(path), map_location="cpu")(*args)
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def max_difference(result: ExportResult) -> float:
    """Largest absolute difference between the exported file's outputs and PyTorch's on
    the export's example arguments, in the outputs' units (px for faces)."""
    run = run_onnx if result.format == "onnx" else run_torchscript
    got = run(result.path, result.args)
    return max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, result.outputs))
