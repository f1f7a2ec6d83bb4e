"""The ``events`` section's JetStream cost part (issue 19): what the sink costs APPEND at
10 clients, measured so that a loaded 2-core machine does not drown it.

Three servers: ``off`` (no events), ``jetstream`` (the sink in the server) and ``off2`` (no
events either: the control). Rounds of the three, order rotated per round (off, jetstream,
off2; then jetstream, off2, off; ...), each phase APPENDs ``--js-messages`` messages from
``--event-clients`` connections. Per round, against that round's ``off``:

  wall     1 - rate / rate(off)                          (what a client sees)
  cpu      CPU per APPEND / CPU per APPEND(off) - 1      imapd's process tree, from /proc
  cpu+nats the same with nats-server's CPU added         (what the machine pays)

printed as median [min .. max] over the rounds, ``off2`` beside it as the noise floor. Then
the sink's own CPU per event (its task and its ack callback, counted in the server by
notify/cpumeter.py and written to its status file; nats-py's reader and writer tasks are
not in it: the cpu line's difference holds them) and the mean CPU per APPEND of each; the
sink's figure twice: over its whole life, and over the rounds alone (its start-up, read from
the status file when the sink first says ``ok``, left out: importing nats-py, connecting and
the stream cost a fixed 30-40 ms that would otherwise count as 10 us per event here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .client import ImapClient
from .messages import Message
from .servers import Ours, Server, tree_cpu_seconds

BOX = "ev-cost"
SETTLE = 0.3


def add_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--js-rounds",
        type=int,
        default=6,
        metavar="R",
        help="rounds of off / jetstream / off2 at 10 clients (default 6; 0: skip)",
    )
    g.add_argument(
        "--js-messages",
        type=int,
        default=600,
        metavar="N",
        help="messages APPENDed per phase of those rounds (default 600)",
    )


@dataclass(slots=True)
class Phase:
    count: int
    wall: float
    imapd_cpu: float
    nats_cpu: float

    @property
    def rate(self) -> float:
        return self.count / self.wall

    @property
    def cpu_per(self) -> float:
        return self.imapd_cpu / self.count

    @property
    def all_per(self) -> float:
        return (self.imapd_cpu + self.nats_cpu) / self.count


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def _phase(
    srv: Server, clients: int, msgs: list[Message], limit: float, nats_pid: int | None
) -> Phase:
    conns = [ImapClient(srv.host, srv.port, timeout=limit) for _ in range(clients)]
    for c in conns:
        await c.connect()
        await c.login(srv.user, srv.password)

    async def one(c: ImapClient, part: list[Message]) -> int:
        for m in part:
            await c.append(BOX, m.data, m.flags, m.imap_date)
        return len(part)

    try:
        await asyncio.sleep(SETTLE)
        n0 = tree_cpu_seconds(nats_pid) if nats_pid else 0.0
        cpu0, t0 = srv.cpu_seconds(), time.perf_counter()
        count = sum(await asyncio.gather(*(one(c, msgs[i::clients]) for i, c in enumerate(conns))))
        t1 = time.perf_counter()
        # The sink publishes after the OKs: its tail of the phase's events belongs to it
        # (every server gets the same pause, so that idle CPU is counted alike).
        await asyncio.sleep(SETTLE)
        cpu1 = srv.cpu_seconds()
        n1 = tree_cpu_seconds(nats_pid) if nats_pid else 0.0
    finally:
        await asyncio.gather(*(c.logout() for c in conns))
    return Phase(count, t1 - t0, cpu1 - cpu0, n1 - n0)


async def _status_when_ok(js: Server, limit: float) -> dict[str, Any] | None:
    """The jetstream server's status file once the sink says ``ok`` (written at that change
    of state): its counters then are the sink's start-up (importing nats-py, connecting,
    the stream), which `summary` takes off the rounds' per-event figure."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        status = read_status(js) if isinstance(js, Ours) else None
        if status is not None and status.get("state") == "ok":
            return status
        await asyncio.sleep(0.1)
    _log("[jetstream cost] the sink did not say ok: its start-up stays in the per-event figure")
    return None


async def run(
    args: argparse.Namespace,
    off: Server,
    js: Server,
    off2: Server,
    nats_pid: int,
    msgs: list[Message],
) -> tuple[list[dict[str, Phase]], dict[str, Any] | None]:
    """The rounds, each round's phases by server name; and the jetstream server's status
    before them (None: not read)."""
    servers = {"off": off, "jetstream": js, "off2": off2}
    for srv in servers.values():
        c = ImapClient(srv.host, srv.port, timeout=args.timeout)
        await c.connect()
        await c.login(srv.user, srv.password)
        await c.command(f'CREATE "{BOX}"')
        await c.logout()
    start = await _status_when_ok(js, args.timeout)
    names = list(servers)
    part = msgs[: args.js_messages] if len(msgs) >= args.js_messages else msgs
    rounds: list[dict[str, Phase]] = []
    for r in range(args.js_rounds):
        order = names[r % 3 :] + names[: r % 3]
        got: dict[str, Phase] = {}
        for name in order:
            _log(f"[jetstream cost] round {r + 1}/{args.js_rounds}: {name} ...")
            pid = nats_pid if name == "jetstream" else None
            got[name] = await _phase(servers[name], args.event_clients, part, args.timeout, pid)
        rounds.append(got)
    return rounds, start


def _spread(values: list[float]) -> str:
    return (
        f"{statistics.median(values) * 100:+5.1f}% "
        f"[{min(values) * 100:+5.1f} .. {max(values) * 100:+5.1f}]"
    )


def summary(
    rounds: list[dict[str, Phase]],
    clients: int,
    start: dict[str, Any] | None,
    status: dict[str, Any] | None,
) -> None:
    if not rounds:
        return
    print(
        f"\nJetStream sink cost at {clients} clients: {len(rounds)} rounds of off / jetstream /"
        " off2 (rotated), median [min .. max] against each round's off"
    )
    for name in ("jetstream", "off2"):
        wall = [1 - r[name].rate / r["off"].rate for r in rounds]
        cpu = [r[name].cpu_per / r["off"].cpu_per - 1 for r in rounds]
        line = f"  {name:9} wall {_spread(wall)}   cpu/APPEND {_spread(cpu)}"
        if name == "jetstream":
            both = [r[name].all_per / r["off"].cpu_per - 1 for r in rounds]
            line += f"   +nats-server {_spread(both)}"
        print(line + ("   (control: noise floor)" if name == "off2" else ""))
    names = ("off", "jetstream", "off2")
    mean = {n: statistics.fmean(r[n].cpu_per for r in rounds) * 1000 for n in names}
    nats = statistics.fmean(r["jetstream"].nats_cpu / r["jetstream"].count for r in rounds) * 1000
    print(
        f"  CPU per APPEND: off {mean['off']:.3f} ms, off2 {mean['off2']:.3f} ms, jetstream "
        f"{mean['jetstream']:.3f} ms (+ nats-server {nats:.3f} ms)"
    )
    if status is not None:
        events, sink_cpu = _events_cpu(status)
        if events:
            print(
                "  the sink's own CPU (its task + ack callback, its whole life): "
                f"{sink_cpu / events * 1000:.3f} ms per event over {events} events; "
                f"resyncs {status.get('resyncs')}"
            )
        if start is not None:
            events0, cpu0 = _events_cpu(start)
            if events > events0:
                per = (sink_cpu - cpu0) / (events - events0) * 1000
                print(
                    f"  the same over these rounds, its start-up ({cpu0 * 1000:.1f} ms: "
                    f"importing nats-py, connecting, the stream) left out: {per:.3f} ms per "
                    f"event over {events - events0} events, {per / mean['off'] * 100:.1f} % "
                    "of off's CPU per APPEND"
                )


def _events_cpu(status: dict[str, Any]) -> tuple[int, float]:
    events = int(status.get("published", 0)) + int(status.get("duplicates", 0))
    return events, float(status.get("cpu_seconds", 0.0))


def read_status(srv: Ours) -> dict[str, Any] | None:
    """The server's JetStream status file (after it stopped: its final counters)."""
    path = Path(srv.data_dir) / "jetstream.status.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
