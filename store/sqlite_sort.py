"""What SORT and THREAD read from the store: one `SortRecord` per matching message.

The per-content keys (store/sortthread/records.py) come from the envelope APPEND stored in
``contents.structure`` (its item 9, read with SQLite's ``->`` so the parts are never
decoded) and, for THREAD=REFERENCES only, the header block for the References field. They
depend on the bytes alone, and contents never change and their ids are never reused, so
they are kept in an LRU cache by content id: a second SORT of a 10,000-message mailbox
reads only UIDs, dates, sizes and content ids. Misses are read in chunks on the shared
reader connection (other sessions' reads interleave between them) and decoded off the event
loop. Imports nothing of imapd or notify.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from typing import Final

from store import search
from store.api import Criterion
from store.bodystructure import Envelope, envelope_from_json, structure_from_json
from store.sortthread.records import ContentKeys, SortRecord, content_keys
from store.sqlite_base import Row, SqliteBase, _rows

#: Content keys kept (about 0.5 KB each): a 10,000-message mailbox stays cached whole.
SORT_CACHE: Final = 32768
#: Contents read per query when the cache misses (a query holds the shared reader).
SORT_CHUNK: Final = 1000


def _keys_of(row: Row, with_refs: bool) -> ContentKeys:
    """``row``: (id, envelope JSON item or NULL, structure text, header bytes or NULL)."""
    envelope: Envelope | None = None
    if row[1] is not None:
        try:
            envelope = envelope_from_json(row[1])
        except ValueError:  # the top part shares its encapsulated message's envelope
            envelope = structure_from_json(row[2]).envelope
    return content_keys(envelope, row[3], with_refs)


def _decode(rows: list[Row], with_refs: bool) -> list[tuple[int, ContentKeys]]:
    return [(r[0], _keys_of(r, with_refs)) for r in rows]


class SqliteSort(SqliteBase):
    """`sort_records` (see the module)."""

    _sort_keys: OrderedDict[int, ContentKeys]

    def _sort_cache(self) -> OrderedDict[int, ContentKeys]:
        try:
            return self._sort_keys
        except AttributeError:
            self._sort_keys = OrderedDict()
            return self._sort_keys

    async def sort_records(
        self, mailbox_id: int, criterion: Criterion, *, references: bool = False
    ) -> list[SortRecord]:
        """The matching messages' sort records in UID order; ``references``: with the
        References of each (THREAD=REFERENCES). Raises ValueError for an unknown key."""
        compiled = search.compile_criterion(criterion, self._now())
        join = " JOIN contents AS c ON c.id = m.content_id" if compiled.needs_content else ""
        if compiled.needs_search:
            join += " LEFT JOIN content_search AS s ON s.id = m.content_id"
        rows = await _rows(
            self._reader,
            "SELECT m.uid, m.internal_epoch, m.size, m.content_id FROM messages AS m" + join
            + " WHERE m.mailbox_id = ? AND (" + compiled.sql + ") ORDER BY m.uid",
            [mailbox_id, *compiled.params],
        )
        cache = self._sort_cache()
        missing = list(dict.fromkeys(
            r[3] for r in rows
            if (got := cache.get(r[3])) is None or (references and got.references is None)
        ))
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
            decoded = await asyncio.to_thread(_decode, found, references)
            for content_id, keys in decoded:
                cache[content_id] = keys
        records: list[SortRecord] = []
        empty = ContentKeys(None, "", False, "", "", "", "", "", None, ())
        for uid, arrival, size, content_id in rows:
            found_keys = cache.get(content_id)
            if found_keys is None:  # the contents went between the two reads: expunged
                found_keys = empty
            else:
                cache.move_to_end(content_id)
            records.append(SortRecord(uid, arrival, size, found_keys))
        while len(cache) > SORT_CACHE:
            cache.popitem(last=False)
        return records
