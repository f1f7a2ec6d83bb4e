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
from imapd.commands.fetch import handle_fetch
from imapd.commands.updates import evaluate_contexts
from imapd.protocol import commands as c
from imapd.protocol.responses import Response
from imapd.protocol.values import FetchAtt, SequenceSet
from imapd.pushshare import FROM_FACTS, facts_fetch_lines, origin_claims, push_added
from imapd.replies import list_response
from imapd.rfc5465 import OVERFLOW, Foreign, NotifyState
from imapd.selected import SelectedView
from notify.filters import MailboxFacts
from store.acl import effective
from store.api import MailboxInfo
from store.changes import AclChanged, Change, MessageFacts, MessagesAdded
from store.errors import MailboxNotFound, Unavailable
from store.namespace import visible_name

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from imapd.session import Session

#: A session whose pushed bytes pile up past this in the transport (a client that does not
#: read) waits for them to drain before it renders more (NOTIFY overflows before: RFC 5465 §5.8).
PUSH_DRAIN_AT = 256 * 1024
#: FETCH items rendered from a change's MessageFacts (no store read on the hot path).
_FROM_FACTS = FROM_FACTS


class Gone(Enum):
    """A wait ended because the session said goodbye (kick, shutdown): see `Session._idle`."""

    GONE = "gone"


GONE = Gone.GONE


class Listener:
    """IDLE and NOTIFY for one session (see the module docstring)."""

    __slots__ = ("_queued", "_wake", "session")  # one per connection (issue 17, memory)

    def __init__(self, session: Session) -> None:
        self.session = session
        self._wake: asyncio.Future[None] | None = None  # `wait`'s current wake-up
        self._queued = False  # waiting for its turn in the server's fan-out

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
        """Wake `wait` (from the read, the timer, or the fan-out when `push_now` cannot)."""
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _delivered(self) -> None:
        """A subscription this wait armed got a change: while the task is parked, let the
        server's fan-out push it (imapd/fanout.py) in its one loop over the listeners of
        this turn, instead of a wake-up of this session's task per change."""
        wake = self._wake
        if wake is not None and not wake.done() and not self._queued:
            self._queued = True
            self.session.server.fanout.ring(self)

    def fan(self) -> None:
        """The fan-out's turn for this listener (imapd/fanout.py): `push_now`, or wake the
        task when it cannot (or when it failed: the session ends, its task says why)."""
        self._queued = False
        wake = self._wake
        if wake is None or wake.done():  # the task runs already: its `wait` loop pushes
            return
        try:
            done = self.push_now()
        except Exception:
            log.exception("session %s: pushing changes failed", self.session.id)
            self.session.closing = True
            done = False
        if not done:
            wake.set_result(None)

    def _arm(self) -> bool:
        """Point the subscriptions worth waking for at `_ring`: the selected mailbox's
        (plain IDLE, or a NOTIFY selected group) and the NOTIFY queue's. True when one of
        them already holds something (then there is no need to wait)."""
        s = self.session
        ringing = False
        sub = s.subscription
        if (s.idle_tag is not None and not s.notify.active) or s.notify.selected_push:
            sub.waker = self._delivered
            ringing = sub.ringing
        else:
            sub.waker = None
        nsub = s.notify.sub
        if nsub is not None:
            nsub.waker = self._delivered
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

    def push_now(self) -> bool:
        """`push`, without awaiting, for the fan-out (imapd/fanout.py): True when done; False,
        with nothing taken from the queues, when a step must await or say goodbye (a
        \\Recent claim the store decides, RFC 5267 contexts, a MessageNew FETCH item read
        from the store, an ACL re-check, an overflowed selected queue, a write buffer to
        drain, a BYE): the session's task then runs `push` itself. The same responses in
        the same order as `push`: the selected mailbox's through `_apply` and
        `_selected_lines`, NOTIFY's through `_notify_lines`, shared by both."""
        s = self.session
        if s.closing or s.goodbye is not None or s.contexts:
            return False
        if s.write_buffer_size() > PUSH_DRAIN_AT:
            return False
        reg = s.notify.registration
        nsub = s.notify.sub
        if reg is None and s.idle_tag is None:
            return True
        if (reg is None or reg.selected) and push_added(s):  # one rendering per distinct view
            return True
        if (reg is None or reg.selected) and not self._selected_now_ok():
            return False
        if nsub is not None and any(isinstance(ch, AclChanged) for ch in nsub.pending):
            return False  # `_recheck` reads the rights
        updates: list[Response] = []
        if reg is None:  # plain IDLE: `collect(allow_expunge=True)`
            updates = self._selected_now(allow_expunge=True, allow_flags=True)
        else:
            if reg.selected:
                updates = self._selected_now(
                    allow_expunge=s.idle_tag is not None or not reg.delayed,
                    allow_flags="FlagChange" in reg.selected,
                )
            updates += _notify_lines(s, s.notify)
        if updates:
            s._push(updates)
        return True

    def _selected_now_ok(self) -> bool:
        """`_selected` would not await: no overflow (BYE), every \\Recent claim decided in
        memory (`imapd.fanout.Fanout.claim`: the first listener of a new message claims it
        through the store in its task, the others know they lose), MessageNew's FETCH
        items all from the change's facts."""
        s = self.session
        view = s.view
        sub = s.subscription
        if view is None:
            return True
        if sub.overflow:
            return False
        if (
            s.notify.selected_push
            and not _FROM_FACTS.issuperset(a.name for a in s.notify_fetch_atts)
            and any(  # a new message of another session: its FETCH reads the store
                isinstance(ch, MessagesAdded) and ch.origin.session != s.id for ch in sub.pending
            )
        ):
            return False
        if view.readonly or view.rev2:  # no claim at all (RFC 9051: no \Recent)
            return True
        claim: list[int] = []
        for change in sub.pending:
            added = _added_uids(change, view.mailbox_id)
            if added and (
                change.origin.session == s.id
                or not self._origin_claims(change.origin.session, view.mailbox_id)
            ):
                claim += added
        return not claim or not s.server.fanout.claim(view.mailbox_id, claim)

    def _selected_now(self, *, allow_expunge: bool, allow_flags: bool) -> list[Response]:
        """`_selected` when `_selected_now_ok`: no claim of ours, no contexts."""
        s = self.session
        view = s.view
        changes = s.subscription.drain()
        if view is None:
            return []
        fresh, _, facts = self._apply(view, changes)
        return self._selected_lines(view, fresh, facts, allow_expunge, allow_flags)

    async def _selected(self, *, allow_expunge: bool, allow_flags: bool = True) -> list[Response]:
        s = self.session
        view = s.view
        changes = s.subscription.drain()
        if s.subscription.overflow and view is not None:
            await s._bye("Too many changes queued for this session")
            return []
        if view is None:
            return []
        fresh, claim, facts = self._apply(view, changes)
        contexts = s.contexts  # RFC 5267 updating contexts (imapd/commands/updates.py)
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

    def _apply(
        self, view: SelectedView, changes: list[Change]
    ) -> tuple[list[int], list[int], dict[int, MessageFacts]]:
        """Apply queued changes to the view (and the RFC 5267 contexts): the new UIDs, those
        this session should claim \\Recent for, and the facts of new messages of other
        sessions (NOTIFY MessageNew's FETCH, RFC 5465 §5.2)."""
        s = self.session
        fresh: list[int] = []
        claim: list[int] = []
        facts: dict[int, MessageFacts] = {}
        contexts = s.contexts
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
        return fresh, claim, facts

    def _selected_lines(
        self,
        view: SelectedView,
        fresh: list[int],
        facts: dict[int, MessageFacts],
        allow_expunge: bool,
        allow_flags: bool,
    ) -> list[Response]:
        """`_selected`'s responses without RFC 5267 contexts, MessageNew's FETCH from facts:
        FLAGS, EXPUNGE, EXISTS, RECENT, then the new messages' FETCH, then flag FETCHes."""
        s = self.session
        updates = view.flush_counts(allow_expunge=allow_expunge, allow_flags=allow_flags)
        if s.notify.selected_push and s.notify_fetch_atts:
            new = [u for u in fresh if u in facts and view.seq_of(u) is not None]
            if new:
                updates += facts_fetch_lines(view, new, facts, s.notify_fetch_atts)
        return updates + view.flush_flags(allow_flags)

    def _origin_claims(self, origin: str | None, mailbox_id: int) -> bool:
        return origin_claims(self.session.server, origin, mailbox_id)


def _added_uids(change: object, mailbox_id: int) -> list[int]:
    if isinstance(change, MessagesAdded) and change.mailbox.id == mailbox_id:
        return [m.uid for m in change.messages]
    return []


def _notify_queue(session: Context, state: NotifyState) -> tuple[list[Response], list[Change]]:
    """The NOTIFY queue's changes to render, or with none the whole answer: nothing, or
    NOTIFICATIONOVERFLOW and NOTIFY NONE when the queue overflowed or the client stopped
    reading (RFC 5465 §5.8, §9)."""
    sub = state.sub
    if sub is None or state.registration is None:
        return [], []
    if sub.overflow or session.write_buffer_size() > session.config.notify_write_high_water:
        state.stop()
        return [OVERFLOW], []
    return [], sub.drain()


def _render_one(session: Context, state: NotifyState, change: Change) -> list[Response]:
    selected = session.view.mailbox_id if session.view is not None else None
    condstore = "CONDSTORE" in session.enabled
    return state.render(change, session=session.id, selected=selected, condstore=condstore)


def _rewatch(state: NotifyState) -> None:
    """Watch other owners' mailboxes that came into view while rendering."""
    if state.rewatch and state.sub is not None:
        state.rewatch = False
        state.sub.watch(mailboxes=frozenset(state.foreign))


async def notify_updates(session: Context) -> list[Response]:
    """The NOTIFY queue as responses, in commit order (`_notify_queue`)."""
    state: NotifyState = session.notify
    out, changes = _notify_queue(session, state)
    for change in changes:
        out += _render_one(session, state, change)
        if state.recheck:  # rights changed: read them before the next change is rendered
            out += await _recheck(session, state)
    _rewatch(state)
    return out


def _notify_lines(session: Context, state: NotifyState) -> list[Response]:
    """`notify_updates` for a queue holding no AclChanged (`Listener.push_now` checked):
    nothing to re-read, so nothing to await."""
    out, changes = _notify_queue(session, state)
    for change in changes:
        out += _render_one(session, state, change)
    assert not state.recheck, "an AclChanged reached the fan-out's NOTIFY rendering"
    _rewatch(state)
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
        return facts_fetch_lines(view, uids, facts, atts), []
    fetch = c.Fetch("*", True, SequenceSet.from_values(uids), atts, None, False)
    outcome = await handle_fetch(session, fetch)
    responses = list(outcome.responses)
    if outcome.stream is not None:
        async for batch in outcome.stream:
            responses += batch
    return [], responses  # an EXPUNGEISSUED ending: those messages are not told of
