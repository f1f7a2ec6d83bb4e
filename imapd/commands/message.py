"""Selected-state message commands: EXPUNGE, SEARCH, FETCH, STORE, COPY, MOVE, IDLE
(RFC 3501 §6.4, RFC 4315 UIDPLUS, RFC 6851 MOVE, RFC 2177 IDLE, RFC 7162 CONDSTORE and
QRESYNC, RFC 4731 ESEARCH, RFC 5182 SEARCHRES, RFC 8514 SAVEDATE).

``$`` (RFC 5182) is the session's saved search result, kept as UIDs, so it names the same
messages in FETCH and UID FETCH alike and loses expunged ones on its own; every handler
taking a sequence set resolves it through `SelectedView.resolve` with that list.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
from bisect import bisect_left
from collections.abc import AsyncIterator, Iterable, Iterator
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from imapd import fetch_binary, fetch_cache, fetch_rows
from imapd.commands.acl import lookup
from imapd.commands.auth import enable
from imapd.commands.base import Outcome, ok
from imapd.commands.updates import open_context, prepare_update
from imapd.fetch import fetch_line, fetch_response, imap_datetime, needs
from imapd.protocol import commands as c
from imapd.protocol.errors import BadCommand, CommandRefused
from imapd.protocol.framing import Mode
from imapd.protocol.responses import (
    Atom,
    Raw,
    Response,
    Serialized,
    Untagged,
    UntaggedStatus,
    Value,
)
from imapd.protocol.serializer import serialize_pieces
from imapd.protocol.values import FetchAtt, SearchKey, SequenceSet
from imapd.rfc5267 import partial_item
from imapd.selected import SelectedView
from store.acl import settable
from store.api import CONTENT_COLUMNS, Criterion, MessageRecord
from store.changes import FlagsChanged, MessageFacts, MessagesAdded, MessagesExpunged
from store.errors import MailboxNotFound
from store.ranges import number_ranges

if TYPE_CHECKING:
    from imapd.commands.context import Context

#: Messages read from the store per batch while streaming a FETCH.
FETCH_BATCH = 250
#: ... and at most this many octets of content per batch (BODY[], RFC822...).
FETCH_OCTETS = 16 * 1024 * 1024
#: The same for flags, sizes and dates only: rows are small, thread hops are not.
PLAIN_BATCH = 5000
#: The largest UID (RFC 3501 §2.3.1.1: 32 bits): ``*`` in UID FETCH ... VANISHED.
MAX_UID = 2**32 - 1


def _require_writable(view: SelectedView) -> None:
    if view.readonly:
        raise CommandRefused("Mailbox is read-only", "READ-ONLY")


def _rights(session: Context) -> str:
    """The user's rights on the selected mailbox, as checked at SELECT (RFC 4314 §5.1.1
    lets them be cached; ``r`` is implied)."""
    return session.mailbox.rights if session.mailbox is not None else ""


def _require_rights(session: Context, needed: str) -> None:
    """Refuse a selected-state command without ``needed``: NOPERM (the user selected the
    mailbox, so it is no secret to them)."""
    if not all(r in _rights(session) for r in needed):
        raise CommandRefused("Permission denied", "NOPERM")


def _told_highestmodseq(session: Context, view: SelectedView) -> int:
    """The HIGHESTMODSEQ for the tagged OK of a command after which every update is sent
    (EXPUNGE, UID EXPUNGE, MOVE; RFC 7162 §3.2.7, §3.2.9, RFC 6851 §4.4). The store
    publishes in commit order, so every change up to the highest one queued for this
    session is queued too, and all of them go out before the tagged OK."""
    highest = view.highestmodseq
    for change in session.subscription.pending:
        if isinstance(change, MessagesAdded | MessagesExpunged | FlagsChanged) and (
            change.mailbox.id == view.mailbox_id
        ):
            highest = max(highest, change.counts.highestmodseq)
    return highest


# --- EXPUNGE --------------------------------------------------------------------------
async def handle_expunge(session: Context, cmd: c.Expunge) -> Outcome:
    """EXPUNGE (RFC 3501 §6.4.3) and UID EXPUNGE set (RFC 4315 §2.1). The EXPUNGE
    responses come from the session's own change, flushed after the command."""
    view = session.require_view()
    _require_writable(view)
    _require_rights(session, "e")  # RFC 4314 §4
    uids = None
    if cmd.uids is not None:
        uids = view.resolve(cmd.uids, uid=True, saved=session.saved_search)
        if not uids:
            return ok("EXPUNGE completed")
    removed = await session.store.expunge(view.mailbox_id, session.origin, uids)
    if removed and view.condstore:
        return ok("EXPUNGE completed", f"HIGHESTMODSEQ {_told_highestmodseq(session, view)}")
    return ok("EXPUNGE completed")


# --- SEARCH ---------------------------------------------------------------------------
def to_criterion(key: SearchKey, view: SelectedView, saved: list[int]) -> Criterion:
    """Resolve session state (sequence numbers, $, \\Recent) into a store Criterion."""
    match key.name:
        case "SEQSET" | "UID":
            assert isinstance(key.value, SequenceSet)
            # A number above the count matches nothing, as in Dovecot and Cyrus (RFC 3501 §9
            # leaves the choice; SEARCH keys often come from a stale view): no BAD.
            uids = view.resolve(key.value, uid=key.name == "UID", saved=saved, lenient=True)
            return Criterion("UIDS", tuple(number_ranges(uids)))
        case "RECENT":
            return Criterion("UIDS", tuple(number_ranges(view.recent)))
        case "NEW":
            return Criterion(
                "AND",
                children=(
                    Criterion("UIDS", tuple(number_ranges(view.recent))),
                    Criterion("UNSEEN"),
                ),
            )
        case "OLD":
            recent = Criterion("UIDS", tuple(number_ranges(view.recent)))
            return Criterion("NOT", children=(recent,))
        case _:
            kids = tuple(to_criterion(k, view, saved) for k in key.children)
            value = key.value
            assert not isinstance(value, SequenceSet)
            return Criterion(key.name, value, key.header, kids)


def mentions_modseq(key: SearchKey) -> bool:
    return key.name == "MODSEQ" or any(mentions_modseq(k) for k in key.children)


async def handle_search(session: Context, cmd: c.Search) -> Outcome:
    """[UID] SEARCH [RETURN (MIN MAX ALL COUNT SAVE)] [CHARSET x] keys (RFC 3501 §6.4.4,
    ESEARCH RFC 4731 §3.1, SEARCHRES RFC 5182 §2). A MODSEQ key enables CONDSTORE and adds
    the highest mod-sequence found (RFC 7162 §3.1.5, §3.1.10; RFC 4731 §3.2). Examples:
    RFC 4731 §3.1, RFC 5182 §2.4."""
    view = session.require_view()
    save = cmd.return_opts is not None and "SAVE" in cmd.return_opts
    try:
        return await _search(session, view, cmd)
    except BadCommand:
        raise  # RFC 5182 §2.1: a BAD leaves $ as it was
    except Exception:
        if save:
            session.saved_search = []  # RFC 5182 §2.1: a NO with SAVE empties $
        raise


#: Return options that ask for no result data (RFC 5182 SAVE, RFC 5267 CONTEXT and UPDATE).
_NO_RESULT = frozenset({"SAVE", "CONTEXT", "UPDATE"})


def _count_keys(key: SearchKey, limit: int) -> int:
    """Keys in the tree, counted without recursion, stopping past ``limit``."""
    count, stack = 0, [key]
    while stack and count <= limit:
        k = stack.pop()
        count += 1
        stack.extend(k.children)
    return count


def check_search_keys(session: Context, key: SearchKey) -> None:
    """Refuse a search program with more keys than the configured limit (also SORT, THREAD)."""
    limit = session.config.limits.max_search_keys
    if _count_keys(key, limit) > limit:
        raise CommandRefused(f"Too many search keys (limit {limit})", "LIMIT")


async def _search(session: Context, view: SelectedView, cmd: c.Search) -> Outcome:
    check_search_keys(session, cmd.key)
    live = prepare_update(session, cmd.tag, cmd.update, cmd.key)  # RFC 5267 §4.3
    criterion = to_criterion(cmd.key, view, session.saved_search)
    with_modseq = mentions_modseq(cmd.key)
    owed = enable(session, "CONDSTORE") if with_modseq else []
    found = await session.store.search(view.mailbox_id, criterion)
    known, numbers = view.numbered(found)
    if cmd.uid:
        numbers = known
    opts = cmd.return_opts
    if opts is None and view.rev2:
        opts = ()  # RFC 9051 §6.4.4: ESEARCH, ALL when no return option is given
    if opts is None:
        # The numbers as one pre-rendered value: thousands of them for SEARCH UNSEEN.
        items: list[Value] = [Atom("SEARCH")]
        if numbers:
            items.append(Raw(" ".join(map(str, numbers)).encode("ascii")))
        modseq = await highest_modseq(session, view, known) if with_modseq else None
        if modseq is not None:
            items.append((Atom("MODSEQ"), modseq))  # RFC 7162 §3.1.6
        return ok("SEARCH completed", None, *owed, Untagged(tuple(items)))
    # RFC 4731 §3.1: RETURN () means ALL (CONTEXT alone too: a hint, RFC 5267 §4.2); SAVE
    # alone returns no ESEARCH (RFC 5182 §2.2); UPDATE returns nothing itself (§4.3).
    wanted = {o for o in opts if o not in _NO_RESULT} if set(opts) - {"CONTEXT"} else {"ALL"}
    picked = sorted(
        {known[0] if o == "MIN" else known[-1] for o in wanted & {"MIN", "MAX"} if known}
    )
    # RFC 5182 §2.4: MIN and/or MAX without ALL or COUNT save just what they return.
    only_ends = bool(wanted) and not wanted & {"ALL", "COUNT", "PARTIAL"}
    if "SAVE" in opts:
        session.saved_search = picked if only_ends else known
    refused = open_context(session, cmd, live, known)  # RFC 5267 §4.3: NOUPDATE, or none
    if not wanted and "UPDATE" not in opts:
        return ok("SEARCH completed, result saved", None, *owed)
    items = [Atom("ESEARCH"), (Atom("TAG"), cmd.tag)]
    if cmd.uid:
        items.append(Atom("UID"))
    if known and "MIN" in wanted:
        items += [Atom("MIN"), numbers[0]]
    if known and "MAX" in wanted:
        items += [Atom("MAX"), numbers[-1]]
    if "COUNT" in wanted:
        items += [Atom("COUNT"), len(known)]
    if known and "ALL" in wanted:
        items += [Atom("ALL"), Atom(str(SequenceSet.from_values(numbers)))]
    if cmd.partial is not None:  # RFC 5267 §4.4: mailbox order
        items += partial_item(cmd.partial, numbers, sort=False)
    if with_modseq:
        # RFC 4731 §3.2: of the MIN/MAX messages alone, else of all found.
        modseq = await highest_modseq(session, view, picked if only_ends else known)
        if modseq is not None:
            items += [Atom("MODSEQ"), modseq]
    return ok("SEARCH completed", None, *owed, Untagged(tuple(items)), *refused)


async def highest_modseq(session: Context, view: SelectedView, uids: list[int]) -> int | None:
    """The highest mod-sequence among ``uids``; None when there is none (no match)."""
    if not uids:
        return None
    records = await session.store.fetch(view.mailbox_id, uids)
    return max((r.modseq for r in records), default=None)


# --- FETCH ----------------------------------------------------------------------------
async def handle_fetch(session: Context, cmd: c.Fetch) -> Outcome:
    """[UID] FETCH set atts [(CHANGEDSINCE n [VANISHED])] (RFC 3501 §6.4.5, RFC 7162
    §3.1.4, §3.2.6). UID FETCH always returns UID (§6.4.8). A non-PEEK body fetch sets
    \\Seen in a read-write mailbox, and FLAGS is then returned. MODSEQ or CHANGEDSINCE
    enable CONDSTORE; CHANGEDSINCE implies MODSEQ; VANISHED (UID FETCH only, checked by the
    parser) needs ENABLE QRESYNC and answers ``* VANISHED (EARLIER)`` before any FETCH."""
    view = session.require_view()
    if cmd.vanished and not view.qresync:
        raise BadCommand("VANISHED needs ENABLE QRESYNC first")  # RFC 7162 §3.2.6
    uids = view.resolve(cmd.sequence_set, uid=cmd.uid, saved=session.saved_search)
    atts = cmd.atts
    if cmd.uid and not view.uidonly and not any(a.name == "UID" for a in atts):
        atts = (FetchAtt("UID"), *atts)  # RFC 9586 §3.3: UIDFETCH leads with the UID
    owed: list[Response] = []
    if cmd.changedsince is not None or any(a.name == "MODSEQ" for a in atts):
        owed += enable(session, "CONDSTORE")  # RFC 7162 §3.1
        if not any(a.name == "MODSEQ" for a in atts):
            atts = (*atts, FetchAtt("MODSEQ"))  # RFC 7162 §3.1.4.1
    if cmd.vanished and cmd.changedsince is not None:
        owed += await _vanished_earlier(session, view, cmd.sequence_set, cmd.changedsince)
    need = needs(atts)
    if not uids:
        return ok("FETCH completed", None, *owed)
    fetch = FetchCommand(
        session,
        view,
        uids,
        atts,
        need.content,
        need.structure,
        need.sets_seen and not view.readonly and "s" in _rights(session),  # RFC 4314 §4
        cmd.changedsince,
        wire=need.wire,
        header=need.header,
    )
    return Outcome(text="FETCH completed", responses=owed, stream=fetch)


async def _vanished_earlier(
    session: Context, view: SelectedView, uid_set: SequenceSet, modseq: int
) -> list[Response]:
    """RFC 7162 §3.2.6: the UIDs of the set expunged with a mod-sequence above ``modseq``.
    The store remembers every expunge, so the answer is exact (never the "all that are
    missing" fallback of §3.2.6). UIDs the client still numbers (expunged elsewhere, not
    told yet) are left to the VANISHED that follows this command."""
    if uid_set.saved:
        ranges = tuple(number_ranges(session.saved_search))
    else:
        ranges = tuple(uid_set.resolve(MAX_UID))
    gone = await session.store.vanished_since(view.mailbox_id, modseq, ranges)
    gone = [u for u in gone if view.seq_of(u) is None]
    if not gone:
        return []
    return [
        Untagged((Atom("VANISHED"), (Atom("EARLIER"),), Atom(str(SequenceSet.from_values(gone)))))
    ]


class FetchCommand:
    """One FETCH being answered (as mox's fetchCmd): what it reads and how, and how it
    ends. The session iterates it for batches of FETCH responses, then reads `ending`."""

    def __init__(
        self,
        session: Context,
        view: SelectedView,
        uids: list[int],
        atts: tuple[FetchAtt, ...],
        content: bool,
        structure: bool,
        sets_seen: bool,
        changedsince: int | None,
        *,
        wire: bool = False,
        header: bool = False,
    ) -> None:
        self.session = session
        self.view = view
        self.uids = uids
        self.atts = atts
        self.content = content
        self.structure = structure
        self.sets_seen = sets_seen
        self.changedsince = changedsince
        #: ENVELOPE/BODY/BODYSTRUCTURE as pre-rendered bytes; the header block alone.
        self.wire = wire
        self.header = header
        #: Some messages could not be served (expunged, their contents gone).
        self.expunge_issued = False
        #: BINARY refused for some messages (code, text): `fetch_binary.refusal`.
        self.binary_refused: tuple[str, str] | None = None

    def __aiter__(self) -> AsyncIterator[list[Response]]:
        return _fetch_stream(self)

    @property
    def ending(self) -> Outcome | None:
        """RFC 2180 §4.1.2, RFC 5530: ``NO [EXPUNGEISSUED]`` when a message could not be
        served (the data for the rest went out); None: the handler's OK stands. A BINARY
        item that cannot be served fails the command (RFC 3516 §4.3: ``NO [UNKNOWN-CTE]``),
        that message left out, the others sent."""
        if self.binary_refused is not None:
            code, text = self.binary_refused
            return Outcome(text=text, status="NO", code=code)
        if not self.expunge_issued:
            return None
        return Outcome(
            text="Some of the requested messages no longer exist", status="NO", code="EXPUNGEISSUED"
        )


async def _fetch_stream(fetch: FetchCommand) -> AsyncIterator[list[Response]]:
    """Batches of FETCH responses. A message expunged by another session that this one
    was not told of yet is still served (RFC 2180 §4.1.1): from the facts its expunge
    carried (flags, sizes, dates, modseq) and, for contents or structure, from the shared
    contents while a copy or a MOVE keeps them. Only when those are gone does the command
    end in ``NO [EXPUNGEISSUED]`` (RFC 2180 §4.1.2, RFC 5530), with data for the rest."""
    session, view, uids, atts = fetch.session, fetch.view, fetch.uids, fetch.atts
    changedsince = fetch.changedsince
    missing = False
    if changedsince is None and all(a.name in _PLAIN_FORMATS for a in atts):
        if _all_cached(session, view, uids, plain_columns(atts)):
            rplan = fetch_rows.plan(atts)
            assert rplan is not None  # UID, RFC822.SIZE, INTERNALDATE: rendered from rows
            async for batch in _row_batches(fetch, rplan, _each_batch(uids)):
                yield batch
            return
        columns = plain_columns(atts)
        for start in range(0, len(uids), PLAIN_BATCH):
            chunk = uids[start : start + PLAIN_BATCH]
            rows = await session.store.fetch_plain(view.mailbox_id, chunk, columns)
            if len(rows) < len(chunk) and _expunged_facts(session, view, chunk):
                # Rare: expunged elsewhere, not reported yet; the generic path, in order.
                records = await session.store.fetch(view.mailbox_id, chunk)
                records, complete = await _with_expunged(
                    session, view, chunk, records, False, False, None
                )
                missing = missing or not complete
                yield _fetch_batch(session, view, records, atts, {}, session.utf8)
                continue
            missing = missing or len(rows) < len(chunk)
            yield [Serialized(_plain_fetch_lines(view, rows, atts))]
        fetch.expunge_issued = missing
        return
    batches = (uids[start : start + FETCH_BATCH] for start in range(0, len(uids), FETCH_BATCH))
    rplan = fetch_rows.plan(atts) if changedsince is None and not fetch.sets_seen else None
    if rplan is not None:  # issue 17: rendered from rows, one query per batch
        async for batch in _row_batches(fetch, rplan, batches):
            yield batch
        return
    binary = any(a.name in fetch_binary.ITEMS for a in atts)
    seen_uids = uids
    if fetch.sets_seen and binary:  # a refused BINARY item leaves its message unseen
        seen_uids = await _binary_servable(fetch, uids)
    seen_now = await _mark_seen(session, view, seen_uids, changedsince) if fetch.sets_seen else {}
    async for batch in _record_batches(fetch, batches, seen_now):
        yield batch


def _all_cached(
    session: Context, view: SelectedView, uids: list[int], columns: tuple[str, ...]
) -> bool:
    """``columns`` are all kept by `imapd.fetch_cache` (UID, RFC822.SIZE, INTERNALDATE:
    no FLAGS, no MODSEQ) and so are all ``uids``: the FETCH reads nothing from the store."""
    mailbox = session.mailbox
    if mailbox is None or not set(columns) <= set(fetch_cache.IMMUTABLE):
        return False
    cache = fetch_cache.for_store(session.store)
    return cache.holds(view.mailbox_id, mailbox.uidvalidity, uids)


def _each_batch(uids: list[int]) -> Iterator[list[int]]:
    return (uids[start : start + FETCH_BATCH] for start in range(0, len(uids), FETCH_BATCH))


async def _row_batches(
    fetch: FetchCommand, rplan: fetch_rows.RowPlan, batches: Iterator[list[int]]
) -> AsyncIterator[list[Response]]:
    """`_fetch_stream` for attributes `imapd.fetch_rows` renders from rows; a batch it
    cannot (see there), and one with messages expunged elsewhere, as records."""
    session, view = fetch.session, fetch.view
    missing = False
    async for chunk in _by_octets(session, view, batches) if rplan.content else _each(batches):
        rows, order, cost = await _plan_rows(session, view, chunk, rplan)
        data = None
        if len(rows) == len(chunk) or not _expunged_facts(session, view, chunk):
            args = (view, rows, rplan, session.utf8, order)
            if cost > RENDER_IN_THREAD:
                data = await asyncio.to_thread(fetch_rows.render, *args)
            else:
                data = fetch_rows.render(*args)
        if data is None:
            async for batch in _record_batches(fetch, iter([chunk]), {}):
                yield batch
            continue
        missing = missing or len(rows) < len(chunk)
        yield [Serialized(data)]
    fetch.expunge_issued = fetch.expunge_issued or missing


async def _plan_rows(
    session: Context, view: SelectedView, chunk: list[int], rplan: fetch_rows.RowPlan
) -> tuple[list[tuple[Any, ...]], tuple[str, ...], int]:
    """`fetch_rows.render`'s rows of ``chunk`` (those the store still has, or all when
    none is read), the order of their columns (`render`'s ``order``) and what rendering
    them costs (`RENDER_IN_THREAD`): what never changes from `imapd.fetch_cache`, filled
    from one `Store.fetch_plain` of the batch when a message is missing there (its
    entries made off the event loop when they copy much); otherwise only the flags and
    modseq are read, or nothing.
    Plans reading the whole message are read as they are (the message is not kept)."""
    mailbox = session.mailbox
    read: list[tuple[Any, ...]]
    if rplan.content or mailbox is None:
        read = await session.store.fetch_plain(view.mailbox_id, chunk, rplan.columns)
        if "wire" in rplan.columns:
            w = rplan.columns.index("wire") + 1
            read = [(*r[:w], fetch_rows.pieces(r[w]), *r[w + 1 :]) for r in read]
        return read, rplan.columns, _rows_cost(read, rplan)
    cache = fetch_cache.for_store(session.store)
    mutable = [c for c in rplan.columns if c in fetch_cache.MUTABLE]
    uidvalidity = mailbox.uidvalidity
    entries = cache.lookup(view.mailbox_id, uidvalidity, chunk)
    if entries is None:  # one query for the batch: what may change and what may not
        columns = (*mutable, *fetch_cache.IMMUTABLE)
        read = await session.store.fetch_plain(view.mailbox_id, chunk, columns)
        k = len(mutable) + 1
        kept = [(r[0], *r[k:]) for r in read]
        if fetch_cache.raw_octets(kept) > RENDER_IN_THREAD:  # cutting copies them
            entries = await asyncio.to_thread(fetch_cache.make, kept)
        else:
            entries = fetch_cache.make(kept)
        cache.keep(view.mailbox_id, uidvalidity, [r[0] for r in read], entries)
    elif mutable:
        read = await session.store.fetch_plain(view.mailbox_id, chunk, mutable)
        if len(read) < len(chunk):  # expunged meanwhile: the rows the store has
            by_uid = dict(zip(chunk, entries, strict=True))
            entries = [by_uid[r[0]] for r in read]
    else:
        read = [(uid,) for uid in chunk]
    rows, order = fetch_cache.rows(entries, read, rplan.columns)
    return rows, order, fetch_cache.cost(entries)


#: The three items of `fetch_rows.pieces` without UTF8=ACCEPT (the others are as long).
_PLAIN_ITEMS = itemgetter(0, 1, 2)


def _rows_cost(rows: list[tuple[Any, ...]], rplan: fetch_rows.RowPlan) -> int:
    """Octets the rows' lines copy (`RENDER_IN_THREAD`): their bytes columns (the
    pre-rendered items counted once, as `fetch_rows.pieces` cut them)."""
    cost = 0
    for i, column in enumerate(rplan.columns, 1):
        values = filter(None, map(itemgetter(i), rows))
        if column == "wire":
            cost += sum(map(len, chain.from_iterable(map(_PLAIN_ITEMS, values))))
        elif column in CONTENT_COLUMNS:
            cost += sum(map(len, values))
    return cost


async def _record_batches(
    fetch: FetchCommand,
    batches: Iterator[list[int]],
    seen_now: dict[int, tuple[tuple[str, ...], int]],
) -> AsyncIterator[list[Response]]:
    """`_fetch_stream` from `MessageRecord`s: every attribute, ``seen_now`` as marked."""
    session, view, atts = fetch.session, fetch.view, fetch.atts
    content, structure, changedsince = fetch.content, fetch.structure, fetch.changedsince
    wire, header = fetch.wire, fetch.header
    binary = any(a.name in fetch_binary.ITEMS for a in atts)
    # RFC 8970: PREVIEW without LAZY computes what is missing; PREVIEW (LAZY) alone does not.
    wanted = [a for a in atts if a.name == "PREVIEW"]
    previews = any(not a.lazy for a in wanted) if wanted else None
    missing = False
    bounded = content or header
    async for chunk in _by_octets(session, view, batches) if bounded else _each(batches):
        records = await session.store.fetch(
            view.mailbox_id,
            chunk,
            content=content,
            structure=structure,
            changedsince=changedsince,
            wire=wire,
            header=header,
        )
        # Expunged messages come without wire bytes or header blocks: rendered from these.
        records, complete = await _with_expunged(
            session,
            view,
            chunk,
            records,
            content or header,
            structure or wire or header,
            changedsince,
        )
        missing = missing or (changedsince is None and not complete)
        if binary:
            records = _binary_records(fetch, records)
        if previews is not None:
            records = await _with_previews(session, records, compute=previews)
        if sum(map(_render_cost, records)) * (BINARY_WEIGHT if binary else 1) > RENDER_IN_THREAD:
            # Rendering and serialising cost grows with the messages (20,000 addresses in
            # one To: took 0.7 s for ENVELOPE): off the event loop. Only this session's
            # task, which waits here, touches the view meanwhile.
            pieces = await asyncio.to_thread(
                _fetch_pieces, session, view, records, atts, seen_now, session.utf8
            )
            yield [Serialized(piece) for piece in pieces]  # big literals stay uncopied
        else:
            yield _fetch_batch(session, view, records, atts, seen_now, session.utf8)
    fetch.expunge_issued = fetch.expunge_issued or missing


async def _with_previews(
    session: Context, records: list[MessageRecord], *, compute: bool
) -> list[MessageRecord]:
    """``records`` with their RFC 8970 preview text (`Store.previews`, by contents id)."""
    ids = [r.content_id for r in records if r.content_id is not None]
    found = await session.store.previews(ids, compute=compute)
    return [
        dataclasses.replace(r, preview=found.get(r.content_id)) if r.content_id else r
        for r in records
    ]


async def _binary_servable(fetch: FetchCommand, uids: list[int]) -> list[int]:
    """The UIDs whose BINARY items can be served, read from their structures in batches
    before any is marked \\Seen (only for a non-PEEK BINARY: a rare request)."""
    out: list[int] = []
    for start in range(0, len(uids), FETCH_BATCH):
        chunk = uids[start : start + FETCH_BATCH]
        records = await fetch.session.store.fetch(fetch.view.mailbox_id, chunk, structure=True)
        out += [r.uid for r in _binary_records(fetch, records)]
    return out


def _binary_records(fetch: FetchCommand, records: list[MessageRecord]) -> list[MessageRecord]:
    """``records`` less those whose BINARY items are refused (not leaves, an unknown
    Content-Transfer-Encoding), the refusal kept for the command's ending."""
    kept: list[MessageRecord] = []
    for record in records:
        if record.structure is not None and (why := fetch_binary.refusal(record, fetch.atts)):
            fetch.binary_refused = why
        else:
            kept.append(record)
    return kept


async def _mark_seen(
    session: Context, view: SelectedView, uids: list[int], changedsince: int | None
) -> dict[int, tuple[tuple[str, ...], int]]:
    """RFC 3501 §6.4.5: the ``\\Seen`` a non-PEEK body section sets, for every message of
    the FETCH in ONE write (one FlagsChanged, one modseq), before any is read: the unseen
    ones are found by a read first, so the write touches only them. With CHANGEDSINCE only
    the messages the FETCH returns (RFC 7162 §3.1.4.1). uid -> (flags, modseq) now."""
    rows = await session.store.fetch_plain(view.mailbox_id, uids, ("modseq", "flags"))
    unseen = [
        uid
        for uid, modseq, flags in rows
        if (changedsince is None or modseq > changedsince) and "\\Seen" not in flags.split()
    ]
    if not unseen:
        return {}
    result = await session.store.store_flags(
        view.mailbox_id, unseen, "+", ["\\Seen"], session.origin, kind="fetch"
    )
    return {ch.uid: (ch.flags, ch.modseq) for ch in result.changes}


#: Rendering work in one FETCH batch above which it is done in a worker thread, in octets
#: copied: 1 MiB takes well under a millisecond to copy.
RENDER_IN_THREAD = 1024 * 1024
#: Decoding BINARY sections (store/mime/transfer.py: 50-100 MB/s) against copying (~700).
BINARY_WEIGHT = 8
#: What rendering a message's structure afresh costs per octet of the message (its
#: addresses and parts grow with it), and cutting header fields per header octet, in
#: octets copied: 64 KiB of structure rendering went off the loop before issue 17.
STRUCTURE_WEIGHT = 16
HEADER_WEIGHT = 4


def _render_cost(record: MessageRecord) -> int:
    """What rendering ``record`` costs (see `RENDER_IN_THREAD`): the octets it copies
    (contents, pre-rendered bytes), its header block scanned for fields, its whole size
    when the structure is rendered afresh."""
    cost = len(record.content or b"") + len(record.wire or b"")
    cost += HEADER_WEIGHT * len(record.header or b"")
    return cost + STRUCTURE_WEIGHT * record.size if record.structure is not None else cost


def _fetch_pieces(
    session: Context,
    view: SelectedView,
    records: list[MessageRecord],
    atts: tuple[FetchAtt, ...],
    seen_now: dict[int, tuple[tuple[str, ...], int]],
    utf8: bool,
) -> list[bytes]:
    return serialize_pieces(_fetch_batch(session, view, records, atts, seen_now, utf8), utf8=utf8)


def _fetch_batch(
    session: Context,
    view: SelectedView,
    records: list[MessageRecord],
    atts: tuple[FetchAtt, ...],
    seen_now: dict[int, tuple[tuple[str, ...], int]],
    utf8: bool,
) -> list[Response]:
    batch: list[Response] = []
    lines: list[bytes] = []  # consecutive `fetch_line`s, sent as one Serialized
    for record in records:
        seq = view.seq_of(record.uid)
        if seq is None:
            continue
        line = fetch_line(view, seq, record, atts, utf8) if record.uid not in seen_now else None
        if line is not None:
            lines.append(line)
            continue
        if lines:
            batch.append(Serialized(b"".join(lines)))
            lines.clear()
        batch.append(fetch_response(view, seq, record, atts, seen_now, utf8=utf8))
    if lines:
        batch.append(Serialized(b"".join(lines)))
    return batch


async def _each(batches: Iterator[list[int]]) -> AsyncIterator[list[int]]:
    for batch in batches:
        yield batch


async def _by_octets(
    session: Context, view: SelectedView, batches: Iterator[list[int]]
) -> AsyncIterator[list[int]]:
    """The batches cut further so that one holds at most `FETCH_OCTETS` of content (or a
    single message): 250 messages of 10 MB must not all be in memory at once."""
    for batch in batches:
        if len(batch) == 1:  # one message is one part whatever its size: no query
            yield batch
            continue
        if view.octets_bound is not None and view.octets_bound <= FETCH_OCTETS:
            yield batch  # the whole mailbox fits: no query of the sizes
            continue
        sizes = dict(await session.store.fetch_plain(view.mailbox_id, batch, ("size",)))
        part: list[int] = []
        octets = 0
        for uid in batch:
            size = sizes.get(uid, 0)
            if part and octets + size > FETCH_OCTETS:
                yield part
                part, octets = [], 0
            part.append(uid)
            octets += size
        if part:
            yield part


def _expunged_facts(session: Context, view: SelectedView, uids: list[int]) -> list[MessageFacts]:
    """What the expunges of ``uids`` recorded, for those expunged elsewhere and not yet
    reported: applied to the view already (held back, as under NOTIFY selected-delayed) or
    still queued on the session's subscription (it is applied after the command)."""
    found = {f.uid: f for f in view.gone_facts(uids)}
    if len(found) < len(uids):
        wanted = set(uids)
        for change in session.subscription.pending:
            if isinstance(change, MessagesExpunged) and change.mailbox.id == view.mailbox_id:
                for m in change.messages:
                    if m.uid in wanted:
                        found.setdefault(m.uid, m)
    return list(found.values())


async def _with_expunged(
    session: Context,
    view: SelectedView,
    chunk: list[int],
    records: list[MessageRecord],
    content: bool,
    structure: bool,
    changedsince: int | None,
) -> tuple[list[MessageRecord], bool]:
    """The records of a chunk in UID order, adding the messages expunged elsewhere and not
    yet reported that can still be served (RFC 2180 §4.1.1; never \\Seen-marked: they are
    no longer stored); and whether every message can be served."""
    served = {r.uid for r in records}
    unserved = [u for u in chunk if u not in served]
    if unserved:
        facts = _expunged_facts(session, view, unserved)
        if changedsince is not None:
            facts = [f for f in facts if f.modseq > changedsince]
        if facts:
            gone = await session.store.fetch_expunged(facts, content=content, structure=structure)
            records = sorted([*records, *gone], key=lambda r: r.uid)
    return records, len(records) >= len(chunk)


#: How each plain attribute shows on the wire (a %-format) and the `fetch_plain` column it
#: shows (None: the UID, always the row's first field).
_PLAIN_FORMATS: dict[str, tuple[str, str | None]] = {
    "UID": ("UID %d", None),
    "MODSEQ": ("MODSEQ (%d)", "modseq"),
    "FLAGS": ("FLAGS (%s)", "flags"),
    "RFC822.SIZE": ("RFC822.SIZE %d", "size"),
    "INTERNALDATE": ('INTERNALDATE "%s"', "internaldate"),
}


def plain_columns(atts: tuple[FetchAtt, ...]) -> tuple[str, ...]:
    """The `fetch_plain` columns (after the UID) that ``atts`` show, each once, in order."""
    out: list[str] = []
    for att in atts:
        column = _PLAIN_FORMATS[att.name][1]
        if column is not None and column not in out:
            out.append(column)
    return tuple(out)


def _plain_fetch_lines(
    view: SelectedView, rows: list[tuple[Any, ...]], atts: tuple[FetchAtt, ...]
) -> bytes:
    """The hot path of synchronising clients (``FETCH 1:* (UID FLAGS)``): the same bytes
    the generic serializer would produce (tests compare both), one %-format per line and
    no Value tree; ``rows`` are `fetch_plain`'s for `plain_columns` of ``atts``. Flags are
    atoms by construction (the parser admits only atom keywords). Sequence numbers are
    counted, not looked up, when the rows are a run of the view's UIDs (no message of the
    batch expunged meanwhile: the rule)."""
    if not rows:
        return b""
    names = [a.name for a in atts]
    field = {c: i for i, c in enumerate(plain_columns(atts), 1)}
    uids = [r[0] for r in rows]
    first = bisect_left(view.uids, uids[0])
    seqs: Iterable[int]
    if view.uids[first : first + len(uids)] == uids:
        seqs = range(first + 1, first + 1 + len(uids))
    else:
        numbered = [(n, r) for r in rows if (n := view.seq_of(r[0])) is not None]
        seqs, rows = [n for n, _ in numbered], [r for _, r in numbered]
    if "FLAGS" in names:
        view.forget_flag_updates(uids)  # this FETCH reports them
        if view.recent:
            recent, i = view.recent, field["flags"]
            rows = [_replaced(r, i, _with_recent(r[i])) if r[0] in recent else r for r in rows]
    if "INTERNALDATE" in names:
        i = field["internaldate"]
        rows = [_replaced(r, i, _internaldate_text(r[i])) for r in rows]
    if view.uidonly:  # RFC 9586 §3.3: ``* uid UIDFETCH (...)``
        seqs = [r[0] for r in rows]
    head = "* %d UIDFETCH (" if view.uidonly else "* %d FETCH ("
    line = head + " ".join(_PLAIN_FORMATS[n][0] for n in names) + ")\r\n"
    fields = [0 if (c := _PLAIN_FORMATS[n][1]) is None else field[c] for n in names]
    if len(fields) == 1:
        i = fields[0]
        text = "".join([line % (n, r[i]) for n, r in zip(seqs, rows, strict=True)])
    else:
        get = itemgetter(*fields)
        text = "".join([line % (n, *get(r)) for n, r in zip(seqs, rows, strict=True)])
    return text.encode()


@functools.lru_cache(maxsize=4096)
def _internaldate_text(stored: str) -> str:
    """A stored ISO date (its zone in the text) as INTERNALDATE shows it."""
    return imap_datetime(dt.datetime.fromisoformat(stored))


def _with_recent(flags: str) -> str:
    return flags + " \\Recent" if flags else "\\Recent"


def _replaced(row: tuple[Any, ...], i: int, value: object) -> tuple[Any, ...]:
    return (*row[:i], value, *row[i + 1 :])


# --- STORE ----------------------------------------------------------------------------
def check_keyword_limit(session: Context, known: Iterable[str], flags: Iterable[str]) -> None:
    """``limits.max_keywords``: a command that would bring a mailbox's keywords past it
    answers NO [LIMIT] (RFC 5530) and changes nothing (issue 14: 101,122 keywords were
    accepted, and every SELECT then listed them all, 1.8 MB)."""
    limit = session.config.limits.max_keywords
    have = {k.lower() for k in known}
    new = {f.lower() for f in flags if not f.startswith("\\")} - have
    if new and len(have) + len(new) > limit:
        raise CommandRefused(f"Too many keywords in this mailbox (limit {limit})", "LIMIT")


async def handle_store(session: Context, cmd: c.Store) -> Outcome:
    """[UID] STORE set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] flags (RFC 3501 §6.4.6,
    RFC 7162 §3.1.3, examples 3-8 there). UNCHANGEDSINCE enables CONDSTORE; messages with
    a higher mod-sequence are left alone and named in ``[MODIFIED set]``. Once CONDSTORE is
    on, every message changed gets a FETCH with UID and MODSEQ even with .SILENT (§3.1.3,
    §3.2.4); with UNCHANGEDSINCE every message that passed the test does."""
    view = session.require_view()
    _require_writable(view)
    flags = _storable(session, cmd)
    if cmd.mode != "-":
        check_keyword_limit(session, view.keywords, flags)
    uids = view.resolve(cmd.sequence_set, uid=cmd.uid, saved=session.saved_search)
    owed = enable(session, "CONDSTORE") if cmd.unchangedsince is not None else []
    uids = [u for u in uids if not view.is_gone(u)]
    if not uids:
        return ok("STORE completed", None, *owed)
    result = await session.store.store_flags(
        view.mailbox_id,
        uids,
        cmd.mode,
        flags,
        session.origin,
        unchangedsince=cmd.unchangedsince,
    )
    changed = {ch.uid for ch in result.changes}
    failed = set(result.modified)
    responses: list[Response] = owed
    for uid in sorted(result.current):
        seq = view.seq_of(uid)
        if uid in failed or seq is None:
            continue
        flags, modseq = result.current[uid]
        if cmd.silent and not (
            view.condstore and (uid in changed or cmd.unchangedsince is not None)
        ):
            continue
        items: list[Value] = []
        if (cmd.uid and not view.uidonly) or view.condstore:  # RFC 9586 §3.3: UIDFETCH
            items += [Atom("UID"), uid]
        if not cmd.silent:
            items += [Atom("FLAGS"), view.flags_with_recent(uid, flags)]
        if view.condstore:
            items += [Atom("MODSEQ"), (modseq,)]
        view.forget_flag_update(uid)
        responses.append(Untagged((*view.fetch_head(seq, uid), tuple(items))))
    code = None
    if result.modified:
        modified = result.modified if cmd.uid else [view.seq_of(u) or 0 for u in result.modified]
        code = f"MODIFIED {SequenceSet.from_values(modified)}"  # RFC 7162 §3.1.3
    text = "Conditional STORE failed" if code else "STORE completed"
    return Outcome(text=text, code=code, responses=responses)


def _storable(session: Context, cmd: c.Store) -> tuple[str, ...]:
    """RFC 4314 §4: \\Seen needs s, \\Deleted t, other flags w. +FLAGS/-FLAGS go on with
    the flags the user may change (a STORE SHOULD NOT fail for some) and are refused with
    none; FLAGS (replace) touches every flag, so it needs all three rights."""
    rights = _rights(session)
    if cmd.mode == "":
        _require_rights(session, "swt")
        return cmd.flags
    kept = settable(cmd.flags, rights)
    if cmd.flags and not kept:
        raise CommandRefused("Permission denied", "NOPERM")
    return kept


# --- COPY / MOVE -----------------------------------------------------------------------
async def _check_copied_keywords(
    session: Context, view: SelectedView, uids: list[int], target_id: int
) -> None:
    """COPY/MOVE carry keywords: `check_keyword_limit` on the target, with the source
    mailbox's keywords first (cheap), the copied messages' own only when that fails."""
    known = await session.store.mailbox_keywords(target_id)
    limit = session.config.limits.max_keywords
    if len({k.lower() for k in (*known, *view.keywords)}) <= limit:
        return
    rows = await session.store.fetch_plain(view.mailbox_id, uids, ("flags",))
    check_keyword_limit(session, known, {f for row in rows for f in str(row[1]).split()})


async def handle_copy(session: Context, cmd: c.Copy) -> Outcome:
    """[UID] COPY / [UID] MOVE set mailbox (RFC 3501 §6.4.7, RFC 6851, COPYUID RFC 4315)."""
    view = session.require_view()
    user = session.require_user()
    if cmd.move:
        _require_writable(view)
        _require_rights(session, "te")  # RFC 6851 §4.2: STORE \Deleted + EXPUNGE rights
    uids = view.resolve(cmd.sequence_set, uid=cmd.uid, saved=session.saved_search)
    uids = [u for u in uids if not view.is_gone(u)]
    name = "MOVE" if cmd.move else "COPY"
    if not uids:
        if not cmd.uid and not cmd.sequence_set.saved:
            raise BadCommand("No such message")
        return ok(f"{name} completed")
    # RFC 4314 §4: i on the target; the flags without their right there are not copied.
    target = await lookup(session, cmd.mailbox, "i", target=True)
    if view.keywords and target.id != view.mailbox_id:
        await _check_copied_keywords(session, view, uids, target.id)
    try:
        result = await session.store.copy_messages(
            view.mailbox_id,
            uids,
            user.id,
            target.id,
            session.origin,
            move=cmd.move,
            need="i",  # checked again in the write transaction (see handle_append)
        )
    except MailboxNotFound as exc:
        raise CommandRefused(exc.text, "TRYCREATE") from exc
    # The store copies in ascending source-UID order, so both compressed sets pair up.
    code = (
        f"COPYUID {result.uidvalidity} {SequenceSet.from_values(result.source_uids)} "
        f"{SequenceSet.from_values(result.dest_uids)}"
    )
    if cmd.move:
        # RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGEs; §4.4: the
        # source's new HIGHESTMODSEQ in the tagged OK.
        told = f"HIGHESTMODSEQ {_told_highestmodseq(session, view)}" if view.condstore else None
        return ok("MOVE completed", told, UntaggedStatus("OK", "Moved", code))
    return Outcome(text="COPY completed", code=code)


# --- IDLE -----------------------------------------------------------------------------
async def handle_idle(session: Context, cmd: c.Idle) -> Outcome:
    """IDLE (RFC 2177): the session sends ``+ idling`` and waits for DONE or changes
    (imapd/listening.py), then answers ``OK IDLE terminated``."""
    return Outcome(text="IDLE started", mode=Mode.IDLE)
