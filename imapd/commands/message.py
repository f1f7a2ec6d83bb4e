"""Selected-state message commands: EXPUNGE, SEARCH, FETCH, STORE, COPY, MOVE, IDLE
(RFC 3501 §6.4, RFC 4315 UIDPLUS, RFC 6851 MOVE, RFC 2177 IDLE, RFC 7162 CONDSTORE)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from imapd.commands.base import Outcome, ok
from imapd.fetch import needs, render_item
from imapd.protocol import commands as c
from imapd.protocol.errors import BadCommand, CommandRefused
from imapd.protocol.responses import Atom, Response, Untagged, UntaggedStatus, Value
from imapd.protocol.values import FetchAtt, SearchKey, SequenceSet
from imapd.selected import SelectedView
from store.api import Criterion, MessageRecord
from store.errors import MailboxNotFound

if TYPE_CHECKING:
    from imapd.session import Session

#: Messages read from the store per batch while streaming a FETCH.
FETCH_BATCH = 250


def _require_writable(view: SelectedView) -> None:
    if view.readonly:
        raise CommandRefused("Mailbox is read-only", "READ-ONLY")


# --- EXPUNGE --------------------------------------------------------------------------
async def handle_expunge(session: Session, cmd: c.Expunge) -> Outcome:
    """EXPUNGE (RFC 3501 §6.4.3) and UID EXPUNGE set (RFC 4315 §2.1). The EXPUNGE
    responses come from the session's own change, flushed after the command."""
    view = session.require_view()
    _require_writable(view)
    uids = None if cmd.uids is None else view.resolve(cmd.uids, uid=True)
    if uids is not None and not uids:
        return ok("EXPUNGE completed")
    await session.store.expunge(view.mailbox_id, session.origin, uids)
    return ok("EXPUNGE completed")


# --- SEARCH ---------------------------------------------------------------------------
def to_criterion(key: SearchKey, view: SelectedView, saved: list[int]) -> Criterion:
    """Resolve session state (sequence numbers, $, \\Recent) into a store Criterion."""
    match key.name:
        case "SEQSET" | "UID":
            assert isinstance(key.value, SequenceSet)
            uids = view.resolve(key.value, uid=key.name == "UID", saved=saved)
            return Criterion("UIDS", _ranges(uids))
        case "RECENT":
            return Criterion("UIDS", _ranges(sorted(view.recent)))
        case "NEW":
            return Criterion("AND", children=(
                Criterion("UIDS", _ranges(sorted(view.recent))), Criterion("UNSEEN")))
        case "OLD":
            return Criterion("NOT", children=(Criterion("UIDS", _ranges(sorted(view.recent))),))
        case _:
            kids = tuple(to_criterion(k, view, saved) for k in key.children)
            value = key.value
            assert not isinstance(value, SequenceSet)
            return Criterion(key.name, value, key.header, kids)


def _ranges(uids: list[int]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for u in uids:
        if out and out[-1][1] == u - 1:
            out[-1] = (out[-1][0], u)
        else:
            out.append((u, u))
    return tuple(out)


def _mentions_modseq(key: SearchKey) -> bool:
    return key.name == "MODSEQ" or any(_mentions_modseq(k) for k in key.children)


async def handle_search(session: Session, cmd: c.Search) -> Outcome:
    """[UID] SEARCH [CHARSET x] keys (RFC 3501 §6.4.4)."""
    view = session.require_view()
    criterion = to_criterion(cmd.key, view, session.saved_search)
    found = await session.store.search(view.mailbox_id, criterion)
    known = [u for u in found if view.seq_of(u) is not None]
    numbers = known if cmd.uid else [view.seq_of(u) or 0 for u in known]
    items: list[Value] = [Atom("SEARCH"), *numbers]
    return ok("SEARCH completed", None, Untagged(tuple(items)))


# --- FETCH ----------------------------------------------------------------------------
async def handle_fetch(session: Session, cmd: c.Fetch) -> Outcome:
    """[UID] FETCH set atts (RFC 3501 §6.4.5). UID FETCH always returns UID (§6.4.8).
    A non-PEEK body fetch sets \\Seen in a read-write mailbox, and FLAGS is then returned."""
    view = session.require_view()
    uids = view.resolve(cmd.sequence_set, uid=cmd.uid)
    atts = cmd.atts
    if any(a.name in {"BINARY", "BINARY.SIZE"} for a in atts):
        raise BadCommand("BINARY is not supported")
    if cmd.uid and not any(a.name == "UID" for a in atts):
        atts = (FetchAtt("UID"), *atts)
    need = needs(atts)
    if not uids:
        return ok("FETCH completed")
    outcome = Outcome(text="FETCH completed")
    outcome.stream = _fetch_stream(session, view, uids, atts, need.content, need.structure,
                                   need.sets_seen and not view.readonly, cmd.changedsince,
                                   outcome)
    return outcome


async def _fetch_stream(
    session: Session,
    view: SelectedView,
    uids: list[int],
    atts: tuple[FetchAtt, ...],
    content: bool,
    structure: bool,
    sets_seen: bool,
    changedsince: int | None,
    outcome: Outcome,
) -> AsyncIterator[list[Response]]:
    """Batches of FETCH responses. Messages expunged by another session that this one was
    not told of yet can no longer be read: the command then ends in ``NO [EXPUNGEISSUED]``
    (RFC 2180 §4.1.3, RFC 5530), as Dovecot answers."""
    missing = False
    for start in range(0, len(uids), FETCH_BATCH):
        chunk = uids[start : start + FETCH_BATCH]
        records = await session.store.fetch(
            view.mailbox_id, chunk, content=content, structure=structure,
            changedsince=changedsince,
        )
        seen_now: dict[int, tuple[tuple[str, ...], int]] = {}
        if sets_seen:
            unseen = [r.uid for r in records if "\\Seen" not in r.flags]
            if unseen:
                result = await session.store.store_flags(
                    view.mailbox_id, unseen, "+", ["\\Seen"], session.origin, kind="fetch"
                )
                seen_now = {ch.uid: (ch.flags, ch.modseq) for ch in result.changes}
        if changedsince is None and len(records) < len(chunk):
            missing = True
        batch: list[Response] = []
        for record in records:
            seq = view.seq_of(record.uid)
            if seq is None:
                continue
            batch.append(_fetch_response(session, view, seq, record, atts, seen_now))
        yield batch
    if missing:
        outcome.status = "NO"
        outcome.code = "EXPUNGEISSUED"
        outcome.text = "Some of the requested messages no longer exist"


def _fetch_response(
    session: Session,
    view: SelectedView,
    seq: int,
    record: MessageRecord,
    atts: tuple[FetchAtt, ...],
    seen_now: dict[int, tuple[tuple[str, ...], int]],
) -> Untagged:
    flags, modseq = seen_now.get(record.uid, (record.flags, record.modseq))
    items: list[Value] = []
    flags_sent = False
    for att in atts:
        match att.name:
            case "UID":
                items += [Atom("UID"), record.uid]
            case "FLAGS":
                items += [Atom("FLAGS"), view.flags_with_recent(record.uid, flags)]
                flags_sent = True
            case "MODSEQ":
                items += [Atom("MODSEQ"), (modseq,)]
            case _:
                name, value = render_item(record, att)
                items += [name, value]
    if record.uid in seen_now and not flags_sent:
        # RFC 3501 §6.4.5: the implicit \Seen is reported as if FLAGS had been asked for.
        items += [Atom("FLAGS"), view.flags_with_recent(record.uid, flags)]
        flags_sent = True
    if flags_sent:
        view.forget_flag_update(record.uid)
    return Untagged((seq, Atom("FETCH"), tuple(items)))


# --- STORE ----------------------------------------------------------------------------
async def handle_store(session: Session, cmd: c.Store) -> Outcome:
    """[UID] STORE set [+|-]FLAGS[.SILENT] flags (RFC 3501 §6.4.6; UNCHANGEDSINCE
    RFC 7162 §3.1.3)."""
    view = session.require_view()
    _require_writable(view)
    uids = view.resolve(cmd.sequence_set, uid=cmd.uid)
    uids = [u for u in uids if not view.is_gone(u)]
    if not uids:
        return ok("STORE completed")
    result = await session.store.store_flags(
        view.mailbox_id, uids, cmd.mode, cmd.flags, session.origin,
        unchangedsince=cmd.unchangedsince,
    )
    changed = {ch.uid for ch in result.changes}
    responses: list[Response] = []
    condstore = view.condstore or cmd.unchangedsince is not None
    for uid in sorted(result.current):
        if uid in result.modified:
            continue
        seq = view.seq_of(uid)
        if seq is None:
            continue
        flags, modseq = result.current[uid]
        if cmd.silent and not (condstore and uid in changed):
            continue
        items: list[Value] = []
        if cmd.uid or view.qresync:
            items += [Atom("UID"), uid]
        if not cmd.silent:
            items += [Atom("FLAGS"), view.flags_with_recent(uid, flags)]
        if condstore:
            items += [Atom("MODSEQ"), (modseq,)]
        view.forget_flag_update(uid)
        responses.append(Untagged((seq, Atom("FETCH"), tuple(items))))
    code = None
    if result.modified:
        modified = result.modified if cmd.uid else [view.seq_of(u) or 0 for u in result.modified]
        code = f"MODIFIED {SequenceSet.from_values(modified)}"
    return Outcome(text="STORE completed", code=code, responses=responses)


# --- COPY / MOVE -----------------------------------------------------------------------
async def handle_copy(session: Session, cmd: c.Copy) -> Outcome:
    """[UID] COPY / [UID] MOVE set mailbox (RFC 3501 §6.4.7, RFC 6851, COPYUID RFC 4315)."""
    view = session.require_view()
    user = session.require_user()
    if cmd.move:
        _require_writable(view)
    uids = [u for u in view.resolve(cmd.sequence_set, uid=cmd.uid) if not view.is_gone(u)]
    name = "MOVE" if cmd.move else "COPY"
    if not uids:
        if not cmd.uid and not cmd.sequence_set.saved:
            raise BadCommand("No such message")
        return ok(f"{name} completed")
    try:
        result = await session.store.copy_messages(
            view.mailbox_id, uids, user.id, cmd.mailbox, session.origin, move=cmd.move
        )
    except MailboxNotFound as exc:
        raise CommandRefused(exc.text, "TRYCREATE") from exc
    # The store copies in ascending source-UID order, so both compressed sets pair up.
    code = (
        f"COPYUID {result.uidvalidity} {SequenceSet.from_values(result.source_uids)} "
        f"{SequenceSet.from_values(result.dest_uids)}"
    )
    if cmd.move:
        # RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGEs.
        return ok("MOVE completed", None, UntaggedStatus("OK", "Moved", code))
    return Outcome(text="COPY completed", code=code)


# --- IDLE -----------------------------------------------------------------------------
async def handle_idle(session: Session, cmd: c.Idle) -> Outcome:
    """IDLE (RFC 2177): the session sends ``+ idling`` and waits for DONE or changes."""
    return ok("IDLE started")
