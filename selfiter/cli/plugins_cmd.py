"""``selfiter plugins``: every plugin and the components it registers."""

from __future__ import annotations

import argparse
import importlib.metadata

from selfiter import plugins


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print as JSON")


def run(args: argparse.Namespace) -> int:
    import json

    sources = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=plugins.ENTRY_POINT_GROUP)}
    table: dict[str, dict] = {}
    for name in plugins.plugin_names():
        table[name] = {"source": f"entry point {sources[name]}" if name in sources else "in-process",
                       "components": {}}
    for kind in plugins.kinds():  # the core's and those plugins add
        for comp in plugins.components(kind).values():
            table[comp.plugin]["components"].setdefault(kind, []).append(comp.name)
    for added in plugins.plugin_kinds().values():
        table[added.plugin]["components"].setdefault("kind", []).append(added.name)
    for cmd in plugins.commands().values():
        table[cmd.plugin]["components"].setdefault("command", []).append(cmd.name)
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    for name, info in table.items():
        print(f"{name}  ({info['source']})")
        for kind, names in info["components"].items():
            print(f"  {kind:<18} {', '.join(sorted(names))}")
    return 0
