"""``imapd mailbox set-expire|get-expire`` and ``imapd expire``: mailbox retention."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from imapd.cli.common import Subparsers, add_data_dir, run, with_store
from imapd.config import Config


def add_mailbox_parsers(mailbox_sub: Subparsers) -> None:
    set_expire = mailbox_sub.add_parser(
        "set-expire", help="keep a mailbox's messages DAYS days (0 or none: forever)"
    )
    set_expire.add_argument("user")
    set_expire.add_argument("mailbox")
    set_expire.add_argument("days", type=parse_days, metavar="DAYS")
    add_data_dir(set_expire)
    get_expire = mailbox_sub.add_parser("get-expire", help="show a mailbox's retention")
    get_expire.add_argument("user")
    get_expire.add_argument("mailbox")
    add_data_dir(get_expire)


def add_expire_parser(sub: Subparsers) -> None:
    expire = sub.add_parser("expire", help="remove messages past their mailbox's retention")
    add_data_dir(expire)


def parse_days(text: str) -> int | None:
    """DAYS for set-expire: a whole number of days; 0 or "none" clears the retention."""
    if text.lower() == "none":
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of days or 'none', got {text!r}")
    return int(text) or None


def mailbox_command(args: argparse.Namespace, config: Config) -> int:
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
        print(f"{args.user} {info.name}: " + (f"expire after {days} days" if days else "no expiry"))
        return 0

    return run(with_store(config, act))


def expire_command(config: Config) -> int:
    """``imapd expire``: one expiry run now, printing how many messages were removed."""

    async def act(store: Any) -> int:
        count = await store.expire()
        print(f"expired {count} message{'' if count == 1 else 's'}")
        return 0

    return run(with_store(config, act))
