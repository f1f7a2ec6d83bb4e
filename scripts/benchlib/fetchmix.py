"""The ``fetchmix`` section: imaptest's FETCH mix, per server (issue 17).

imaptest's FETCH benchmark: C clients, each on its own mailbox of M messages (here one per
client, all of the bench user: imaptest gives each client a user with its own INBOX). Each
client loops, one command at a time:

  FETCH   a random set of up to 100 messages (a random run ``a:b``, as imaptest picks ranges)
          with a random 1-4 of UID, FLAGS, ENVELOPE, INTERNALDATE, BODY, BODYSTRUCTURE,
          RFC822.SIZE, BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)]
  FETCH2  one random message's BODY.PEEK[]  (one in every three commands)

for ``--mix-seconds``. The figure is commands per wall-second and per server CPU-second;
every FETCH answer is checked (one ``* n FETCH`` per message asked, a body's octets equal to
what was appended). Mailboxes are filled (APPEND) outside the timed window. When the server
holds the clients in several processes (``--workers N``, Dovecot's one per client), how many
each holds and the CPU each used are logged per round (an uneven spread bounds the wall rate).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time

from .client import ImapClient, ImapError
from .messages import Corpus
from .report import Figure, Measure
from .servers import Server
from .spread import cpu_seconds, spread

ATTS = (
    "UID",
    "FLAGS",
    "ENVELOPE",
    "INTERNALDATE",
    "BODY",
    "BODYSTRUCTURE",
    "RFC822.SIZE",
    "BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)]",
)
SETTLE = 0.3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("fetchmix section")
    g.add_argument("--mix-clients", type=int, default=10, help="clients (default 10)")
    g.add_argument(
        "--mix-messages", type=int, default=200, help="messages per client's mailbox (default 200)"
    )
    g.add_argument(
        "--mix-seconds", type=float, default=10.0, help="timed seconds per server (default 10)"
    )
    g.add_argument("--mix-rounds", type=int, default=2, help="rounds, alternating (default 2)")


async def _client(server: Server, limit: float) -> ImapClient:
    c = ImapClient(server.host, server.port, timeout=limit)
    await c.connect()
    await c.login(server.user, server.password)
    return c


def _fetch_count(untagged: list[object]) -> int:
    return sum(1 for u in untagged if b" FETCH " in u.line[:30])  # type: ignore[attr-defined]


async def _setup(server: Server, args: argparse.Namespace, bodies: list[bytes]) -> list[str]:
    c = await _client(server, args.timeout)
    boxes = [f"mix{i}" for i in range(args.mix_clients)]
    corpus_msgs = Corpus(args.seed).generate(args.mix_messages)
    try:
        for box in boxes:
            await c.command(f'CREATE "{box}"')
            for m in corpus_msgs:
                await c.append(box, m.data, m.flags, m.imap_date)
    finally:
        await c.logout()
    bodies[:] = [m.data for m in corpus_msgs]
    return boxes


async def _round(
    server: Server, args: argparse.Namespace, boxes: list[str], bodies: list[bytes], seed: int
) -> Measure:
    clients = [await _client(server, args.timeout) for _ in boxes]
    n = len(bodies)
    problems: list[str] = []
    try:
        for c, box in zip(clients, boxes, strict=True):
            await c.command(f'SELECT "{box}"')
        stop = 0.0

        async def loop(c: ImapClient, rng: random.Random) -> int:
            done = 0
            while time.perf_counter() < stop:
                if rng.random() < 1 / 3:
                    seq = rng.randint(1, n)
                    r = await c.command(f"FETCH {seq} BODY.PEEK[]")
                    got = [u.literals[0] for u in r.untagged if u.literals]
                    if got != [bodies[seq - 1]] and len(problems) < 5:
                        problems.append(f"FETCH {seq} BODY.PEEK[]: body differs")
                else:
                    count = rng.randint(1, min(100, n))
                    first = rng.randint(1, n - count + 1)
                    atts = rng.sample(ATTS, rng.randint(1, 4))
                    r = await c.command(f"FETCH {first}:{first + count - 1} ({' '.join(atts)})")
                    if _fetch_count(r.untagged) != count and len(problems) < 5:
                        problems.append(
                            f"FETCH {first}:+{count} ({' '.join(atts)}): "
                            f"{_fetch_count(r.untagged)} responses"
                        )
                done += 1
            return done

        await asyncio.sleep(SETTLE)
        # Under --workers N: the clients each worker holds (SO_REUSEPORT spreads them by
        # address hash: 10 clients often land 7/3 or 8/2) and each worker's CPU time.
        assert server.proc is not None
        everyone = spread(server.proc.pid, server.port).ports
        held = {pid: ports for pid, ports in everyone.items() if ports}
        procs = {pid: cpu_seconds(pid) for pid in held}
        cpu0 = server.cpu_seconds()
        c0 = time.process_time()
        t0 = time.perf_counter()
        stop = t0 + args.mix_seconds
        rngs = [random.Random(seed * 1000 + i) for i in range(len(clients))]  # noqa: S311
        counts = await asyncio.gather(*(loop(c, r) for c, r in zip(clients, rngs, strict=True)))
        t1 = time.perf_counter()
        c1 = time.process_time()
        cpu1 = server.cpu_seconds()
        if len(held) > 1:
            _log(
                f"[{server.name}] clients per process "
                + "/".join(f"{len(held[pid])}" for pid in held)
                + ", their CPU seconds "
                + "/".join(f"{cpu_seconds(pid) - procs[pid]:.2f}" for pid in held)
            )
    finally:
        await asyncio.gather(*(c.logout() for c in clients))
    meas = Measure(count=sum(counts), wall=t1 - t0, server_cpu=cpu1 - cpu0, client_cpu=c1 - c0)
    meas.check = "; ".join(problems)
    return meas


async def run(args: argparse.Namespace, servers: list[Server]) -> list[Figure]:
    fig = Figure(
        "fetchmix",
        f"imaptest FETCH mix, {args.mix_clients} clients x {args.mix_messages} msgs",
        "rate",
        "cmds",
    )
    boxes: dict[str, list[str]] = {}
    bodies: dict[str, list[bytes]] = {s.name: [] for s in servers}
    for s in servers:
        try:
            boxes[s.name] = await _setup(s, args, bodies[s.name])
            _log(f"[{s.name}] {len(boxes[s.name])} mailboxes of {args.mix_messages} filled")
        except (ImapError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            fig.errors[s.name] = f"setup: {exc!r}"
    totals: dict[str, list[Measure]] = {s.name: [] for s in servers}
    for rnd in range(args.mix_rounds):
        for s in servers if rnd % 2 == 0 else list(reversed(servers)):
            if s.name in fig.errors:
                continue
            try:
                m = await _round(s, args, boxes[s.name], bodies[s.name], rnd + 1)
            except (ImapError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                fig.errors[s.name] = f"round {rnd + 1}: {exc!r}"
                continue
            totals[s.name].append(m)
            _log(
                f"[{s.name}] round {rnd + 1}: {m.count} cmds in {m.wall:.2f} s = "
                f"{m.rate:,.0f}/s; server CPU {m.server_cpu:.2f} s ({m.per_cpu:,.0f}/CPU-s)"
                + (f"  (!) {m.check}" if m.check else "")
            )
    for name, ms in totals.items():
        if ms and name not in fig.errors:
            fig.results[name] = Measure(
                count=sum(m.count for m in ms),
                wall=sum(m.wall for m in ms),
                server_cpu=sum(m.server_cpu for m in ms),
                client_cpu=sum(m.client_cpu for m in ms),
                check="; ".join(m.check for m in ms if m.check),
            )
    return [fig]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
