"""``edgekit run``'s farm options: ``--farm labgrid://HOST:PORT`` and how to pick places (:mod:`edgekit.farm`)."""

from __future__ import annotations

import argparse

from edgekit.executors.hosts import HostSpec
from edgekit.farm import FarmOptions, farm_or_none

FARM_KEYS = ("farm", "farm_tag", "farm_place", "farm_boards", "farm_wait")


def add_farm_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--farm", metavar="labgrid://HOST:PORT", help="reserve the ssh targets' boards from a labgrid "
                   "coordinator (places tagged board=<target>; released when the run ends)")
    p.add_argument("--farm-tag", action="append", metavar="KEY=VALUE",
                   help="with --farm: the places' tags to match instead of board=<target> (repeatable)")
    p.add_argument("--farm-place", action="append", metavar="NAME", help="with --farm: a place by name (repeatable)")
    p.add_argument("--farm-boards", type=int, default=1, metavar="N",
                   help="with --farm: boards per target, one job stream each (default 1)")
    p.add_argument("--farm-wait", type=float, default=600.0, metavar="SECONDS",
                   help="with --farm: how long to wait for a free place (default 600)")


def farm_options(args: argparse.Namespace, ssh: HostSpec) -> FarmOptions | None:
    """The farm of the command line, or None; ``ssh``: the run's SSH settings (key, known_hosts, Python)."""
    farm = farm_or_none(getattr(args, "farm", None), getattr(args, "farm_tag", None) or (),
                        getattr(args, "farm_place", None) or (), getattr(args, "farm_boards", 1),
                        getattr(args, "farm_wait", 600.0))
    return None if farm is None else FarmOptions(farm.url, farm.tags, farm.places, farm.boards, farm.wait_s, ssh)
