"""``selfiter export CONFIG``: a trained solver (or its regressor) as one ONNX or TorchScript graph."""

from __future__ import annotations

import argparse
import importlib.util

from selfiter.cli.common import (add_config_args, add_data_root_arg, config_from_args,
                                 data_root_override)
from selfiter.errors import ConfigError


def configure(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--checkpoint", help="checkpoint file, run folder or pretrained model name "
                                        "(default: evaluate.checkpoint of the config)")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"], help="file format")
    p.add_argument("-o", "--out", required=True, metavar="PATH", help="file to write")
    p.add_argument("--part", default="solver", choices=["solver", "regressor"],
                   help="solver: K iterations unrolled, (inputs, theta0) -> (theta_K, trajectory); "
                        "regressor: features -> delta (default: solver)")
    p.add_argument("--iterations", type=int, help="iterations unrolled (default: solver.iterations)")
    p.add_argument("--split", help="split whose first samples trace the graph and check it "
                                   "(default: evaluate.split of the config)")
    add_data_root_arg(p)
    p.add_argument("--exporter", default="dynamo", choices=["dynamo", "legacy"],
                   help="ONNX exporter: torch.export-based (needs onnxscript) or the legacy "
                        "TorchScript-based one (default: dynamo)")


def run(args: argparse.Namespace) -> int:
    from selfiter.api import load
    from selfiter.build import build_problem
    from selfiter.export import export, max_difference

    if args.format == "onnx" and args.exporter == "dynamo" and importlib.util.find_spec("onnxscript") is None:
        raise ConfigError("the dynamo ONNX exporter needs onnxscript (pip install -e '.[onnx]'), "
                          "or use --exporter legacy")
    cfg = config_from_args(args, data_root_override(args))
    ckpt = args.checkpoint or cfg.evaluate.checkpoint
    if not ckpt:
        raise ConfigError(f"{args.config}: evaluate.checkpoint is not set and no --checkpoint given")
    model = load(ckpt, device="cpu", config=cfg, problem=build_problem(cfg))  # built once
    data = model.problem.load(args.split or cfg.evaluate.split)
    # two samples, so that the exporter keeps the batch dimension free
    example = data.inputs[:2] if len(data) >= 2 else data.inputs[:1].repeat_interleave(2, 0)
    result = export(model, args.out, example, args.format, args.part, args.iterations, args.exporter)
    what = (f"solver unrolled {result.iterations} iteration(s)" if args.part == "solver"
            else "regressor")
    print(f"wrote {result.path} ({args.format}, {what}) in {result.seconds:.1f} s")
    runtime = "onnxruntime" if args.format == "onnx" else "torch.jit"
    if args.format == "onnx" and importlib.util.find_spec("onnxruntime") is None:
        print("onnxruntime is not installed: the graph was not checked against PyTorch")
        return 0
    print(f"max |{runtime} - PyTorch| on {example.shape[0]} samples: {max_difference(result):.3g}")
    return 0
