"""``selfiter describe CONFIG``: the resolved components and the regressor's size."""

from __future__ import annotations

import argparse

from selfiter import plugins
from selfiter.cli.common import add_config_args, config_from_args
from selfiter.config import COMPONENT_KINDS
from selfiter.errors import DataError


def configure(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--input-shape", metavar="N,N,...", help="one sample's input shape "
                   "(default: read one sample of the training split)")


def run(args: argparse.Namespace) -> int:
    from selfiter.build import build_components

    cfg = config_from_args(args)
    print(f"config: {args.config}")
    for section, kind in COMPONENT_KINDS.items():
        comp = getattr(cfg, section)
        origin = plugins.get(kind, comp.name).plugin
        params = ", ".join(f"{k}={v!r}" for k, v in comp.params.items())
        print(f"  {section:<16} {comp.name} (plugin {origin}) {params}")
    parts = build_components(cfg)
    if args.input_shape:
        input_shape = tuple(int(x) for x in args.input_shape.split(","))
    else:
        input_shape = _one_sample_shape(parts.problem, [cfg.train.split, cfg.evaluate.split])
    d = parts.parameter_model.theta_dim
    feature_shape = parts.extractor.feature_shape(input_shape, d)
    reg = parts.make_regressor(feature_shape)
    n = sum(p.numel() for p in reg.parameters())
    stages = 1 if cfg.train.mode == "sir" else cfg.train.stages
    print(f"  input shape      {input_shape}")
    print(f"  feature shape    {tuple(feature_shape)}")
    print(f"  theta dim        {d}")
    print(f"  mode             {cfg.train.mode}" + ("" if stages == 1 else f" ({stages} stages)"))
    print(f"  regressor params {n:,}" + ("" if stages == 1 else f" x {stages} = {n * stages:,}"))
    print(f"  model memory     {n * stages * 4 / 2**20:.1f} MiB (float32)")
    return 0


def _one_sample_shape(problem, splits: list[str]) -> tuple[int, ...]:
    """The input shape of one sample of the first split that loads."""
    for split in splits[:-1]:
        try:
            return tuple(problem.load(split).inputs.shape[1:])
        except DataError:  # e.g. a data root holding only test faces
            continue
    return tuple(problem.load(splits[-1]).inputs.shape[1:])
