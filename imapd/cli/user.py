"""``imapd user add|passwd|delete|list|admin`` and ``imapd quota set|get``: accounts."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from imapd.cli.admin import disconnect_user
from imapd.cli.common import Subparsers, add_data_dir, run, with_store
from imapd.config import Config

PW_FLAG_HELP = (
    "the password ('-': read one line from standard input; omitted: asked on the "
    "terminal). A password on the command line shows in ps and shell history"
)


def add_user_parser(sub: Subparsers) -> None:
    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--password", metavar="PW|-", help=PW_FLAG_HELP)
    add.add_argument("--admin", action="store_true")
    add_data_dir(add)
    passwd = user_sub.add_parser("passwd", help="change a user's password")
    passwd.add_argument("name")
    passwd.add_argument("--password", metavar="PW|-", help=PW_FLAG_HELP)
    add_data_dir(passwd)
    delete = user_sub.add_parser("delete", help="delete a user and all their mail")
    delete.add_argument("name")
    add_data_dir(delete)
    lst = user_sub.add_parser("list", help="list users")
    add_data_dir(lst)
    admin = user_sub.add_parser(
        "admin", help="grant or revoke admin rights (shared mailboxes, every ACL, SETQUOTA)"
    )
    admin.add_argument("name")
    grant = admin.add_mutually_exclusive_group(required=True)
    grant.add_argument("--grant", dest="grant", action="store_true")
    grant.add_argument("--revoke", dest="grant", action="store_false")
    add_data_dir(admin)


def add_quota_parser(sub: Subparsers) -> None:
    quota = sub.add_parser("quota", help="users' quotas (RFC 9208)")
    quota_sub = quota.add_subparsers(dest="quota_command", required=True)
    set_quota = quota_sub.add_parser(
        "set", help="set a user's limits (a limit omitted or -1: unlimited)"
    )
    set_quota.add_argument("user")
    set_quota.add_argument("--storage", type=limit, metavar="KIB", help="STORAGE in KiB")
    set_quota.add_argument("--messages", type=limit, metavar="N", help="MESSAGE count")
    add_data_dir(set_quota)
    get_quota = quota_sub.add_parser("get", help="show a user's usage and limits")
    get_quota.add_argument("user")
    add_data_dir(get_quota)


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
        raise PasswordError(
            "no password: give --password PW, or --password - to read it "
            "from standard input, or run on a terminal to be asked"
        )
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


def user_command(args: argparse.Namespace, config: Config) -> int:
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
                    ended = await disconnect_user(config, args.name)
                    print(
                        f"user {args.name} deleted"
                        + (f"; {ended} session(s) disconnected" if ended else "")
                    )
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

    return run(with_store(config, act))


def limit(text: str) -> int | None:
    """A quota limit for ``quota set``: a whole number; -1 (or omitting it) = unlimited."""
    if text == "-1":
        return None
    if not text.isdigit() or int(text) > 2**63 - 1:
        raise argparse.ArgumentTypeError(f"expected a number or -1 (unlimited), got {text!r}")
    return int(text)


def quota_command(args: argparse.Namespace, config: Config) -> int:
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
        print(
            f"{info.root.name}: storage {usage.storage // 1024} KiB of {storage},"
            f" messages {usage.messages} of {messages}"
        )
        return 0

    return run(with_store(config, act))
