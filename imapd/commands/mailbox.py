"""Authenticated-state mailbox commands: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE,
LIST, LSUB, STATUS, APPEND (RFC 3501 §6.3, RFC 6154, RFC 4315, RFC 3502), with LIST-EXTENDED
(RFC 5258), LIST-STATUS (RFC 5819), STATUS=SIZE (RFC 8438) and APPENDLIMIT (RFC 7889).

Also `mailbox_attributes` and `status_values`, pure; the LIST builders NOTIFY shares live in
imapd/replies.py (`list_response`, `oldname_response`, RFC 5465 §5.4)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from imapd import objectid
from imapd.commands import catenate
from imapd.commands.acl import listable, lookup, myrights_response, require_parent
from imapd.commands.auth import enable
from imapd.commands.base import Outcome, ok
from imapd.commands.listmatch import matches
from imapd.commands.message import check_keyword_limit
from imapd.protocol import commands as c
from imapd.protocol.errors import BadCommand, CommandRefused
from imapd.protocol.responses import Atom, MailboxName, Response, Untagged, Value
from imapd.protocol.values import SequenceSet
from imapd.replies import list_response
from store.acl import settable
from store.api import DELIMITER, MailboxInfo, NewMessage
from store.errors import MailboxNotFound
from store.newmessage import octets

if TYPE_CHECKING:
    from imapd.commands.context import Context

SPECIAL_USES = {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}


# --- CREATE / DELETE / RENAME / (UN)SUBSCRIBE --------------------------------------------
async def handle_create(session: Context, cmd: c.Create) -> Outcome:
    """CREATE mailbox [(USE (\\Drafts))] (RFC 3501 §6.3.3, RFC 6154 §5.3)."""
    user = session.require_user()
    for use in cmd.special_use:
        if use not in SPECIAL_USES:
            raise CommandRefused(f"Unknown special use {use}", "USEATTR")
    await require_parent(session, cmd.mailbox, "k")  # RFC 4314 §4
    made = await session.store.create_mailbox(user.id, cmd.mailbox, session.origin, cmd.special_use)
    return ok("CREATE completed", objectid.mailbox_code(made))  # RFC 8474 §4.1


async def handle_delete(session: Context, cmd: c.Delete) -> Outcome:
    """DELETE mailbox (RFC 3501 §6.3.4)."""
    user = session.require_user()
    if session.mailbox is not None and session.mailbox.name == cmd.mailbox:
        # RFC 3501 is silent; Dovecot and Cyrus refuse to delete the selected mailbox.
        raise CommandRefused("Cannot delete the selected mailbox", "INUSE")
    await lookup(session, cmd.mailbox, "x")  # RFC 4314 §4
    await session.store.delete_mailbox(user.id, cmd.mailbox, session.origin)
    return ok("DELETE completed")


async def handle_rename(session: Context, cmd: c.Rename) -> Outcome:
    """RENAME old new (RFC 3501 §6.3.5), children included; INBOX moves its messages."""
    user = session.require_user()
    await lookup(session, cmd.old, "x")  # RFC 4314 §4: x on the old name, k above the new
    await require_parent(session, cmd.new, "k")
    await session.store.rename_mailbox(user.id, cmd.old, cmd.new, session.origin)
    return ok("RENAME completed")


async def handle_subscribe(session: Context, cmd: c.Subscribe | c.Unsubscribe) -> Outcome:
    """SUBSCRIBE / UNSUBSCRIBE (RFC 3501 §6.3.6-7)."""
    user = session.require_user()
    subscribe = isinstance(cmd, c.Subscribe)
    if subscribe:
        await lookup(session, cmd.mailbox, "l")  # RFC 4314 §4; UNSUBSCRIBE needs nothing
    await session.store.set_subscribed(user.id, cmd.mailbox, subscribe, session.origin)
    return ok(f"{'SUBSCRIBE' if subscribe else 'UNSUBSCRIBE'} completed")


# --- LIST / LSUB -----------------------------------------------------------------------
def _parents(names: Iterable[str]) -> set[str]:
    """Every name that has an inferior among ``names`` (one pass, not a scan per name)."""
    out: set[str] = set()
    for name in names:
        parts = name.split(DELIMITER)
        out.update(DELIMITER.join(parts[:i]) for i in range(1, len(parts)))
    return out


def mailbox_attributes(
    info: MailboxInfo | None,
    *,
    children: bool | None = None,
    subscribed: bool | None = None,
    special_use: bool = True,
    extended: bool = False,
) -> tuple[str, ...]:
    """A LIST response's attributes, in one order (that of the RFC 5258 and 6154 examples):
    special uses (RFC 6154 §2, when ``special_use``), ``\\HasChildren``/``\\HasNoChildren``
    (RFC 5258 §4; None: not computed), ``\\Subscribed`` (RFC 5258 §3.1; None: not asked),
    then ``\\NonExistent`` (``info`` None: the name is not a mailbox, RFC 5258 §3; it implies
    \\Noselect) or ``\\Noselect`` for a placeholder left by DELETE of a parent (RFC 3501
    §6.3.4). In an ``extended`` LIST such a placeholder is ``\\NonExistent`` too: it is a
    hierarchy name, not a mailbox (Dovecot does the same). Pure, for NOTIFY too."""
    attrs: list[str] = []
    if info is not None and special_use:
        attrs.extend(info.special_use)
    if children is not None:
        attrs.append("\\HasChildren" if children else "\\HasNoChildren")
    if subscribed:
        attrs.append("\\Subscribed")
    if info is None or (extended and not info.selectable):
        attrs.append("\\NonExistent")
    elif not info.selectable:
        attrs.append("\\Noselect")
    return tuple(attrs)


#: RFC 5258 §6 list-select-base-opt: the options CHILDINFO reports, in this order.
_BASE_OPTS = ("SUBSCRIBED", "SPECIAL-USE")


async def handle_list(session: Context, cmd: c.List) -> Outcome:
    """LIST / LSUB reference pattern (RFC 3501 §6.3.8-9, RFC 3348 CHILDREN); LIST-EXTENDED
    (RFC 5258): selection options SUBSCRIBED, REMOTE (no remote mailboxes here),
    RECURSIVEMATCH, SPECIAL-USE (RFC 6154 §3); return options SUBSCRIBED, CHILDREN,
    SPECIAL-USE, STATUS (RFC 5819: a ``* STATUS`` after each selectable match), MYRIGHTS
    (RFC 8440: a ``* MYRIGHTS`` after each existing match); several patterns. Examples:
    RFC 5258 §5, tests/transcripts/list_*.imap.

    A plain LIST always carries child and special-use attributes (CHILDREN is advertised);
    an extended one only what its options ask for, as in the RFC 5258 and 6154 examples,
    except that a placeholder (\\NonExistent) always says \\HasChildren or \\HasNoChildren
    without RECURSIVEMATCH, as RFC 5258 §3.5 asks of servers with such names.
    RECURSIVEMATCH returns every matching name with a descendant meeting the selection
    criteria that this same command does not return, with CHILDINFO: RFC 5258 §3.5 "servers
    SHOULD suppress redundant CHILDINFO responses", so a parent whose matching descendants
    are all listed gets no CHILDINFO (and, if it does not meet the criteria itself, no
    response: the "*2" case of example 9 without its optional "baz2" and "qux2")."""
    user = session.require_user()
    if cmd.lsub:
        return await _lsub(session, user.id, cmd)
    if not cmd.extended and cmd.patterns == ("",):
        # RFC 3501 §6.3.8: an empty pattern asks for the delimiter and the root; an extended
        # LIST never does this (RFC 5258 §3).
        head, sep, _ = cmd.reference.partition(DELIMITER)
        return ok("LIST completed", None, list_response(("\\Noselect",), head + sep))
    selection = set(cmd.selection)
    asked = selection | set(cmd.return_opts)
    mailboxes = listable(await session.store.list_mailboxes(user.id))  # RFC 4314 §4: l
    by_name = {m.name: m for m in mailboxes}
    subs: set[str] = set()
    if "SUBSCRIBED" in asked:
        subs = set(await session.store.subscriptions(user.id))
    # RFC 5258 §3: in an extended LIST an empty pattern is ignored for matching.
    patterns = [_join(cmd.reference, p) for p in cmd.patterns if p or not cmd.extended]
    universe = set(by_name) | (subs if "SUBSCRIBED" in selection else set())
    meeting = {n for n in universe if _meets(n, by_name.get(n), selection, subs)}
    with_matching_child: set[str] = set()
    if "RECURSIVEMATCH" in selection:  # descendants meeting the criteria but not returned
        unlisted = (n for n in meeting if not any(matches(pat, n) for pat in patterns))
        with_matching_child = _parents(unlisted)
    has_children = _parents(by_name)
    show_children = not cmd.extended or "CHILDREN" in asked
    show_special = not cmd.extended or "SPECIAL-USE" in asked
    childinfo: tuple[Value, ...] = tuple(o for o in _BASE_OPTS if o in selection)
    responses: list[Response] = []
    for name in sorted(meeting | with_matching_child, key=_sort_key):
        if not any(matches(pat, name) for pat in patterns):
            continue
        info = by_name.get(name)
        placeholder = info is not None and not info.selectable
        children = show_children or (placeholder and "RECURSIVEMATCH" not in selection)
        attrs = mailbox_attributes(
            info,
            children=name in has_children if children else None,
            subscribed=name in subs if "SUBSCRIBED" in asked else None,
            special_use=show_special,
            extended=cmd.extended,
        )
        status = cmd.status_items is not None and name in meeting and info and info.selectable
        if status and info and "r" not in info.rights:
            # RFC 5819 §2: a mailbox whose status cannot be given gets no STATUS, and its
            # LIST says \Noselect (for this client it is not selectable either).
            attrs, status = (*attrs, "\\Noselect"), False
        extended = (("CHILDINFO", childinfo),) if name in with_matching_child else ()
        responses.append(list_response(attrs, name, extended))
        if "MYRIGHTS" in cmd.return_opts and name in meeting and info and info.selectable:
            # RFC 8440 §3: after its LIST, for a mailbox meeting the selection criteria;
            # none for a \NonExistent name (a placeholder or a subscription) or a parent
            # listed only for CHILDINFO (§4, both examples).
            responses.append(myrights_response(info))
        if status and info and cmd.status_items is not None:
            responses.append(await status_response(session, info, cmd.status_items))
    return ok("LIST completed", None, *responses)


def _meets(name: str, info: MailboxInfo | None, selection: set[str], subs: set[str]) -> bool:
    """RFC 5258 §3: the selection criteria, every option at once (REMOTE changes nothing)."""
    if "SUBSCRIBED" in selection and name not in subs:
        return False
    if "SPECIAL-USE" in selection and (info is None or not info.special_use):
        return False
    return info is not None or "SUBSCRIBED" in selection


async def _lsub(session: Context, user_id: int, cmd: c.List) -> Outcome:
    """LSUB (RFC 3501 §6.3.9): subscribed names; a parent matched by % whose child is
    subscribed comes back \\Noselect."""
    mailboxes = listable(await session.store.list_mailboxes(user_id))
    by_name = {m.name: m for m in mailboxes}
    subs = set(await session.store.subscriptions(user_id))
    patterns = [_join(cmd.reference, p) for p in cmd.patterns]
    responses: list[Response] = []
    seen: set[str] = set()
    for name in sorted(subs):
        for pat in patterns:
            if matches(pat, name) and name not in seen:
                seen.add(name)
                info = by_name.get(name)
                attrs: tuple[str, ...] = ()
                if info is not None and not info.selectable:
                    attrs = ("\\Noselect",)
                responses.append(list_response(attrs, name, kind="LSUB"))
            elif "%" in pat:
                parts = name.split(DELIMITER)
                for i in range(1, len(parts)):
                    parent = DELIMITER.join(parts[:i])
                    if parent not in subs and parent not in seen and matches(pat, parent):
                        seen.add(parent)
                        responses.append(list_response(("\\Noselect",), parent, kind="LSUB"))
    return ok("LSUB completed", None, *responses)


def _sort_key(name: str) -> tuple[int, str]:
    return (0 if name == "INBOX" or name.startswith("INBOX/") else 1, name)


def _join(reference: str, pattern: str) -> str:
    """RFC 3501 §6.3.8: the reference and the pattern are joined as they are, as Dovecot
    and Cyrus do ("Projects" + "*" matches "Projects" and all below it)."""
    return reference + pattern


# --- STATUS ---------------------------------------------------------------------------
STATUS_ITEMS = (
    "MESSAGES",
    "RECENT",
    "UIDNEXT",
    "UIDVALIDITY",
    "UNSEEN",
    "DELETED",
    "SIZE",
    "HIGHESTMODSEQ",
    "APPENDLIMIT",
)


def status_values(
    info: MailboxInfo,
    items: tuple[str, ...],
    appendlimit: int | None = None,
    deleted_storage: int = 0,
) -> tuple[Value, ...]:
    """``(ITEM value ...)`` of a STATUS response. SIZE: RFC 8438 §3; DELETED: RFC 9051
    §6.3.11; APPENDLIMIT: RFC 7889 §3, None is NIL (no limit); DELETED-STORAGE: RFC 9208
    §4.1.4, in KiB like the STORAGE quota resource."""
    values: dict[str, Value] = {
        "MESSAGES": info.messages,
        "RECENT": info.recent,
        "UIDNEXT": info.uidnext,
        "UIDVALIDITY": info.uidvalidity,
        "UNSEEN": info.unseen,
        "SIZE": info.size,
        "DELETED": info.deleted,
        "HIGHESTMODSEQ": info.highestmodseq,
        "APPENDLIMIT": appendlimit,
        "DELETED-STORAGE": deleted_storage // 1024,
        "MAILBOXID": objectid.mailbox_value(info),  # RFC 8474 §4.3
    }
    out: list[Value] = []
    for item in items:
        if item not in values:
            raise BadCommand(f"Unknown STATUS item {item}")
        out += [Atom(item), values[item]]
    return tuple(out)


async def handle_status(session: Context, cmd: c.Status) -> Outcome:
    """STATUS mailbox (items) (RFC 3501 §6.3.10)."""
    items = tuple(i.upper() for i in cmd.items)
    info = await lookup(session, cmd.mailbox, "r")  # RFC 4314 §4
    if not info.selectable:
        raise CommandRefused("Mailbox is not selectable", "NONEXISTENT")
    owed: list[Response] = []
    if "HIGHESTMODSEQ" in items:
        owed = enable(session, "CONDSTORE")  # RFC 7162 §3.1: a CONDSTORE enabling command
    return ok("STATUS completed", None, *owed, await status_response(session, info, items))


async def status_response(session: Context, info: MailboxInfo, items: tuple[str, ...]) -> Untagged:
    """``* STATUS name (items)``; APPENDLIMIT is the literal size limit (RFC 7889 §3)."""
    deleted = 0
    if "DELETED-STORAGE" in items:
        deleted = await session.store.deleted_size(info.id)
    values = status_values(info, items, session.config.limits.max_literal_size, deleted)
    return Untagged((Atom("STATUS"), MailboxName(info.name), values))


# --- APPEND ---------------------------------------------------------------------------
async def handle_append(session: Context, cmd: c.Append) -> Outcome:
    """APPEND mailbox [flags] [date-time] literal (RFC 3501 §6.3.11; MULTIAPPEND RFC 3502;
    APPENDUID RFC 4315; ``UTF8 (~{n}...)`` after ENABLE UTF8=ACCEPT, RFC 6855 §4).

    APPENDLIMIT (RFC 7889) is the literal limit: the framer answers a larger synchronizing
    literal with ``NO [TOOBIG]`` before it is sent. 8-bit header octets are stored as they
    come, with or without UTF8=ACCEPT (lenient, as Dovecot and crymap are)."""
    # CATENATE (RFC 4469, imapd/commands/catenate.py): the messages' octets, built first.
    if any(isinstance(m.content, c.Catenation) for m in cmd.messages):
        # A missing target answers NO [TRYCREATE] (RFC 3501 6.3.11, a MUST) before any
        # URL is read: a bad URL must not hide it (imaptest's catenate expects this order).
        await lookup(session, cmd.mailbox, "i", target=True)
    async with catenate.assembled(session, cmd.messages) as contents:
        return await _append(session, cmd, contents)


async def _append(session: Context, cmd: c.Append, contents: list[bytes | Path]) -> Outcome:
    user = session.require_user()
    limit = session.config.limits.max_literal_size
    for content in contents:
        size = octets(content)
        if not size:
            raise BadCommand("Empty message")
        if size > limit:  # the framer refuses these first; kept as the rule
            raise CommandRefused(f"Message larger than APPENDLIMIT {limit}", "TOOBIG")
    # RFC 4314 §4: i on the target; flags without their right are dropped, not refused.
    # Both are the store's, in its write transaction (`need`); the handler looks the
    # mailbox up first only for the keyword limit (issue 17: no read before each APPEND).
    messages = [  # a big literal's octets stay in their spool file: the store reads it
        NewMessage(content, m.flags, m.date)
        for m, content in zip(cmd.messages, contents, strict=True)
    ]
    added = [f for m in messages for f in m.flags if not f.startswith("\\")]
    mailbox: str | int = cmd.mailbox
    if added:
        target = await lookup(session, cmd.mailbox, "i", target=True)
        mailbox = target.id
        messages = [
            NewMessage(m.content, settable(m.flags, target.rights), m.internaldate)
            for m in messages
        ]
        added = [f for m in messages for f in m.flags if not f.startswith("\\")]
        view = session.view
        known = (
            view.keywords
            if view is not None and view.mailbox_id == target.id
            else await session.store.mailbox_keywords(target.id)
        )
        check_keyword_limit(session, known, added)
    try:
        # The store checks "i" in its write transaction (a revoke since `lookup` is
        # honoured: NO [NOPERM]) and drops the flags the rights then do not allow.
        result = await session.store.append(user.id, mailbox, messages, session.origin, need="i")
    except MailboxNotFound as exc:
        raise CommandRefused(exc.text, "TRYCREATE") from exc
    uids = SequenceSet.from_values(result.uids)
    return Outcome(text="APPEND completed", code=f"APPENDUID {result.mailbox.uidvalidity} {uids}")
