"""Inference through onnxruntime: a trained solver's whole loop as one ONNX graph.

On a CPU, PyTorch spends most of a one-input solve on per-operator overhead
(small convolutions, small matrix products); onnxruntime runs the same graph
about twice as fast for one face (``docs/benchmarks.md``). :class:`OnnxRuntimeSolver` exports
the unrolled solver (:class:`selfiter.export.UnrolledSolver`: the encoding once,
then K steps) the first time it is asked for K iterations of inputs of one
shape, checks it against PyTorch on those inputs, keeps the file in a cache
folder keyed by the checkpoint's content and the code of its modules, and from
then on solves with it.

``onnxruntime-int8`` runs the same graph with its matrix products in int8
(onnxruntime's dynamic quantization: int8 weights, activations quantized per
call): a one-input solve of a regressor with large fully connected layers is
weight-bandwidth bound, and int8 weights are a quarter of the bytes. The
convolutions stay float (in a one-off comparison on the 2-core CPU, not a kept
benchmark, quantizing them too made the face solve slower, not faster). Its check against PyTorch allows
:data:`INT8_RELATIVE_TOLERANCE` of the solve's largest move instead of
:data:`CHECK_TOLERANCE`.

It runs every iteration (no tolerance stop) and flags the samples whose theta
is not finite, like :meth:`selfiter.solver.IterativeSolver.solve` with
``tol = 0``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfiter.errors import ConfigError, SelfiterError
from selfiter.solver import SolveResult

#: runtimes :func:`selfiter.load` accepts
RUNTIMES = ("torch", "onnxruntime", "onnxruntime-int8")
#: largest |onnxruntime - PyTorch| accepted on the check after export, in theta's unit
CHECK_TOLERANCE = 1e-2
#: largest |int8 graph - PyTorch| accepted, as a fraction of max |theta_K - theta_0| on the
#: check's inputs (the quantization error scales with the values it rounds, not with theta's unit)
INT8_RELATIVE_TOLERANCE = 0.1


def cache_dir() -> Path:
    """Where exported graphs are kept: ``$SELFITER_CACHE`` or ``~/.cache/selfiter``
    (``$XDG_CACHE_HOME/selfiter``)."""
    if os.environ.get("SELFITER_CACHE"):
        return Path(os.environ["SELFITER_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "selfiter"


def _fingerprint(source: str, model: torch.nn.Module) -> str | None:
    """A short hash of what the exported graph depends on: the checkpoint file's bytes,
    the source files of the model's modules (a changed extractor or regressor must not
    reuse an old graph) and the torch and selfiter versions; None when the checkpoint is
    not a file."""
    import inspect

    import selfiter

    p = Path(source)
    if not p.is_file():
        return None
    h = hashlib.sha256(p.read_bytes())
    files = {inspect.getsourcefile(type(m)) for m in model.modules()}
    for f in sorted(f for f in files if f and Path(f).is_file()):
        h.update(Path(f).read_bytes())
    h.update(f"{torch.__version__} {selfiter.__version__}".encode())
    return h.hexdigest()[:16]


class OnnxRuntimeSolver:
    """Solves like the solver of ``model`` (a :class:`selfiter.api.TrainedSolver` on the
    CPU), through onnxruntime; one session per iteration count, input shape and
    thread count."""

    def __init__(self, model: Any, int8: bool = False) -> None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise SelfiterError("runtime onnxruntime: onnxruntime is not installed "
                                "(pip install -e '.[onnx]')") from None
        if model.device.type != "cpu":
            raise ConfigError(f"runtime onnxruntime runs on the CPU; the model is on {model.device}")
        self.model = model
        self.int8 = int8
        self.fingerprint = _fingerprint(model.source, model.model)
        self._sessions: dict[tuple, Any] = {}

    def solve(self, inputs: torch.Tensor, theta0: torch.Tensor, iterations: int,
              tol: float = 0.0) -> SolveResult:
        """``inputs: (B, ...)``, ``theta0: (B, D)`` -> all ``iterations`` steps."""
        if tol > 0:
            raise ConfigError(f"solver.tol={tol}: the onnxruntime runtime runs every iteration; "
                              "use tol 0 or the torch runtime")
        if iterations == 0:
            return self.model.solver.solve(inputs, theta0, 0)
        session = self._session(iterations, inputs, theta0)
        feeds = {i.name: a.cpu().numpy() for i, a in zip(session.get_inputs(), (inputs, theta0))}
        theta, trajectory = (torch.from_numpy(np.ascontiguousarray(x)) for x in session.run(None, feeds))
        b = theta.shape[0]
        return SolveResult(
            theta=theta, trajectory=trajectory,
            steps=torch.full((b,), iterations, dtype=torch.long),
            converged=torch.zeros(b, dtype=torch.bool),
            nonfinite=~torch.isfinite(theta).all(1))

    def _session(self, iterations: int, inputs: torch.Tensor, theta0: torch.Tensor) -> Any:
        import onnxruntime

        threads = torch.get_num_threads()
        key = (iterations, tuple(inputs.shape[1:]), str(inputs.dtype), threads)
        if key in self._sessions:
            return self._sessions[key]
        path = self._graph(iterations, inputs)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(path), options,
                                               providers=["CPUExecutionProvider"])
        self._sessions[key] = session
        return session

    def _graph(self, iterations: int, inputs: torch.Tensor) -> Path:
        """The cached ONNX file for this checkpoint, K, input shape and precision,
        exported (and checked against PyTorch) when it is not there yet."""
        from selfiter.export import export, max_difference

        shape = "x".join(str(s) for s in inputs.shape[1:])
        name = f"{self.fingerprint or 'memory-' + str(id(self.model))}-k{iterations}-{shape}"
        path = cache_dir() / "onnx" / f"{name}.onnx"
        int8_path = path.with_name(f"{name}-int8.onnx")
        cached = self.fingerprint is not None
        if cached and (int8_path if self.int8 else path).is_file():
            return int8_path if self.int8 else path
        # two examples, so that the exporter keeps the batch dimension free
        example = inputs[:2] if inputs.shape[0] >= 2 else inputs[:1].repeat_interleave(2, 0)
        example = example.cpu()
        if not (cached and path.is_file()):
            path.parent.mkdir(parents=True, exist_ok=True)
            result = export(self.model, path, example, "onnx", "solver", iterations, "legacy")
            diff = max_difference(result)
            if not diff <= CHECK_TOLERANCE:
                path.unlink(missing_ok=True)
                raise SelfiterError(f"runtime onnxruntime: the exported graph differs from "
                                    f"PyTorch by {diff:.3g} (> {CHECK_TOLERANCE}); use the torch "
                                    "runtime")
        if not self.int8:
            return path
        self._quantize(path, int8_path, example, iterations)
        return int8_path

    def _quantize(self, source: Path, path: Path, example: torch.Tensor, iterations: int) -> None:
        """Write the int8 version of the float graph ``source`` to ``path`` atomically,
        after checking it against PyTorch's solve of ``example``."""
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic

        from selfiter.atomic import atomic_path
        from selfiter.export import run_onnx

        theta0 = self.model.initial_theta(example.shape[0]).cpu()
        with torch.no_grad():
            expected = self.model.solver.solve(example, theta0, iterations).theta.numpy()
        root = logging.getLogger()
        level = root.level
        with atomic_path(path) as tmp:
            # it logs a hint to run its shape pre-processing on the root logger, which only
            # helps static quantization
            root.setLevel(logging.ERROR)
            try:
                quantize_dynamic(source, tmp, op_types_to_quantize=["MatMul", "Gemm"],
                                 weight_type=QuantType.QInt8)
            finally:
                root.setLevel(level)
            theta = run_onnx(tmp, (example, theta0))[0]
            diff = float(np.abs(theta - expected).max())
            moved = float(np.abs(expected - theta0.numpy()).max())
            allowed = max(CHECK_TOLERANCE, INT8_RELATIVE_TOLERANCE * moved)
            if not diff <= allowed:
                raise SelfiterError(f"runtime onnxruntime-int8: the int8 graph differs from "
                                    f"PyTorch by {diff:.3g} (> {allowed:.3g}); use the "
                                    "onnxruntime runtime")

