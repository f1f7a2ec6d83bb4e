"""FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8; RFC 7162 CONDSTORE and QRESYNC: MODSEQ,
CHANGEDSINCE, VANISHED; RFC 3516 BINARY; RFC 8970 PREVIEW; RFC 9586 UIDONLY).

Owns the handler and the `FetchCommand` it returns, which the session iterates for batches
of FETCH responses: how a FETCH is read from the store and in what batches (the plain path
for flags, sizes and dates; the row path of `imapd.fetch_rows` over `imapd.fetch_cache`;
the record path of `MessageRecord`s for everything else), the \\Seen a non-PEEK body
section sets, messages expunged elsewhere still served (RFC 2180 §4.1.1), and when the
rendering goes off the event loop. What the lines look like is `imapd.fetch` and its
siblings'; the other selected-state commands are imapd/commands/message.py.
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
from imapd.commands.auth import enable
from imapd.commands.base import Outcome, ok
from imapd.commands.message import _rights
from imapd.fetch import fetch_line, fetch_response, imap_datetime, needs
from imapd.protocol import commands as c
from imapd.protocol.errors import BadCommand
from imapd.protocol.responses import Atom, Response, Serialized, Untagged
from imapd.protocol.serializer import serialize_pieces
from imapd.protocol.values import FetchAtt, SequenceSet
from imapd.selected import SelectedView
from store.api import CONTENT_COLUMNS, MessageRecord
from store.changes import MessageFacts, MessagesExpunged
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
