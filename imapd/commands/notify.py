"""NOTIFY (RFC 5465): the command. Delivery is the session's (imapd/listening.py), the
registration's rendering pure (imapd/rfc5465.py).

``handle_notify`` validates the whole command before it replaces the previous registration
(RFC 5465 §3.1): unsupported events are ``NO [BADEVENT (every supported event)]`` (§3.1,
§8; docs/notify.md "Unsupported events"); the grammar and pairing rules were checked by the
parser (BAD, §5, §6.1, §8); a request naming too many mailboxes is
``NO [NOTIFICATIONOVERFLOW]`` (§3.1). Then one read of the user's mailboxes and
subscriptions sets up the facts `NotifyState` keeps current from the feed, the NOTIFY
subscription is routed (the user's own mailboxes by owner name; other users' and
shared ones by id, only those the user may list: README "Access control"), and with
``STATUS`` the initial STATUS responses go out (§3.1). The dispatcher's flush after the
command is the implicit NOOP (§3.1).

"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from imapd.commands.base import Outcome, ok
from imapd.protocol import commands as c
from imapd.protocol.errors import CommandRefused
from imapd.protocol.responses import Response
from imapd.protocol.values import FetchAtt
from imapd.replies import list_response
from imapd.rfc5465 import STATUS_NEW, Foreign, NotifyState, status_response
from notify.bus import NAMES, SHARED_SERVER_METADATA
from notify.filters import MESSAGE_EVENTS, SUPPORTED_EVENTS, compile_groups
from store.api import MailboxInfo
from store.changes import Counts
from store.namespace import resolve

if TYPE_CHECKING:
    from imapd.commands.context import Context

#: RFC 5465 §3.1: more mailbox names than this in one NOTIFY is refused as too expensive.
MAX_NAMED_MAILBOXES = 1000
#: FETCH items rendered from a change's MessageFacts (no store read on the hot path).
_FROM_FACTS = frozenset({"UID", "FLAGS", "MODSEQ", "RFC822.SIZE", "INTERNALDATE"})


async def handle_notify(session: Context, cmd: c.Notify) -> Outcome:
    """NOTIFY NONE / NOTIFY SET [STATUS] (filter events) ... (RFC 5465 §3.1, §8).
    Examples: RFC 5465 §3.1; tests/transcripts/notify_*.imap."""
    user = session.require_user()
    state: NotifyState = session.notify
    if cmd.groups is None:  # §3.1; docs/notify.md "NOTIFY NONE": then plain RFC 3501 reporting
        state.stop()
        return ok("NOTIFY completed")
    unknown = {e.name for g in cmd.groups for e in g.events or () if e.name not in SUPPORTED_EVENTS}
    if unknown:  # RFC 5465 §3.1, §8: the list names what we support, not what was refused
        raise CommandRefused(
            f"Unsupported event {min(unknown)}", f"BADEVENT ({' '.join(SUPPORTED_EVENTS)})"
        )
    if sum(len(g.mailboxes) for g in cmd.groups) > MAX_NAMED_MAILBOXES:
        raise CommandRefused("Too many mailboxes to watch", "NOTIFICATIONOVERFLOW")  # RFC 5465 §3.1
    registration = compile_groups(
        (g.filter, g.mailboxes, None if g.events is None else tuple(e.name for e in g.events))
        for g in cmd.groups
    )
    fetch_atts: tuple[FetchAtt, ...] = ()
    for g in cmd.groups:
        if g.filter.startswith("selected"):
            for e in g.events or ():
                fetch_atts += e.fetch_atts
    # Replace (RFC 5465 §3.1): subscribe first, then read, so no change between falls in the gap.
    state.stop()
    state.viewer = user.name
    state.admin = user.is_admin
    sub = session.subscribe(session.config.notify_queue_limit)
    topics = set()
    if registration.reaches_other_owners:  # mailboxes created or renamed into view
        topics.add(NAMES)
    if "ServerMetadataChange" in registration.wants:  # /shared server entries (RFC 5465 §5.7)
        topics.add(SHARED_SERVER_METADATA)
    sub.watch(users=frozenset({user.name}), topics=frozenset(topics))
    sub.covered_by = session.subscription  # the selected mailbox's message events: §6.1
    state.sub = sub
    state.registration = registration
    state.status = cmd.status
    session.notify_fetch_atts = tuple(dict.fromkeys(fetch_atts))  # each once (§5.2)
    mailboxes = await session.store.list_mailboxes(user.id)
    # Names interned: the listeners of one user keep one copy of each (issue 17, memory).
    state.subscribed = {sys.intern(n) for n in await session.store.subscriptions(user.id)}
    responses: list[Response] = []
    listable = [m for m in mailboxes if "l" in m.rights]
    state.names = {sys.intern(m.name): m.selectable for m in listable}
    state.special_use = {m.name: m.special_use for m in listable if m.special_use}
    named = {n for g in cmd.groups for n in g.mailboxes}
    state.rights = {
        (m.owner, _local(user.name, m)): m.rights for m in mailboxes if m.owner != user.name
    }
    for m in listable:
        if m.owner == user.name:
            continue
        facts = state.facts(m.owner, m.name)
        if registration.events_for(facts):
            state.foreign[m.id] = Foreign(m.owner, _local(user.name, m), m.name, m.rights)
            if m.name in named and "r" not in m.rights:  # RFC 5465 §3.1 (c)
                responses.append(list_response(("\\NoAccess",), m.name))
                state.no_access.add(m.name)
    if state.foreign:
        sub.watch(mailboxes=frozenset(state.foreign))
    if cmd.status:  # RFC 5465 §3.1
        condstore = "CONDSTORE" in session.enabled
        selected = session.view.mailbox_id if session.view is not None else None
        for m in listable:
            if not m.selectable or "r" not in m.rights or m.id == selected:
                continue
            events = registration.events_for(state.facts(m.owner, m.name)) & MESSAGE_EVENTS
            if not events:
                continue
            items = STATUS_NEW if events & {"MessageNew", "MessageExpunge"} else ("UIDVALIDITY",)
            # RFC 5465 §3.1: with FlagChange or AnnotationChange the STATUS carries
            # UIDVALIDITY and HIGHESTMODSEQ because the server supports CONDSTORE (we always
            # do), whether or not this client enabled it; the later STATUS of §5.1-§5.3
            # depend on the client's enabling (RFC 5465 §5.1, §5.2, §5.3).
            modseq = condstore or bool(events & {"FlagChange", "AnnotationChange"})
            responses.append(status_response(m.name, m.ref, _counts(m), items, modseq))
    return ok("NOTIFY completed", None, *responses)


def _local(viewer: str, m: MailboxInfo) -> str:
    where = resolve(viewer, m.name)
    return where.name if where is not None else m.name


def _counts(m: MailboxInfo) -> Counts:
    return Counts(m.messages, m.unseen, m.uidnext, m.highestmodseq, m.size, m.deleted)
