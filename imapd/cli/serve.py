"""``imapd serve`` (the server in the foreground) and ``imapd healthcheck``."""

from __future__ import annotations

import sys

from imapd import config as config_mod
from imapd.cli.common import Subparsers, add_data_dir
from imapd.config import Config


def add_serve_parser(sub: Subparsers) -> None:
    serve = sub.add_parser("serve", help="run the IMAP server")
    add_data_dir(serve)
    serve.add_argument("--listen", help="HOST:PORT for IMAP (default 127.0.0.1:1143)")
    serve.add_argument("--lmtp", help="HOST:PORT or socket path for LMTP delivery")
    serve.add_argument("--notify-socket", dest="notify_socket", help="notifyd socket path")
    serve.add_argument("--listen-tls", help="HOST:PORT for implicit TLS (IMAPS, port 993 style)")
    serve.add_argument("--tls-cert-file", help="PEM certificate chain (enables STARTTLS)")
    serve.add_argument("--tls-key-file", help="PEM private key (default: in the cert file)")
    serve.add_argument("--servername", help="server name in events (default localhost)")
    serve.add_argument("--pid-file", help="write the pid here while running")
    serve.add_argument(
        "--log-format", choices=("text", "json"), help="text lines (default) or JSON lines"
    )
    serve.add_argument(  # docs/workers.md
        "--workers",
        type=int,
        help="N worker processes sharing the listening sockets and the store (default 1;"
        " 0: one per CPU)",
    )
    serve.add_argument(
        "--init",
        action="store_true",
        help="as `imapd init` first: an empty"
        " or damaged store is moved aside and a new one created",
    )


def add_healthcheck_parser(sub: Subparsers) -> None:
    health = sub.add_parser("healthcheck", help="exit 0 if the server answers * OK")
    health.add_argument("--host", help="default: IMAPD_LISTEN's host, else 127.0.0.1")
    health.add_argument("--port", type=int, help="default: IMAPD_LISTEN's port, else 1143")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")


async def serve(config: Config) -> int:
    from contextlib import nullcontext

    from imapd import daemon
    from imapd.server import Server, unshared_sinks  # unshared_sinks: issue 18
    from imapd.tls import TlsError

    if (why := unshared_sinks(config)) is not None:
        print(f"imapd: invalid configuration: {why}", file=sys.stderr)
        return 2
    try:
        server = await Server.create(config)
    except TlsError as exc:
        print(f"imapd: invalid configuration: {exc}", file=sys.stderr)
        return 2
    daemon.tune_gc()  # before the first connection: only start-up objects are frozen
    try:
        addresses = await server.start()
    except OSError as exc:  # a port in use, an address not ours: say which, no traceback
        print(f"imapd: cannot listen: {exc}", file=sys.stderr)
        await server.shutdown()
        return 1
    server.handle_signals()  # before "serving" is printed: a SIGTERM from then on drains
    shown = [("IMAP", f"{host}:{port}") for host, port in addresses]
    shown += [("IMAPS", f"{host}:{port}") for host, port in server.tls_addresses]
    for where in server.lmtp.addresses if server.lmtp else ():
        shown.append(("LMTP", where if isinstance(where, str) else f"{where[0]}:{where[1]}"))
    from imapd.cluster import supervisor  # --workers: the supervisor prints, not each worker

    if config.log_format == "text" and not supervisor.in_worker():
        for kind, where in shown:
            data = f", data in {config.data_dir}" if kind != "LMTP" else ""
            print(f"imapd: serving {kind} on {where}{data}", flush=True)
    server.on_shutdown.append(lambda: daemon.sd_notify("STOPPING=1"))
    if supervisor.in_worker():  # the supervisor has the pid file and tells systemd
        supervisor.worker_ready()
        await server.serve_forever()
        return 0
    with daemon.PidFile(config.pid_file) if config.pid_file else nullcontext():
        daemon.sd_notify("READY=1\nSTATUS=serving " + ", ".join(f"{k} on {w}" for k, w in shown))
        await server.serve_forever()
    return 0


def listen_from_env() -> tuple[str, int]:
    """Where the server listens by ``IMAPD_LISTEN`` (a wildcard host is probed on
    loopback), else the default 127.0.0.1:1143."""
    import os

    value = os.environ.get("IMAPD_LISTEN")
    if not value:
        return "127.0.0.1", 1143
    host, port = config_mod.parse_hostport(value, "IMAPD_LISTEN")
    return ("127.0.0.1" if host in {"", "0.0.0.0", "::"} else host), port  # noqa: S104


def healthcheck(host: str, port: int, timeout: float) -> int:
    """``imapd healthcheck``: exit 0 when the server at HOST:PORT greets with ``* OK``
    (container HEALTHCHECKs, compose ``service_healthy``); 1 with the reason otherwise."""
    import contextlib
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            greeting = sock.makefile("rb").readline(4096)
            if greeting.startswith(b"* OK"):
                with contextlib.suppress(OSError):
                    sock.sendall(b"h LOGOUT\r\n")
                return 0
    except OSError as exc:
        print(f"imapd healthcheck: {host}:{port}: {exc}", file=sys.stderr)
        return 1
    print(f"imapd healthcheck: {host}:{port}: greeting {greeting[:60]!r}", file=sys.stderr)
    return 1
