"""Generate docs/config.md and docs/cli.md from the code, so they cannot drift.

Run ``python docs/gen_reference.py`` after changing the config dataclasses or
the CLI; ``tests/core/test_docs.py`` fails while the committed pages differ.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import re
import sys
import typing
from pathlib import Path

from selfiter import config as config_module
from selfiter import plugins
from selfiter.cli.main import BUILTIN, build_parser

DOCS = Path(__file__).resolve().parent
SECTIONS = [
    ("train", config_module.TrainConfig),
    ("solver", config_module.SolverConfig),
    ("evaluate", config_module.EvaluateConfig),
]


def field_comments(cls: type) -> dict[str, str]:
    """The ``#:`` comment lines above each field of a dataclass."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        s = line.strip()
        if s.startswith("#:"):
            pending.append(s[2:].strip())
            continue
        m = re.match(r"(\w+)\s*:", s)
        if m and pending:
            comments[m.group(1)] = " ".join(pending)
        pending = [] if not s.startswith("#") else pending
    return comments


def type_text(tp) -> str:
    return config_module._type_name(tp)


def config_reference() -> str:
    out = [
        "# Configuration reference",
        "",
        "Generated from `selfiter/config.py` by `python docs/gen_reference.py`; do not edit by hand.",
        "",
        "A config is a YAML file with these top-level sections. Every key can be",
        "overridden on the command line with `--set SECTION.KEY=VALUE` (values are",
        "parsed as YAML: `--set train.minutes=5 regressor.params.hidden=[64,64]`).",
        "",
        "## Components: `problem`, `parameter_model`, `sampler`, `features`, `regressor`",
        "",
        "Each names a registered component and the keyword parameters of its factory:",
        "",
        "```yaml",
        "sampler:",
        "  name: gaussian_union",
        "  params: {sigma: 0.2, p_mean: 0.5}",
        "```",
        "",
        "The parameters are checked against the factory's signature when the config",
        "is loaded. `selfiter plugins` lists the registered names; `selfiter describe",
        "CONFIG` shows what a config resolves to.",
        "",
    ]
    for section, cls in SECTIONS:
        hints = typing.get_type_hints(cls)
        docs = field_comments(cls)
        out += [f"## `{section}`", "", (inspect.getdoc(cls) or "").splitlines()[0], "",
                "| key | type | default | meaning |", "|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else "(required)"
            kind = type_text(hints[f.name])
            if "check" in f.metadata:  # the bound says more than the bare type
                kind = f.metadata["check"][1] + (" or null" if kind.endswith("or null") else "")
            out.append(f"| `{f.name}` | {kind} | `{default!r}` | {docs.get(f.name, '')} |")
        out.append("")
    return "\n".join(out)


def cli_reference() -> str:
    parser = build_parser(plugins.commands())
    out = ["# Command-line reference", "",
           "Generated from the argument parsers by `python docs/gen_reference.py`; do not edit by hand.",
           "", "```text", _help(parser), "```", ""]
    sub = next(a for a in parser._actions if isinstance(a, type(parser._subparsers._group_actions[0])))
    for name, p in sub.choices.items():
        origin = "core" if name in BUILTIN else "plugin " + plugins.commands()[name].plugin
        out += [f"## `selfiter {name}`", "", f"From {origin}.", "", "```text", _help(p), "```", ""]
    return "\n".join(out)


def _help(parser) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        parser.print_help()
    return buf.getvalue().rstrip()


def main() -> int:
    import os

    os.environ["COLUMNS"] = "100"
    (DOCS / "config.md").write_text(config_reference() + "\n")
    (DOCS / "cli.md").write_text(cli_reference() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
