"""The ``sort`` section: SORT and THREAD latency on one N-message mailbox, per server.

The corpus is the store section's (scripts/benchlib/messages.py) with conversations woven
in: about 60 % of the messages reply to one of the 50 before them ("Re: " + its subject,
References = its References + its Message-ID, In-Reply-To), so THREAD=REFERENCES builds
real trees. Phases, each on every server before the next (the order flips per phase):

  sort-arrival   SORT (ARRIVAL) UTF-8 ALL
  sort-date      SORT (DATE) UTF-8 ALL
  sort-subject   SORT (SUBJECT) UTF-8 ALL
  sort-from      SORT (FROM) UTF-8 ALL
  thread-refs    THREAD REFERENCES UTF-8 ALL
  sort-date-new  SORT (DATE) UTF-8 ALL with one message APPENDed (untimed) before each: the
                 cost when the folder changed (ours then sorts again: its result cache holds
                 only while the folder's messages stay the same)
  thread-new     THREAD REFERENCES UTF-8 ALL, likewise

Each phase: one untimed first command (its time printed as ``first``: a server builds its
sort data then; ours reads the stored envelopes, Dovecot fills its cache), then timed
repetitions, p50/p99 reported. The answers are checked: every message exactly once, and the
two servers' answers compared (a difference is printed, not fatal).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import time

from .client import ImapClient, ImapError, Reply
from .messages import Corpus, Message
from .report import Figure, Measure
from .servers import Server

BOX = "bench-sort"
SETTLE = 0.3
COMMANDS = [
    ("sort-arrival", "SORT (ARRIVAL) UTF-8 ALL"),
    ("sort-date", "SORT (DATE) UTF-8 ALL"),
    ("sort-subject", "SORT (SUBJECT) UTF-8 ALL"),
    ("sort-from", "SORT (FROM) UTF-8 ALL"),
    ("thread-refs", "THREAD REFERENCES UTF-8 ALL"),
    ("sort-date-new", "SORT (DATE) UTF-8 ALL"),
    ("thread-new", "THREAD REFERENCES UTF-8 ALL"),
]
#: Phases that APPEND a message before each command (see the module docstring).
FRESH = frozenset({"sort-date-new", "thread-new"})
_MID = re.compile(rb"^Message-ID: (<[^>]+>)\r$", re.MULTILINE)
_SUBJECT = re.compile(rb"^Subject: ([^\r]*)\r$", re.MULTILINE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("sort section")
    g.add_argument(
        "--sort-messages",
        type=int,
        default=10_000,
        metavar="N",
        help="messages in the sorted mailbox (default 10000)",
    )
    g.add_argument(
        "--sort-reps",
        type=int,
        default=20,
        help="least timed repetitions of each SORT/THREAD (default 20)",
    )


def threaded_corpus(n: int, seed: int) -> list[Message]:
    """The store corpus with replies woven in (see the module docstring)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    out: list[Message] = []
    refs: list[bytes] = []  # each message's References value (its ancestry)
    ids: list[bytes] = []
    subjects: list[bytes] = []
    for m in Corpus(seed).generate(n):
        data = m.data
        mid_m = _MID.search(data)
        subj_m = _SUBJECT.search(data)
        assert mid_m is not None and subj_m is not None
        mid, subject, ref = mid_m.group(1), subj_m.group(1), b""
        i = len(out)
        if i and rng.random() < 0.6:
            parent = rng.randrange(max(0, i - 50), i)
            ref = (refs[parent] + b" " + ids[parent]).strip()
            subject = b"Re: " + subjects[parent].removeprefix(b"Re: ")
            extra = b"References: " + ref + b"\r\nIn-Reply-To: " + ids[parent] + b"\r\n"
            data = data.replace(subj_m.group(0), b"Subject: " + subject + b"\r", 1)
            data = data.replace(b"MIME-Version: 1.0\r\n", extra + b"MIME-Version: 1.0\r\n", 1)
        refs.append(ref)
        ids.append(mid)
        subjects.append(subject)
        out.append(
            Message(data, m.flags, m.internal_date, m.from_carol, m.has_word, m.seen, m.flagged)
        )
    return out


def _numbers(reply: Reply, kind: bytes) -> list[int]:
    for u in reply.untagged:
        if u.line.startswith(b"* " + kind):
            return [int(x) for x in re.findall(rb"\d+", u.line[len(kind) + 2 :])]
    raise ImapError(f"no {kind.decode()} response")


def _answer(reply: Reply, kind: bytes) -> bytes:
    for u in reply.untagged:
        if u.line.startswith(b"* " + kind):
            return u.line
    return b""


async def _measure(
    server: Server,
    reps: int,
    min_seconds: float,
    c: ImapClient,
    command: str,
    lat: list[float],
    fresh: Message | None,
) -> Measure:
    """Time ``command`` repeatedly; with ``fresh``, APPEND it before each (untimed: the
    CPU window then includes the APPENDs, the latencies do not)."""
    await asyncio.sleep(SETTLE)
    cpu0, c0, t0 = server.cpu_seconds(), time.process_time(), time.perf_counter()
    while len(lat) < reps or (time.perf_counter() - t0 < min_seconds and len(lat) < 10_000):
        if fresh is not None:
            await c.append(BOX, fresh.data, fresh.flags, fresh.imap_date)
            await c.command("NOOP")
        t = time.perf_counter()
        await c.command(command)
        lat.append((time.perf_counter() - t) * 1000)
    t1, c1, cpu1 = time.perf_counter(), time.process_time(), server.cpu_seconds()
    return Measure(
        count=len(lat), wall=t1 - t0, server_cpu=cpu1 - cpu0, client_cpu=c1 - c0, latencies_ms=lat
    )


async def run(args: argparse.Namespace, servers: list[Server]) -> list[Figure]:
    n = args.sort_messages
    t = time.perf_counter()
    msgs = threaded_corpus(n, args.seed)
    _log(
        f"corpus: {n} messages, {sum(m.size for m in msgs) / 1e6:.1f} MB "
        f"({time.perf_counter() - t:.1f} s to generate)"
    )
    figures = [Figure(key, cmd, "latency", "commands") for key, cmd in COMMANDS]
    clients: dict[str, ImapClient] = {}
    for s in servers:
        c = ImapClient(s.host, s.port, timeout=args.timeout)
        await c.connect()
        await c.login(s.user, s.password)
        await c.command(f'CREATE "{BOX}"')
        t = time.perf_counter()
        for m in msgs:
            await c.append(BOX, m.data, m.flags, m.imap_date)
        await c.command(f'SELECT "{BOX}"')
        _log(f"[{s.name}] appended {n} messages in {time.perf_counter() - t:.1f} s")
        clients[s.name] = c
    answers: dict[tuple[str, str], bytes] = {}
    total = {s.name: n for s in servers}  # messages in the mailbox, per server
    for i, (fig, (key, command)) in enumerate(zip(figures, COMMANDS, strict=True)):
        kind = command.split()[0].encode()
        fresh = msgs[0] if key in FRESH else None
        for s in servers if i % 2 == 0 else list(reversed(servers)):
            c = clients[s.name]
            try:
                if fresh is not None:
                    await c.append(BOX, fresh.data, fresh.flags, fresh.imap_date)
                    total[s.name] += 1
                    await c.command("NOOP")
                t = time.perf_counter()
                first = await c.command(command)
                first_ms = (time.perf_counter() - t) * 1000
                lat: list[float] = []
                meas = await _measure(s, args.sort_reps, args.min_seconds, c, command, lat, fresh)
            except (ImapError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                fig.errors[s.name] = f"{type(exc).__name__}: {exc}"
                continue
            got = _numbers(first, kind)
            expected = total[s.name]
            if fresh is not None:
                total[s.name] += len(lat)
            meas.extra = {"first_ms": first_ms}
            if sorted(got) != list(range(1, expected + 1)):
                meas.check = f"{len(got)} numbers, {len(set(got))} distinct, expected 1..{expected}"
            answers[(key, s.name)] = _answer(first, kind)
            fig.results[s.name] = meas
            _log(
                f"[{s.name}] {key}: p50 {meas.pct(50):.1f} ms, p99 {meas.pct(99):.1f} ms, "
                f"first {first_ms:.1f} ms ({meas.count} runs)"
                + (f"  (!) {meas.check}" if meas.check else "")
            )
        if len(servers) == 2 and key not in FRESH:  # FRESH: the mailboxes differ by now
            a, b = (answers.get((key, s.name)) for s in servers)
            same = "the same" if a == b else "DIFFERENT"
            _log(f"{key}: answers of {servers[0].name} and {servers[1].name} are {same}")
            if a != b and a and b:
                where = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
                _log(
                    f"  first difference at octet {where}: {a[where - 40 : where + 40]!r}"
                    f" vs {b[where - 40 : where + 40]!r}"
                )
    for c in clients.values():
        await c.logout()
    return figures


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
