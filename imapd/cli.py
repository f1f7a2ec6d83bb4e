"""The `imapd` command: `serve` and the admin subcommands (argparse).

Owns: argument parsing, logging setup and the event loop choice for each subcommand.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from imapd import config as config_mod
from imapd.config import Config, ConfigError

log = logging.getLogger("imapd")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _run(coro: Coroutine[Any, Any, int]) -> int:
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(coro)


def _config(args: argparse.Namespace) -> Config:
    """Flags over ``IMAPD_*`` environment variables over the TOML file over defaults."""
    overrides: dict[str, Any] = {"data_dir": Path(args.data_dir) if args.data_dir else None}
    for name in ("listen", "listen_tls"):
        if getattr(args, name, None):
            flag = "--" + name.replace("_", "-")
            overrides[name] = config_mod.parse_hostport(getattr(args, name), flag)
    for name in ("lmtp", "notify_socket", "servername", "log_format"):
        overrides[name] = getattr(args, name, None)
    for name in ("tls_cert_file", "tls_key_file", "pid_file"):
        value = getattr(args, name, None)
        overrides[name] = Path(value) if value else None
    config_path = getattr(args, "config", None)
    return config_mod.load(Path(config_path) if config_path else None, os.environ, **overrides)


async def _serve(config: Config) -> int:
    from contextlib import nullcontext

    from imapd import daemon
    from imapd.server import Server
    from imapd.tls import TlsError

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
    if config.log_format == "text":  # JSON logs: the "listening on" records say it
        for kind, where in shown:
            data = f", data in {config.data_dir}" if kind != "LMTP" else ""
            print(f"imapd: serving {kind} on {where}{data}", flush=True)
    server.on_shutdown.append(lambda: daemon.sd_notify("STOPPING=1"))
    with daemon.PidFile(config.pid_file) if config.pid_file else nullcontext():
        daemon.sd_notify("READY=1\nSTATUS=serving " + ", ".join(f"{k} on {w}" for k, w in shown))
        await server.serve_forever()
    return 0


async def _with_store(config: Config, action: Callable[[Any], Coroutine[Any, Any, int]]) -> int:
    """The store for one command; a running server is told of what it committed."""
    from imapd.cli_admin import with_store

    return await with_store(config, action)


class PasswordError(Exception):
    """No usable password was given; the message says how to give one."""


def read_password(given: str | None) -> str:
    """The password of ``user add``/``passwd``: ``--password PW`` as given (scripts; it
    shows in ``ps`` and shell history), ``--password -`` one line of standard input (its
    line end removed), none: asked twice on the terminal (getpass: not echoed, not in
    history). Raises PasswordError."""
    if given is not None and given != "-":
        return given
    if given == "-":
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            raise PasswordError("--password -: no password on standard input")
        return password
    if not sys.stdin.isatty():
        raise PasswordError("no password: give --password PW, or --password - to read it "
                            "from standard input, or run on a terminal to be asked")
    import getpass

    try:
        password = getpass.getpass("Password: ")
        if not password:
            raise PasswordError("empty password")
        again = getpass.getpass("Password again: ")
    except (EOFError, KeyboardInterrupt):
        raise PasswordError("no password given") from None
    if again != password:
        raise PasswordError("the passwords differ")
    return password


def _user_command(args: argparse.Namespace, config: Config) -> int:
    from store.errors import StoreError

    password = ""
    if args.user_command in {"add", "passwd"}:
        try:
            password = read_password(args.password)
        except PasswordError as exc:
            print(f"imapd: {exc}", file=sys.stderr)
            return 2

    async def act(store: Any) -> int:
        try:
            match args.user_command:
                case "add":
                    await store.create_user(args.name, password, admin=args.admin)
                    print(f"user {args.name} added")
                case "passwd":
                    await store.set_password(args.name, password)
                    print(f"password of {args.name} changed")
                case "delete":
                    await store.delete_user(args.name)
                    from imapd.cli_admin import disconnect_user

                    ended = await disconnect_user(config, args.name)
                    print(f"user {args.name} deleted"
                          + (f"; {ended} session(s) disconnected" if ended else ""))
                case "list":
                    for user in await store.list_users():
                        print(user.name + (" (admin)" if user.is_admin else ""))
                case "admin":
                    await store.set_admin(args.name, args.grant)
                    print(f"user {args.name} is {'now' if args.grant else 'no longer'} an admin")
        except StoreError as exc:
            print(f"imapd: {exc.text}", file=sys.stderr)
            return 1
        return 0

    return _run(_with_store(config, act))


_PW_FLAG_HELP = ("the password ('-': read one line from standard input; omitted: asked on the "
                 "terminal). A password on the command line shows in ps and shell history")


def _parse_days(text: str) -> int | None:
    """DAYS for set-expire: a whole number of days; 0 or "none" clears the retention."""
    if text.lower() == "none":
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of days or 'none', got {text!r}")
    return int(text) or None


def _mailbox_command(args: argparse.Namespace, config: Config) -> int:
    """``mailbox set-expire`` / ``get-expire``. Works while the server runs (same SQLite
    file); see the README on how a running server learns of it."""
    from store.errors import StoreError

    async def act(store: Any) -> int:
        try:
            user = await store.get_user(args.user)
            if args.mailbox_command == "set-expire":
                await store.set_retention(user.id, args.mailbox, args.days)
            info = await store.get_mailbox(user.id, args.mailbox)
        except (StoreError, ValueError) as exc:
            print(f"imapd: {getattr(exc, 'text', exc)}", file=sys.stderr)
            return 1
        days = info.retention_days
        print(f"{args.user} {info.name}: " + (f"expire after {days} days" if days else
                                              "no expiry"))
        return 0

    return _run(_with_store(config, act))


def _limit(text: str) -> int | None:
    """A quota limit for ``quota set``: a whole number; -1 (or omitting it) = unlimited."""
    if text == "-1":
        return None
    if not text.isdigit() or int(text) > 2**63 - 1:
        raise argparse.ArgumentTypeError(f"expected a number or -1 (unlimited), got {text!r}")
    return int(text)


def _quota_command(args: argparse.Namespace, config: Config) -> int:
    """``quota set USER [--storage KIB] [--messages N]`` / ``quota get USER``: a user's
    root (RFC 9208, store/quota.py). ``set`` replaces both limits, as SETQUOTA does: one
    not given becomes unlimited. Works while the server runs (same SQLite file)."""
    from store.errors import StoreError
    from store.quota import Limits

    async def act(store: Any) -> int:
        try:
            if args.quota_command == "set":
                info = await store.set_quota(args.user, Limits(args.storage, args.messages))
            else:
                info = await store.get_quota(args.user)
        except StoreError as exc:
            print(f"imapd: {exc.text}", file=sys.stderr)
            return 1
        limits, usage = info.root.limits, info.usage
        storage = "unlimited" if limits.storage is None else f"{limits.storage} KiB"
        messages = "unlimited" if limits.messages is None else str(limits.messages)
        print(f"{info.root.name}: storage {usage.storage // 1024} KiB of {storage},"
              f" messages {usage.messages} of {messages}")
        return 0

    return _run(_with_store(config, act))


def _expire_command(config: Config) -> int:
    """``imapd expire``: one expiry run now, printing how many messages were removed."""

    async def act(store: Any) -> int:
        count = await store.expire()
        print(f"expired {count} message{'' if count == 1 else 's'}")
        return 0

    return _run(_with_store(config, act))


def _listen_from_env() -> tuple[str, int]:
    """Where the server listens by ``IMAPD_LISTEN`` (a wildcard host is probed on
    loopback), else the default 127.0.0.1:1143."""
    import os

    value = os.environ.get("IMAPD_LISTEN")
    if not value:
        return "127.0.0.1", 1143
    host, port = config_mod.parse_hostport(value, "IMAPD_LISTEN")
    return ("127.0.0.1" if host in {"", "0.0.0.0", "::"} else host), port  # noqa: S104


def _healthcheck(host: str, port: int, timeout: float) -> int:
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


def _webhook(args: argparse.Namespace) -> int:
    """``imapd notifyd --method webhook``: notify/webhook.py. With ``--data-dir`` the catch-up
    renders the outbox with the server's event options (``--config``, ``IMAPD_*``), so pass
    the server's; ``vnd.imapd.seq`` must be in its ``event_extra_params`` to resume."""
    from notify import webhook

    if not args.url:
        print("imapd notifyd: --method webhook needs --url", file=sys.stderr)
        return 2
    if args.batch < 1 or args.queue < 1:
        print("imapd notifyd: --batch and --queue must be at least 1", file=sys.stderr)
        return 2
    secret = args.secret or os.environ.get("IMAPD_WEBHOOK_SECRET")
    try:
        webhook.parse_url(args.url)
        state = webhook.StateFile(args.state) if args.state else None
        if state is not None:
            state.load()
        config = _config(args) if args.data_dir else None
    except (ValueError, ConfigError) as exc:
        print(f"imapd notifyd: {exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        outbox: webhook.Outbox | None = None
        close = None
        if config is not None:
            # The server's filter and rendering, so that the catch-up's events are the ones
            # its sink would have sent.
            from imapd.server import event_format

            store, close = await webhook.open_outbox(config.db_path)
            policy, fmt = event_format(config)
            outbox = webhook.Outbox(store, policy, fmt)
        try:
            hook = webhook.Webhook(
                args.url, secret=secret.encode("utf-8") if secret else None,
                batch=args.batch, queue=args.queue, state=state, outbox=outbox,
                timeout=args.timeout, retry_max=args.retry_max,
            )
            return await webhook.serve(args.socket, hook)
        finally:
            if close is not None:
                await close()

    try:
        return _run(run())
    except FileNotFoundError as exc:
        print(f"imapd notifyd: {exc}", file=sys.stderr)
        return 1


def _notifyd_outbox(args: argparse.Namespace) -> int:
    """``imapd notifyd --outbox``: imapd/cli_events.py (the server's event options apply:
    pass its ``--config``)."""
    from imapd import cli_events

    if args.method == "webhook" or args.socket:
        print("imapd notifyd: --outbox takes --method log, jsonl or external and no --socket "
              "(the webhook follows the outbox with --socket and --data-dir)", file=sys.stderr)
        return 2
    if not args.state:
        print("imapd notifyd: --outbox needs --state FILE", file=sys.stderr)
        return 2
    try:
        config = _config(args)
    except ConfigError as exc:
        print(f"imapd notifyd: {exc}", file=sys.stderr)
        return 2
    return cli_events.notifyd_outbox(args, config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imapd", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", help="where the SQLite store lives (default ./var)")
        p.add_argument("--store", metavar="URL",  # issue 18: store/open.py, docs/postgresql.md
                       help="the store: postgresql://user:pw@host/db (default: SQLite in"
                            " --data-dir; also $IMAPD_STORE)")
        p.add_argument("--config", help="TOML configuration file")

    serve = sub.add_parser("serve", help="run the IMAP server")
    data_dir(serve)
    serve.add_argument("--listen", help="HOST:PORT for IMAP (default 127.0.0.1:1143)")
    serve.add_argument("--lmtp", help="HOST:PORT or socket path for LMTP delivery")
    serve.add_argument("--notify-socket", dest="notify_socket", help="notifyd socket path")
    serve.add_argument("--listen-tls", help="HOST:PORT for implicit TLS (IMAPS, port 993 style)")
    serve.add_argument("--tls-cert-file", help="PEM certificate chain (enables STARTTLS)")
    serve.add_argument("--tls-key-file", help="PEM private key (default: in the cert file)")
    serve.add_argument("--servername", help="server name in events (default localhost)")
    serve.add_argument("--pid-file", help="write the pid here while running")
    serve.add_argument("--log-format", choices=("text", "json"),
                       help="text lines (default) or JSON lines")
    serve.add_argument("--init", action="store_true", help="as `imapd init` first: an empty"
                       " or damaged store is moved aside and a new one created")

    notifyd = sub.add_parser("notifyd", help="handle events: from a datagram socket (Cyrus "
                             "notifyd) or, with --outbox, from the server's change log")
    notifyd.add_argument("--socket", help="UNIX datagram socket path to bind")
    notifyd.add_argument("--outbox", action="store_true",
                         help="no socket: follow the change log of --data-dir from --state "
                         "FILE (durable, at least once; methods log, jsonl, external)")
    notifyd.add_argument("--method", choices=("log", "external", "jsonl", "webhook"),
                         default="log", help="log: notifyd's log line; external: run "
                         "--program; jsonl: JSON; webhook: POST to --url")
    notifyd.add_argument("--program", help="command run per event (method external)")
    hook = notifyd.add_argument_group("method webhook (see the README)")
    hook.add_argument("--url", help="http:// or https:// URL events are POSTed to")
    hook.add_argument("--secret", help="HMAC-SHA256 key for X-Imapd-Signature (default: "
                      "$IMAPD_WEBHOOK_SECRET; none: unsigned)")
    hook.add_argument("--batch", type=int, default=1, metavar="N",
                      help='up to N events per POST as {"events": [...]} (default 1: one '
                      "event object per POST)")
    hook.add_argument("--queue", type=int, default=1000, metavar="N",
                      help="events held in memory; when full, datagrams wait in the server's "
                      "outbox (default 1000)")
    hook.add_argument("--state", metavar="FILE", help="last acknowledged (with --outbox: "
                      "handled) position, for resuming")
    hook.add_argument("--timeout", type=float, default=10.0, help="seconds per POST (10)")
    hook.add_argument("--retry-max", type=float, default=60.0, dest="retry_max",
                      help="longest backoff between retries, seconds (60)")
    data_dir(notifyd)  # webhook: catch up from this server's outbox after a restart

    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--password", metavar="PW|-", help=_PW_FLAG_HELP)
    add.add_argument("--admin", action="store_true")
    data_dir(add)
    passwd = user_sub.add_parser("passwd", help="change a user's password")
    passwd.add_argument("name")
    passwd.add_argument("--password", metavar="PW|-", help=_PW_FLAG_HELP)
    data_dir(passwd)
    delete = user_sub.add_parser("delete", help="delete a user and all their mail")
    delete.add_argument("name")
    data_dir(delete)
    lst = user_sub.add_parser("list", help="list users")
    data_dir(lst)
    admin = user_sub.add_parser(
        "admin", help="grant or revoke admin rights (shared mailboxes, every ACL, SETQUOTA)")
    admin.add_argument("name")
    grant = admin.add_mutually_exclusive_group(required=True)
    grant.add_argument("--grant", dest="grant", action="store_true")
    grant.add_argument("--revoke", dest="grant", action="store_false")
    data_dir(admin)

    mailbox = sub.add_parser("mailbox", help="mailboxes: list, create, delete, status, expiry")
    mailbox_sub = mailbox.add_subparsers(dest="mailbox_command", required=True)
    set_expire = mailbox_sub.add_parser(
        "set-expire", help="keep a mailbox's messages DAYS days (0 or none: forever)")
    set_expire.add_argument("user")
    set_expire.add_argument("mailbox")
    set_expire.add_argument("days", type=_parse_days, metavar="DAYS")
    data_dir(set_expire)
    get_expire = mailbox_sub.add_parser("get-expire", help="show a mailbox's retention")
    get_expire.add_argument("user")
    get_expire.add_argument("mailbox")
    data_dir(get_expire)

    health = sub.add_parser("healthcheck", help="exit 0 if the server answers * OK")
    health.add_argument("--host", help="default: IMAPD_LISTEN's host, else 127.0.0.1")
    health.add_argument("--port", type=int, help="default: IMAPD_LISTEN's port, else 1143")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")

    quota = sub.add_parser("quota", help="users' quotas (RFC 9208)")
    quota_sub = quota.add_subparsers(dest="quota_command", required=True)
    set_quota = quota_sub.add_parser(
        "set", help="set a user's limits (a limit omitted or -1: unlimited)")
    set_quota.add_argument("user")
    set_quota.add_argument("--storage", type=_limit, metavar="KIB", help="STORAGE in KiB")
    set_quota.add_argument("--messages", type=_limit, metavar="N", help="MESSAGE count")
    data_dir(set_quota)
    get_quota = quota_sub.add_parser("get", help="show a user's usage and limits")
    get_quota.add_argument("user")
    data_dir(get_quota)

    expire = sub.add_parser("expire", help="remove messages past their mailbox's retention")
    data_dir(expire)

    from imapd import cli_admin  # mailbox list/create/delete/status, who, kick, import, events

    cli_admin.add_parsers(sub, mailbox_sub, data_dir)
    from imapd import cli_backup  # backup, restore, fsck, init

    cli_backup.add_parsers(sub, data_dir)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from imapd.daemon import TextFormatter

    text = logging.StreamHandler()
    text.setFormatter(TextFormatter())  # the session's client after ID (RFC 2971)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        handlers=[text])
    if args.command == "healthcheck":  # no store, no configuration file
        host, port = _listen_from_env()
        return _healthcheck(args.host or host, args.port or port, args.timeout)
    if args.command == "notifyd":  # needs no store and no configuration
        from notify import notifyd as notifyd_mod

        if args.method == "external" and not args.program:
            print("imapd notifyd: --method external needs --program", file=sys.stderr)
            return 2
        if args.outbox:
            return _notifyd_outbox(args)
        if not args.socket:
            print("imapd notifyd: --socket PATH or --outbox is needed", file=sys.stderr)
            return 2
        if args.method == "webhook":
            return _webhook(args)
        return notifyd_mod.main(args.socket, args.method, args.program)
    # Everything the server and the store commands create (data directory, database, WAL,
    # pid file, backups) is private from its creation (store/sqlite/files.py; README "Files, disk
    # full, ..."). Not for notifyd: its `--program` children keep the operator's umask.
    os.umask(0o077)
    # --- issue 18: --store URL is $IMAPD_STORE for this process (store/open.py picks) ---
    from store.open import ENV_STORE, check_store_url

    if getattr(args, "store", None):
        os.environ[ENV_STORE] = args.store
    if (problem := check_store_url()) is not None:
        print(f"imapd: {problem}", file=sys.stderr)
        return 2
    # --- end issue 18 ---
    try:
        config = _config(args)
    except ConfigError as exc:
        print(f"imapd: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if config.log_format != "text":
        from imapd.daemon import configure_logging

        configure_logging(config.log_format, verbose=args.verbose)
    from imapd import cli_backup

    try:
        return _command(args, config)
    except Exception as exc:  # a store that cannot start: a message and a distinct status
        if (status := cli_backup.exit_status(exc)) is None:
            raise
        print(f"imapd: {cli_backup.describe(exc)}", file=sys.stderr)
        return status


def _command(args: argparse.Namespace, config: Config) -> int:
    from imapd import cli_admin, cli_backup

    if (code := cli_admin.dispatch(args, config)) is not None:
        return code
    if (code := cli_backup.dispatch(args, config)) is not None:
        return code
    if args.command == "serve" and args.init and (code := cli_backup.init_store(config)):
        return code
    match args.command:
        case "serve":
            return _run(_serve(config))
        case "user":
            return _user_command(args, config)
        case "mailbox":
            return _mailbox_command(args, config)
        case "expire":
            return _expire_command(config)
        case "quota":
            return _quota_command(args, config)
    return 2
