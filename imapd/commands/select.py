"""Entering and leaving the selected state: SELECT/EXAMINE, CLOSE, UNSELECT
(RFC 3501 §6.3.1-2, §6.4.2, RFC 3691)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imapd.commands.base import Outcome, ok
from imapd.protocol import commands as c
from imapd.protocol.responses import Atom, Response, Untagged, UntaggedStatus
from imapd.selected import SelectedView, flag_list, system_and

if TYPE_CHECKING:
    from imapd.session import Session


async def handle_select(session: Session, cmd: c.Select) -> Outcome:
    """SELECT/EXAMINE mailbox (RFC 3501 §6.3.1-2). A failed SELECT leaves no mailbox selected."""
    user = session.require_user()
    if session.view is not None:
        session.leave_selected()
    sub = session.subscription
    snapshot = None
    try:
        mailbox = await session.store.get_mailbox(user.id, cmd.mailbox)
        # Subscribe first, then read the snapshot: changes with seq <= snapshot.seq are in it.
        sub.watch(mailboxes=frozenset({mailbox.id}))
        snapshot = await session.store.open_mailbox(
            user.id, cmd.mailbox, claim_recent=not cmd.readonly
        )
    finally:
        if snapshot is None:
            sub.watch(mailboxes=frozenset())
            sub.drain()
    info = snapshot.mailbox
    view = SelectedView(
        mailbox_id=info.id,
        uids=list(snapshot.uids),
        readonly=cmd.readonly,
        recent=set(snapshot.recent),
        keywords=set(snapshot.keywords),
        highestmodseq=info.highestmodseq,
    )
    # Drop what the snapshot already contains; keep later changes for the first flush.
    later = [ch for ch in sub.drain() if ch.seq > snapshot.seq]
    for change in later:
        sub.pending.append(change)
    if later:
        sub.doorbell.set()
    flags = flag_list(system_and(view.keywords))
    responses: list[Response] = [
        Untagged((Atom("FLAGS"), flags)),
        Untagged((len(view.uids), Atom("EXISTS"))),
        Untagged((len(view.recent), Atom("RECENT"))),
    ]
    if snapshot.first_unseen_uid is not None:
        seq = view.seq_of(snapshot.first_unseen_uid)
        if seq is not None:
            responses.append(UntaggedStatus("OK", "First unseen", f"UNSEEN {seq}"))
    responses.append(UntaggedStatus("OK", "UIDs valid", f"UIDVALIDITY {info.uidvalidity}"))
    responses.append(UntaggedStatus("OK", "Predicted next UID", f"UIDNEXT {info.uidnext}"))
    if cmd.readonly:
        responses.append(UntaggedStatus("OK", "Read-only mailbox", "PERMANENTFLAGS ()"))
    else:
        perm = " ".join((*system_and(view.keywords), "\\*"))
        responses.append(UntaggedStatus("OK", "Flags permitted", f"PERMANENTFLAGS ({perm})"))
    session.enter_selected(info, view)
    code = "READ-ONLY" if cmd.readonly else "READ-WRITE"
    name = "EXAMINE" if cmd.readonly else "SELECT"
    return Outcome(text=f"{name} completed", code=code, responses=responses)


async def handle_close(session: Session, cmd: c.Close) -> Outcome:
    """CLOSE (RFC 3501 §6.4.2): expunge silently when read-write, then deselect."""
    view = session.require_view()
    if not view.readonly:
        await session.store.expunge(view.mailbox_id, session.origin)
    session.leave_selected()
    return ok("CLOSE completed")


async def handle_unselect(session: Session, cmd: c.Unselect) -> Outcome:
    """UNSELECT (RFC 3691): deselect without expunging."""
    session.require_view()
    session.leave_selected()
    return ok("UNSELECT completed")


