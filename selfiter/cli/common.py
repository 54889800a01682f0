"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import inspect

from selfiter import plugins
from selfiter.config import Config, load_config
from selfiter.errors import ConfigError

#: the parameter ``--data-root`` sets: a convention of problems that read a data folder
DATA_ROOT_PARAM = "data_root"


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config file (see examples/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   nargs="+", help="override a config key, e.g. --set train.lr=0.01 train.steps=500")


def add_data_root_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", metavar="DIR",
                   help=f"the data folder of a problem that reads one (sets problem.params."
                        f"{DATA_ROOT_PARAM}; a problem without that parameter refuses it)")


def add_runtime_arg(p: argparse.ArgumentParser) -> None:
    from selfiter.runtime import RUNTIMES

    p.add_argument("--runtime", default="torch", choices=RUNTIMES,
                   help="torch: the solver loop in PyTorch; onnxruntime: the whole solver as one "
                        "ONNX graph, exported once and cached (CPU; about twice as fast for a "
                        "few inputs at a time); onnxruntime-int8: that graph with int8 matrix "
                        "products (faster again, within a few tenths of a px) (default: torch)")


def add_tta_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tta", action="store_true",
                   help="test-time averaging: also solve the problem's views of each input (for "
                        "faces: mirrored) and average the solutions mapped back; about twice the "
                        "work (sets solver.tta)")


def config_from_args(args: argparse.Namespace, extra: list[str] | None = None) -> Config:
    overrides = [o for group in args.overrides for o in group] + list(extra or [])
    return load_config(args.config, overrides)


def data_root_override(args: argparse.Namespace) -> list[str]:
    """``--data-root DIR`` as an override of ``problem.params.data_root``, or ``[]``.

    Checked against the problem's factory first, so that a problem that reads
    no data folder (curve_fit generates its data) refuses the option itself
    rather than a ``--set`` the user never typed."""
    root = getattr(args, "data_root", None)
    if not root:
        return []
    name = config_from_args(args).problem.name
    try:
        params = inspect.signature(plugins.get("problem", name).obj).parameters
    except (TypeError, ValueError):  # an opaque factory: let the config's check decide
        params = {DATA_ROOT_PARAM: None}
    if DATA_ROOT_PARAM not in params and not any(
            getattr(p, "kind", None) == inspect.Parameter.VAR_KEYWORD for p in params.values()):
        raise ConfigError(f"--data-root {root}: problem {name!r} reads no data folder (its "
                          f"factory has no {DATA_ROOT_PARAM} parameter)")
    return [f"problem.params.{DATA_ROOT_PARAM}={root}"]
