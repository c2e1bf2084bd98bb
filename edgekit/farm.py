"""Board farms: reserve shared boards through labgrid (``--farm labgrid://HOST:PORT``), run, always release.

For each board target of a run (``access = "ssh"``) edgekit asks labgrid's coordinator for ``boards`` places
whose tags match (``board=<target name>`` unless ``tags`` say otherwise; a place by name with ``places``), one
reservation per board, waits in the queue (its position and the places' holders are shown), acquires each
allocated place, reads its ``NetworkService`` (address, port, username) and hands the boards to the SSH executor
as :class:`~edgekit.executors.hosts.HostSpec` entries (key, known_hosts and Python from the run's SSH options:
host keys are verified as for any board). On the way out, also on Ctrl-C, SIGTERM and failures, every
reservation is cancelled and every place released (cancel first: the next waiter gets it at once, not at the
coordinator's next scheduling pass up to 15 s later).

The lock holder is ``<host>/edgekit-<user>-<pid>``: a place still acquired under this machine's and user's name by
a process that no longer runs (a crashed run) is released by the next run; a place held by anyone else is waited
for, and a time-out names each holder with the command that frees it. ``report.json`` records the farm, the
holder, each place's reservation token and address (``provenance.farm``).

One labgrid client session per process (a second one in the same process shares its gRPC connection and the
coordinator refuses it), on its own event loop in a daemon thread. ``labgrid`` is the ``edgekit[farm]`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from edgekit.errors import ConfigError, EdgekitError, require
from edgekit.executors.hosts import HostSpec

T = TypeVar("T")
Progress = Callable[[str], None]
_URL = re.compile(r"^labgrid://(?P<host>[^:/\[\]]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})/?$")
_TAG = re.compile(r"^[a-z][a-z0-9_]*$")
_VALUE = re.compile(r"^[a-z0-9_.-]*$")  # what labgrid accepts in a tag value (TAG_VAL)
POLL_S = 1.0


class FarmError(EdgekitError):
    """The farm could not give the run its boards (unreachable coordinator, no matching place, queue time-out)."""


@dataclass(frozen=True)
class FarmOptions:
    """Where the farm is and which places a board target takes.

    ``url``: ``labgrid://HOST:PORT`` (the coordinator). ``tags``: the reservation filter (default
    ``{"board": <target name>}``); ``places``: place names instead (one reservation each); ``boards``: places per
    target (fan-out: one job stream per board, rows per board). ``wait_s``: how long to wait in the queue.
    """

    url: str
    tags: Mapping[str, str] = field(default_factory=dict)
    places: tuple[str, ...] = ()
    boards: int = 1
    wait_s: float = 600.0
    ssh: HostSpec = field(default_factory=lambda: HostSpec("farm"))  # the SSH settings: key, known_hosts, Python

    def __post_init__(self) -> None:
        if not _URL.match(self.url):
            raise ConfigError("not a labgrid coordinator address", where="--farm", got=self.url,
                              expected="labgrid://HOST:PORT", hint="e.g. --farm labgrid://farm.example.com:20408")
        for k, v in self.tags.items():
            if not _TAG.match(k) or not _VALUE.match(v):
                raise ConfigError("not a labgrid tag", where=f"--farm-tag {k}={v}",
                                  expected="KEY=VALUE, lower-case letters, digits, '_' ('.' and '-' in values)")
        if not isinstance(self.boards, int) or isinstance(self.boards, bool) or not 1 <= self.boards <= 64:
            raise ConfigError("must be an integer from 1 to 64", where="--farm-boards", got=self.boards)
        if not 0 < self.wait_s <= 86400:
            raise ConfigError("must be from 0 to 86400 seconds", where="--farm-wait", got=self.wait_s)

    @property
    def address(self) -> str:
        m = _URL.match(self.url)
        assert m is not None
        return f"{m['host']}:{m['port']}"

    def filters(self, target: str) -> list[dict[str, str]]:
        """One reservation filter per board this target takes."""
        if self.places:
            return [{"name": p} for p in self.places]
        return [dict(self.tags) or {"board": target}] * self.boards


@dataclass(frozen=True)
class Lease:
    """The boards a run holds: their hosts for the SSH executor and what ``report.json`` records."""

    hosts: tuple[HostSpec, ...] = ()
    record: Mapping[str, Any] = field(default_factory=dict)


def holder_name() -> tuple[str, str]:
    """``(host, user)`` the coordinator records for this process: ``edgekit-<user>-<pid>`` (no '/')."""
    user = re.sub(r"[^A-Za-z0-9_.-]", "_", getpass.getuser())
    return socket.gethostname(), f"edgekit-{user}-{os.getpid()}"


def _stale(holder: str | None) -> int | None:
    """The pid of a crashed edgekit run of this user on this machine that ``holder`` names, else None."""
    host, user = holder_name()
    prefix = f"{host}/{user.rsplit('-', 1)[0]}-"
    if not holder or not holder.startswith(prefix) or not holder[len(prefix):].isdigit():
        return None
    pid = int(holder[len(prefix):])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return pid
    except PermissionError:
        return None
    return None


class LabgridClient:
    """One labgrid ``ClientSession`` on a private event loop in a daemon thread; synchronous calls."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        self.address = address
        self._timeout = timeout
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="edgekit-labgrid", daemon=True)
        self._thread.start()
        self.session: Any = None
        self._pb2: Any = None
        self._common: Any = None
        try:
            self._call(self._start())
        except BaseException:
            self.close()
            raise

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout or self._timeout + 20)

    async def _start(self) -> None:
        client = require("labgrid.remote.client", "farm", "reserving boards from a labgrid farm")
        self._pb2 = require("labgrid.remote.generated.labgrid_coordinator_pb2", "farm", "labgrid")
        self._common = require("labgrid.remote.common", "farm", "labgrid")
        host, user = holder_name()

        class Session(client.ClientSession):  # type: ignore[misc,name-defined]
            def getuser(self) -> str:
                return user

            def gethostname(self) -> str:
                return host

        self.session = Session(self.address, self.loop)
        # a connection of its own: gRPC shares one per address in a process by default, and the coordinator refuses
        # a second client on the same connection (AssertionError there) when two sessions meet in one process
        grpc = require("grpc", "farm", "labgrid's gRPC client")
        stubs = require("labgrid.remote.generated.labgrid_coordinator_pb2_grpc", "farm", "labgrid")
        lazy, self.session.channel = self.session.channel, grpc.aio.insecure_channel(self.address, options=[
            ("grpc.keepalive_time_ms", 7500), ("grpc.keepalive_timeout_ms", 10000),
            ("grpc.http2.ping_timeout_ms", 10000), ("grpc.http2.max_pings_without_data", 0),
            ("grpc.use_local_subchannel_pool", 1)])
        self.session.stub = stubs.CoordinatorStub(self.session.channel)
        await lazy.close()  # never connected
        try:
            await asyncio.wait_for(self.session.start(), self._timeout)
        except Exception as exc:
            raise FarmError(f"cannot reach the labgrid coordinator: {exc}", where=f"labgrid://{self.address}",
                            hint="check the address and that labgrid-coordinator runs there") from exc

    async def _rpc(self, method: str, request: Any, sync: bool = True) -> Any:
        grpc = require("grpc", "farm", "labgrid's gRPC client")
        try:
            resp = await getattr(self.session.stub, method)(request)
        except grpc.aio.AioRpcError as exc:
            raise FarmError(f"labgrid {method} failed: {exc.code().name}: {exc.details()}",
                            where=f"labgrid://{self.address}") from None
        if sync:
            await self.session.sync_with_coordinator()
        return resp

    def rpc(self, method: str, sync: bool = True, **fields: Any) -> Any:
        """Call the coordinator's ``method`` with a ``<method>Request(**fields)``; errors are :class:`FarmError`."""
        return self._call(self._rpc(method, getattr(self._pb2, f"{method}Request")(**fields), sync))

    def reserve(self, tags: Mapping[str, str]) -> str:
        """A reservation for one place whose tags (or ``name``) match; its token."""
        flt = self._pb2.Reservation.Filter(filter=dict(tags))
        return str(self.rpc("CreateReservation", sync=False, filters={"main": flt}).reservation.token)

    def reservation(self, token: str) -> Any:
        """The reservation (``labgrid.remote.common.Reservation``; polling it keeps it alive)."""
        return self._common.Reservation.from_pb2(self.rpc("PollReservation", sync=False, token=token).reservation)

    def queue(self) -> list[Any]:
        """The waiting reservations in the coordinator's scheduling order (priority, then age)."""
        waiting = self._common.ReservationState.waiting
        found = [self._common.Reservation.from_pb2(r) for r in self.rpc("GetReservations", sync=False).reservations]
        return sorted((r for r in found if r.state is waiting), key=lambda r: (-r.prio, r.created))

    def places(self) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            await self.session.sync_with_coordinator()
            return dict(self.session.places)
        return self._call(read())

    def network_service(self, place: str) -> dict[str, Any] | None:
        """The ``NetworkService`` of an acquired place (address, port, username), or None."""
        async def read() -> dict[str, Any] | None:
            await self.session.sync_with_coordinator()
            p = self.session.places[place]
            for exporter, group, cls, name in p.acquired_resources:
                if cls == "NetworkService":
                    return dict(self.session.resources[exporter][group][name].args)
            return None
        return self._call(read())

    def close(self) -> None:
        if self.session is not None:
            with contextlib.suppress(Exception):
                self._call(self.session.stop(), 5)
            with contextlib.suppress(Exception):
                self._call(self.session.channel.close(), 5)
            self.session = None
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
        if not self.loop.is_running():
            self.loop.close()


def _holders(client: LabgridClient, flt: Mapping[str, str]) -> list[str]:
    """Who holds the places this filter could take (``name: holder``)."""
    out = []
    for name, p in client.places().items():
        if all((name if k == "name" else p.tags.get(k)) == v for k, v in flt.items()) and p.acquired:
            out.append(f"{name} by {p.acquired}")
    return out


def _release_stale(client: LabgridClient, progress: Progress, notes: list[str]) -> None:
    for name, p in client.places().items():
        pid = _stale(p.acquired)
        if pid is not None:
            client.rpc("ReleasePlace", placename=name, fromuser=p.acquired)
            notes.append(f"released place {name}, left acquired by an edgekit run that no longer runs (pid {pid})")
            progress(notes[-1])


def _wait(client: LabgridClient, tokens: list[str], filters: Sequence[Mapping[str, str]], target: str,
          options: FarmOptions, progress: Progress) -> dict[str, str]:
    """Poll the reservations until each is allocated: token -> place."""
    deadline, said = time.monotonic() + options.wait_s, ""
    while True:
        got: dict[str, str] = {}
        waiting: list[str] = []
        for token in tokens:
            res = client.reservation(token)
            places = list(res.allocations.get("main") or [])
            if places:
                got[token] = places[0]
            else:
                waiting.append(token)
        if not waiting:
            return got
        queue = client.queue()
        pos = [i + 1 for i, r in enumerate(queue) if r.token in waiting]
        line = (f"farm: {target}: {len(got)}/{len(tokens)} boards allocated, waiting in the queue at position "
                f"{', '.join(map(str, pos)) or '?'} of {len(queue)}; held: "
                f"{'; '.join(_holders(client, filters[0])) or 'no place free yet'}")
        if line != said:
            progress(line + f" (waiting up to {options.wait_s:.0f} s)")
            said = line
        if time.monotonic() > deadline:
            held = _holders(client, filters[0])
            raise FarmError(f"no place for {target} became free within {options.wait_s:.0f} s",
                            where=f"{options.url} {dict(filters[0])}", got="; ".join(held) or "no matching place",
                            hint=("free a place with: " + "; ".join(
                                f"labgrid-client -x {options.address} -p {h.split(' by ')[0]} release --kick"
                                for h in held)) if held else
                            "check the tags (labgrid-client places -v), or pass --farm-wait with a longer time")
        time.sleep(POLL_S)


def check_farm(options: FarmOptions | None, targets: Sequence[str]) -> None:
    """Before any work: the coordinator answers and each of ``targets`` has places its filters can take (the
    places may be busy: the run waits for them later); else one :class:`FarmError` naming what is missing."""
    if options is None or not targets:
        return
    client = LabgridClient(options.address)
    try:
        places = client.places()
    finally:
        client.close()
    for target in targets:
        for flt in options.filters(target):
            if not any(all((name if k == "name" else p.tags.get(k)) == v for k, v in flt.items())
                       for name, p in places.items()):
                raise FarmError(f"no place on the farm matches {target}'s filter", where=f"{options.url} {flt}",
                                got=", ".join(f"{n} {dict(p.tags)}" for n, p in places.items()) or "no places",
                                hint="tag a place (labgrid-client -p PLACE set-tags board=" f"{target}), or pass "
                                "--farm-tag / --farm-place")


@contextlib.contextmanager
def leased(options: FarmOptions | None, targets: Sequence[str], progress: Progress) -> Iterator[Lease]:
    """Reserve and acquire the boards of ``targets`` (names of the run's ssh targets) from the farm, yield their
    hosts (``options.ssh``'s key, known_hosts, Python and time-outs; address, port and user from each place's
    NetworkService), and always cancel the reservations and release the places on the way out."""
    if options is None or not targets:
        yield Lease()
        return
    client = LabgridClient(options.address)
    tokens: list[str] = []
    acquired: list[str] = []
    host, user = holder_name()
    notes: list[str] = []
    try:
        _release_stale(client, progress, notes)
        hosts: list[HostSpec] = []
        places: list[dict[str, Any]] = []
        for target in targets:
            filters = options.filters(target)
            mine: list[str] = []
            for flt in filters:
                token = client.reserve(flt)
                tokens.append(token)
                mine.append(token)
            allocated = _wait(client, mine, filters, target, options, progress)
            for token in mine:
                place = allocated[token]
                client.rpc("AcquirePlace", placename=place)
                acquired.append(place)
                service = client.network_service(place)
                if service is None:
                    raise FarmError("the place has no NetworkService resource: edgekit reaches boards over SSH",
                                    where=f"{options.url} place {place}", hint="add a NetworkService (address, "
                                    "port, username) to the board's group in the exporter configuration")
                hosts.append(replace(options.ssh, host=str(service["address"]), port=int(service.get("port") or 22),
                                     user=str(service.get("username") or options.ssh.user or "") or None,
                                     target=target, name=f"{place} ({service['address']}:{service.get('port', 22)})"))
                places.append({"target": target, "place": place, "token": token, "address": str(service["address"]),
                               "port": int(service.get("port") or 22)})
                progress(f"farm: {target}: acquired {place} ({service['address']}:{service.get('port', 22)}, "
                         f"reservation {token})")
        yield Lease(tuple(hosts), {"url": options.url, "holder": f"{host}/{user}", "places": places,
                                   "notes": notes})
    finally:
        for token in tokens:  # cancel first: the next waiter gets the place at once
            with contextlib.suppress(Exception):
                client.rpc("CancelReservation", sync=False, token=token)
        for place in acquired:
            with contextlib.suppress(Exception):
                client.rpc("ReleasePlace", placename=place, fromuser=f"{host}/{user}")
        if acquired:
            progress(f"farm: released {', '.join(acquired)}")
        client.close()


def farm_or_none(url: str | None, tags: Sequence[str] = (), places: Sequence[str] = (), boards: int = 1,
                 wait_s: float = 600.0) -> FarmOptions | None:
    """:class:`FarmOptions` from the command line (``--farm-tag KEY=VALUE`` pairs), or None without ``--farm``."""
    if url is None:
        if tags or places:
            raise ConfigError("a farm option without --farm", where="--farm-tag / --farm-place",
                              hint="add --farm labgrid://HOST:PORT")
        return None
    parsed: dict[str, str] = {}
    for t in tags:
        k, sep, v = t.partition("=")
        if not sep:
            raise ConfigError("not KEY=VALUE", where=f"--farm-tag {t}", expected="e.g. board=raspberry-pi-5")
        parsed[k] = v
    return FarmOptions(url, parsed, tuple(places), boards, wait_s)
