"""The ``cluster`` section: the store on PostgreSQL, on one and on K instances (issue 18).

    scripts/bench cluster [--store postgresql://...] [--instances K] [--messages N]
                          [--push-listeners L] [--push-events E] [--port-base P]

In one run, side by side: ours on SQLite (P), Dovecot (P+1), ours on PostgreSQL with one
instance (P+10) and with K instances on one database (P+20..), PostgreSQL being a throwaway
cluster the bench starts itself (P+9; scripts/benchlib/pgservers.py) unless ``--store`` names
one (then only the K-instance run, on that empty database, and PostgreSQL's CPU is not
measured: it is not ours to see).

1. The ``store`` section's phases on every server (scripts/benchlib/store.py: APPEND with 1
   and 10 clients, FETCH BODY.PEEK[] and FLAGS, SEARCH), clients spread round robin over the
   instances (the single client on A; the 10 APPEND clients over A and B).
2. Push latency: L listeners spread over the instances (NOTIFY SET, as the ``notify``
   section sets it), a writer on instance A APPENDs E messages at R/s; per event and
   listener the delay from the writer's tagged OK to the listener's ``* n EXISTS``; p50, p99,
   max, delivered/expected. Also on the SQLite store (one instance) for reference.

Server CPU seconds for the PostgreSQL runs are imapd (every instance) + PostgreSQL (its whole
process tree), printed apart as well; per-CPU figures divide by that sum. Figures only, no
assertion. Targets (the issue): per CPU-second at least half the SQLite store's for APPEND
and FETCH; push p99 under 50 ms at 1,000 listeners over two instances, all delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import resource
import sys
import time

from . import store as store_section
from .client import ImapClient
from .notify import CONNECT_BATCH, MAILBOX, NOTIFY_SET, Listener
from .pgservers import OursPostgres, ThrowawayPostgres
from .report import Figure, Measure, percentile
from .servers import NOFILE, Server


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("cluster section (the store on PostgreSQL)")
    g.add_argument(
        "--store",
        metavar="URL",
        help="an EMPTY PostgreSQL database to run the K-instance server on (default: a"
        " throwaway cluster started by the bench, runs 1 and K instances)",
    )
    g.add_argument(
        "--instances", type=int, default=2, metavar="K", help="instances on one database (2)"
    )
    g.add_argument(
        "--push-listeners",
        type=int,
        default=1000,
        metavar="L",
        help="NOTIFY listeners spread over the instances (default 1000)",
    )
    g.add_argument("--push-events", type=int, default=20, metavar="E", help="APPENDs (20)")
    g.add_argument("--push-rate", type=float, default=10.0, metavar="R", help="APPENDs/s (10)")


async def run(args: argparse.Namespace, servers: list[Server]) -> list[Figure]:
    postgres: ThrowawayPostgres | None = None
    pg_servers: list[OursPostgres] = []
    try:
        if args.store:
            pg_servers.append(
                OursPostgres(
                    args.port_base + 20,
                    args.store,
                    args.instances,
                    None,
                    name=f"pg-x{args.instances}",
                    keep=args.keep,
                )
            )
        else:
            postgres = ThrowawayPostgres(args.port_base + 9, keep=args.keep)
            _log(f"starting a throwaway PostgreSQL on 127.0.0.1:{postgres.port} ...")
            await asyncio.to_thread(postgres.start)
            _log(f"postgres ready: {postgres.version}")
            for port, k in ((args.port_base + 10, 1), (args.port_base + 20, args.instances)):
                url = await asyncio.to_thread(postgres.new_database)
                pg_servers.append(
                    OursPostgres(port, url, k, postgres, name=f"pg-x{k}", keep=args.keep)
                )
        for srv in pg_servers:
            _log(f"starting {srv.name}: {srv.instances} instance(s) on {srv.ports} ...")
            await asyncio.to_thread(srv.start, args.start_timeout)
        everything: list[Server] = [*servers, *pg_servers]
        figures = await store_section.run(args, everything)
        push = await _push_figure(args, [s for s in everything if s.name != "dovecot"])
        figures.append(push)
        print(_render(figures, everything, pg_servers, postgres), flush=True)
        return figures
    finally:
        for srv in pg_servers:
            with contextlib.suppress(Exception):
                srv.stop()
            srv.cleanup()
        if postgres is not None:
            postgres.stop()
            postgres.cleanup()


# -- push latency ---------------------------------------------------------------------------


def _ports(server: Server) -> list[int]:
    return list(getattr(server, "ports", [server.port]))


async def _open(server: Server, port: int) -> Listener:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(Listener, server.host, port)
    await proto.greeted
    for tag, text in (
        ("l1", f"LOGIN {server.user} {server.password}"),
        ("l2", f'SELECT "{MAILBOX}"'),
        ("l3", NOTIFY_SET),
    ):
        reply = await proto.command(tag, text)
        if f"{tag} OK".encode() not in reply:
            raise RuntimeError(f"{text.split()[0]} on port {port}: {reply[-200:]!r}")
    return proto


async def _push_one(server: Server, args: argparse.Namespace) -> Measure:
    ports = _ports(server)
    writer = ImapClient(server.host, ports[0], timeout=args.timeout)  # instance A
    await writer.connect()
    await writer.login(server.user, server.password)
    with contextlib.suppress(Exception):
        await writer.command(f'CREATE "{MAILBOX}"')
    status = await writer.command(f'STATUS "{MAILBOX}" (MESSAGES)')
    found = re.search(rb"MESSAGES (\d+)", status.untagged[0].line)
    assert found is not None
    base = int(found.group(1))
    k = args.push_listeners
    listeners: list[Listener] = []
    for i in range(0, k, CONNECT_BATCH):
        listeners += await asyncio.gather(
            *(_open(server, ports[(i + j) % len(ports)]) for j in range(min(CONNECT_BATCH, k - i)))
        )
    await asyncio.sleep(1.0 + k / 1000)
    for p in listeners:
        p.listen(base)
    cpu0 = server.cpu_seconds()
    sent: list[float] = []
    oks: list[float] = []
    body = b"From: w@example.org\r\nSubject: push bench\r\n\r\nhello\r\n"
    t_start = time.perf_counter()
    for n in range(args.push_events):
        await asyncio.sleep(max(0.0, t_start + n / args.push_rate - time.perf_counter()))
        sent.append(time.perf_counter())
        await writer.append(MAILBOX, body)
        oks.append(time.perf_counter())
    last = base + args.push_events
    deadline = time.perf_counter() + 5.0
    while time.perf_counter() < deadline and not all(  # noqa: ASYNC110 - many conditions
        any(x >= last for x in p.arrivals) for p in listeners
    ):
        await asyncio.sleep(0.05)
    wall = time.perf_counter() - t_start
    cpu = server.cpu_seconds() - cpu0
    from_ok: list[float] = []
    per_instance: dict[int, list[float]] = {}
    delivered = 0
    for i, p in enumerate(listeners):
        seen = sorted(p.arrivals.items())
        for n in range(args.push_events):
            at = next((t for x, t in seen if x >= base + n + 1), None)
            if at is None:
                continue
            delivered += 1
            from_ok.append((at - oks[n]) * 1000)
            per_instance.setdefault(i % len(ports), []).append((at - oks[n]) * 1000)
    for p in listeners:
        if p.transport is not None:
            p.transport.close()
    with contextlib.suppress(Exception):
        await writer.logout()
    await writer.close()
    expected = k * args.push_events
    m = Measure(delivered, wall, cpu, 0.0, from_ok)
    m.check = "" if delivered == expected else f"{expected - delivered} of {expected} missing"
    m.extra = {
        "listeners": k,
        "instances": len(ports),
        "delivered": delivered,
        "expected": expected,
        "p99_by_instance_ms": {
            "AB"[i] if i < 2 else str(i): round(percentile(v, 99), 1)
            for i, v in sorted(per_instance.items())
        },
        "append_ms_p50": round(
            percentile([(o - s) * 1000 for s, o in zip(sent, oks, strict=True)], 50), 1
        ),
    }
    await asyncio.sleep(1.0 + k / 2000)
    return m


async def _push_figure(args: argparse.Namespace, servers: list[Server]) -> Figure:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(NOFILE, hard), hard))
    fig = Figure(
        "push",
        f"push to {args.push_listeners} NOTIFY listeners, writer on A",
        "latency",
        "events",
    )
    for server in servers:
        _log(f"[{server.name}] push: {args.push_listeners} listeners over {_ports(server)} ...")
        try:
            m = await _push_one(server, args)
        except Exception as exc:  # noqa: BLE001 - a figure per server, errors shown
            fig.errors[server.name] = f"{type(exc).__name__}: {exc}"
            _log(f"[{server.name}] push failed: {exc}")
            continue
        fig.results[server.name] = m
        e = m.extra
        _log(
            f"[{server.name}] push delivered {e['delivered']}/{e['expected']}; from OK p50"
            f" {m.pct(50):.1f} ms p99 {m.pct(99):.1f} ms max {max(m.latencies_ms or [0]):.1f}"
            f" ms; p99 by instance {e['p99_by_instance_ms']}; CPU {m.server_cpu:.2f} s"
        )
    return fig


# -- report ---------------------------------------------------------------------------------


def _render(
    figures: list[Figure],
    servers: list[Server],
    pg_servers: list[OursPostgres],
    postgres: ThrowawayPostgres | None,
) -> str:
    names = [s.name for s in servers]
    head = ["figure", *names]
    rate_rows: list[list[str]] = []
    cpu_rows: list[list[str]] = []
    split_rows: list[list[str]] = []
    store_figs = [f for f in figures if f.key != "push"]
    for fig in store_figs:
        cells, cpu_cells = [fig.label], [fig.label]
        for n in names:
            m = fig.results.get(n)
            if n in fig.errors:
                cells.append("FAILED")
                cpu_cells.append("FAILED")
            elif m is None:
                cells.append("-")
                cpu_cells.append("-")
            elif fig.kind == "rate":
                cells.append(f"{m.rate:,.0f}/s" + (" (!)" if m.check else ""))
                cpu_cells.append(f"{m.per_cpu:,.0f}")
            else:
                cells.append(f"p50 {m.pct(50):.1f} ms" + (" (!)" if m.check else ""))
                cpu_cells.append(f"{m.per_cpu:,.0f}")
        rate_rows.append(cells)
        cpu_rows.append(cpu_cells)
    for srv in pg_servers:
        measured = [f for f in store_figs if srv.name in f.results]
        if len(srv.splits) < len(measured):
            continue
        for fig, (imapd, pg) in zip(measured, srv.splits, strict=False):
            split_rows.append(
                [f"{srv.name} {fig.label}", f"{imapd:.2f}", "-" if pg != pg else f"{pg:.2f}"]
            )
    push = next((f for f in figures if f.key == "push"), None)
    push_rows: list[list[str]] = []
    if push is not None:
        for n in names:
            m = push.results.get(n)
            if n in push.errors:
                push_rows.append([n, "FAILED", push.errors[n], "", "", ""])
            elif m is not None:
                e = m.extra
                push_rows.append(
                    [
                        f"{n} ({e['instances']} instance(s))",
                        f"{m.pct(50):.1f}",
                        f"{m.pct(99):.1f}",
                        f"{max(m.latencies_ms or [float('nan')]):.1f}",
                        f"{e['delivered']}/{e['expected']}",
                        f"{m.server_cpu:.2f}",
                    ]
                )
    out = [
        _table("Throughput (per wall-clock second; SEARCH: latency)", head, rate_rows),
        _table("Per server CPU-second (PostgreSQL runs: imapd + PostgreSQL CPU)", head, cpu_rows),
        _table("CPU seconds of the PostgreSQL runs", ["phase", "imapd", "PostgreSQL"], split_rows),
    ]
    if push_rows:
        out.append(
            _table(
                push.label if push else "push",
                ["server", "p50 ms", "p99 ms", "max ms", "delivered", "CPU s"],
                push_rows,
            )
        )
    if postgres is not None:
        out.append(f"PostgreSQL: {postgres.version}, throwaway cluster, fsync on")
    return "\n\n".join(out)


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [title, " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    for r in rows:
        lines.append(
            " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
