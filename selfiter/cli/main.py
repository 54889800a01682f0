"""The ``selfiter`` entry point: sub-commands, one-line errors, ``--debug`` for tracebacks."""

from __future__ import annotations

import argparse
import sys
import traceback

from selfiter import __version__
from selfiter.cli import describe, evaluate, export, plugins_cmd, train
from selfiter.errors import SelfiterError

BUILTIN = {
    "train": (train, "train a solver (SIR or a cascade) into a run folder"),
    "evaluate": (evaluate, "score a trained solver on a split, per iteration"),
    "describe": (describe, "show the resolved components and the regressor's size"),
    "plugins": (plugins_cmd, "list plugins and the components they register"),
    "export": (export, "write a trained solver or its regressor as one ONNX or TorchScript graph"),
}


#: the exit status of every command (a command's own epilog says what "some inputs" are)
EXIT_CODES = """exit status:
  0    all fine
  1    some inputs failed or had no face/solution (each named in one line on stderr;
       the outputs are written for the rest)
  2    bad usage, config or data: one line naming the file, key or value
  3    internal error (a bug: rerun with --debug for the traceback)
  130  interrupted"""

_DEBUG_HELP = "show full tracebacks on errors (before or after COMMAND)"


def build_parser(plugin_commands: dict) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfiter",
        description="Learned iterative solvers for non-linear least squares (Self-Iterative Regression).",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"selfiter {__version__}")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    # --debug after the command too; SUPPRESS keeps a sub-command from resetting the top-level value
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in BUILTIN.items():
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        module.configure(p)
        p.set_defaults(_run=module.run)
    for cmd in plugin_commands.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help, parents=[common])
        cmd.configure(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # read before parsing, so that an error in building the parser or parsing is shown too
    debug = "--debug" in argv
    try:
        from selfiter import plugins

        parser = build_parser(plugins.commands())
        args = parser.parse_args(argv)
        return int(args._run(args) or 0)
    except SelfiterError as exc:
        if debug:
            traceback.print_exc()
        print(f"selfiter: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("selfiter: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure still gets one line unless --debug
        if debug:
            raise
        print(f"selfiter: internal error: {type(exc).__name__}: {exc} (rerun with --debug, "
              "before or after the command, for the traceback)", file=sys.stderr)
        return 3
