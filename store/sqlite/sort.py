"""What SORT and THREAD read from the store: one `SortRecord` per matching message.

The per-content keys (store/sortthread/records.py) come from the envelope APPEND stored in
``contents.structure`` (its item 9, read with SQLite's ``->`` so the parts are never
decoded) and, for THREAD=REFERENCES only, the header block for the References field. They
depend on the bytes alone, and contents never change and their ids are never reused, so
they are kept in an LRU cache by content id: a second SORT of a 10,000-message mailbox
reads only UIDs, dates, sizes and content ids. Misses are read in chunks on the shared
reader connection (other sessions' reads interleave between them) and decoded off the event
loop.

SORT, THREAD and the CONTEXT=SORT keys run over a per-mailbox state kept in memory and
brought up to date by what changed (store/sortstate.py, store/sortthread/incremental.py):
this module gives it the changed rows and the content keys. `sort_records` (any search) is
read afresh each time. Imports nothing of imapd or notify.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from typing import Final

from store.api import Criterion
from store.mime.bodystructure import Envelope, envelope_from_json, structure_from_json
from store.sortstate import SortState
from store.sortthread.records import ContentKeys, SortRecord, content_keys
from store.sqlite import search
from store.sqlite.base import Row, SqliteBase, _rows

#: Content keys kept (about 0.5 KB each): a 10,000-message mailbox stays cached whole.
SORT_CACHE: Final = 32768
#: Contents read per query when the cache misses (a query holds the shared reader).
SORT_CHUNK: Final = 1000
_ALL: Final = Criterion("ALL")

Criteria = tuple[tuple[str, bool], ...]


def _keys_of(row: Row, with_refs: bool) -> ContentKeys:
    """``row``: (id, envelope JSON item or NULL, structure text, header bytes or NULL)."""
    envelope: Envelope | None = None
    if row[1] is not None:
        try:
            envelope = envelope_from_json(row[1])
        except ValueError:  # the top part shares its encapsulated message's envelope
            envelope = structure_from_json(row[2]).envelope
    return content_keys(envelope, row[3], with_refs)


_EMPTY: Final = ContentKeys(None, "", False, "", "", "", "", "", None, ())


def _build(rows: list[Row], keys: dict[int, ContentKeys]) -> list[SortRecord]:
    """The records of (uid, INTERNALDATE epoch, size, content id) rows (in a worker thread:
    10,000 of them). A content missing from ``keys`` went between the two reads (its
    message was expunged meanwhile): it sorts as all-empty."""
    get = keys.get
    return [SortRecord(uid, arrival, size, get(cid, _EMPTY)) for uid, arrival, size, cid in rows]


def _decode(rows: list[Row], with_refs: bool) -> list[tuple[int, ContentKeys]]:
    return [(r[0], _keys_of(r, with_refs)) for r in rows]


class SqliteSort(SortState, SqliteBase):
    """`sort_records`; `sort_order`, `sort_keys`, `thread_roots` over the kept per-mailbox
    states (store/sortstate.py), fed by the reads below."""

    _sort_keys: OrderedDict[int, ContentKeys]

    def _sort_cache(self) -> OrderedDict[int, ContentKeys]:
        try:
            return self._sort_keys
        except AttributeError:
            self._sort_keys = OrderedDict()
            return self._sort_keys

    async def _sort_delta(self, mailbox_id: int, after_uid: int) -> tuple[int, list[Row]] | None:
        """One statement, one snapshot: the count and the messages above ``after_uid``."""
        rows = await _rows(
            self._reader,
            "SELECT b.messages, m.uid, m.internal_epoch, m.size, m.content_id"
            " FROM mailboxes AS b LEFT JOIN messages AS m"
            " ON m.mailbox_id = b.id AND m.uid > ? WHERE b.id = ? ORDER BY m.uid",
            (after_uid, mailbox_id),
        )
        if not rows:
            return None
        return rows[0][0], [(r[1], r[2], r[3], r[4]) for r in rows if r[1] is not None]

    async def _sort_uids(self, mailbox_id: int) -> list[int]:
        rows = await _rows(
            self._reader, "SELECT uid FROM messages WHERE mailbox_id = ?", (mailbox_id,)
        )
        return [r[0] for r in rows]

    async def _sort_content_keys(
        self, content_ids: list[int], references: bool
    ) -> dict[int, ContentKeys]:
        """The keys of these contents: from the cache, the rest read in chunks (on the
        shared reader: other sessions' reads go in between) and decoded off the loop."""
        cache = self._sort_cache()
        local: dict[int, ContentKeys] = {}
        missing: list[int] = []
        for content_id in content_ids:
            got = cache.get(content_id)
            if got is None or (references and got.references is None):
                missing.append(content_id)
            else:
                local[content_id] = got
                cache.move_to_end(content_id)
        header = "substr(c.raw, 1, c.header_len)" if references else "NULL"
        for start in range(0, len(missing), SORT_CHUNK):
            chunk = missing[start : start + SORT_CHUNK]
            found = await _rows(
                self._reader,
                "SELECT c.id, c.structure -> '$[9]', CASE WHEN c.structure -> '$[9]' = '1'"
                " THEN c.structure END, " + header + " FROM json_each(?) AS j"
                " JOIN contents AS c ON c.id = j.value",
                (json.dumps(chunk),),
            )
            if len(found) > 16:
                decoded = await asyncio.to_thread(_decode, found, references)
            else:
                decoded = _decode(found, references)
            for content_id, keys in decoded:
                cache[content_id] = local[content_id] = keys
        while len(cache) > SORT_CACHE:
            cache.popitem(last=False)
        return local

    async def sort_records(
        self,
        mailbox_id: int,
        criterion: Criterion,
        *,
        references: bool = False,
        contents: bool = True,
    ) -> list[SortRecord]:
        """The matching messages' sort records in UID order; ``references``: with the
        References of each (THREAD=REFERENCES); not ``contents``: UID, INTERNALDATE and size
        alone (empty keys: ARRIVAL and SIZE need no more). Raises ValueError for an unknown
        key."""
        rows, keys = await self._rows_and_keys(mailbox_id, criterion, references, contents)
        return await asyncio.to_thread(_build, rows, keys)

    async def _rows_and_keys(
        self, mailbox_id: int, criterion: Criterion, references: bool, contents: bool
    ) -> tuple[list[Row], dict[int, ContentKeys]]:
        """The matching (uid, INTERNALDATE epoch, size, content id) rows in UID order, and
        the content keys they need (held by this call: another may evict from the cache)."""
        compiled = search.compile_criterion(criterion, self._now())
        join = " JOIN contents AS c ON c.id = m.content_id" if compiled.needs_content else ""
        if compiled.needs_search:
            join += " LEFT JOIN content_search AS s ON s.id = m.content_id"
        rows = await _rows(
            self._reader,
            "SELECT m.uid, m.internal_epoch, m.size, m.content_id FROM messages AS m"
            + join
            + " WHERE m.mailbox_id = ? AND ("
            + compiled.sql
            + ") ORDER BY m.uid",
            [mailbox_id, *compiled.params],
        )
        ids = list(dict.fromkeys(r[3] for r in rows)) if contents else []
        return rows, await self._sort_content_keys(ids, references)
