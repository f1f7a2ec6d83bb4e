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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
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
    return 2
