"""``edgekit toolchains list | install NAME | remove NAME``: a thin layer over :mod:`edgekit.toolchains`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from edgekit.exit_codes import EXIT_OK


def add_toolchains_command(sub: Any) -> None:
    """Register ``edgekit toolchains`` on the command's subparsers."""
    from edgekit import toolchains

    p = sub.add_parser("toolchains", help="vendor NPU toolchains in their own virtualenvs (list, install, remove)")
    inner = p.add_subparsers(dest="toolchains_command", required=True)
    inner.add_parser("list", help="each toolchain, whether it is installed here, and where")
    for verb, what in (("install", "create its virtualenv (pinned, hashed requirements; needs PyPI once)"),
                       ("remove", "delete its virtualenv")):
        c = inner.add_parser(verb, help=what)
        c.add_argument("name", choices=sorted(toolchains.TOOLCHAINS))

    def run(args: argparse.Namespace) -> int:
        if args.toolchains_command == "list":
            for name, ok, detail in toolchains.status():
                print(f"  {'ok' if ok else 'missing':8} {name:10} {detail}")
            return EXIT_OK
        tc = toolchains.get(args.name)
        if args.toolchains_command == "install":
            toolchains.install(tc, lambda m: print(m, file=sys.stderr))
        else:
            print(f"removed {toolchains.venv_dir(tc)}" if toolchains.remove(tc) else f"{tc.name}: not installed")
        return EXIT_OK

    p.set_defaults(func=run)
