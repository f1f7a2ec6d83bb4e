"""The ``hostile`` section: does any client input stall the others? (issue 14)

A canary client, in its own thread with a blocking socket, sends NOOP every 0.2 s and
records how long each answer took. Each hostile input below then runs in turn against the
live server (its payload prepared before its window opens), and per input the canary's
worst and median delay inside the input's window are printed, with whether any answer
the attacker read carried [SERVERBUG] and how the server answered. Target: worst canary
delay under 100 ms for every input, and no SERVERBUG anywhere. Nothing is asserted.

Inputs:
  list-pattern     CREATE aaaaaaaaaaaaaaaaaaaa, LIST "" "*%*%*%*%*%*%*%*%*%*%*%*%*%*%*Z"
  huge-name        CREATE, SELECT and APPEND naming a 10 MB mailbox name (LITERAL+)
  many-keywords    STORE +FLAGS with 100 new keywords at a time, 1,000 times; then SELECT
  or-search        SEARCH with 31 nested OR SUBJECT, and with 1,500 keys, 20 times each
  pipelined-noops  200,000 NOOPs in one write (1.6 MB), answers read as they come
  deflate-bomb     COMPRESS DEFLATE, then 64 MB of NOOPs deflated to ~90 kB
  big-append       a 30 MB APPEND, then 200 kB messages with 20,000 addresses or 6,000
                   MIME parts, and FETCH ENVELOPE BODYSTRUCTURE of them
  wrong-logins     200 parallel connections, each LOGIN with a wrong password
  idle-conns       2,000 unauthenticated connections held open for 3 s
  stalled-fetch    FETCH BODY[] of a 10 MB message 5 times, the client not reading, 3 s

Run: ``scripts/bench hostile --only ours`` (Dovecot, if started, gets the same inputs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from .report import Figure, Measure
from .servers import Server

CANARY_PERIOD = 0.2
TARGET_MS = 100.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("hostile section")
    g.add_argument(
        "--hostile-only", metavar="NAMES", help="comma-separated inputs to run (default: all)"
    )
    g.add_argument(
        "--hostile-logins", type=int, default=200, help="parallel wrong LOGINs (default 200)"
    )
    g.add_argument(
        "--hostile-conns",
        type=int,
        default=2000,
        help="idle unauthenticated connections (default 2000)",
    )


# -- a blocking raw client -----------------------------------------------------------------


class Raw:
    """A blocking IMAP client speaking exact bytes; records every line it reads."""

    def __init__(self, server: Server, timeout: float = 120.0, source: str | None = None) -> None:
        self.sock = socket.create_connection(
            (server.host, server.port),
            timeout=timeout,
            source_address=(source, 0) if source else None,
        )
        self.buf = b""
        self.lines: list[bytes] = []
        self.tag = 0
        self.inflate: zlib._Decompress | None = None
        self.deflate: zlib._Compress | None = None
        self.line()  # greeting

    def login(self, server: Server) -> None:
        self.ok(f"LOGIN {server.user} {server.password}")

    def send(self, data: bytes) -> None:
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        if self.inflate is not None:
            chunk = self.inflate.decompress(chunk)
        self.buf += chunk

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\r\n")
        out, self.buf = self.buf[:i], self.buf[i + 2 :]
        if out.endswith(b"}"):  # a literal: skip its octets, keep reading the line
            size = int(out[out.rindex(b"{") + 1 : -1].rstrip(b"+"))
            while len(self.buf) < size:
                self._fill()
            self.buf = self.buf[size:]
            out += b"..." + self.line()
        self.lines.append(out[:300])
        return out

    def next_tag(self) -> bytes:
        self.tag += 1
        return b"h%d" % self.tag

    def command(self, text: str | bytes, literal: bytes | None = None) -> bytes:
        """Send a command (a literal as LITERAL+), return its tagged reply line."""
        tag = self.next_tag()
        raw = text.encode() if isinstance(text, str) else text
        if literal is not None:
            raw += b" {%d+}\r\n" % len(literal) + literal
        self.send(tag + b" " + raw + b"\r\n")
        return self.until(tag)

    def until(self, tag: bytes) -> bytes:
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                return line

    def ok(self, text: str | bytes, literal: bytes | None = None) -> bytes:
        reply = self.command(text, literal)
        if b" OK" not in reply[:12]:
            raise RuntimeError(f"{text!r}: {reply[:200]!r}")
        return reply

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# -- the canary ----------------------------------------------------------------------------


class Canary(threading.Thread):
    """NOOP every CANARY_PERIOD; (sent at, delay in s) per answer."""

    def __init__(self, server: Server) -> None:
        super().__init__(name="canary", daemon=True)
        self.client = Raw(server, timeout=600)
        self.client.login(server)
        self.samples: list[tuple[float, float]] = []
        self.pending: float | None = None  # sent at, while waiting
        self.stopping = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                start = time.monotonic()
                self.pending = start
                self.client.ok("NOOP")
                end = time.monotonic()
                self.pending = None
                self.samples.append((start, end - start))
                self.stopping.wait(max(0.0, CANARY_PERIOD - (end - start)))
        except (OSError, RuntimeError) as exc:
            self.error = str(exc)

    def window(self, t0: float, t1: float) -> list[float]:
        """Delays (ms) of the NOOPs sent in [t0, t1], and of one still unanswered."""
        out = [d * 1000 for s, d in self.samples if t0 <= s <= t1]
        if self.pending is not None:
            out.append((time.monotonic() - self.pending) * 1000)
        return out

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        self.client.close()


# -- the inputs ----------------------------------------------------------------------------


@dataclass
class Outcome:
    answers: list[bytes] = field(default_factory=list)
    note: str = ""


def _login(server: Server) -> Raw:
    c = Raw(server)
    c.login(server)
    return c


def _message(size: int, subject: str = "hostile") -> bytes:
    head = f"From: a@example.org\r\nTo: b@example.org\r\nSubject: {subject}\r\n\r\n".encode()
    line = b"x" * 76 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def list_pattern(server: Server, args: argparse.Namespace) -> Callable[[], Outcome]:
    c = _login(server)
    c.command("CREATE aaaaaaaaaaaaaaaaaaaa")

    def attack() -> Outcome:
        reply = c.command('LIST "" "*%*%*%*%*%*%*%*%*%*%*%*%*%*%*Z"')
        c.close()
        return Outcome([reply])

    return attack


def huge_name(server: Server, args: argparse.Namespace) -> Callable[[], Outcome]:
    c = _login(server)
    name = b"a" * 10_000_000

    def attack() -> Outcome:
        out = [
            c.command(b"CREATE", name),
            c.command(b"SELECT", name),
            c.command(b"APPEND " + b"{%d+}\r\n" % len(name) + name, b"x"),
        ]
        c.close()
        return Outcome(out)

    return attack


#: Seconds the keyword flood may run against one server.
KEYWORD_SECONDS = 30.0


def many_keywords(server: Server, args: argparse.Namespace) -> Callable[[], Outcome]:
    c = _login(server)
    c.ok("CREATE kw")
    c.ok("APPEND kw", _message(500))
    c.ok("SELECT kw")
    stores = [
        "STORE 1 +FLAGS.SILENT (" + " ".join(f"k{i}x{j}" for j in range(100)) + ")"
        for i in range(1000)
    ]

    def attack() -> Outcome:
        # Bounded in time: a server that accepts every keyword gets slower with each STORE
        # (Dovecot 2.3 took minutes); what it reached by then is the figure.
        deadline = time.monotonic() + KEYWORD_SECONDS
        out: list[bytes] = []
        for store in stores:
            out.append(c.command(store))
            if time.monotonic() > deadline:
                break
        sent = len(out)
        out.append(c.command("SELECT kw"))
        selected = sum(len(line) for line in c.lines[-12:])
        c.close()
        refused = sum(b"[LIMIT]" in r for r in out)
        return Outcome(
            out,
            f"{refused}/{sent} STOREs NO [LIMIT] ({sent} sent in at most"
            f" {KEYWORD_SECONDS:.0f} s); SELECT ~{selected} B",
        )

    return attack


def or_search(server: Server, args: argparse.Namespace) -> Callable[[], Outcome]:
    c = _login(server)
    c.ok("CREATE srch")
    for i in range(300):
        c.ok("APPEND srch", _message(2000, f"s{i}"))
    c.ok("SELECT srch")
    deep = "SEARCH " + " ".join(f"OR SUBJECT s{i}" for i in range(31)) + " SUBJECT s31"
    wide = "SEARCH " + " ".join(f"SUBJECT k{i}" for i in range(1500))

    def attack() -> Outcome:
        out = []
        for _ in range(20):
            out += [c.command(deep), c.command(wide)]
        c.close()
        return Outcome(out)

    return attack


def pipelined_noops(server: Server, args: argparse.Namespace) -> Callable[[], Outcome]:
    c = _login(server)
    flood = b"n NOOP\r\n" * 200_000

    def attack() -> Outcome:
        sender = threading.Thread(target=c.sock.sendall, args=(flood,), daemon=True)
        sender.start()
        count = 0
        while count < 200_000:
            line = c.line()
            count += line.startswith(b"n ")
            c.lines.clear()
        sender.join()
        c.close()
        return Outcome([line], f"{count} NOOPs answered")

    return attack


def deflate_bomb(server: Server, args: argparse.Namespace) -> Callable[[], Outcome]:
    c = _login(server)
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    wire = bomb.compress(b"a NOOP\r\n" * 8_000_000) + bomb.flush(zlib.Z_SYNC_FLUSH)

    def attack() -> Outcome:
        reply = c.command("COMPRESS DEFLATE")
        if b"OK" not in reply:
            c.close()
            return Outcome([reply], "COMPRESS refused")
        c.inflate = zlib.decompressobj(-15)
        sender = threading.Thread(target=_send_quietly, args=(c.sock, wire), daemon=True)
        sender.start()
        answered = 0
        last = b""
        try:
            while True:
                last = c.line()
                answered += last.startswith(b"a ")
                c.lines.clear()
                if last.startswith(b"* BYE"):
                    break
        except (OSError, zlib.error) as exc:
            last = str(exc).encode()
        c.close()
        sender.join(10)
        return Outcome(
            [last],
            f"{len(wire)} B deflated; {answered} NOOPs run; last: "
            f"{last[:60].decode(errors='replace')}",
        )

    return attack


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)


def big_append(server: Server, args: argparse.Namespace) -> Callable[[], Outcome]:
    c = _login(server)
    c.ok("CREATE big")
    big = _message(30_000_000)
    addrs = b"To: " + b",".join(b"a%d@b.c" % i for i in range(20000)) + b"\r\n\r\nbody\r\n"
    parts = (
        b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        + b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(6000))
        + b"--b--\r\n"
    )

    def attack() -> Outcome:
        out = [
            c.command("APPEND big", big),
            c.command("APPEND big", addrs),
            c.command("APPEND big", parts),
            c.command("SELECT big"),
        ]
        out.append(c.command("FETCH 2:3 (ENVELOPE BODYSTRUCTURE)"))
        out.append(c.command("SEARCH TO a19999"))
        out.append(c.command("SEARCH BODY nothing-like-this"))
        c.close()
        return Outcome(out)

    return attack


#: Where the password guesser connects from: another loopback address than the canary's and
#: the other inputs' (a server may rightly hold back every login from the guessing address).
ATTACKER = "127.0.0.2"


def wrong_logins(server: Server, args: argparse.Namespace) -> Callable[[], Outcome]:
    n = args.hostile_logins

    def one(results: list[bytes]) -> None:
        try:
            c = Raw(server, source=ATTACKER)
            results.append(c.command(f"LOGIN {server.user} wrong-password"))
            c.close()
        except (OSError, ConnectionError) as exc:
            results.append(f"error: {exc}".encode())

    def attack() -> Outcome:
        results: list[bytes] = []
        threads = [threading.Thread(target=one, args=(results,), daemon=True) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        refused = sum(b" NO" in r for r in results)
        return Outcome(
            results,
            f"{refused}/{n} answered NO (from {ATTACKER}; the rest held"
            " back past the client timeout)",
        )

    return attack


def idle_conns(server: Server, args: argparse.Namespace) -> Callable[[], Outcome]:
    n = args.hostile_conns

    def attack() -> Outcome:
        socks: list[socket.socket] = []
        refused = 0
        for _ in range(n):
            try:
                socks.append(socket.create_connection((server.host, server.port), timeout=10))
            except OSError:
                refused += 1
        time.sleep(3)
        for s in socks:
            s.close()
        return Outcome([], f"{len(socks)} opened, {refused} refused")

    return attack


def stalled_fetch(server: Server, args: argparse.Namespace) -> Callable[[], Outcome]:
    c = _login(server)
    c.ok("CREATE stall")
    c.ok("APPEND stall", _message(10_000_000))
    c.ok("SELECT stall")

    def attack() -> Outcome:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.sock.sendall(b"".join(b"f%d FETCH 1 BODY.PEEK[]\r\n" % i for i in range(5)))
        time.sleep(3)
        c.close()
        return Outcome([], "client never read; closed after 3 s")

    return attack


INPUTS: dict[str, Callable[[Server, argparse.Namespace], Callable[[], Outcome]]] = {
    "list-pattern": list_pattern,
    "huge-name": huge_name,
    "many-keywords": many_keywords,
    "or-search": or_search,
    "pipelined-noops": pipelined_noops,
    "deflate-bomb": deflate_bomb,
    "big-append": big_append,
    "wrong-logins": wrong_logins,
    "idle-conns": idle_conns,
    "stalled-fetch": stalled_fetch,
}


# -- the run -------------------------------------------------------------------------------


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _run_server(server: Server, args: argparse.Namespace, names: list[str]) -> list[Figure]:
    figures: list[Figure] = []
    rows: list[list[str]] = []
    canary = Canary(server)
    canary.start()
    try:
        for name in names:
            fig = Figure(f"hostile-{name}", f"canary NOOP during {name}", "latency", "NOOPs")
            figures.append(fig)
            try:
                attack = INPUTS[name](server, args)
                time.sleep(2 * CANARY_PERIOD)
                cpu0, t0 = server.cpu_seconds(), time.monotonic()
                outcome = attack()
                time.sleep(CANARY_PERIOD)  # one more canary round after the input
                t1 = time.monotonic()
                delays = canary.window(t0, t1)
                bug = any(b"SERVERBUG" in a for a in outcome.answers)
                answers = sorted({_gist(a) for a in outcome.answers if a})
                m = Measure(
                    len(delays),
                    t1 - t0,
                    server.cpu_seconds() - cpu0,
                    0.0,
                    delays,
                    check="SERVERBUG in an answer" if bug else "",
                )
                fig.results[server.name] = m
                worst = max(delays, default=float("nan"))
                rows.append(
                    [
                        name,
                        f"{worst:.1f}",
                        f"{statistics.median(delays):.1f}" if delays else "-",
                        str(len(delays)),
                        "YES" if bug else "no",
                        f"{t1 - t0:.1f}",
                        f"{m.server_cpu:.1f}",
                        (outcome.note or "; ".join(answers))[:90],
                    ]
                )
                _log(
                    f"{server.name} {name}: worst canary {worst:.1f} ms, "
                    f"SERVERBUG {'YES' if bug else 'no'}; {outcome.note or answers[:3]}"
                )
            except Exception as exc:  # noqa: BLE001 - report it and go on with the next
                fig.errors[server.name] = f"{type(exc).__name__}: {exc}"
                rows.append([name, "-", "-", "-", "?", "-", "-", f"ERROR {exc}"[:90]])
                _log(f"{server.name} {name}: ERROR {exc}")
            if canary.error is not None or not canary.is_alive():
                _log(f"{server.name}: canary died: {canary.error}; restarting it")
                canary = Canary(server)
                canary.start()
    finally:
        canary.stop()
    header = [
        "input",
        "worst ms",
        "p50 ms",
        "NOOPs",
        "SERVERBUG",
        "wall s",
        "srv CPU s",
        "answers / note",
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(
        f"\nhostile inputs against {server.name} {server.version} (canary NOOP every "
        f"{CANARY_PERIOD} s; target worst < {TARGET_MS:.0f} ms, no SERVERBUG)"
    )
    for r in [header, ["-" * w for w in widths], *rows]:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return figures


def _gist(answer: bytes) -> str:
    """A reply without its tag, cut short: "OK [APPENDUID ...", "NO [LIMIT] ..."."""
    text = answer.decode(errors="replace")
    parts = text.split(" ", 2)
    return " ".join(parts[1:3])[:40] if len(parts) > 1 else text[:40]


async def run(args: argparse.Namespace, servers: list[Server]) -> list[Figure]:
    names = list(INPUTS)
    if args.hostile_only:
        names = [n.strip() for n in args.hostile_only.split(",") if n.strip()]
        unknown = [n for n in names if n not in INPUTS]
        if unknown:
            raise SystemExit(f"unknown hostile inputs {unknown}; known: {', '.join(INPUTS)}")
    figures: dict[str, Figure] = {}
    for server in servers:
        for fig in await asyncio.to_thread(_run_server, server, args, names):
            merged = figures.setdefault(fig.key, fig)
            if merged is not fig:
                merged.results.update(fig.results)
                merged.errors.update(fig.errors)
    return list(figures.values())
