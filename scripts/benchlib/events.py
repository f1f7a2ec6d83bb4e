"""The ``events`` section: what message-store events cost APPEND, and how late they arrive.

Three configurations of our server, each on a fresh data dir (run with ``--only ours``):

  off        no notifysocket: the framework's own server
  listener   --notify-socket to a datagram listener in this process, which reads every event
  absent     --notify-socket to a path nobody binds: every event stays in the outbox (the
             cost of the change_log alone, the sink backing off)
  jetstream  event_notifier = "jetstream" to a nats-server -js started here (port base + 5),
             a JetStream consumer in a process of its own (benchlib/jsconsumer.py);
             skipped, and said so, when nats-server or nats-py is missing

Phases, each run on the three in turn (order rotated per phase):

  append-1   APPEND N messages, one client, one command at a time
  append-10  APPEND N/2 messages from 10 connections at once

With the jetstream variant, rounds of off / jetstream / off2 (a second server without events,
the control) at 10 clients follow (benchlib/jscost.py: cost in wall and CPU per APPEND,
median and range, the sink's own CPU per event).

For ``listener`` the delay from the tagged OK of each single-client APPEND (matched by its
APPENDUID) to the arrival of its MessageAppend datagram is recorded; p50/p99 are printed.
Negative values: the datagram came before the client had read the OK. Target: events cost
less than 20% of APPEND throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import jscost
from .client import ImapClient
from .messages import Corpus, Message
from .report import Figure, Measure, percentile
from .servers import Ours, Server

BOX1 = "ev-single"
BOXN = "ev-multi"
SETTLE = 0.3
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")
_UID = re.compile(rb";UID=(\d+)\"")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("events section")
    g.add_argument(
        "--event-messages",
        type=int,
        default=2000,
        metavar="N",
        help="messages per single-client APPEND phase (default 2000)",
    )
    g.add_argument(
        "--event-clients", type=int, default=10, help="concurrent APPEND connections (default 10)"
    )
    jscost.add_arguments(g)


class OursWithEvents(Ours):
    """Our server with ``--notify-socket PATH``."""

    def __init__(self, port: int, socket_path: str, *, keep: bool = False) -> None:
        super().__init__(port, keep=keep)
        self.socket_path = socket_path

    def _prepare(self) -> list[str]:
        return [*super()._prepare(), "--notify-socket", self.socket_path]


class DatagramListener:
    """A notifyd stand-in on this loop: records when each MessageAppend (by UID) arrives."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.arrived: dict[int, float] = {}
        self.count = 0
        self.expected = 0  # MessageAppend events awaited by `settled`
        self.settled = asyncio.Event()

    def start(self) -> None:
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._read)

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(70_000)
            except BlockingIOError:
                return
            now = time.perf_counter()
            self.count += 1
            if b'"event":"MessageAppend"' in data:
                m = _UID.search(data)
                if m:
                    self.arrived.setdefault(int(m.group(1)), now)
            if self.expected and len(self.arrived) >= self.expected:
                self.settled.set()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def _client(server: Server, limit: float) -> ImapClient:
    c = ImapClient(server.host, server.port, timeout=limit)
    await c.connect()
    await c.login(server.user, server.password)
    return c


async def _measure(server: Server, work: object) -> Measure:
    await asyncio.sleep(SETTLE)
    cpu0, c0, t0 = server.cpu_seconds(), time.process_time(), time.perf_counter()
    count = await work()  # type: ignore[operator]
    t1, c1, cpu1 = time.perf_counter(), time.process_time(), server.cpu_seconds()
    return Measure(count=count, wall=t1 - t0, server_cpu=cpu1 - cpu0, client_cpu=c1 - c0)


async def run(args: argparse.Namespace, servers: list[Server]) -> list[Figure]:
    base = [s for s in servers if s.name == "ours"]
    if not base:
        raise SystemExit("the events section measures our server: run it with --only ours")
    n = args.event_messages
    msgs = Corpus(args.seed).generate(n)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ev-", dir="/tmp"))
    listener = DatagramListener(str(tmp / "listen"))
    listener.start()
    variants: dict[str, Server] = {"off": base[0]}
    extra = [
        OursWithEvents(args.port_base + 2, listener.path, keep=args.keep),
        OursWithEvents(args.port_base + 3, str(tmp / "absent"), keep=args.keep),
    ]
    names = ["listener", "absent"]
    nats_server, consumer = _jetstream(args, tmp, extra, names)
    try:
        for name, srv in zip(names, extra, strict=True):
            _log(f"starting ours ({name}) on {srv.port} ...")
            srv.start(args.start_timeout)
            variants[name] = srv
        if consumer is not None:
            await consumer.start()
        figures = await _phases(args, variants, msgs, listener, consumer)
        if nats_server is not None and args.js_rounds > 0:
            # A fresh jetstream server for the rounds: its status counters are theirs alone.
            from .jetstream import OursWithJetStream

            variants["jetstream"].stop()
            js = OursWithJetStream(
                args.port_base + 7, nats_server.url, keep=args.keep, stream="COST", prefix="cost"
            )
            extra.append(js)
            _log(f"starting ours (jetstream, cost rounds) on {js.port} ...")
            js.start(args.start_timeout)
            assert nats_server.proc is not None
            cost_msgs = Corpus(args.seed + 1).generate(args.js_messages)
            pid = nats_server.proc.pid
            rounds, start = await jscost.run(
                args, variants["off"], js, variants["off2"], pid, cost_msgs
            )
            js.stop()  # its status file then holds the sink's final counters
            jscost.summary(rounds, args.event_clients, start, jscost.read_status(js))
        return figures
    finally:
        if consumer is not None:
            await consumer.close()
        if nats_server is not None:
            nats_server.stop()
        listener.close()
        for srv in extra:
            with contextlib.suppress(Exception):
                srv.stop()
            srv.cleanup()
        with contextlib.suppress(OSError):
            if nats_server is None:
                os.rmdir(tmp)
            else:
                import shutil

                shutil.rmtree(tmp)


def _jetstream(
    args: argparse.Namespace, tmp: Path, extra: list[Server], names: list[str]
) -> tuple[Any, Any]:
    """The JetStream variant (issue 19), when nats-server and nats-py are here."""
    from . import jetstream

    binary = jetstream.nats_binary()
    try:
        import nats  # noqa: F401
    except ImportError:
        binary = None
    if binary is None:
        _log("events: no nats-server or nats-py: the jetstream variant is skipped")
        return None, None
    nats_server = jetstream.NatsServer(binary, args.port_base + 5, tmp / "js")
    nats_server.start()
    extra.append(jetstream.OursWithJetStream(args.port_base + 4, nats_server.url, keep=args.keep))
    names.append("jetstream")
    if args.js_rounds > 0:  # the control of the cost rounds (benchlib/jscost.py)
        extra.append(Ours(args.port_base + 6, keep=args.keep))
        names.append("off2")
    return nats_server, jetstream.Consumer(nats_server.url)


async def _phases(
    args: argparse.Namespace,
    variants: dict[str, Server],
    msgs: list[Message],
    listener: DatagramListener,
    consumer: Any = None,
) -> list[Figure]:
    names = list(variants)
    figures: dict[tuple[str, str], Figure] = {}
    ok_at: dict[int, float] = {}
    ok_at_js: dict[int, float] = {}  # the jetstream variant's (its UIDs start at 1 too)
    mains: dict[str, ImapClient] = {}
    for name, srv in variants.items():
        mains[name] = await _client(srv, args.timeout)
        for box in (BOX1, BOXN):
            await mains[name].command(f'CREATE "{box}"')

    async def append_1(name: str) -> Measure:
        c = mains[name]

        async def work() -> int:
            for m in msgs:
                reply = await c.append(BOX1, m.data, m.flags, m.imap_date)
                if name in {"listener", "jetstream"}:
                    found = _APPENDUID.search(reply.text)
                    if found:
                        (ok_at if name == "listener" else ok_at_js)[int(found.group(1))] = (
                            time.perf_counter()
                        )
            return len(msgs)

        return await _measure(variants[name], work)

    async def append_n(name: str) -> Measure:
        srv = variants[name]
        part_msgs = msgs[: max(1, len(msgs) // 2)]
        clients = await asyncio.gather(
            *(_client(srv, args.timeout) for _ in range(args.event_clients))
        )

        async def one(c: ImapClient, part: list[Message]) -> int:
            for m in part:
                await c.append(BOXN, m.data, m.flags, m.imap_date)
            return len(part)

        async def work() -> int:
            k = args.event_clients
            return sum(
                await asyncio.gather(*(one(c, part_msgs[i::k]) for i, c in enumerate(clients)))
            )

        try:
            return await _measure(srv, work)
        finally:
            await asyncio.gather(*(c.logout() for c in clients))

    for rot, (key, label, phase) in enumerate(
        (
            ("append-1", "APPEND, 1 client", append_1),
            ("append-10", f"APPEND, {args.event_clients} clients", append_n),
        )
    ):
        order = names[rot % len(names) :] + names[: rot % len(names)]
        for name in order:
            fig = Figure(f"{key}-{name}", f"{label}, events {name}", "rate", "msgs")
            _log(f"[{name}] {key} ...")
            fig.results["ours"] = await phase(name)
            figures[(key, name)] = fig
    # Let the last datagrams land before counting.
    listener.expected = len(ok_at)
    if len(listener.arrived) < len(ok_at):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listener.settled.wait(), 10)
    delays = [(listener.arrived[u] - t) * 1000 for u, t in ok_at.items() if u in listener.arrived]
    delay = Figure("event-delay", "tagged OK -> MessageAppend datagram", "latency", "events")
    delay.results["ours"] = Measure(
        count=len(delays), wall=0.0, server_cpu=0.0, client_cpu=0.0, latencies_ms=delays
    )
    if len(delays) != len(ok_at):
        delay.results["ours"].check = f"{len(ok_at) - len(delays)} events did not arrive"
    out = [*figures.values(), delay]
    js_delays: list[float] | None = None
    if consumer is not None:
        for _ in range(600):  # up to 30 s for the last ones
            if all(u in consumer.arrived for u in ok_at_js):
                break
            await asyncio.sleep(0.05)
        js_delays = [
            (consumer.arrived[u] - t) * 1000 for u, t in ok_at_js.items() if u in consumer.arrived
        ]
        js_delay = Figure(
            "event-delay-jetstream",
            "tagged OK -> MessageAppend at a JetStream consumer",
            "latency",
            "events",
        )
        js_delay.results["ours"] = Measure(
            count=len(js_delays), wall=0.0, server_cpu=0.0, client_cpu=0.0, latencies_ms=js_delays
        )
        missing = len(ok_at_js) - len(js_delays)
        if missing:
            js_delay.results["ours"].check = f"{missing} events did not arrive"
        out.append(js_delay)
    for c in mains.values():
        await c.logout()
    _summary(figures, delays, listener, js_delays)
    return out


def _summary(
    figures: dict[tuple[str, str], Figure],
    delays: list[float],
    listener: DatagramListener,
    js_delays: list[float] | None = None,
) -> None:
    print("\nEvents: APPEND throughput relative to events off")
    for key in ("append-1", "append-10"):
        off = figures[(key, "off")].results["ours"].rate
        for name in ("listener", "absent", "jetstream", "off2"):
            if (key, name) not in figures:
                continue
            rate = figures[(key, name)].results["ours"].rate
            print(
                f"  {key:10} {name:9} {rate:8.0f} msgs/s vs {off:8.0f} off: "
                f"{(1 - rate / off) * 100:+5.1f}% cost"
            )
    print(
        f"  delay tagged OK -> datagram: p50 {percentile(delays, 50):.2f} ms, "
        f"p99 {percentile(delays, 99):.2f} ms over {len(delays)} events "
        f"({listener.count} datagrams received)"
    )
    if js_delays is not None:
        print(
            f"  delay tagged OK -> JetStream consumer: p50 {percentile(js_delays, 50):.2f} ms,"
            f" p99 {percentile(js_delays, 99):.2f} ms over {len(js_delays)} events"
        )
