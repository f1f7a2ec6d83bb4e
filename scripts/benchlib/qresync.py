"""The ``qresync`` section: resynchronising a large mailbox after a few flag changes.

Setup (untimed, per server): a mailbox of N messages (MULTIAPPEND with LITERAL+, 100 a
command), then a client's full sync: ENABLE QRESYNC, SELECT, UID FETCH 1:* (FLAGS).

Each round (R rounds, the server order flipping from round to round):

  changes     another connection sets or clears a flag on K random messages (untimed)
  qresync     a fresh connection (logged in, QRESYNC enabled, untimed) sends
              SELECT mailbox (QRESYNC (uidvalidity modseq 1:<maxuid>)) with the modseq of
              the previous round: timed, with the bytes the server sent for it; the FETCH
              responses must name exactly the K changed UIDs (and no VANISHED)
  full        for comparison, what a client without QRESYNC does: SELECT then
              UID FETCH 1:* (FLAGS) (timed, bytes counted)

Figures: latency per resync (ms) and bytes sent by the server per resync, both ways.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import time

from .client import ImapClient, ImapError, Reply
from .messages import Corpus
from .report import Figure, Measure
from .servers import Server

MAILBOX = "bench-qresync"
BATCH = 100  # messages per MULTIAPPEND command
SETTLE = 0.3
_CODE = re.compile(rb"\[(UIDVALIDITY|HIGHESTMODSEQ) (\d+)\]")
_FETCH_UID = re.compile(rb"^\* \d+ FETCH \(.*?UID (\d+)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("qresync section")
    g.add_argument(
        "--qresync-messages",
        type=int,
        default=10_000,
        metavar="N",
        help="messages in the resynchronised mailbox (default 10000)",
    )
    g.add_argument(
        "--qresync-changes",
        type=int,
        default=100,
        metavar="K",
        help="flag changes between two resyncs (default 100)",
    )
    g.add_argument(
        "--qresync-rounds",
        type=int,
        default=10,
        metavar="R",
        help="timed resyncs per server (default 10)",
    )


class _State:
    def __init__(self, server: Server, timeout: float) -> None:
        self.server = server
        self.timeout = timeout
        self.uidvalidity = 0
        self.modseq = 0
        self.uids: list[int] = []
        self.flagged: set[int] = set()
        self.changer: ImapClient | None = None
        self.failed = ""
        self.qresync = Measure(0, 0.0, 0.0, 0.0)
        self.full = Measure(0, 0.0, 0.0, 0.0)
        self.qresync_bytes: list[int] = []
        self.full_bytes: list[int] = []

    async def client(self) -> ImapClient:
        c = ImapClient(self.server.host, self.server.port, timeout=self.timeout)
        await c.connect()
        await c.login(self.server.user, self.server.password)
        return c


def _codes(reply: Reply) -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    for u in reply.untagged:
        for m in _CODE.finditer(u.line):
            out[m.group(1)] = int(m.group(2))
    return out


async def run(args: argparse.Namespace, servers: list[Server]) -> list[Figure]:
    n, k, rounds = args.qresync_messages, args.qresync_changes, args.qresync_rounds
    corpus = Corpus(getattr(args, "seed", 1))
    t = time.perf_counter()
    msgs = corpus.generate(n)
    _log(f"corpus: {n} messages ({time.perf_counter() - t:.1f} s to generate)")
    states = [_State(s, args.timeout) for s in servers]
    fig_q = Figure(
        "qresync", f"SELECT (QRESYNC) of {n} msgs after {k} changes", "latency", "resyncs"
    )
    fig_f = Figure(
        "full-resync", f"SELECT + UID FETCH 1:* (FLAGS) of {n} msgs", "latency", "resyncs"
    )

    async def setup(st: _State) -> None:
        c = await st.client()
        if not c.literal_plus:
            raise ImapError("the server does not offer LITERAL+")
        await c.command(f'CREATE "{MAILBOX}"')
        t0 = time.perf_counter()
        for i in range(0, n, BATCH):
            part = msgs[i : i + BATCH]
            suffix = b"".join(b" {%d+}\r\n" % len(m.data) + m.data for m in part[1:])
            await c.command(f'APPEND "{MAILBOX}"', literal=part[0].data, suffix=suffix)
        _log(f"[{st.server.name}] {n} messages appended in {time.perf_counter() - t0:.1f} s")
        await c.command("ENABLE QRESYNC")
        codes = _codes(await c.command(f'SELECT "{MAILBOX}"'))
        st.uidvalidity, st.modseq = codes[b"UIDVALIDITY"], codes[b"HIGHESTMODSEQ"]
        flags = await c.command("UID FETCH 1:* (FLAGS)")
        for u in flags.untagged:
            if m := _FETCH_UID.match(u.line):
                st.uids.append(int(m.group(1)))
                if b"\\Flagged" in u.line:
                    st.flagged.add(int(m.group(1)))
        st.uids.sort()
        if len(st.uids) != n:
            raise ImapError(f"{MAILBOX} holds {len(st.uids)} messages, expected {n}")
        await c.logout()
        st.changer = await st.client()
        await st.changer.command(f'SELECT "{MAILBOX}"')

    async def one_round(st: _State, rnd: int) -> None:
        assert st.changer is not None
        rng = random.Random(rnd)  # noqa: S311 - a reproducible choice of messages
        changed = sorted(rng.sample(st.uids, min(k, len(st.uids))))
        for uid in changed:
            # A real change each time (setting a flag already set would change no modseq).
            sign = "-" if uid in st.flagged else "+"
            st.flagged ^= {uid}
            await st.changer.command(f"UID STORE {uid} {sign}FLAGS.SILENT (\\Flagged)")
        c = await st.client()
        await c.command("ENABLE QRESYNC")
        await asyncio.sleep(SETTLE)
        known = f"1:{st.uids[-1]}"
        cmd = f'EXAMINE "{MAILBOX}" (QRESYNC ({st.uidvalidity} {st.modseq} {known}))'
        cpu0, c0, b0 = st.server.cpu_seconds(), time.process_time(), c.bytes_in
        t0 = time.perf_counter()
        reply = await c.command(cmd)
        t1 = time.perf_counter()
        _add(st.qresync, t1 - t0, st.server.cpu_seconds() - cpu0, time.process_time() - c0)
        st.qresync_bytes.append(c.bytes_in - b0)
        got = sorted(int(m.group(1)) for u in reply.untagged if (m := _FETCH_UID.match(u.line)))
        vanished = [u.line for u in reply.untagged if b"VANISHED" in u.line]
        if got != changed or vanished:
            st.qresync.check = (
                f"round {rnd}: FETCH for {len(got)} UIDs (expected the {len(changed)} changed)"
                + (f", {vanished[0][:60]!r}" if vanished else "")
            )
        st.modseq = _codes(reply)[b"HIGHESTMODSEQ"]
        await c.command("UNSELECT")
        await asyncio.sleep(SETTLE)
        cpu0, c0, b0 = st.server.cpu_seconds(), time.process_time(), c.bytes_in
        t0 = time.perf_counter()
        await c.command(f'EXAMINE "{MAILBOX}"')
        full = await c.command("UID FETCH 1:* (FLAGS)")
        t1 = time.perf_counter()
        _add(st.full, t1 - t0, st.server.cpu_seconds() - cpu0, time.process_time() - c0)
        st.full_bytes.append(c.bytes_in - b0)
        if sum(1 for u in full.untagged if b" FETCH " in u.line[:30]) != len(st.uids):
            st.full.check = f"round {rnd}: UID FETCH 1:* did not return {len(st.uids)} messages"
        await c.logout()

    for st in states:
        try:
            await setup(st)
        except (ImapError, OSError, TimeoutError, asyncio.IncompleteReadError, KeyError) as exc:
            st.failed = f"setup: {type(exc).__name__}: {exc}"
            _log(f"[{st.server.name}] FAILED during setup: {exc}\n{st.server.log_tail(20)}")
    for rnd in range(rounds):
        for st in states if rnd % 2 == 0 else list(reversed(states)):
            if st.failed:
                continue
            try:
                await one_round(st, rnd)
            except (ImapError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                st.failed = f"round {rnd}: {type(exc).__name__}: {exc}"
                _log(f"[{st.server.name}] FAILED: {st.failed}\n{st.server.log_tail(20)}")
    for st in states:
        name = st.server.name
        if st.changer is not None:
            await st.changer.logout()
        if st.failed:
            fig_q.errors[name] = fig_f.errors[name] = st.failed
            continue
        st.qresync.extra = {"bytes": st.qresync_bytes}
        st.full.extra = {"bytes": st.full_bytes}
        fig_q.results[name] = st.qresync
        fig_f.results[name] = st.full
        _log(
            f"[{name}] qresync: p50 {st.qresync.pct(50):.1f} ms, "
            f"{_median(st.qresync_bytes):,} bytes; full: p50 {st.full.pct(50):.1f} ms, "
            f"{_median(st.full_bytes):,} bytes"
            + (f"  (!) {st.qresync.check}" if st.qresync.check else "")
        )
    print(_bytes_table(states, fig_q, fig_f))
    return [fig_q, fig_f]


def _add(m: Measure, wall: float, server_cpu: float, client_cpu: float) -> None:
    m.count += 1
    m.wall += wall
    m.server_cpu += server_cpu
    m.client_cpu += client_cpu
    m.latencies_ms.append(wall * 1000)


def _median(values: list[int]) -> int:
    xs = sorted(values)
    return xs[len(xs) // 2] if xs else 0


def _bytes_table(states: list[_State], fig_q: Figure, fig_f: Figure) -> str:
    names = {st.server.name: st for st in states}
    rows = []
    for label, attr in ((fig_q.label, "qresync_bytes"), (fig_f.label, "full_bytes")):
        cells = [f"{label} (bytes sent by the server, median)"]
        vals = []
        for name in ("ours", "dovecot"):
            st = names.get(name)
            v = _median(getattr(st, attr)) if st is not None and not st.failed else 0
            vals.append(v)
            cells.append(f"{v:,}" if v else "-")
        cells.append(f"{vals[0] / vals[1]:.2f}" if all(vals) else "-")
        rows.append(cells)
    header = ["figure", "ours", "dovecot", "ratio ours/dovecot"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = [
        "Bytes per resync",
        " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
    ]
    lines.append("-+-".join("-" * w for w in widths))
    for r in rows:
        lines.append(
            " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines) + "\n"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
