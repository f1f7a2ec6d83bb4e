"""The ``context`` section: what RFC 5267 updating contexts cost when the mailbox changes.

One N-message mailbox per server (the store section's corpus). A writer changes it; two
listeners have it selected: ``plain`` with no context, ``ctx`` with updating contexts:

  UID SEARCH RETURN (UPDATE COUNT) UNSEEN             flags only (ours: from the change)
  UID SEARCH RETURN (UPDATE COUNT) FLAGGED
  UID SEARCH RETURN (UPDATE COUNT) SUBJECT "re"       a text key (ours: the store, those UIDs)
  UID SEARCH RETURN (UPDATE COUNT) FROM "carol"
  UID SORT RETURN (UPDATE COUNT) (DATE) UTF-8 UNDELETED   only where CONTEXT=SORT is offered

Phases (each on every server before the next, order flipped per phase): after each change
(untimed), each listener's NOOP is timed; it carries the EXISTS/FETCH and, for ``ctx``, the
ESEARCH ADDTO/REMOVEFROM (checked present):

  append-plain / append-ctx   the writer APPENDs one message (it matches UNSEEN)
  flag-plain / flag-ctx       the writer flags or unflags one message (\\Flagged, alternately)

Dovecot offers CONTEXT=SEARCH but not CONTEXT=SORT, so its ``ctx`` listener has one context
fewer. NOOP is compared rather than IDLE: Dovecot delays IDLE pushes by design (docs/design.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from .client import ImapClient, ImapError
from .messages import Corpus, Message
from .report import Figure, Measure
from .servers import Server

BOX = "bench-context"
CONTEXTS = [
    "UID SEARCH RETURN (UPDATE COUNT) UNSEEN",
    "UID SEARCH RETURN (UPDATE COUNT) FLAGGED",
    'UID SEARCH RETURN (UPDATE COUNT) SUBJECT "re"',
    'UID SEARCH RETURN (UPDATE COUNT) FROM "carol"',
]
SORT_CONTEXT = "UID SORT RETURN (UPDATE COUNT) (DATE) UTF-8 UNDELETED"
PHASES = [
    ("append-plain", "APPEND, then NOOP without contexts"),
    ("append-ctx", "APPEND, then NOOP with contexts"),
    ("flag-plain", "STORE \\Flagged, then NOOP without contexts"),
    ("flag-ctx", "STORE \\Flagged, then NOOP with contexts"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("context section")
    g.add_argument(
        "--context-messages",
        type=int,
        default=10_000,
        metavar="N",
        help="messages in the mailbox (default 10000)",
    )
    g.add_argument("--context-reps", type=int, default=100, help="changes per phase (default 100)")
    g.add_argument(
        "--context-no-sort",
        action="store_true",
        help="open no SORT context on either server (to tell the SORT context's share)",
    )


async def _client(s: Server, limit: float) -> ImapClient:
    c = ImapClient(s.host, s.port, timeout=limit)
    await c.connect()
    await c.login(s.user, s.password)
    return c


async def run(args: argparse.Namespace, servers: list[Server]) -> list[Figure]:
    n = args.context_messages
    msgs = Corpus(args.seed).generate(n + args.context_reps * 2)
    base, extra = msgs[:n], msgs[n:]
    figures = {key: Figure(key, label, "latency", "noops") for key, label in PHASES}
    state: dict[str, tuple[ImapClient, ImapClient, ImapClient, int]] = {}
    spare = {s.name: list(extra) for s in servers}  # each server APPENDs the same ones
    for s in servers:
        w = await _client(s, args.timeout)
        await w.command(f'CREATE "{BOX}"')
        t = time.perf_counter()
        for m in base:
            await w.append(BOX, m.data, m.flags, m.imap_date)
        await w.command(f'SELECT "{BOX}"')
        plain, ctx = await _client(s, args.timeout), await _client(s, args.timeout)
        await plain.command(f'SELECT "{BOX}"')
        await ctx.command(f'SELECT "{BOX}"')
        caps = (await ctx.command("CAPABILITY")).untagged[0].line.upper().split()
        sorting = b"CONTEXT=SORT" in caps and not args.context_no_sort
        opened = [*CONTEXTS, *([SORT_CONTEXT] if sorting else [])]
        for command in opened:
            await ctx.command(command)
        _log(f"[{s.name}] {n} messages in {time.perf_counter() - t:.1f} s; {len(opened)} contexts")
        state[s.name] = (w, plain, ctx, len(opened))
    for i, (key, _label) in enumerate(PHASES):
        for s in servers if i % 2 == 0 else list(reversed(servers)):
            w, plain, ctx, count = state[s.name]
            listener = ctx if key.endswith("-ctx") else plain
            try:
                meas = await _phase(s, key, w, listener, spare[s.name], args.context_reps)
            except (ImapError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                figures[key].errors[s.name] = f"{type(exc).__name__}: {exc}"
                continue
            meas.extra = {"contexts": count if key.endswith("-ctx") else 0}
            figures[key].results[s.name] = meas
            _log(
                f"[{s.name}] {key}: p50 {meas.pct(50):.2f} ms, p99 {meas.pct(99):.2f} ms"
                + (f"  (!) {meas.check}" if meas.check else "")
            )
            # The other listener catches up untimed, so each phase starts from a quiet state.
            await (plain if listener is ctx else ctx).command("NOOP")
    for w, plain, ctx, _ in state.values():
        for c in (w, plain, ctx):
            await c.logout()
    return list(figures.values())


async def _phase(
    server: Server,
    key: str,
    w: ImapClient,
    listener: ImapClient,
    extra: list[Message],
    reps: int,
) -> Measure:
    lat: list[float] = []
    missing = 0
    cpu0, c0, t0 = server.cpu_seconds(), time.process_time(), time.perf_counter()
    for r in range(reps):
        if key.startswith("append"):
            m = extra.pop()
            await w.append(BOX, m.data, "", m.imap_date)  # unseen: joins UNSEEN
        else:
            sign = "+" if r % 2 == 0 else "-"
            await w.command(f"STORE {r // 2 + 1} {sign}FLAGS.SILENT (\\Flagged)")
        await asyncio.sleep(0.005)  # let the change reach the listener's queue
        t = time.perf_counter()
        reply = await listener.command("NOOP")
        lat.append((time.perf_counter() - t) * 1000)
        got = any(u.line.startswith(b"* ESEARCH") for u in reply.untagged)
        if key.endswith("-ctx") and not got:
            missing += 1
    t1, c1, cpu1 = time.perf_counter(), time.process_time(), server.cpu_seconds()
    meas = Measure(
        count=len(lat), wall=t1 - t0, server_cpu=cpu1 - cpu0, client_cpu=c1 - c0, latencies_ms=lat
    )
    if missing:
        meas.check = f"{missing} of {reps} NOOPs without an ESEARCH update"
    return meas


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
