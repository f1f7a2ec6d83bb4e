"""The session side of IDLE (RFC 2177) and NOTIFY (RFC 5465): waiting for client bytes or
a change to report, and turning queued changes into responses.

Owns: `Listener`, one per session, which waits for whichever comes first (client bytes, a
delivery to a subscription it armed, the deadline) and collects what may go out now (the
selected mailbox's updates through its SelectedView, then the NOTIFY queue); the delivery
steps that need the store (`notify_updates` with its rights re-checks, `new_message_fetches`
for MessageNew's FETCH, RFC 5465 §5.2). The pure NOTIFY registration and rendering are in
imapd/rfc5465.py; the NOTIFY command in imapd/commands/notify.py. ("notify" alone, as in the
top-level `notify` package, means the bus and RFC 5423 events and sinks.)

The functions take the session as a `Context` (imapd/commands/context.py), so the unit tests'
context drives them too; `Listener` is the session's own part and uses its I/O methods.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum
from typing import TYPE_CHECKING

from imapd.commands.context import Context
from imapd.commands.message import handle_fetch
from imapd.commands.updates import evaluate_contexts
from imapd.fetch import fetch_response
from imapd.protocol import commands as c
from imapd.protocol.responses import Response, Serialized, Untagged
from imapd.protocol.serializer import serialize
from imapd.protocol.values import FetchAtt, SequenceSet
from imapd.replies import list_response
from imapd.rfc5465 import OVERFLOW, Foreign, NotifyState
from imapd.selected import SelectedView
from notify.filters import MailboxFacts
from store.acl import effective
from store.api import MailboxInfo, MessageRecord
from store.changes import MessageFacts, MessagesAdded
from store.errors import MailboxNotFound, Unavailable
from store.namespace import visible_name

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from imapd.session import Session

#: A session whose pushed bytes pile up past this in the transport (a client that does not
#: read) waits for them to drain before it renders more (NOTIFY overflows before: RFC 5465 §5.8).
PUSH_DRAIN_AT = 256 * 1024
#: FETCH items rendered from a change's MessageFacts (no store read on the hot path).
_FROM_FACTS = frozenset({"UID", "FLAGS", "MODSEQ", "RFC822.SIZE", "INTERNALDATE"})


class Gone(Enum):
    """A wait ended because the session said goodbye (kick, shutdown): see `Session._idle`."""

    GONE = "gone"


GONE = Gone.GONE


class Listener:
    """IDLE and NOTIFY for one session (see the module docstring)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._wake: asyncio.Future[None] | None = None  # `wait`'s current wake-up

    async def wait(self, deadline: float, why_late: str) -> bytes | None:
        """IDLE (RFC 2177): whichever comes first, client bytes or a change to report.

        One read task and one timer for the whole wait; each wake-up is a single future,
        resolved by the read's completion, the timer, or a delivery to a subscription whose
        ``waker`` is set (`_ring`): no task per wake, whatever the number of listeners."""
        s = self.session
        loop = asyncio.get_running_loop()
        timed_out = False

        def expire() -> None:
            nonlocal timed_out
            timed_out = True
            self._ring()

        read = asyncio.ensure_future(s._recv())
        read.add_done_callback(self._ring)
        timer = loop.call_at(deadline, expire)
        try:
            while True:
                await self.push()
                if s.closing:
                    return None
                if (why := s.goodbye) is not None:  # kicked while flushing
                    await s._bye(why)
                    return None
                if not read.done() and not timed_out and not self._arm():
                    wake: asyncio.Future[None] = loop.create_future()
                    self._wake = wake
                    try:
                        if await s._idle(wake) is GONE:
                            return None
                    finally:
                        self._wake = None
                if read.done():
                    return read.result()
                if timed_out:
                    await s._bye(why_late)
                    return None
        finally:
            timer.cancel()
            self._disarm()
            if not read.done():
                read.cancel()

    def _ring(self, *_: object) -> None:
        """Wake `wait` (from a subscription's delivery, the read or the timer)."""
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _arm(self) -> bool:
        """Point the subscriptions worth waking for at `_ring`: the selected mailbox's
        (plain IDLE, or a NOTIFY selected group) and the NOTIFY queue's. True when one of
        them already holds something (then there is no need to wait)."""
        s = self.session
        ringing = False
        sub = s.subscription
        if (s.idle_tag is not None and not s.notify.active) or s.notify.selected_push:
            sub.waker = self._ring
            ringing = sub.ringing
        else:
            sub.waker = None
        nsub = s.notify.sub
        if nsub is not None:
            nsub.waker = self._ring
            ringing = ringing or nsub.ringing
        return ringing

    def _disarm(self) -> None:
        s = self.session
        s.subscription.waker = None
        if s.notify.sub is not None:
            s.notify.sub.waker = None

    async def collect(self, *, allow_expunge: bool) -> list[Response]:
        """What goes out before a tagged reply: the selected mailbox's updates, then the
        NOTIFY ones (RFC 5465 §3.1: at any time, so at the end of every command too)."""
        s = self.session
        updates = await self._selected(allow_expunge=allow_expunge)
        if s.notify.active and not s.closing:
            updates += await notify_updates(s)
        return updates

    async def push(self) -> None:
        """While waiting for client bytes (IDLE, or any time under NOTIFY): what may go out
        unasked. Under NOTIFY exactly the registered events (RFC 5465 §4): the selected
        mailbox's only as its selected group asks (no flag FETCH without FlagChange; no
        EXPUNGE outside IDLE for selected-delayed, §6.1.2), the rest from the NOTIFY queue."""
        s = self.session
        reg = s.notify.registration
        updates: list[Response] = []
        if reg is None:
            if s.idle_tag is None:
                return
            updates = await self.collect(allow_expunge=True)  # plain IDLE
        else:
            if reg.selected:
                updates += await self._selected(
                    allow_expunge=s.idle_tag is not None or not reg.delayed,
                    allow_flags="FlagChange" in reg.selected,
                )
            updates += await notify_updates(s)
        if updates:
            s._push(updates)
            if s.write_buffer_size() > PUSH_DRAIN_AT:
                await s._drain()  # a client that does not read: wait, never grow

    async def _selected(self, *, allow_expunge: bool, allow_flags: bool = True) -> list[Response]:
        s = self.session
        view = s.view
        changes = s.subscription.drain()
        if s.subscription.overflow and view is not None:
            await s._bye("Too many changes queued for this session")
            return []
        if view is None:
            return []
        fresh: list[int] = []
        claim: list[int] = []
        facts: dict[int, MessageFacts] = {}  # NOTIFY MessageNew's FETCH (RFC 5465 §5.2)
        contexts = s.contexts  # RFC 5267 updating contexts (imapd/commands/updates.py)
        fetching = bool(s.notify_fetch_atts) or contexts.fetching
        for change in changes:
            own = change.origin.session == s.id
            view.apply(change, own=own)
            contexts.note(change, view.mailbox_id)
            added = _added_uids(change, view.mailbox_id)
            if added:
                fresh += added
                if own or not self._origin_claims(change.origin.session, view.mailbox_id):
                    claim += added
            if fetching and not own and isinstance(change, MessagesAdded):
                facts.update((m.uid, m) for m in change.messages)  # not own: RFC 5465 §5.2
        if claim and not view.readonly and not view.rev2:  # rev2: no \Recent (RFC 9051)
            try:
                claimed = await s.store.claim_recent(view.mailbox_id, claim)
            except Unavailable as exc:  # disk full, I/O error: the updates still go out
                log.warning(
                    "session %s: \\Recent of %d new message(s) not claimed: %s",
                    s.id,
                    len(claim),
                    exc.text,
                )
            else:
                view.recent.update(claimed)
        # --- RFC 5267: REMOVEFROM of expunged members before the EXPUNGE (§4.3.4); the
        # changed messages evaluated now, their ADDTO/REMOVEFROM after the EXISTS and the
        # FETCHes (RFC 5465 §5.1, §7; docs/notify.md "EXISTS, FETCH, then ESEARCH").
        removals: list[Response] = []
        if contexts:  # none: the NOTIFY fan-out's hot path stays as it was
            removals += contexts.expunge_removals(view)
            await evaluate_contexts(s, view, allow_flags=allow_flags)
        updates = view.flush_counts(allow_expunge=allow_expunge, allow_flags=allow_flags)
        new = [u for u in fresh if u in facts and view.seq_of(u) is not None]
        if new and (s.notify.selected_push or contexts.fetching):
            # NOTIFY's MessageNew attributes and those of the contexts a new message joins,
            # in one FETCH (RFC 5465 §5.2, N63); the contexts' alone without NOTIFY.
            base = s.notify_fetch_atts if s.notify.selected_push else ()
            first: list[Response] = []
            last: list[Response] = []
            for atts, uids in contexts.fetch_groups(new, base):
                got = await new_message_fetches(s, view, uids, facts, atts)
                first += got[0]
                last += got[1]
            flags = view.flush_flags(allow_flags)
            return [*removals, *updates, *first, *flags, *last, *contexts.render(view)]
        if not contexts:
            return updates + view.flush_flags(allow_flags)
        return [*removals, *updates, *view.flush_flags(allow_flags), *contexts.render(view)]

    def _origin_claims(self, origin: str | None, mailbox_id: int) -> bool:
        """\\Recent for messages another session added to the mailbox it has selected
        read-write is that session's (it reports them at the end of the very command that
        added them), however soon the listeners wake up."""
        s = self.session
        other = s.server.sessions_by_id.get(origin) if origin else None
        view = other.view if other is not None else None
        return (
            view is not None
            and view.mailbox_id == mailbox_id
            and not view.readonly
            and not view.rev2  # an IMAP4rev2 session claims no \Recent (RFC 9051)
        )


def _added_uids(change: object, mailbox_id: int) -> list[int]:
    if isinstance(change, MessagesAdded) and change.mailbox.id == mailbox_id:
        return [m.uid for m in change.messages]
    return []


async def notify_updates(session: Context) -> list[Response]:
    """The NOTIFY queue as responses, in commit order; NOTIFICATIONOVERFLOW and NOTIFY NONE
    when the queue overflowed or the client stopped reading (RFC 5465 §5.8, §9)."""
    state: NotifyState = session.notify
    sub = state.sub
    if sub is None or state.registration is None:
        return []
    if sub.overflow or session.write_buffer_size() > session.config.notify_write_high_water:
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


async def _recheck(session: Context, state: NotifyState) -> list[Response]:
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
    session: Context,
    view: SelectedView,
    uids: list[int],
    facts: dict[int, MessageFacts],
    atts: tuple[FetchAtt, ...] | None = None,
) -> tuple[list[Response], list[Response]]:
    """MessageNew's FETCH for ``uids`` (RFC 5465 §5.2): (rendered from facts, read from the store).
    The first go right after EXISTS, before any flag FETCH that is newer; the second last.
    ``atts``: NOTIFY's by default; with RFC 5267 contexts' merged in (RFC 5465 §7)."""
    atts = session.notify_fetch_atts if atts is None else atts
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
    fetch = c.Fetch("*", True, SequenceSet.from_values(uids), atts, None, False)
    outcome = await handle_fetch(session, fetch)
    responses = list(outcome.responses)
    if outcome.stream is not None:
        async for batch in outcome.stream:
            responses += batch
    return [], responses  # an EXPUNGEISSUED ending: those messages are not told of


#: MessageNew FETCH lines rendered from facts, shared by the listeners of one change: the
#: sessions that number a new message alike send the same bytes (issue 6: render once per
#: change, not once per connection). Key -> (the facts shown, the line); the facts are
#: kept so that their id() in the key cannot be reused while the entry lives.
_RENDERED: dict[tuple[object, ...], tuple[MessageFacts, Serialized]] = {}
_RENDERED_MAX = 4096


def _facts_fetch_line(
    view: SelectedView,
    seq: int,
    m: MessageFacts,
    atts: tuple[FetchAtt, ...],
    names: tuple[str, ...],
) -> Serialized:
    modes = (view.qresync, view.condstore, view.rev2, view.uidonly)  # UID, UIDFETCH: rev2.py
    key = (id(m), seq, m.uid in view.recent, names, modes)
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
    record = MessageRecord(
        m.uid, m.modseq, m.flags, m.internaldate, m.size, content_id=m.content_id
    )
    return fetch_response(view, seq, record, atts, unsolicited=True)  # RFC 7162 §3.2.4
