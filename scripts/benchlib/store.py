"""The ``store`` section: APPEND, FETCH and SEARCH throughput/latency, per server.

Phases (each run on every server before the next phase; the server order flips from phase
to phase so that drift on a shared 2-core machine does not always favour the same one):

  append-1    APPEND N messages, one client, one command at a time, into a fresh mailbox
  append-10   APPEND N/2 messages from 10 connections at once into another fresh mailbox
  fetch-body  UID FETCH <100 UIDs> BODY.PEEK[] over the N-message mailbox (bytes verified)
  fetch-flags FETCH 1:* (FLAGS) over the N-message mailbox, repeated
  search-*    SEARCH UNSEEN / FROM / BODY / OR FLAGGED SMALLER SINCE: latency per command
              (one untimed warm-up first), answers checked against the corpus

Logins, SELECT and UID discovery happen outside the timed windows. The server CPU window is
the timed window (connections stay open across it, so Dovecot's per-connection processes
are alive at both ends of it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from .client import ImapClient, ImapError
from .messages import BODY_WORD, FROM_NAME, Corpus, Message
from .report import Figure, Measure
from .servers import Server

SINGLE = "bench-single"
MULTI = "bench-multi"
SETTLE = 0.3  # seconds of quiet between phases so deferred work does not spill into the next


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("store section")
    g.add_argument(
        "--messages",
        type=int,
        default=10_000,
        metavar="N",
        help="messages for the single-client APPEND / FETCH / SEARCH mailbox (default 10000)",
    )
    g.add_argument(
        "--concurrent-messages",
        type=int,
        default=None,
        metavar="M",
        help="messages appended by the concurrent clients (default N/2)",
    )
    g.add_argument(
        "--clients", type=int, default=10, help="concurrent APPEND connections (default 10)"
    )
    g.add_argument(
        "--fetch-chunk",
        type=int,
        default=100,
        help="messages per UID FETCH BODY.PEEK[] command (default 100)",
    )
    g.add_argument(
        "--flags-reps",
        type=int,
        default=5,
        help="least repetitions of FETCH 1:* (FLAGS) (default 5)",
    )
    g.add_argument(
        "--search-reps",
        type=int,
        default=10,
        help="least timed repetitions of each SEARCH (default 10)",
    )
    g.add_argument(
        "--min-seconds",
        type=float,
        default=2.0,
        help="FETCH and SEARCH phases repeat (whole passes) until they ran at least "
        "this long, so CPU ticks (10 ms) do not dominate (default 2)",
    )
    g.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")


def _searches(msgs: list[Message]) -> list[tuple[str, str, str, int]]:
    """(key, label, command, expected number of hits) for the N-message mailbox."""
    y2020 = datetime(2020, 1, 1, tzinfo=UTC)
    return [
        ("search-unseen", "SEARCH UNSEEN", "SEARCH UNSEEN", sum(not m.seen for m in msgs)),
        (
            "search-from",
            f'SEARCH FROM "{FROM_NAME}"',
            f'SEARCH FROM "{FROM_NAME}"',
            sum(m.from_carol for m in msgs),
        ),
        (
            "search-body",
            f'SEARCH BODY "{BODY_WORD}"',
            f'SEARCH BODY "{BODY_WORD}"',
            sum(m.has_word for m in msgs),
        ),
        (
            "search-combined",
            "SEARCH OR FLAGGED SMALLER 2000 SINCE 1-Jan-2020",
            "SEARCH OR FLAGGED SMALLER 2000 SINCE 1-Jan-2020",
            sum((m.flagged or m.size < 2000) and m.internal_date >= y2020 for m in msgs),
        ),
    ]


class _Session:
    """Per-server state carried from phase to phase."""

    def __init__(self, server: Server, timeout: float) -> None:
        self.server = server
        self.timeout = timeout
        self.main: ImapClient | None = None
        self.uids: list[int] = []
        self.failed: str = ""

    async def client(self) -> ImapClient:
        # Several instances (scripts/benchlib/pgservers.py): connections spread round robin.
        next_port = getattr(self.server, "next_port", None)
        port = next_port() if next_port is not None else self.server.port
        c = ImapClient(self.server.host, port, timeout=self.timeout)
        await c.connect()
        await c.login(self.server.user, self.server.password)
        return c


async def _measure(server: Server, work: Callable[[], Awaitable[int]]) -> Measure:
    await asyncio.sleep(SETTLE)
    cpu0 = server.cpu_seconds()
    c0 = time.process_time()
    t0 = time.perf_counter()
    count = await work()
    t1 = time.perf_counter()
    c1 = time.process_time()
    cpu1 = server.cpu_seconds()
    return Measure(count=count, wall=t1 - t0, server_cpu=cpu1 - cpu0, client_cpu=c1 - c0)


async def run(args: argparse.Namespace, servers: list[Server]) -> list[Figure]:
    n = args.messages
    m_conc = args.concurrent_messages if args.concurrent_messages is not None else max(1, n // 2)
    corpus = Corpus(args.seed)
    t = time.perf_counter()
    msgs = corpus.generate(n)
    conc_msgs = msgs[:m_conc] if m_conc <= n else msgs + corpus.generate(m_conc - n, first=n)
    size_mb = sum(m.size for m in msgs) / 1e6
    _log(
        f"corpus: {n} messages, {size_mb:.1f} MB, avg {size_mb * 1e6 / max(n, 1):.0f} B "
        f"(seed {args.seed}, {time.perf_counter() - t:.1f} s to generate)"
    )

    sessions = {s.name: _Session(s, args.timeout) for s in servers}
    searches = _searches(msgs)
    figures = [
        Figure("append-1", "APPEND, 1 client", "rate", "msgs"),
        Figure("append-10", f"APPEND, {args.clients} clients", "rate", "msgs"),
        Figure("fetch-body", f"UID FETCH BODY.PEEK[] x{args.fetch_chunk}", "rate", "msgs"),
        Figure("fetch-flags", "FETCH 1:* (FLAGS)", "rate", "msgs"),
        *(Figure(key, label, "latency", "searches") for key, label, _, _ in searches),
    ]

    # -- phase bodies (each returns the number of work units done) ---------------------------

    async def setup(s: _Session) -> None:
        s.main = await s.client()
        for box in (SINGLE, MULTI):
            await s.main.command(f'CREATE "{box}"')
        lit = (
            "LITERAL+"
            if s.main.literal_plus
            else "LITERAL-"
            if s.main.literal_minus
            else "synchronizing literals"
        )
        _log(f"[{s.server.name}] logged in; APPEND uses {lit}")

    async def append_1(s: _Session, fig: Figure) -> None:
        c = s.main
        assert c is not None

        async def work() -> int:
            for m in msgs:
                await c.append(SINGLE, m.data, m.flags, m.imap_date)
            return len(msgs)

        fig.results[s.server.name] = await _measure(s.server, work)

    async def append_10(s: _Session, fig: Figure) -> None:
        clients = await asyncio.gather(*(s.client() for _ in range(args.clients)))
        try:

            async def one(c: ImapClient, part: list[Message]) -> int:
                for m in part:
                    await c.append(MULTI, m.data, m.flags, m.imap_date)
                return len(part)

            async def work() -> int:
                done = await asyncio.gather(
                    *(one(c, conc_msgs[i :: args.clients]) for i, c in enumerate(clients))
                )
                return sum(done)

            meas = await _measure(s.server, work)
        finally:
            await asyncio.gather(*(c.logout() for c in clients))
        assert s.main is not None
        st = await s.main.command(f'STATUS "{MULTI}" (MESSAGES)', allow_no=True)
        got = _status_messages(st.untagged)
        if st.status != b"OK":
            meas.check = f"could not verify: STATUS answered {st.status.decode()} {st.text!r}"
        elif got != len(conc_msgs):
            meas.check = f"STATUS says {got} messages, expected {len(conc_msgs)}"
        fig.results[s.server.name] = meas

    async def select_single(s: _Session) -> None:
        c = s.main
        assert c is not None
        if s.uids:
            return
        await c.command(f'SELECT "{SINGLE}"')
        s.uids = sorted((await c.command("UID SEARCH ALL")).search_numbers())
        if len(s.uids) != len(msgs):
            raise ImapError(f"{SINGLE} holds {len(s.uids)} messages, expected {len(msgs)}")

    async def fetch_body(s: _Session, fig: Figure) -> None:
        await select_single(s)
        c = s.main
        assert c is not None
        chunks = [s.uids[i : i + args.fetch_chunk] for i in range(0, len(s.uids), args.fetch_chunk)]
        bad: list[str] = []
        nbytes = 0

        passes = 0

        async def work() -> int:
            nonlocal nbytes, passes
            got = 0
            t0 = time.perf_counter()
            while passes == 0 or time.perf_counter() - t0 < args.min_seconds:
                passes += 1
                for ch in chunks:
                    r = await c.command(f"UID FETCH {ch[0]}:{ch[-1]} BODY.PEEK[]")
                    for u in r.untagged:
                        if u.literals and b" FETCH " in u.line[:30]:
                            got += 1
                            seq = int(u.line.split(b" ", 2)[1])
                            nbytes += len(u.literals[0])
                            if u.literals[0] != msgs[seq - 1].data and len(bad) < 5:
                                bad.append(str(seq))
            return got

        meas = await _measure(s.server, work)
        meas.extra = {
            "passes": passes,
            "commands": len(chunks) * passes,
            "bytes": nbytes,
            "commands_per_s": len(chunks) * passes / meas.wall if meas.wall else None,
            "MB_per_s": nbytes / 1e6 / meas.wall if meas.wall else None,
        }
        if meas.count != len(msgs) * passes:
            meas.check = f"got {meas.count} messages in {passes} passes, expected {len(msgs)} each"
        elif bad:
            meas.check = f"message bytes differ from what was appended (seq {', '.join(bad)})"
        fig.results[s.server.name] = meas

    async def fetch_flags(s: _Session, fig: Figure) -> None:
        await select_single(s)
        c = s.main
        assert c is not None
        counts: list[int] = []

        async def work() -> int:
            t0 = time.perf_counter()
            while len(counts) < args.flags_reps or time.perf_counter() - t0 < args.min_seconds:
                r = await c.command("FETCH 1:* (FLAGS)")
                counts.append(sum(1 for u in r.untagged if b" FETCH " in u.line[:30]))
            return sum(counts)

        meas = await _measure(s.server, work)
        if any(k != len(msgs) for k in counts):
            meas.check = f"FETCH responses per command {counts}, expected {len(msgs)}"
        fig.results[s.server.name] = meas

    def search_phase(command: str, expected: int) -> Callable[[_Session, Figure], Awaitable[None]]:
        async def phase(s: _Session, fig: Figure) -> None:
            await select_single(s)
            c = s.main
            assert c is not None
            t0 = time.perf_counter()
            warm = await c.command(command)
            first_ms = (time.perf_counter() - t0) * 1000
            lat: list[float] = []
            hits: set[int] = set()

            async def work() -> int:
                t0 = time.perf_counter()
                while len(lat) < args.search_reps or (
                    time.perf_counter() - t0 < args.min_seconds and len(lat) < 10_000
                ):
                    t = time.perf_counter()
                    r = await c.command(command)
                    lat.append((time.perf_counter() - t) * 1000)
                    hits.add(len(r.search_numbers()))
                return len(lat)

            meas = await _measure(s.server, work)
            meas.latencies_ms = lat
            meas.extra = {
                "first_ms": first_ms,
                "hits": len(warm.search_numbers()),
                "expected_hits": expected,
            }
            if hits | {len(warm.search_numbers())} != {expected}:
                meas.check = (
                    f"{command} found {sorted(hits | {len(warm.search_numbers())})} "
                    f"messages, expected {expected}"
                )
            fig.results[s.server.name] = meas

        return phase

    phases: list[tuple[Figure, Callable[[_Session, Figure], Awaitable[None]]]] = [
        (figures[0], append_1),
        (figures[1], append_10),
        (figures[2], fetch_body),
        (figures[3], fetch_flags),
        *(
            (fig, search_phase(cmd, exp))
            for fig, (_, _, cmd, exp) in zip(figures[4:], searches, strict=True)
        ),
    ]

    for s in sessions.values():
        try:
            await setup(s)
        except (ImapError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            s.failed = f"setup: {_why(exc)}"
            _log(f"[{s.server.name}] FAILED during setup: {_why(exc)}\n{s.server.log_tail(20)}")

    order = list(sessions.values())
    for i, (fig, phase) in enumerate(phases):
        for s in order if i % 2 == 0 else reversed(order):
            name = s.server.name
            if s.failed:
                fig.errors[name] = "skipped after earlier failure"
                continue
            try:
                await phase(s, fig)
            except (ImapError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                s.failed = f"{fig.key}: {_why(exc)}"
                fig.errors[name] = _why(exc)
                alive = "running" if s.server.alive() else "NOT running"
                _log(
                    f"[{name}] FAILED in {fig.key} ({alive}): {_why(exc)}\n{s.server.log_tail(20)}"
                )
                continue
            _log(f"[{name}] {fig.key}: {_summary(fig.results[name], fig)}")

    for s in sessions.values():
        if s.main is not None:
            await s.main.logout()
    return figures


def _status_messages(untagged: list[Any]) -> int:
    for u in untagged:
        parts = u.line.upper().replace(b"(", b" ").replace(b")", b" ").split()
        if b"MESSAGES" in parts:
            return int(parts[parts.index(b"MESSAGES") + 1])
    return -1


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out (see --timeout)"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed by the server"
    return f"{type(exc).__name__}: {exc}"


def _summary(m: Measure, fig: Figure) -> str:
    s = (
        f"{m.count} {fig.unit} in {m.wall:.2f} s = {m.rate:,.0f}/s; server CPU "
        f"{m.server_cpu:.2f} s ({m.per_cpu:,.0f}/CPU-s); client CPU {m.client_cpu:.2f} s"
    )
    if m.latencies_ms:
        s += (
            f"; p50 {m.pct(50):.1f} ms, p95 {m.pct(95):.1f} ms, "
            f"first {m.extra.get('first_ms', 0):.1f} ms, hits {m.extra.get('hits')}"
        )
    if m.check:
        s += f"  (!) {m.check}"
    return s


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
