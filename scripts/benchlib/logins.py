"""The ``logins`` section: logins at webmail rates (issue 17 item 6).

Roundcube opens a connection and logs in for every web request. Here K clients each repeat,
for N seconds, one webmail request's IMAP part: connect, LOGIN, SELECT INBOX, LOGOUT. Run on

  ours          our server as configured by default: scrypt at its default cost (n=2**14,
                `imapd user add` with no IMAPD_SCRYPT_N) and the authentication cache on
                (auth_cache_ttl 300 s, store/authcache.py)
  ours-nocache  the same with IMAPD_AUTH_CACHE_TTL=0 (every LOGIN runs scrypt)
  dovecot       the private Dovecot of scripts/benchlib/servers.py: passwd-file with the
                {PLAIN} scheme (no hashing at all) and its auth cache off (its default)

one after the other on fresh servers (ours first, so its first LOGINs find the cache
empty). Printed per server: cycles/s, cycles per server CPU-second, LOGIN latency p50/p99
(each client's first LOGIN apart from the repeats: for ours the first ones miss the cache),
and for ours the cache's counters read over the control socket (``{"op": "stats"}``), so
"repeat logins ran no scrypt" is a count, not a guess from timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time

from imapd import control

from .client import ImapClient, quote
from .report import Figure, Measure, percentile
from .servers import Ours, Server

SETTLE = 0.3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("logins section")
    g.add_argument(
        "--login-clients",
        type=int,
        default=4,
        metavar="K",
        help="concurrent clients, each looping connect+LOGIN+SELECT+LOGOUT (default 4)",
    )
    g.add_argument(
        "--login-seconds",
        type=float,
        default=10.0,
        metavar="N",
        help="seconds each server is driven (default 10)",
    )


class OursNoCache(Ours):
    """Our server with the authentication cache off (auth_cache_ttl = 0)."""

    name = "ours-nocache"

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env["IMAPD_AUTH_CACHE_TTL"] = "0"
        return env


class _Samples:
    def __init__(self) -> None:
        self.first: list[float] = []
        self.repeat: list[float] = []
        self.cycles = 0
        self.errors: list[str] = []


async def _client(server: Server, stop_at: float, samples: _Samples, limit: float) -> None:
    first = True
    while time.perf_counter() < stop_at:
        c = ImapClient(server.host, server.port, timeout=limit)
        try:
            await c.connect()
            t0 = time.perf_counter()
            reply = await c.command(f"LOGIN {quote(server.user)} {quote(server.password)}")
            ms = (time.perf_counter() - t0) * 1000
            (samples.first if first else samples.repeat).append(ms)
            first = False
            if reply.status != b"OK":
                raise RuntimeError(f"LOGIN: {reply.status!r} {reply.text!r}")
            await c.command("SELECT INBOX")
            await c.command("LOGOUT", allow_bye=True)
            samples.cycles += 1
        except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
            samples.errors.append(f"{type(exc).__name__}: {exc}")
            if len(samples.errors) > 20:
                return
        finally:
            await c.close()


async def _stats(server: Server) -> dict[str, object] | None:
    if not isinstance(server, Ours):
        return None
    with contextlib.suppress(control.NoServer, OSError, TimeoutError):
        answer = await control.request(server.data_dir, control.Stats())
        cache = answer.get("auth_cache")
        return cache if isinstance(cache, dict) else None
    return None


async def _drive(server: Server, args: argparse.Namespace) -> tuple[Measure, _Samples]:
    await asyncio.sleep(SETTLE)
    samples = _Samples()
    cpu0, c0, t0 = server.cpu_seconds(), time.process_time(), time.perf_counter()
    stop_at = t0 + args.login_seconds
    await asyncio.gather(
        *(_client(server, stop_at, samples, args.timeout) for _ in range(args.login_clients))
    )
    t1, c1, cpu1 = time.perf_counter(), time.process_time(), server.cpu_seconds()
    m = Measure(
        count=samples.cycles,
        wall=t1 - t0,
        server_cpu=cpu1 - cpu0,
        client_cpu=c1 - c0,
        latencies_ms=samples.first + samples.repeat,
        check="; ".join(samples.errors[:3]),
    )
    return m, samples


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _line(name: str, m: Measure, s: _Samples, cache: dict[str, object] | None) -> str:
    def p(xs: list[float], q: float) -> str:
        return f"{percentile(xs, q):7.1f}" if xs else "      -"

    line = (
        f"{name:<13} {m.count:6d} {m.rate:8.1f} {m.per_cpu:9.1f}  "
        f"{p(s.first, 50)} {p(s.first, 99)}  {p(s.repeat, 50)} {p(s.repeat, 99)}"
    )
    if cache is not None:
        line += f"  hits={cache['hits']} misses={cache['misses']} stored={cache['stored']}"
    elif name.startswith("ours"):
        line += "  cache off"
    if s.errors:
        line += f"  ERRORS {len(s.errors)}: {s.errors[0]}"
    return line


async def run(args: argparse.Namespace, servers: list[Server]) -> list[Figure]:
    variants: list[Server] = [s for s in servers if s.name == "ours"]
    extra: OursNoCache | None = None
    if variants:
        extra = OursNoCache(args.port_base + 2, keep=args.keep)
        extra.workers = args.workers  # --workers N: the same number as ours
        _log(f"starting ours-nocache on {extra.port} ...")
        extra.start(args.start_timeout)
        variants.append(extra)
    variants += [s for s in servers if s.name != "ours"]
    results: dict[str, tuple[Measure, _Samples, dict[str, object] | None]] = {}
    try:
        for srv in variants:
            _log(f"logins: {srv.name}, {args.login_clients} clients, {args.login_seconds:.0f} s")
            m, s = await _drive(srv, args)
            results[srv.name] = (m, s, await _stats(srv))
    finally:
        if extra is not None:
            with contextlib.suppress(Exception):
                extra.stop()
            extra.cleanup()

    print()
    print(
        f"logins: {args.login_clients} clients x (connect + LOGIN + SELECT INBOX + LOGOUT) "
        f"for {args.login_seconds:.0f} s per server; ours at scrypt n=2**14 (default), "
        "dovecot passwd-file {PLAIN}, auth cache off; LOGIN latency in ms"
    )
    print(
        f"{'server':<13} {'cycles':>6} {'cycles/s':>8} {'per CPU-s':>9}  "
        f"{'first50':>7} {'first99':>7}  {'rep50':>7} {'rep99':>7}"
    )
    for name, (m, s, cache) in results.items():
        print(_line(name, m, s, cache))
    print(f"(cores: {os.cpu_count()}; 'first': each client's first LOGIN of the run)")

    figures: list[Figure] = []
    dovecot = results.get("dovecot")
    for ours_name, label in (
        ("ours", "login cycles, auth cache on"),
        ("ours-nocache", "login cycles, auth cache off"),
    ):
        fig = Figure(f"logins-{ours_name}", label, "rate", "cycles")
        if ours_name in results:
            fig.results["ours"] = results[ours_name][0]
        if dovecot is not None:
            fig.results["dovecot"] = dovecot[0]
        figures.append(fig)
        lat = Figure(
            f"login-latency-{ours_name}", f"repeat LOGIN ({label[14:]})", "latency", "logins"
        )
        for key, got in (("ours", results.get(ours_name)), ("dovecot", dovecot)):
            if got is not None:
                m, s, _ = got
                lat.results[key] = Measure(
                    len(s.repeat),
                    m.wall,
                    m.server_cpu,
                    m.client_cpu,
                    latencies_ms=s.repeat,
                    check=m.check,
                )
        figures.append(lat)
    return figures
