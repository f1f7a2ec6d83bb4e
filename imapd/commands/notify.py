"""NOTIFY (RFC 5465): the command, and the store-side steps of delivery.

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

``notify_updates`` turns the NOTIFY queue into responses (overflow: ``* OK
[NOTIFICATIONOVERFLOW]`` and NOTIFY NONE, §5.8); ``new_message_fetches`` renders the FETCH of
MessageNew fetch-atts in the selected mailbox (§5.2), from the change's facts when the
attributes are flags, UID, size or dates, otherwise by a UID FETCH (which sets ``\\Seen`` for
a non-PEEK body section as any FETCH would, docs/notify.md "Non-PEEK fetch attributes").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imapd.commands.base import Outcome, ok
from imapd.commands.mailbox import list_response
from imapd.fetch import imap_datetime
from imapd.notify_session import OVERFLOW, STATUS_NEW, Foreign, NotifyState, status_response
from imapd.protocol import commands as c
from imapd.protocol.errors import CommandRefused
from imapd.protocol.responses import Atom, Response, Serialized, Untagged, Value
from imapd.protocol.serializer import serialize
from imapd.protocol.values import FetchAtt, SequenceSet
from notify.bus import NAMES, SHARED_SERVER_METADATA
from notify.filters import MESSAGE_EVENTS, SUPPORTED_EVENTS, MailboxFacts, compile_groups
from store.acl import effective
from store.api import MailboxInfo
from store.changes import Counts, MessageFacts
from store.errors import MailboxNotFound
from store.namespace import resolve, visible_name

if TYPE_CHECKING:
    from imapd.selected import SelectedView
    from imapd.session import Session

#: RFC 5465 §3.1: more mailbox names than this in one NOTIFY is refused as too expensive.
MAX_NAMED_MAILBOXES = 1000
#: FETCH items rendered from a change's MessageFacts (no store read on the hot path).
_FROM_FACTS = frozenset({"UID", "FLAGS", "MODSEQ", "RFC822.SIZE", "INTERNALDATE"})


async def handle_notify(session: Session, cmd: c.Notify) -> Outcome:
    """NOTIFY NONE / NOTIFY SET [STATUS] (filter events) ... (RFC 5465 §3.1, §8).
    Examples: RFC 5465 §3.1; tests/transcripts/notify_*.imap."""
    user = session.require_user()
    state: NotifyState = session.notify
    if cmd.groups is None:  # §3.1; docs/notify.md "NOTIFY NONE": then plain RFC 3501 reporting
        state.stop()
        return ok("NOTIFY completed")
    unknown = {e.name for g in cmd.groups for e in g.events or () if e.name not in SUPPORTED_EVENTS}
    if unknown:  # RFC 5465 §3.1, §8: the list names what we support, not what was refused
        raise CommandRefused(f"Unsupported event {min(unknown)}",
                             f"BADEVENT ({' '.join(SUPPORTED_EVENTS)})")
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
    sub = session.server.bus.subscribe(session.config.notify_queue_limit)
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
    session.notify_fetch_atts = fetch_atts
    mailboxes = await session.store.list_mailboxes(user.id)
    state.subscribed = set(await session.store.subscriptions(user.id))
    responses: list[Response] = []
    listable = [m for m in mailboxes if "l" in m.rights]
    state.names = {m.name: m.selectable for m in listable}
    state.special_use = {m.name: m.special_use for m in listable if m.special_use}
    named = {n for g in cmd.groups for n in g.mailboxes}
    state.rights = {(m.owner, _local(user.name, m)): m.rights
                    for m in mailboxes if m.owner != user.name}
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


async def notify_updates(session: Session) -> list[Response]:
    """The NOTIFY queue as responses, in commit order; NOTIFICATIONOVERFLOW and NOTIFY NONE
    when the queue overflowed or the client stopped reading (RFC 5465 §5.8, §9)."""
    state: NotifyState = session.notify
    sub = state.sub
    if sub is None or state.registration is None:
        return []
    transport = session.writer.transport
    if sub.overflow or transport.get_write_buffer_size() > session.config.notify_write_high_water:
        state.stop()
        return [OVERFLOW]
    changes = sub.drain()
    if not changes:
        return []
    selected = session.view.mailbox_id if session.view is not None else None
    condstore = "CONDSTORE" in session.enabled
    out: list[Response] = []
    for change in changes:
        out += state.render(change, session=session.id, selected=selected, condstore=condstore)
        if state.recheck:  # rights changed: read them before the next change is rendered
            out += await _recheck(session, state)
    if state.rewatch:  # other owners' mailboxes that came into view
        state.rewatch = False
        sub.watch(mailboxes=frozenset(state.foreign))
    return out


async def _recheck(session: Session, state: NotifyState) -> list[Response]:
    """RFC 5465 §5.4, §5.9: an ACL changed on another owner's mailbox: read the user's rights on
    it again (rare: one read per change and listening session), start or stop watching it,
    and say so with a LIST: ``\\NoAccess`` when ``l`` was lost, without when it is back."""
    user = session.require_user()
    registration = state.registration
    assert registration is not None and state.sub is not None
    out: list[Response] = []
    pending, state.recheck = state.recheck, set()
    for owner, local, mailbox_id in sorted(pending):
        name = visible_name(user.name, owner, local)
        facts = MailboxFacts(owner, name, False, name in state.subscribed)
        named = bool(registration.events_for(facts))
        if not named and not registration.reaches_other_owners:
            continue  # no group names it nor may name its future children: no read
        try:
            info: MailboxInfo | None = await session.store.get_mailbox(user.id, name)
        except MailboxNotFound:
            info = None
        if info is None or info.id != mailbox_id:
            # Renamed or deleted by a later change of the same batch (the store is ahead
            # of the feed): keep its rights under the name it had, for that rename to
            # carry along (RFC 5465 §5.4) or the deletion to drop; the later change tells the rest.
            entries = dict(await session.store.acl_entries(mailbox_id))
            rights = effective(user.name, owner, entries, is_admin=user.is_admin)
            if entries and rights:
                state.rights[(owner, local)] = rights
            else:
                state.rights.pop((owner, local), None)
            continue
        if info.rights:
            state.rights[(owner, local)] = info.rights  # what its children will inherit
        else:
            state.rights.pop((owner, local), None)
        if not named:
            continue
        if "l" in info.rights:
            known = state.foreign.get(info.id)
            state.foreign[info.id] = Foreign(owner, local, name, info.rights)
            state.names[name] = info.selectable
            if known is None or name in state.no_access:
                state.no_access.discard(name)
                out.append(list_response(state.list_attrs(name), name))
        else:
            gone = [i for i, f in state.foreign.items() if f.name == name]
            for i in gone:
                del state.foreign[i]
            state.names.pop(name, None)
            if gone:
                state.no_access.add(name)
                out.append(list_response(("\\NoAccess",), name))
    state.sub.watch(mailboxes=frozenset(state.foreign))
    return out


async def new_message_fetches(
    session: Session, view: SelectedView, uids: list[int], facts: dict[int, MessageFacts]
) -> tuple[list[Response], list[Response]]:
    """MessageNew's FETCH for ``uids`` (RFC 5465 §5.2): (rendered from facts, read from the store).
    The first go right after EXISTS, before any flag FETCH that is newer; the second last."""
    atts = session.notify_fetch_atts
    if not atts or not uids:
        return [], []
    names = tuple(a.name for a in atts)
    if _FROM_FACTS.issuperset(names) and all(u in facts for u in uids):
        out: list[Response] = []
        for uid in uids:
            seq = view.seq_of(uid)
            if seq is not None:
                out.append(_facts_fetch_line(view, seq, facts[uid], atts, names))
        return out, []
    from imapd.commands.message import handle_fetch

    fetch = c.Fetch("*", True, SequenceSet.from_values(uids), atts, None, False)
    outcome = await handle_fetch(session, fetch)
    responses = list(outcome.responses)
    if outcome.stream is not None:
        async for batch in outcome.stream:
            responses += batch
    return [], responses


#: MessageNew FETCH lines rendered from facts, shared by the listeners of one change: the
#: sessions that number a new message alike send the same bytes (issue 6: render once per
#: change, not once per connection). Key -> (the facts shown, the line); the facts are
#: kept so that their id() in the key cannot be reused while the entry lives.
_RENDERED: dict[tuple[object, ...], tuple[MessageFacts, Serialized]] = {}
_RENDERED_MAX = 4096


def _facts_fetch_line(
    view: SelectedView, seq: int, m: MessageFacts, atts: tuple[FetchAtt, ...],
    names: tuple[str, ...],
) -> Serialized:
    key = (id(m), seq, m.uid in view.recent, names, view.qresync, view.condstore)
    hit = _RENDERED.get(key)
    if hit is not None and hit[0] is m:
        return hit[1]
    line = Serialized(serialize(_facts_fetch(view, seq, m, atts)))  # atoms, numbers, ASCII
    if len(_RENDERED) >= _RENDERED_MAX:
        _RENDERED.clear()
    _RENDERED[key] = (m, line)
    return line


def _facts_fetch(
    view: SelectedView, seq: int, m: MessageFacts, atts: tuple[FetchAtt, ...]
) -> Untagged:
    items: list[Value] = []
    for att in atts:
        match att.name:
            case "UID":
                items += [Atom("UID"), m.uid]
            case "FLAGS":
                items += [Atom("FLAGS"), view.flags_with_recent(m.uid, m.flags)]
            case "MODSEQ":
                items += [Atom("MODSEQ"), (m.modseq,)]
            case "RFC822.SIZE":
                items += [Atom("RFC822.SIZE"), m.size]
            case _:
                items += [Atom("INTERNALDATE"), imap_datetime(m.internaldate)]
    names = set(items[::2])
    if view.qresync and "UID" not in names:  # RFC 7162 §3.2.4
        items += [Atom("UID"), m.uid]
    if view.condstore and "MODSEQ" not in names:  # RFC 7162 §3.1, §3.1.4.2, §3.1.8
        items += [Atom("MODSEQ"), (m.modseq,)]
    return Untagged((seq, Atom("FETCH"), tuple(items)))
