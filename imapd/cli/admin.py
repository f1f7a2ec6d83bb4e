"""Admin subcommands of `imapd`: ``mailbox list|create|delete|status``, ``who``, ``kick``,
``stats``.

Owns: their argparse parsers (`add_parsers`, called by imapd/cli/app.py) and their output.
Every CLI command that writes goes through `imapd.cli.common.with_store`: it runs the same
store methods the server runs (so the same Changes reach change_log), then tells a running
server over its control socket (imapd/control/) that change_log grew, so its IMAP sessions,
IDLE and NOTIFY hear of it at once. ``who``, ``kick``, ``stats`` need the running server; the
others work with or without it.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any

from imapd import control
from imapd.cli.common import CLI_ORIGIN, fail, print_json, run, with_store
from imapd.config import Config
from store.api import Store
from store.errors import StoreError


# --- mailbox list|create|delete|status -----------------------------------------------------
def _mailbox(args: argparse.Namespace, config: Config) -> int:
    async def act(store: Store) -> int:
        try:
            user = await store.get_user(args.user)
            match args.mailbox_command:
                case "list":
                    return await _list(store, user.id, as_json=args.json)
                case "create":
                    info = await store.create_mailbox(
                        user.id, args.name, CLI_ORIGIN, tuple(args.special_use or ())
                    )
                    print(f"{args.user} {info.name}: created")
                case "delete":
                    await store.delete_mailbox(user.id, args.name, CLI_ORIGIN)
                    print(f"{args.user} {args.name}: deleted")
                case "status":
                    return await _status(store, user.id, args.name, as_json=args.json)
        except StoreError as exc:
            return fail(exc.text)
        return 0

    return run(with_store(config, act))


def _attributes(info: Any) -> list[str]:
    return [*info.special_use, *(() if info.selectable else ("\\Noselect",))]


async def _list(store: Store, user_id: int, *, as_json: bool) -> int:
    """The user's mailboxes as the user sees them (others' and shared ones with a right)."""
    infos = await store.list_mailboxes(user_id)
    if as_json:
        print_json(
            [
                {
                    "name": m.name,
                    "attributes": _attributes(m),
                    "messages": m.messages,
                    "unseen": m.unseen,
                    "subscribed": m.subscribed,
                }
                for m in infos
            ]
        )
        return 0
    for m in infos:
        attrs = " ".join(_attributes(m))
        print(f"{m.name}{' ' + attrs if attrs else ''}  ({m.messages} messages, {m.unseen} unseen)")
    return 0


async def _status(store: Store, user_id: int, name: str, *, as_json: bool) -> int:
    m = await store.get_mailbox(user_id, name)
    status: dict[str, object] = {
        "name": m.name,
        "messages": m.messages,
        "unseen": m.unseen,
        "recent": m.recent,
        "deleted": m.deleted,
        "uidnext": m.uidnext,
        "uidvalidity": m.uidvalidity,
        "highestmodseq": m.highestmodseq,
        "size": m.size,
        "retention": m.retention_days,
        "attributes": _attributes(m),
    }
    if as_json:
        print_json(status)
        return 0
    status["retention"] = f"{m.retention_days} days" if m.retention_days else "none"
    status["attributes"] = " ".join(_attributes(m)) or "-"
    for key, value in status.items():
        print(f"{key}: {value}")
    return 0


# --- who and kick (the running server, over the control socket) -----------------------------
async def _ask(
    config: Config,
    req: control.Who | control.Kick | control.Stats,
) -> dict[str, Any] | None:
    try:
        answer = await control.request(config.data_dir, req)
    except control.NoServer:
        if isinstance(req, control.Who | control.Kick):  # the registry (docs/workers.md)
            from imapd.cluster import admin as cluster_admin

            op = "who" if isinstance(req, control.Who) else "kick"
            user, session = getattr(req, "user", None), getattr(req, "session", None)
            if (found := await cluster_admin.answer(config, op, session, user)) is not None:
                return found
        fail(
            f"no server is running on {config.data_dir} (no answer on"
            f" {control.socket_path(config.data_dir)})"
        )
        return None
    except (OSError, TimeoutError, control.ProtocolError) as exc:
        fail(f"control socket: {exc or type(exc).__name__}")
        return None
    if not answer.get("ok"):
        fail(f"control socket: {answer.get('error')}")
        return None
    return answer


def _who(args: argparse.Namespace, config: Config) -> int:
    answer = asyncio.run(_ask(config, control.Who()))
    if answer is None:
        return 1
    sessions: list[dict[str, Any]] = answer.get("sessions", [])
    if args.json:
        print_json(sessions)
        return 0
    rows = [("SESSION", "USER", "PEER", "SERVICE", "MAILBOX", "SINCE", "IDLE", "CLIENT")]
    for s in sessions:
        idle = "-" if s.get("idle") is None else f"{s['idle']:.0f}s"  # None: another instance's
        idle += " IDLE" if s.get("idling") else ""
        rows.append(
            (
                s["id"],
                s["user"] or "-",
                s["peer"],
                s["service"] + ("+tls" if s.get("tls") and s["service"] == "imap" else ""),
                s["mailbox"] or "-",
                s["since"],
                idle,
                s.get("client") or "-",  # RFC 2971 ID's name and version
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _stats(args: argparse.Namespace, config: Config) -> int:
    """The running server's counters: today the authentication cache (store/authcache.py)."""
    answer = asyncio.run(_ask(config, control.Stats()))
    if answer is None:
        return 1
    cache: dict[str, Any] | None = answer.get("auth_cache")
    if args.json:
        print_json({"auth_cache": cache})
    elif cache is None:
        print("auth cache: off (auth_cache_ttl or auth_cache_size is 0)")
    else:
        for key, value in cache.items():
            print(f"auth_cache.{key}: {value}")
    return 0


async def disconnect_user(config: Config, name: str) -> int:
    """End the sessions of a deleted user on a running server (``* BYE``): none goes on
    with an account that is gone. How many ended; 0 when no server runs."""
    try:
        answer = await control.request(config.data_dir, control.Kick(user=name))
    except control.NoServer:
        return 0
    except (OSError, TimeoutError, control.ProtocolError) as exc:
        fail(f"sessions of {name} not disconnected: {exc or type(exc).__name__}")
        return 0
    return len(answer.get("kicked", ())) if answer.get("ok") else 0


def _kick(args: argparse.Namespace, config: Config) -> int:
    req = control.Kick(user=args.user) if args.user else control.Kick(session=args.session)

    async def ask() -> int:
        answer = await _ask(config, req)
        if answer is None:
            return 1
        kicked: list[str] = answer.get("kicked", [])
        if not kicked:
            return fail("no such session" if args.session else f"no session of {args.user}")
        for session_id in kicked:
            print(f"kicked {session_id}")
        return 0

    return run(ask())


# --- parsers ------------------------------------------------------------------------------------
MAILBOX_COMMANDS = frozenset({"list", "create", "delete", "status"})
COMMANDS = frozenset({"who", "kick", "stats"})


def add_parsers(
    sub: Any, mailbox_sub: Any, data_dir: Callable[[argparse.ArgumentParser], None]
) -> None:
    """The admin subcommands, on imapd/cli/app.py's subparsers (``sub``) and its ``mailbox``
    subparsers (``mailbox_sub``); ``data_dir`` adds --data-dir/--config."""
    lst = mailbox_sub.add_parser("list", help="list a user's mailboxes")
    lst.add_argument("user")
    lst.add_argument("--json", action="store_true", help="JSON output")
    data_dir(lst)
    create = mailbox_sub.add_parser("create", help="create a mailbox (and missing parents)")
    create.add_argument("user")
    create.add_argument("name")
    create.add_argument(
        "--special-use",
        action="append",
        metavar="USE",
        help="RFC 6154 use, e.g. \\\\Drafts (repeatable)",
    )
    data_dir(create)
    delete = mailbox_sub.add_parser("delete", help="delete a mailbox and its messages")
    delete.add_argument("user")
    delete.add_argument("name")
    data_dir(delete)
    status = mailbox_sub.add_parser(
        "status", help="messages, unseen, uidnext, uidvalidity, highestmodseq, size, retention"
    )
    status.add_argument("user")
    status.add_argument("name")
    status.add_argument("--json", action="store_true", help="JSON output")
    data_dir(status)

    who = sub.add_parser("who", help="list the running server's sessions")
    who.add_argument("--json", action="store_true", help="JSON output")
    data_dir(who)
    stats = sub.add_parser("stats", help="the running server's counters (auth cache)")
    stats.add_argument("--json", action="store_true", help="JSON output")
    data_dir(stats)
    kick = sub.add_parser("kick", help="disconnect a session (or all of a user's)")
    target = kick.add_mutually_exclusive_group(required=True)
    target.add_argument("session", nargs="?", help="a session id from `imapd who`")
    target.add_argument("--user", help="every session of this user")
    data_dir(kick)


def dispatch(args: argparse.Namespace, config: Config) -> int | None:
    """Run an admin subcommand; None when ``args`` is not one of them."""
    if args.command == "mailbox" and args.mailbox_command in MAILBOX_COMMANDS:
        return _mailbox(args, config)
    match args.command:
        case "who":
            return _who(args, config)
        case "kick":
            return _kick(args, config)
        case "stats":
            return _stats(args, config)
    return None
