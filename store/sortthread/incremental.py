"""Per-mailbox SORT/THREAD state kept across changes, so that a change costs what changed.

`MailboxSortState` holds one `SortRecord` per message of a mailbox (UID order) and, per
criteria list asked for, a `SortedOrder`: every message's sort key, and the keys in sort
order. New messages are placed by bisection and expunged ones removed the same way; nothing
is sorted again. No key RFC 5256 or RFC 5957 defines depends on flags or mod-sequences, and
a message's contents, INTERNALDATE and size never change, so a message's key is fixed for
its life: only appends and expunges change an order.

A key is the tuple (criterion values..., UID): the values of REVERSE criteria wrapped in
`Desc`, the UID last, so that tuple order is exactly the order of `sort_records` (stable
sorts, ties by UID whatever REVERSE says). Threads of all the messages are kept the same
way (threadstate.py): appended messages continue step 1 of REFERENCES and only the threads
they touch are built again; an expunge starts them afresh (a full run over the records held
here: nothing of the old messages is read or parsed again). Threads of a searched subset are
computed from the records each time (threads.py), the last few remembered.

Records may hold no content keys (`UNREAD`) while only ARRIVAL and SIZE were asked for: the
state is then not ``keyed``, and the store reads every message's keys before the first
order or thread that needs them (store/sortstate.py).

Pure: no IO, no asyncio. The stores (store/sortstate.py) feed it what changed.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from typing import Any, Final

from store.sortthread.records import ContentKeys, SortRecord
from store.sortthread.sorting import KEYS
from store.sortthread.threads import Node, ordered_subject, references
from store.sortthread.threadstate import ReferencesState, SubjectState

Criteria = tuple[tuple[str, bool], ...]
#: More new or gone messages than this share of an order: sort it whole instead.
_BULK: Final = 8
#: The content keys of a record built without reading them (ARRIVAL and SIZE need none).
UNREAD: Final = ContentKeys(None, "", False, "", "", "", "", "", None, None)
#: Sort keys read from the message row alone.
ROW_KEYS: Final = frozenset({"ARRIVAL", "SIZE"})


def needs_contents(criteria: Criteria) -> bool:
    """Whether sorting by ``criteria`` needs content keys (anything but ARRIVAL and SIZE)."""
    return any(k not in ROW_KEYS for k, _ in criteria)


class Desc:
    """A value ordered the other way round (a REVERSE criterion, RFC 5256 §3)."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: Desc) -> bool:
        return bool(other.v < self.v)

    def __gt__(self, other: Desc) -> bool:
        return bool(other.v > self.v)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Desc) and bool(self.v == other.v)

    def __hash__(self) -> int:
        return hash(self.v)


def sort_key(record: SortRecord, criteria: Criteria) -> tuple[Any, ...]:
    """The key of ``record`` under ``criteria``: keys compare as `sort_records` orders."""
    return (
        *(Desc(KEYS[k](record)) if rev else KEYS[k](record) for k, rev in criteria),
        record.uid,
    )


class SortedOrder:
    """One criteria list's order of a mailbox: ``keys`` every UID's key (a live mapping the
    CONTEXT=SORT updates bisect with, imapd/rfc5267.py), the keys in order beside it."""

    __slots__ = ("_sorted", "_uids", "criteria", "keys")

    def __init__(self, criteria: Criteria, records: Iterable[SortRecord]) -> None:
        self.criteria = criteria
        self.keys: dict[int, tuple[Any, ...]] = {r.uid: sort_key(r, criteria) for r in records}
        self._sorted = sorted(self.keys.values())
        self._uids: list[int] | None = None

    def add(self, records: Sequence[SortRecord]) -> None:
        keys = [sort_key(r, self.criteria) for r in records]
        self.keys.update((k[-1], k) for k in keys)
        if len(keys) * _BULK > len(self._sorted):
            self._sorted = sorted(self.keys.values())
        else:
            for k in keys:
                insort(self._sorted, k)
        self._uids = None

    def remove(self, uids: Iterable[int]) -> None:
        gone = [k for u in uids if (k := self.keys.pop(u, None)) is not None]
        if not gone:
            return
        if len(gone) * _BULK > len(self._sorted):
            self._sorted = sorted(self.keys.values())
        else:
            for k in gone:
                del self._sorted[bisect_left(self._sorted, k)]
        self._uids = None

    def uids(self) -> list[int]:
        """The UIDs in order: the same list until the order changes (shared: do not change
        it; a change makes a new one, so a caller's list never moves under it)."""
        if self._uids is None:
            self._uids = [k[-1] for k in self._sorted]
        return self._uids

    def __len__(self) -> int:
        return len(self.keys)


class MailboxSortState:
    """What SORT and THREAD know of one mailbox (see the module). ``max_uid`` is the highest
    UID held: new messages are those above it."""

    def __init__(self, records: Iterable[SortRecord], keyed: bool = True) -> None:
        self.records: dict[int, SortRecord] = {r.uid: r for r in records}  # UID order
        self.max_uid = max(self.records, default=0)
        #: every record holds its content keys (False: some may be `UNREAD`)
        self.keyed = keyed
        #: records whose References were not read (only THREAD=REFERENCES reads them)
        self.without_references = sum(r.keys.references is None for r in self.records.values())
        self.orders: dict[Criteria, SortedOrder] = {}
        #: (algorithm, UIDs threaded) -> tree of a subset, for the current messages only
        self.threads: dict[tuple[str, tuple[int, ...]], list[Node]] = {}
        #: the threads of all the messages, kept across appends
        self._kept: dict[str, ReferencesState | SubjectState] = {}
        self._list: list[SortRecord] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def add(self, records: Sequence[SortRecord]) -> None:
        """New messages, in UID order, all above ``max_uid``."""
        if not records:
            return
        for r in records:
            self.records[r.uid] = r
            if r.keys.references is None:
                self.without_references += 1
        self.max_uid = max(self.max_uid, records[-1].uid)
        for order in self.orders.values():
            order.add(records)
        self._changed()

    def remove(self, uids: Iterable[int]) -> None:
        gone = [r for u in uids if (r := self.records.pop(u, None)) is not None]
        if not gone:
            return
        self.without_references -= sum(r.keys.references is None for r in gone)
        for order in self.orders.values():
            order.remove(r.uid for r in gone)
        self._kept.clear()  # an expunge can undo any link: threads start afresh
        self._changed()

    def replace(self, records: Iterable[SortRecord], keyed: bool = False) -> None:
        """Records read again with more in them: the References (for THREAD=REFERENCES), or
        the content keys, ``keyed`` then saying that every record now has them. The keys of
        the orders held are unchanged (only ARRIVAL and SIZE orders exist before the
        content keys are read), so the orders stand; so do the kept threads, which were
        given only records with what they use (REFERENCES: the References)."""
        for r in records:
            old = self.records.get(r.uid)
            if old is not None:
                self.records[r.uid] = r
                if old.keys.references is None and r.keys.references is not None:
                    self.without_references -= 1
        if keyed and not self.keyed:
            self.keyed = True
            self._kept.clear()  # none can exist: for safety
        self.threads.clear()
        self._list = None

    def _changed(self) -> None:
        self.threads.clear()
        self._list = None

    def all_records(self) -> list[SortRecord]:
        """Every record in UID order (shared until the next change)."""
        if self._list is None:
            self._list = list(self.records.values())
        return self._list

    def order(self, criteria: Criteria) -> SortedOrder:
        found = self.orders.get(criteria)
        if found is None:
            found = self.orders[criteria] = SortedOrder(criteria, self.records.values())
        return found

    def thread(self, algorithm: str, uids: Sequence[int] | None) -> list[Node]:
        """THREAD ``algorithm`` of the messages held among ``uids`` (None: all), from the
        records held (all: the kept threads; a subset: cached until the next change). Run
        it off the event loop."""
        if uids is None:
            return self._all_threads(algorithm)
        get = self.records.get
        chosen = [r for u in uids if (r := get(u)) is not None]
        if len(chosen) == len(self.records):
            return self._all_threads(algorithm)
        key = (algorithm, tuple(r.uid for r in chosen))
        found = self.threads.get(key)
        if found is None:
            found = references(chosen) if algorithm == "REFERENCES" else ordered_subject(chosen)
            if len(self.threads) >= 4:
                self.threads.pop(next(iter(self.threads)))
            self.threads[key] = found
        return found

    def _all_threads(self, algorithm: str) -> list[Node]:
        """The kept threads of every message, given the messages appended since."""
        kept = self._kept.get(algorithm)
        if kept is None:
            kept = self._kept[algorithm] = (
                ReferencesState() if algorithm == "REFERENCES" else SubjectState()
            )
        if kept.max_uid < self.max_uid:
            new: list[SortRecord] = []
            for r in reversed(self.records.values()):  # the newest are last
                if r.uid <= kept.max_uid:
                    break
                new.append(r)
            new.reverse()
            kept.add(new)
        return kept.tree()
