"""The fan-out's common case: new messages (from one command, or several commits a listener
fell behind on) pushed to the listeners of their mailbox, rendered once per distinct view and
the bytes shared.

Owns: `Added`, what every listener behind the same run of `MessagesAdded` shares (computed
once per run), and `push_added`, one listener's whole push for it. Called by
`Listener.push_now` (imapd/listening.py) before the general path, and only when the
listener's state makes the outcome a function of a few values: its selected queue holds only
MessagesAdded of its mailbox by other sessions (one, or k when it fell behind: "Coalescing"
below), nothing in its NOTIFY queue, nothing pending in its SelectedView, the new UIDs above
all it numbers, no keyword it has not seen, no RFC 5267 context, no \\Recent claim of its own
to make. Then what `_selected` would send is exactly ``* n EXISTS`` (``* r RECENT`` unless
IMAP4rev2) and, under a NOTIFY selected group, MessageNew's FETCH for each new message (RFC
5465 §5.2): bytes that depend only on the message count after the changes, the \\Recent
count, the view's modes (CONDSTORE, QRESYNC, IMAP4rev2, UIDONLY) and the FETCH items. Those
are the key of `Added.lines`; a thousand listeners of one mailbox make one or two renderings,
not a thousand. Anything else returns False with nothing touched, and the general path
(`Listener.push_now`, or the task) runs.

Coalescing (issue 17 point 4): with 10,000 listeners one walk of the fan-out's queue takes
longer than the writer's interval, so a listener late in it holds several new messages when
its turn comes. It gets them in one push, as `_selected` would give them (one ``* n EXISTS``
with the last count, then the k MessageNew FETCH lines), from the rendering shared by every
listener behind the same run in the same view: the cost of a walk stays that of one push per
listener, and the delay of delivery, not the writer, absorbs the load. It only happens when a
listener is behind, so a fan-out that keeps up pushes one message at a time as before.

The responses are made by the same renderers as the general path (the SelectedView's
EXISTS/RECENT form, `imapd.listening.facts_fetch_lines`), so the bytes are the same;
tests/e2e/test_push_fanout.py checks both paths against each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imapd.fetch import fetch_response
from imapd.protocol.responses import Response, Serialized, Untagged
from imapd.protocol.serializer import serialize, serialize_all
from imapd.protocol.values import FetchAtt
from imapd.selected import SelectedView
from store.api import MessageRecord
from store.changes import MessageFacts, MessagesAdded

if TYPE_CHECKING:
    from imapd.server import Server
    from imapd.session import Session

#: Distinct renderings kept per change (view signatures seen among its listeners).
LINES_MAX = 256


@dataclass(slots=True)
class Added:
    """The facts of a run of MessagesAdded (one change, or the k a listener fell behind on,
    in commit order) that every listener behind exactly that run uses alike."""

    changes: tuple[MessagesAdded, ...]
    uids: list[int]
    #: The keywords among the new messages' flags: a view that has not seen one sends
    #: FLAGS first (the general path does that).
    keywords: frozenset[str]
    #: The UIDs whose \\Recent some listener must claim: those of the changes whose origin
    #: session does not claim them itself (`origin_claims`).
    unclaimed: list[int]
    #: The mailbox's highest modseq after the run (RFC 7162), and the new messages' octets
    #: (`SelectedView.octets_bound`).
    highestmodseq: int
    octets: int
    lines: dict[tuple[object, ...], bytes] = field(default_factory=dict)
    #: Listeners served from `lines` (tests/e2e/test_push_fanout.py: fewer renderings).
    served: int = 0

    @property
    def change(self) -> MessagesAdded:
        """The run's last change."""
        return self.changes[-1]


def added_facts(server: Server, changes: tuple[MessagesAdded, ...]) -> Added:
    keywords = frozenset(
        f for ch in changes for m in ch.messages for f in m.flags if not f.startswith("\\")
    )
    unclaimed = [
        m.uid
        for ch in changes
        if not origin_claims(server, ch.origin.session, ch.mailbox.id)
        for m in ch.messages
    ]
    return Added(
        changes,
        [m.uid for ch in changes for m in ch.messages],
        keywords,
        unclaimed,
        max(ch.counts.highestmodseq for ch in changes),
        sum(m.size for ch in changes for m in ch.messages),
    )


def origin_claims(server: Server, origin: str | None, mailbox_id: int) -> bool:
    """\\Recent for messages another session added to the mailbox it has selected
    read-write is that session's (it reports them at the end of the very command that
    added them), however soon the listeners wake up."""
    other = server.sessions_by_id.get(origin) if origin else None
    view = other.view if other is not None else None
    return (
        view is not None
        and view.mailbox_id == mailbox_id
        and not view.readonly
        and not view.rev2  # an IMAP4rev2 session claims no \\Recent (RFC 9051)
    )


def push_added(session: Session) -> bool:
    """The whole push of ``session`` when its queue is a run of MessagesAdded of its
    selected mailbox in the shape the module docstring says; False, nothing touched,
    otherwise."""
    s = session
    view = s.view
    sub = s.subscription
    pending = sub.pending
    if view is None or not pending or sub.overflow or s.contexts or view.has_pending:
        return False
    mailbox_id = view.mailbox_id
    for change in pending:
        if (
            type(change) is not MessagesAdded
            or change.mailbox.id != mailbox_id
            or change.origin.session == s.id
        ):
            return False
    notify = s.notify
    nsub = notify.sub
    if nsub is not None and (
        nsub.pending or nsub.overflow or s.write_buffer_size() > s.config.notify_write_high_water
    ):
        return False
    fanout = s.server.fanout
    shared = fanout.added(s.server, pending)  # type: ignore[arg-type]  # all MessagesAdded
    uids = shared.uids
    if (view.uids and view.uids[-1] >= uids[0]) or not shared.keywords <= view.keywords:
        return False
    if (
        not view.readonly
        and not view.rev2
        and shared.unclaimed
        and not fanout.claimed(mailbox_id, shared.unclaimed)
    ):
        return False  # this one may be first: the general path names the claimer
    fetch = s.notify_fetch_atts if notify.selected_push else ()
    names = _names(fetch) if fetch else ()
    if names is None:
        return False  # an item read from the store (RFC 5465 §5.2): the general path
    # The state change `view.apply` + `flush_counts` make for new UIDs above all known.
    view.uids.extend(uids)
    if shared.highestmodseq > view.highestmodseq:
        view.highestmodseq = shared.highestmodseq
    if view.octets_bound is not None:
        view.octets_bound += shared.octets
    sub.pending = []
    recent = view.recent
    recent_count = view.recent_count() if recent else 0
    new_recent = bool(recent) and any(u in recent for u in uids)
    key = (
        len(view.uids),
        recent_count,
        new_recent,
        view.rev2,
        view.uidonly,
        view.condstore,
        view.qresync,
        names,
    )
    data = shared.lines.get(key)
    if data is None:
        data = _render(s, shared, fetch)
        if len(shared.lines) < LINES_MAX:
            shared.lines[key] = data
    shared.served += 1
    s.push_data(data)
    return True


#: id(a session's MessageNew FETCH items) -> (those items, their names): the key part
#: `push_added` uses, so that equal items of different sessions share one rendering without
#: hashing dataclasses per listener. The items are kept, so an id is not reused meanwhile.
_NAMES: dict[int, tuple[tuple[FetchAtt, ...], tuple[str, ...] | None]] = {}
_NAMES_MAX = 4096
#: FETCH items rendered from a change's MessageFacts, no store read (no section, no partial:
#: the name says all about them).
FROM_FACTS = frozenset({"UID", "FLAGS", "MODSEQ", "RFC822.SIZE", "INTERNALDATE"})


def _names(atts: tuple[FetchAtt, ...]) -> tuple[str, ...] | None:
    """The names of ``atts`` when all are rendered from facts (`FROM_FACTS`), else None."""
    hit = _NAMES.get(id(atts))
    if hit is not None and hit[0] is atts:
        return hit[1]
    names: tuple[str, ...] | None = tuple(a.name for a in atts)
    if not FROM_FACTS.issuperset(names or ()):
        names = None
    if len(_NAMES) >= _NAMES_MAX:
        _NAMES.clear()
    _NAMES[id(atts)] = (atts, names)
    return names


def _render(s: Session, shared: Added, fetch: tuple[FetchAtt, ...]) -> bytes:
    """What `Listener._selected_lines` renders for this view after the change."""
    view = s.view
    assert view is not None
    if view.rev2:  # as SelectedView.flush_counts: RFC 9051 Appendix E item 12, no RECENT
        head = b"* %d EXISTS\r\n" % len(view.uids)
    else:
        head = b"* %d EXISTS\r\n* %d RECENT\r\n" % (len(view.uids), view.recent_count())
    if not fetch:
        return head
    facts = {m.uid: m for ch in shared.changes for m in ch.messages}
    return head + serialize_all(facts_fetch_lines(view, shared.uids, facts, fetch))


def facts_fetch_lines(
    view: SelectedView,
    uids: list[int],
    facts: dict[int, MessageFacts],
    atts: tuple[FetchAtt, ...],
) -> list[Response]:
    """MessageNew's FETCH of ``uids`` (all in ``facts``) rendered from the facts alone."""
    names = tuple(a.name for a in atts)
    out: list[Response] = []
    for uid in uids:
        seq = view.seq_of(uid)
        if seq is not None:
            out.append(_facts_fetch_line(view, seq, facts[uid], atts, names))
    return out


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
