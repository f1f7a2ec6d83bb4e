"""Authenticated-state mailbox commands: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE,
LIST, LSUB, STATUS, APPEND (RFC 3501 §6.3, RFC 6154, RFC 4315, RFC 3502)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

from imapd.commands.base import Outcome, ok
from imapd.protocol import commands as c
from imapd.protocol.errors import BadCommand, CommandRefused
from imapd.protocol.responses import Atom, MailboxName, Response, Untagged, Value
from imapd.protocol.values import SequenceSet
from store.api import DELIMITER, MailboxInfo, NewMessage
from store.errors import MailboxNotFound

if TYPE_CHECKING:
    from imapd.session import Session

SPECIAL_USES = {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}


# --- CREATE / DELETE / RENAME / (UN)SUBSCRIBE --------------------------------------------
async def handle_create(session: Session, cmd: c.Create) -> Outcome:
    """CREATE mailbox [(USE (\\Drafts))] (RFC 3501 §6.3.3, RFC 6154 §5.3)."""
    user = session.require_user()
    for use in cmd.special_use:
        if use not in SPECIAL_USES:
            raise CommandRefused(f"Unknown special use {use}", "USEATTR")
    await session.store.create_mailbox(user.id, cmd.mailbox, session.origin, cmd.special_use)
    return ok("CREATE completed")


async def handle_delete(session: Session, cmd: c.Delete) -> Outcome:
    """DELETE mailbox (RFC 3501 §6.3.4)."""
    user = session.require_user()
    if session.mailbox is not None and session.mailbox.name == cmd.mailbox:
        # RFC 3501 is silent; Dovecot and Cyrus refuse to delete the selected mailbox.
        raise CommandRefused("Cannot delete the selected mailbox", "INUSE")
    await session.store.delete_mailbox(user.id, cmd.mailbox, session.origin)
    return ok("DELETE completed")


async def handle_rename(session: Session, cmd: c.Rename) -> Outcome:
    """RENAME old new (RFC 3501 §6.3.5), children included; INBOX moves its messages."""
    user = session.require_user()
    await session.store.rename_mailbox(user.id, cmd.old, cmd.new, session.origin)
    return ok("RENAME completed")


async def handle_subscribe(session: Session, cmd: c.Subscribe | c.Unsubscribe) -> Outcome:
    """SUBSCRIBE / UNSUBSCRIBE (RFC 3501 §6.3.6-7)."""
    user = session.require_user()
    subscribe = isinstance(cmd, c.Subscribe)
    await session.store.set_subscribed(user.id, cmd.mailbox, subscribe, session.origin)
    return ok(f"{'SUBSCRIBE' if subscribe else 'UNSUBSCRIBE'} completed")


# --- LIST / LSUB -----------------------------------------------------------------------
@lru_cache(maxsize=256)
def pattern_regex(pattern: str) -> re.Pattern[str]:
    """RFC 3501 §6.3.8: ``*`` matches anything, ``%`` anything but the delimiter."""
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append(f"[^{re.escape(DELIMITER)}]*")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def matches(pattern: str, name: str) -> bool:
    if pattern_regex(pattern).fullmatch(name):
        return True
    # INBOX is case-insensitive, also as the first level of a pattern (RFC 3501 §5.1).
    if name == "INBOX" or name.startswith("INBOX" + DELIMITER):
        head, sep, rest = pattern.partition(DELIMITER)
        if head.upper() == "INBOX":
            return bool(pattern_regex("INBOX" + sep + rest).fullmatch(name))
    return False


def _children(names: set[str], name: str) -> bool:
    prefix = name + DELIMITER
    return any(n.startswith(prefix) for n in names)


def _list_attrs(info: MailboxInfo | None, has_children: bool, *, subscribed: bool | None
                ) -> tuple[Value, ...]:
    attrs: list[str] = []
    if info is None:
        attrs.append("\\NonExistent" if subscribed is not None else "\\Noselect")
    elif not info.selectable:
        attrs.append("\\Noselect")
    attrs.append("\\HasChildren" if has_children else "\\HasNoChildren")
    if subscribed:
        attrs.append("\\Subscribed")
    if info is not None:
        attrs.extend(info.special_use)
    return tuple(Atom(a) for a in attrs)


def _list_line(kind: str, attrs: tuple[Value, ...], name: str) -> Untagged:
    return Untagged((Atom(kind), attrs, DELIMITER, MailboxName(name)))


async def handle_list(session: Session, cmd: c.List) -> Outcome:
    """LIST / LSUB reference pattern (RFC 3501 §6.3.8-9, RFC 3348 CHILDREN)."""
    user = session.require_user()
    if cmd.selection or cmd.return_opts or cmd.status_items is not None:
        raise BadCommand("LIST-EXTENDED options are not supported")
    kind = "LSUB" if cmd.lsub else "LIST"
    responses: list[Response] = []
    if not cmd.lsub and cmd.patterns == ("",):
        # RFC 3501 §6.3.8: an empty pattern asks for the delimiter and the root.
        head, sep, _ = cmd.reference.partition(DELIMITER)
        root = head + sep
        responses.append(_list_line("LIST", (Atom("\\Noselect"),), root))
        return ok("LIST completed", None, *responses)
    mailboxes = await session.store.list_mailboxes(user.id)
    by_name = {m.name: m for m in mailboxes}
    names = set(by_name)
    patterns = [_join(cmd.reference, p) for p in cmd.patterns]
    if cmd.lsub:
        subscribed = await session.store.subscriptions(user.id)
        subs = set(subscribed)
        seen: set[str] = set()
        for name in sorted(subs):
            for pat in patterns:
                if matches(pat, name) and name not in seen:
                    seen.add(name)
                    info = by_name.get(name)
                    attrs: tuple[Value, ...] = ()
                    if info is not None and not info.selectable:
                        attrs = (Atom("\\Noselect"),)
                    responses.append(_list_line(kind, attrs, name))
                elif "%" in pat:
                    # A parent matched by % whose child is subscribed: \Noselect (§6.3.9).
                    parts = name.split(DELIMITER)
                    for i in range(1, len(parts)):
                        parent = DELIMITER.join(parts[:i])
                        if parent not in subs and parent not in seen and matches(pat, parent):
                            seen.add(parent)
                            responses.append(_list_line(kind, (Atom("\\Noselect"),), parent))
        return ok(f"{kind} completed", None, *responses)
    for name in sorted(names, key=_sort_key):
        if any(matches(pat, name) for pat in patterns):
            info = by_name[name]
            responses.append(
                _list_line(kind, _list_attrs(info, _children(names, name), subscribed=None), name)
            )
    return ok(f"{kind} completed", None, *responses)


def _sort_key(name: str) -> tuple[int, str]:
    return (0 if name == "INBOX" or name.startswith("INBOX/") else 1, name)


def _join(reference: str, pattern: str) -> str:
    """RFC 3501 §6.3.8: the reference and the pattern are joined as they are, as Dovecot
    and Cyrus do ("Projects" + "*" matches "Projects" and all below it)."""
    return reference + pattern


# --- STATUS ---------------------------------------------------------------------------
STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE",
                "HIGHESTMODSEQ")


def status_values(info: MailboxInfo, items: tuple[str, ...]) -> tuple[Value, ...]:
    values = {
        "MESSAGES": info.messages,
        "RECENT": info.recent,
        "UIDNEXT": info.uidnext,
        "UIDVALIDITY": info.uidvalidity,
        "UNSEEN": info.unseen,
        "SIZE": info.size,
        "HIGHESTMODSEQ": info.highestmodseq,
    }
    out: list[Value] = []
    for item in items:
        if item not in values:
            raise BadCommand(f"Unknown STATUS item {item}")
        out += [Atom(item), values[item]]
    return tuple(out)


async def handle_status(session: Session, cmd: c.Status) -> Outcome:
    """STATUS mailbox (items) (RFC 3501 §6.3.10)."""
    user = session.require_user()
    items = tuple(i.upper() for i in cmd.items)
    info = await session.store.get_mailbox(user.id, cmd.mailbox)
    if not info.selectable:
        raise CommandRefused("Mailbox is not selectable", "NONEXISTENT")
    values = status_values(info, items)
    return ok("STATUS completed", None,
              Untagged((Atom("STATUS"), MailboxName(info.name), values)))


# --- APPEND ---------------------------------------------------------------------------
async def handle_append(session: Session, cmd: c.Append) -> Outcome:
    """APPEND mailbox [flags] [date-time] literal (RFC 3501 §6.3.11; MULTIAPPEND RFC 3502;
    APPENDUID RFC 4315)."""
    user = session.require_user()
    messages = [NewMessage(m.content, m.flags, m.date) for m in cmd.messages]
    for m in cmd.messages:
        if not m.content:
            raise BadCommand("Empty message")
    try:
        result = await session.store.append(user.id, cmd.mailbox, messages, session.origin)
    except MailboxNotFound as exc:
        raise CommandRefused(exc.text, "TRYCREATE") from exc
    uids = SequenceSet.from_values(result.uids)
    return Outcome(
        text="APPEND completed", code=f"APPENDUID {result.mailbox.uidvalidity} {uids}"
    )
