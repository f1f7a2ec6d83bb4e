"""What SORT and THREAD read from the store: one `SortRecord` per matching message.

The per-content keys (store/sortthread/records.py) come from the envelope APPEND stored in
``contents.structure`` (its item 9, read with SQLite's ``->`` so the parts are never
decoded) and, for THREAD=REFERENCES only, the header block for the References field. They
depend on the bytes alone, and contents never change and their ids are never reused, so
they are kept in an LRU cache by content id: a second SORT of a 10,000-message mailbox
reads only UIDs, dates, sizes and content ids. Misses are read in chunks on the shared
reader connection (other sessions' reads interleave between them) and decoded off the event
loop.

Results are cached too, while the mailbox holds the same messages: `sort_order` keeps each
criteria list's order of the whole mailbox (a SORT with search keys is that order filtered:
the sort is stable with sequence-number ties, so a subset's order is the filtered whole), and
`thread_roots` each algorithm's tree per searched set. Webmail sorts the same folder again on
every page it shows. The set of messages is known by the mailbox's (UIDNEXT, MESSAGES): UIDs
only grow, so an append always changes it and an expunge without an append lowers MESSAGES;
neither pair ever comes back. Sorting and threading run in a worker thread. Imports nothing of
imapd or notify.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Final

from store.api import Criterion
from store.mime.bodystructure import Envelope, envelope_from_json, structure_from_json
from store.sortthread.records import ContentKeys, SortRecord, content_keys
from store.sortthread.sorting import sort_records
from store.sortthread.threads import Node, ordered_subject, references
from store.sqlite import search
from store.sqlite.base import Row, SqliteBase, _one, _rows

#: Content keys kept (about 0.5 KB each): a 10,000-message mailbox stays cached whole.
SORT_CACHE: Final = 32768
#: Contents read per query when the cache misses (a query holds the shared reader).
SORT_CHUNK: Final = 1000
#: Sort orders and thread trees kept: at most this many, holding at most RESULT_MESSAGES
#: messages together (a 10,000-message tree is about 2 MB).
RESULT_CACHE: Final = 32
RESULT_MESSAGES: Final = 100_000
_ALL: Final = Criterion("ALL")
#: Sort keys read from the messages table alone.
_PLAIN_KEYS: Final = frozenset({"ARRIVAL", "SIZE"})

Criteria = tuple[tuple[str, bool], ...]


def _order(rows: list[Row], keys: dict[int, ContentKeys], criteria: Criteria) -> list[int]:
    return [r.uid for r in sort_records(_build(rows, keys), criteria)]


def _threads(rows: list[Row], keys: dict[int, ContentKeys], by_refs: bool) -> list[Node]:
    records = _build(rows, keys)
    return references(records) if by_refs else ordered_subject(records)


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


class SqliteSort(SqliteBase):
    """`sort_records` (see the module)."""

    _sort_keys: OrderedDict[int, ContentKeys]
    _sort_results: OrderedDict[tuple[object, ...], tuple[int, object]]

    def _sort_cache(self) -> OrderedDict[int, ContentKeys]:
        try:
            return self._sort_keys
        except AttributeError:
            self._sort_keys = OrderedDict()
            return self._sort_keys

    def _results(self) -> OrderedDict[tuple[object, ...], tuple[int, object]]:
        try:
            return self._sort_results
        except AttributeError:
            self._sort_results = OrderedDict()
            return self._sort_results

    async def _messages_token(self, mailbox_id: int) -> tuple[int, int] | None:
        """(UIDNEXT, MESSAGES): names the mailbox's set of messages (see the module)."""
        row = await _one(
            self._reader, "SELECT uidnext, messages FROM mailboxes WHERE id = ?", (mailbox_id,)
        )
        return None if row is None else (row[0], row[1])

    def _remember(self, key: tuple[object, ...], size: int, value: object) -> None:
        """Keep ``value`` (about ``size`` messages) under ``key``; the oldest go first."""
        results = self._results()
        results[key] = (size, value)
        results.move_to_end(key)
        held = sum(n for n, _ in results.values())
        while len(results) > 1 and (len(results) > RESULT_CACHE or held > RESULT_MESSAGES):
            held -= results.popitem(last=False)[1][0]

    def _recall(self, key: tuple[object, ...]) -> object:
        found = self._results().get(key)
        if found is None:
            return None
        self._results().move_to_end(key)
        return found[1]

    async def sort_order(self, mailbox_id: int, criteria: Criteria) -> list[int]:
        """The UIDs of every message of the mailbox sorted by ``criteria`` ((sort-key,
        reverse) pairs, RFC 5256 §3), ties by UID. The caller filters it to a search's
        matches; the list is shared: do not change it."""
        token = await self._messages_token(mailbox_id)
        key = ("sort", mailbox_id, token, criteria)
        found = self._recall(key)
        if isinstance(found, list):
            return found
        contents = any(k not in _PLAIN_KEYS for k, _ in criteria)
        rows, keys = await self._rows_and_keys(mailbox_id, _ALL, False, contents)
        order = await asyncio.to_thread(_order, rows, keys, criteria)
        if token is not None:
            self._remember(key, len(order), order)
        return order

    async def thread_roots(
        self,
        mailbox_id: int,
        algorithm: str,
        criterion: Criterion | None,
        visible: Sequence[int] | None = None,
    ) -> list[Node]:
        """THREAD ``algorithm`` ("ORDEREDSUBJECT" or "REFERENCES", RFC 5256 §3) of the
        messages matching ``criterion`` (None: all) and among ``visible`` UIDs (None: any),
        as store/sortthread/threads.py gives it. The tree is shared: do not change it."""
        token = await self._messages_token(mailbox_id)
        # All messages: the set is known without reading it (the token and ``visible``).
        whole = (
            None
            if criterion is not None or visible is None
            else ("thread-all", mailbox_id, token, algorithm, tuple(visible))
        )
        if whole is not None and isinstance(found := self._recall(whole), list):
            return found
        by_refs = algorithm == "REFERENCES"
        rows, keys = await self._rows_and_keys(mailbox_id, criterion or _ALL, by_refs, True)
        if visible is not None:
            seen = set(visible)
            rows = [r for r in rows if r[0] in seen]
        key = ("thread", mailbox_id, token, algorithm, tuple(r[0] for r in rows))
        found = self._recall(key)
        if isinstance(found, list):
            roots = found
        else:
            roots = await asyncio.to_thread(_threads, rows, keys, by_refs)
        if token is not None:
            self._remember(key, len(rows), roots)
            if whole is not None:
                self._remember(whole, len(rows), roots)  # counted twice: conservative
        return roots

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
        cache = self._sort_cache()
        local: dict[int, ContentKeys] = {}
        missing: dict[int, None] = {}
        for row in rows if contents else ():
            content_id = row[3]
            got = cache.get(content_id)
            if got is None or (references and got.references is None):
                missing[content_id] = None
            elif content_id not in local:
                local[content_id] = got
                cache.move_to_end(content_id)
        header = "substr(c.raw, 1, c.header_len)" if references else "NULL"
        ids = list(missing)
        for start in range(0, len(ids), SORT_CHUNK):
            chunk = ids[start : start + SORT_CHUNK]
            found = await _rows(
                self._reader,
                "SELECT c.id, c.structure -> '$[9]', CASE WHEN c.structure -> '$[9]' = '1'"
                " THEN c.structure END, " + header + " FROM json_each(?) AS j"
                " JOIN contents AS c ON c.id = j.value",
                (json.dumps(chunk),),
            )
            decoded = await asyncio.to_thread(_decode, found, references)
            for content_id, keys in decoded:
                cache[content_id] = local[content_id] = keys
        while len(cache) > SORT_CACHE:
            cache.popitem(last=False)
        return rows, local
