"""The ``notify`` section: one event fanned out to K listening connections.

For each K in ``--notify-listeners`` (default 1,100,1000,10000) and each server, in turn
(peers only up to ``--notify-peer-max``, default 1,000: Dovecot fails at 5,000 IDLE
listeners, docs/design.md):

  setup     K connections log in, SELECT the mailbox and register (untimed):
            ours and any server whose NOTIFY is comparable:
              NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge))
                         (personal (MessageNew MessageExpunge FlagChange))
            (the ABNF form, docs/notify.md); Dovecot by default IDLE (``--notify-dovecot
            notify`` tries its NOTIFY instead; it falls back to IDLE on NO/BAD).
  memory    the server's PSS (sum over its process tree, /proc/PID/smaps_rollup; RSS where
            PSS cannot be read) before the K connections (after a warm-up batch of listeners,
            closed again) and once they are idle: delta / K
  events    a writer APPENDs E messages at R per second; each listener records when its
            ``* n EXISTS`` arrives (an EXISTS for n also covers every earlier message, §5.2)
  figures   delay from the writer's tagged OK, and from the APPEND being sent, to each
            listener's EXISTS (p50, p99, max over every listener x event), the writer's own
            APPEND round trip, delivered / expected, memory per idle connection

Listeners are raw asyncio Protocols that timestamp bytes in ``data_received`` (no stream
reader per connection), so the client's own cost stays small at 1,000 listeners. Targets
(the issue): p99 under 50 ms at 1,000 listeners, every event delivered, under 64 KiB per
idle connection. docs/design.md: Dovecot pushes 0.25-0.5 s after a change by design; measure it
from the APPEND being sent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import resource
import sys
import time
from pathlib import Path

from .client import ImapClient
from .report import Figure, Measure, percentile
from .servers import NOFILE, Server, self_cpu_seconds, tree_cpu_seconds
from .spread import cpu_seconds, spread, tree_pids

MAILBOX = "bench-notify"
NOTIFY_SET = (
    "NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge))"
    " (personal (MessageNew MessageExpunge FlagChange))"
)
CONNECT_BATCH = 100  # connections set up at once
_EXISTS = re.compile(rb"^\* (\d+) EXISTS\r?$", re.M)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("notify section")
    g.add_argument(
        "--notify-listeners",
        default="1,100,1000,10000",
        metavar="K,K,...",
        help="listener counts (default 1,100,1000,10000)",
    )
    g.add_argument(
        "--notify-peer-max",
        type=int,
        default=1000,
        metavar="K",
        help="run peers (Dovecot) only up to K listeners (default 1000: docs/design.md, "
        "Dovecot fails at 5,000 IDLE listeners)",
    )
    g.add_argument(
        "--notify-events",
        type=int,
        default=20,
        metavar="E",
        help="APPENDs per listener count (default 20)",
    )
    g.add_argument(
        "--notify-rate",
        type=float,
        default=10.0,
        metavar="R",
        help="APPENDs per second (default 10)",
    )
    g.add_argument(
        "--notify-dovecot",
        choices=("idle", "notify"),
        default="idle",
        help="how Dovecot listens (default idle: see docs/design.md)",
    )


class Listener(asyncio.Protocol):
    """One listening connection: a tiny command runner, then a timestamping reader."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.waiting: tuple[bytes, asyncio.Future[bytes]] | None = None
        self.greeted: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.arrivals: dict[int, float] = {}  # EXISTS n -> when it came
        self.base = 0  # EXISTS before the events
        self.listening = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        for fut in (self.greeted, self.waiting[1] if self.waiting else None):
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionError("closed"))

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buf += data
        if self.listening:
            for m in _EXISTS.finditer(self.buf):
                self.arrivals.setdefault(int(m.group(1)), now)
            self.buf = self.buf[self.buf.rfind(b"\n") + 1 :]
            return
        while b"\r\n" in self.buf:
            line, _, self.buf = self.buf.partition(b"\r\n")
            if not self.greeted.done():
                self.greeted.set_result(line)
            elif self.waiting is not None and line.startswith(self.waiting[0] + b" "):
                fut = self.waiting[1]
                self.waiting = None
                fut.set_result(line)

    async def command(self, tag: str, text: str) -> bytes:
        assert self.transport is not None
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiting = (tag.encode(), fut)
        self.transport.write(f"{tag} {text}\r\n".encode())
        return await fut

    def listen(self, base: int) -> None:
        self.base = base
        self.listening = True
        self.buf = b""


async def _open(server: Server, mode: str) -> tuple[Listener, str]:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(Listener, server.host, server.port)
    await proto.greeted
    for tag, text in (
        ("l1", f"LOGIN {server.user} {server.password}"),
        ("l2", f'SELECT "{MAILBOX}"'),
    ):
        reply = await proto.command(tag, text)
        if f"{tag} OK".encode() not in reply:
            raise RuntimeError(f"{text.split()[0]}: {reply[-200:]!r}")
    if mode == "notify":
        reply = await proto.command("l3", NOTIFY_SET)
        if b"l3 OK" not in reply:
            mode = "idle"
    if mode == "idle":
        assert proto.transport is not None
        proto.transport.write(b"l4 IDLE\r\n")
    return proto, mode


def _pss_kib(root: int) -> int:
    """PSS (RSS when unreadable) of ``root`` and its descendants, KiB."""
    total = 0
    for pid in tree_pids(root):
        with contextlib.suppress(OSError):
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
            for key in ("Pss:", "Rss:"):
                m = re.search(rf"^{key}\s+(\d+) kB", text, re.M)
                if m:
                    total += int(m.group(1))
                    break
    return total


async def _one(server: Server, k: int, args: argparse.Namespace, mode: str) -> Measure:
    assert server.proc is not None
    writer = ImapClient(server.host, server.port, timeout=args.timeout)
    await writer.connect()
    await writer.login(server.user, server.password)
    with contextlib.suppress(Exception):
        await writer.command(f'CREATE "{MAILBOX}"')
    status = await writer.command(f'STATUS "{MAILBOX}" (MESSAGES)')
    base = int(re.search(rb"MESSAGES (\d+)", status.untagged[0].line).group(1))  # type: ignore[union-attr]
    # Warm-up, not counted: a batch of logins first, so that what the first ones leave behind
    # once (lazy imports; ours: the malloc arenas of the scrypt worker threads, ~16 MiB per
    # thread) is not charged to the K connections.
    warm = await asyncio.gather(*(_open(server, mode) for _ in range(min(k, CONNECT_BATCH))))
    for p, _ in warm:
        if p.transport is not None:
            p.transport.close()
    await asyncio.sleep(1.0)
    mem0 = _pss_kib(server.proc.pid)
    listeners: list[Listener] = []
    modes: set[str] = set()
    for i in range(0, k, CONNECT_BATCH):
        opened = await asyncio.gather(
            *(_open(server, mode) for _ in range(min(CONNECT_BATCH, k - i)))
        )
        listeners += [p for p, _ in opened]
        modes |= {m for _, m in opened}
    await asyncio.sleep(1.0 + k / 1000)  # let IDLE settle (Dovecot: inotify set-up)
    for p in listeners:
        p.listen(base)
    mem1 = _pss_kib(server.proc.pid)
    # Under --workers N: which worker holds how many listeners, and the writer (spread.py).
    held = spread(server.proc.pid, server.port)
    assert writer.writer is not None
    writer_port = int(writer.writer.get_extra_info("sockname")[1])
    writer_pid = held.holder(writer_port)
    procs = {pid: cpu_seconds(pid) for pid in held.ports}
    client0 = self_cpu_seconds()
    cpu0 = tree_cpu_seconds(server.proc.pid)
    sent: list[float] = []
    oks: list[float] = []
    body = b"From: w@example.org\r\nSubject: notify bench\r\n\r\nhello\r\n"
    interval = 1.0 / args.notify_rate
    t_start = time.perf_counter()
    for n in range(args.notify_events):
        await asyncio.sleep(max(0.0, t_start + n * interval - time.perf_counter()))
        sent.append(time.perf_counter())
        await writer.append(MAILBOX, body)
        oks.append(time.perf_counter())
    deadline = time.perf_counter() + (3.0 if mode == "notify" and server.name == "ours" else 10.0)
    last = base + args.notify_events
    # A fan-out behind the writer (10,000 listeners) is still delivering: wait while the
    # arrivals grow (up to 60 s more), so that late is told apart from lost.
    give_up = deadline + 60.0
    arrived = -1
    while not all(any(x >= last for x in p.arrivals) for p in listeners):
        now = time.perf_counter()
        if now >= deadline:
            count = sum(len(p.arrivals) for p in listeners)
            if count == arrived or now >= give_up:
                break
            arrived, deadline = count, now + 1.0
        await asyncio.sleep(0.05)
    wall = time.perf_counter() - t_start
    cpu = tree_cpu_seconds(server.proc.pid) - cpu0
    client_cpu = self_cpu_seconds() - client0
    workers = [
        {
            "pid": pid,
            "listeners": held.count(pid, frozenset({writer_port})),
            "writer": pid == writer_pid,
            "cpu_s": round(cpu_seconds(pid) - before, 2),
        }
        for pid, before in procs.items()
    ]
    from_ok: list[float] = []
    from_send: list[float] = []
    delivered = 0
    for p in listeners:
        seen = sorted(p.arrivals.items())
        for n in range(args.notify_events):
            want = base + n + 1
            at = next((t for x, t in seen if x >= want), None)
            if at is None:
                continue
            delivered += 1
            from_ok.append((at - oks[n]) * 1000)
            from_send.append((at - sent[n]) * 1000)
    for p in listeners:
        if p.transport is not None:
            p.transport.close()
    with contextlib.suppress(Exception):
        await writer.logout()
    await writer.close()
    expected = k * args.notify_events
    per_conn = (mem1 - mem0) / k
    m = Measure(delivered, wall, cpu, client_cpu, from_ok)
    m.check = "" if delivered == expected else f"{expected - delivered} of {expected} missing"
    m.extra = {
        "mode": "/".join(sorted(modes)),
        "listeners": k,
        "expected": expected,
        "delivered": delivered,
        "from_ok_ms": _stats(from_ok),
        "from_send_ms": _stats(from_send),
        "append_ms": _stats([(ok - at) * 1000 for at, ok in zip(sent, oks, strict=True)]),
        # what the writer achieved against --notify-rate: E APPENDs over the time to the last OK
        "writer_rate": round(len(oks) / (oks[-1] - t_start), 1) if oks else 0.0,
        "kib_per_idle_conn": round(per_conn, 1),
        # server CPU (every process of its tree) per listener x event delivered
        "cpu_us_per_delivery": round(cpu / delivered * 1e6, 1) if delivered else float("nan"),
        "client_cpu_s": round(client_cpu, 2),
        "workers": workers,
        "pss_kib_before": mem0,
        "pss_kib_after": mem1,
    }
    await asyncio.sleep(1.0 + k / 2000)  # let the server reap the connections
    return m


def _stats(xs: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(xs, 50), 1),
        "p99": round(percentile(xs, 99), 1),
        "max": round(max(xs), 1) if xs else float("nan"),
    }


async def run(args: argparse.Namespace, servers: list[Server]) -> list[Figure]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # `ulimit -n` for K connections
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(NOFILE, hard), hard))
    counts = [int(x) for x in str(args.notify_listeners).split(",") if x.strip()]
    figures: list[Figure] = []
    for k in counts:
        fig = Figure(
            f"notify-{k}",
            f"{k} listeners, {args.notify_events} APPENDs at "
            f"{args.notify_rate:g}/s: delay from the writer's OK",
            "latency",
            "events",
        )
        for server in servers:
            mode = "notify" if server.name == "ours" else args.notify_dovecot
            if server.name != "ours" and k > args.notify_peer_max:
                fig.skipped[server.name] = (
                    f"peers run up to {args.notify_peer_max} listeners"
                    " (--notify-peer-max; docs/design.md)"
                )
                _log(f"[{server.name}] {k} listeners: not run, {fig.skipped[server.name]}")
                continue
            _log(f"[{server.name}] {k} listeners ({mode}) ...")
            try:
                m = await _one(server, k, args, mode)
            except Exception as exc:  # noqa: BLE001 - a figure per server, errors shown
                fig.errors[server.name] = f"{type(exc).__name__}: {exc}"
                _log(f"[{server.name}] failed: {exc}")
                continue
            fig.results[server.name] = m
            e = m.extra
            _log(
                f"[{server.name}] K={k} mode={e['mode']} delivered {e['delivered']}/"
                f"{e['expected']}; from OK p50/p99/max {_fmt(e['from_ok_ms'])} ms; from "
                f"APPEND sent {_fmt(e['from_send_ms'])} ms; the writer's APPEND "
                f"{_fmt(e['append_ms'])} ms, {e['writer_rate']}/s achieved; "
                f"{e['kib_per_idle_conn']} KiB per "
                f"idle connection (PSS {e['pss_kib_before']} -> {e['pss_kib_after']} KiB); "
                f"server CPU {m.server_cpu:.2f} s, {e['cpu_us_per_delivery']} µs per delivery; "
                f"client CPU {e['client_cpu_s']} s"
            )
            for w in e["workers"]:
                _log(
                    f"[{server.name}]   process {w['pid']}: {w['listeners']} listeners"
                    f"{' + the writer' if w['writer'] else ''}, CPU {w['cpu_s']:.2f} s"
                )
        figures.append(fig)
    return figures


def _fmt(s: dict[str, float]) -> str:
    return f"{s['p50']:.1f}/{s['p99']:.1f}/{s['max']:.1f}"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
