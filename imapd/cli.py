"""The `imapd` command: `serve` and the admin subcommands (argparse).

Owns: argument parsing, logging setup and the event loop choice for each subcommand.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
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
    overrides: dict[str, Any] = {"data_dir": Path(args.data_dir) if args.data_dir else None}
    if getattr(args, "listen", None):
        overrides["listen"] = config_mod.parse_hostport(args.listen, "--listen")
    for name in ("lmtp", "notify_socket"):
        overrides[name] = getattr(args, name, None)
    config_path = getattr(args, "config", None)
    return config_mod.load(Path(config_path) if config_path else None, **overrides)


async def _serve(config: Config) -> int:
    from imapd.server import Server

    server = await Server.create(config)
    addresses = await server.start()
    for host, port in addresses:
        print(f"imapd: serving IMAP on {host}:{port}, data in {config.data_dir}", flush=True)
    for where in server.lmtp.addresses if server.lmtp else ():
        shown = where if isinstance(where, str) else f"{where[0]}:{where[1]}"
        print(f"imapd: serving LMTP on {shown}", flush=True)
    await server.serve_forever()
    return 0


async def _with_store(config: Config, action: Callable[[Any], Coroutine[Any, Any, int]]) -> int:
    from store.sqlite import SqliteStore

    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = await SqliteStore.open(
        config.db_path, lambda changes: None, synchronous=config.sqlite_synchronous,
        scrypt_n=config.scrypt_n,
    )
    try:
        return await action(store)
    finally:
        await store.close()


def _user_command(args: argparse.Namespace, config: Config) -> int:
    from store.errors import StoreError

    async def act(store: Any) -> int:
        try:
            match args.user_command:
                case "add":
                    await store.create_user(args.name, args.password, admin=args.admin)
                    print(f"user {args.name} added")
                case "passwd":
                    await store.set_password(args.name, args.password)
                    print(f"password of {args.name} changed")
                case "delete":
                    await store.delete_user(args.name)
                    print(f"user {args.name} deleted")
                case "list":
                    for user in await store.list_users():
                        print(user.name + (" (admin)" if user.is_admin else ""))
        except StoreError as exc:
            print(f"imapd: {exc.text}", file=sys.stderr)
            return 1
        return 0

    return _run(_with_store(config, act))


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


def _expire_command(config: Config) -> int:
    """``imapd expire``: one expiry run now, printing how many messages were removed."""

    async def act(store: Any) -> int:
        count = await store.expire()
        print(f"expired {count} message{'' if count == 1 else 's'}")
        return 0

    return _run(_with_store(config, act))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imapd", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", help="where the SQLite store lives (default ./var)")
        p.add_argument("--config", help="TOML configuration file")

    serve = sub.add_parser("serve", help="run the IMAP server")
    data_dir(serve)
    serve.add_argument("--listen", help="HOST:PORT for IMAP (default 127.0.0.1:1143)")
    serve.add_argument("--lmtp", help="HOST:PORT or socket path for LMTP delivery")
    serve.add_argument("--notify-socket", dest="notify_socket", help="notifyd socket path")

    notifyd = sub.add_parser("notifyd", help="listen for event datagrams (Cyrus notifyd)")
    notifyd.add_argument("--socket", required=True, help="UNIX datagram socket path to bind")
    notifyd.add_argument("--method", choices=("log", "external", "jsonl"), default="log",
                         help="log: notifyd's log line; external: run --program; jsonl: JSON")
    notifyd.add_argument("--program", help="command run per event (method external)")

    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--password", required=True)
    add.add_argument("--admin", action="store_true")
    data_dir(add)
    passwd = user_sub.add_parser("passwd", help="change a user's password")
    passwd.add_argument("name")
    passwd.add_argument("--password", required=True)
    data_dir(passwd)
    delete = user_sub.add_parser("delete", help="delete a user and all their mail")
    delete.add_argument("name")
    data_dir(delete)
    lst = user_sub.add_parser("list", help="list users")
    data_dir(lst)

    mailbox = sub.add_parser("mailbox", help="mailbox settings (expiry)")
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

    expire = sub.add_parser("expire", help="remove messages past their mailbox's retention")
    data_dir(expire)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "notifyd":  # needs no store and no configuration
        from notify import notifyd as notifyd_mod

        if args.method == "external" and not args.program:
            print("imapd notifyd: --method external needs --program", file=sys.stderr)
            return 2
        return notifyd_mod.main(args.socket, args.method, args.program)
    try:
        config = _config(args)
    except ConfigError as exc:
        print(f"imapd: invalid configuration: {exc}", file=sys.stderr)
        return 2
    match args.command:
        case "serve":
            return _run(_serve(config))
        case "user":
            return _user_command(args, config)
        case "mailbox":
            return _mailbox_command(args, config)
        case "expire":
            return _expire_command(config)
    return 2
