"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse

from selfiter.config import Config, load_config


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config file (see examples/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   nargs="+", help="override a config key, e.g. --set train.lr=0.01 train.steps=500")


def config_from_args(args: argparse.Namespace, extra: list[str] | None = None) -> Config:
    overrides = [o for group in args.overrides for o in group] + list(extra or [])
    return load_config(args.config, overrides)
