"""What never changes of a stored message, kept in memory per process for FETCH (issue 17),
as Dovecot keeps its cache file: a message's size, INTERNALDATE, pre-rendered ENVELOPE,
BODY and BODYSTRUCTURE items (already cut apart, `imapd.fetch_rows.pieces`) and its header
block.

Owns: `ContentCache` (one per store object, `for_store`) and the rows `imapd.fetch_rows`
renders when they come from it. A FETCH served by the row path whose messages are all here
reads only what may change (FLAGS, MODSEQ) from the store, or nothing at all when it asks
for none of that: no thread hop to the reader, no join to the contents' side tables, no
cutting of the pre-rendered bytes per message.

Why it stays right without invalidation: its key is (mailbox id, UIDVALIDITY, UID), and a
message under that key is never another one: UIDs are not reused within a UIDVALIDITY
(RFC 3501 §2.3.1.1), mailbox ids are not reused (AUTOINCREMENT on SQLite, an identity on
PostgreSQL), and a mailbox revived from a placeholder restarts its UIDs under a new
UIDVALIDITY. A message expunged by another session or worker stays here until pushed out:
a session that still numbers it may be served it (RFC 2180 §4.1.1); one that was told of
the expunge no longer asks for it. Nothing mutable is kept, so flag changes from anywhere
are read from the store as before.

Bounded: `CACHE_BYTES` of entries per store object, the oldest added dropped first (a hit
does not move an entry: no bookkeeping per message on the hot path). The cache object is
used from the event loop only (look-ups and keeping are dictionary operations over one
batch, bounded by it); entries are made by `make`, pure, off the loop when they copy much,
and rows built from them may be rendered in a thread (`RENDER_IN_THREAD`): they are tuples.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from imapd import fetch_rows

#: Octets of entries kept per store object (each counted with `ENTRY_OVERHEAD`).
CACHE_BYTES = 32 * 1024 * 1024
#: What an entry costs beyond its bytes (its key, tuples, ints, dictionary slot).
ENTRY_OVERHEAD = 400
#: The `Store.fetch_plain` columns kept here, in an entry's order ...
IMMUTABLE = ("size", "internaldate", "wire", "header")
#: ... and those read from the store each time.
MUTABLE = ("flags", "modseq")

#: size, internaldate (as stored), `fetch_rows.pieces` of the wire bytes, header block,
#: and the octets a line copies at most from them (`cost`).
Entry = tuple[int, str, tuple[bytes, ...] | None, bytes | None, int]
Key = tuple[int, int, int]


class ContentCache:
    """Entries by (mailbox id, UIDVALIDITY, UID); see the module docstring."""

    def __init__(self, budget: int = CACHE_BYTES) -> None:
        self.budget = budget
        self.used = 0
        self._entries: dict[Key, Entry] = {}
        self._sizes: dict[Key, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, mailbox_id: int, uidvalidity: int, uids: Sequence[int]) -> list[Entry] | None:
        """The entries of all ``uids``, in their order; None when one is missing."""
        get = self._entries.get
        out: list[Entry] = []
        for uid in uids:
            entry = get((mailbox_id, uidvalidity, uid))
            if entry is None:
                return None
            out.append(entry)
        return out

    def holds(self, mailbox_id: int, uidvalidity: int, uids: Sequence[int]) -> bool:
        """All ``uids`` have their entry."""
        entries = self._entries
        return all((mailbox_id, uidvalidity, uid) in entries for uid in uids)

    def fill(
        self, mailbox_id: int, uidvalidity: int, rows: Sequence[tuple[Any, ...]]
    ) -> list[Entry]:
        """Entries made from ``rows`` (``uid`` then the `IMMUTABLE` columns as
        `Store.fetch_plain` returns them), kept and returned in the rows' order."""
        entries = make(rows)
        self.keep(mailbox_id, uidvalidity, [r[0] for r in rows], entries)
        return entries

    def keep(
        self, mailbox_id: int, uidvalidity: int, uids: Sequence[int], entries: Sequence[Entry]
    ) -> None:
        """Keep ``entries`` (`make`'s) of ``uids``, pushing out the oldest as needed."""
        for uid, entry in zip(uids, entries, strict=True):
            self._add((mailbox_id, uidvalidity, uid), entry)

    def _add(self, key: Key, entry: Entry) -> None:
        _, internaldate, items, header, _ = entry
        cost = ENTRY_OVERHEAD + len(internaldate) + len(header or b"")
        cost += sum(map(len, items)) if items is not None else 0
        if cost > self.budget:
            return
        old = self._sizes.pop(key, None)
        if old is not None:
            del self._entries[key]
            self.used -= old
        while self.used + cost > self.budget:
            oldest = next(iter(self._entries))
            del self._entries[oldest]
            self.used -= self._sizes.pop(oldest)
        self._entries[key] = entry
        self._sizes[key] = cost
        self.used += cost


def make(rows: Sequence[tuple[Any, ...]]) -> list[Entry]:
    """The entries of ``rows`` (as `ContentCache.fill` takes them): the pre-rendered bytes
    cut into their items (copies: as long as the bytes, `raw_octets`). Pure: may run off
    the event loop."""
    out: list[Entry] = []
    for _, size, internaldate, wire, header in rows:
        items = fetch_rows.pieces(wire)
        octets = len(header or b"") + (sum(map(len, items[:3])) if items else 0)
        out.append((size, internaldate, items, header, octets))
    return out


def raw_octets(rows: Sequence[tuple[Any, ...]]) -> int:
    """The octets of the pre-rendered bytes and header blocks in ``rows`` (`make`'s)."""
    return sum(len(r[3] or b"") + len(r[4] or b"") for r in rows)


_caches: weakref.WeakKeyDictionary[object, ContentCache] = weakref.WeakKeyDictionary()


def for_store(store: object) -> ContentCache:
    """The cache of ``store`` (mailbox ids are the store's: two stores in one process,
    as in tests, never share entries)."""
    cache = _caches.get(store)
    if cache is None:
        cache = _caches[store] = ContentCache()
    return cache


def cost(entries: Sequence[Entry]) -> int:
    """The octets the lines of ``entries`` copy at most (`RENDER_IN_THREAD`): their
    pre-rendered items (one variant) and header blocks, counted when they were filled."""
    return sum(map(_OCTETS, entries))


_OCTETS = itemgetter(4)


def rows(
    entries: Sequence[Entry], read: Sequence[tuple[Any, ...]], columns: Sequence[str]
) -> tuple[list[tuple[Any, ...]], tuple[str, ...]]:
    """`fetch_rows.render`'s rows for ``columns`` and the order of their columns after the
    UID (`render`'s ``order``): the `MUTABLE` ones among ``columns`` first, as ``read``
    holds them after its UID (`Store.fetch_plain` rows for them, or ``(uid,)`` when there
    are none), then the others from ``entries`` (one per row of ``read``). Each row is one
    tuple concatenation: no step per column in Python."""
    mutable = tuple(c for c in columns if c in MUTABLE)
    kept = tuple(c for c in columns if c not in MUTABLE)
    order = mutable + kept
    width = len(mutable) + 1
    if any(len(r) != width for r in read[:1]):  # read with more columns (filling)
        read = [r[:width] for r in read]
    if not kept:
        return list(read), order
    if len(kept) == 1:
        i = IMMUTABLE.index(kept[0])
        return [(*r, e[i]) for r, e in zip(read, entries, strict=True)], order
    pick = itemgetter(*(IMMUTABLE.index(c) for c in kept))
    return [r + pick(e) for r, e in zip(read, entries, strict=True)], order
