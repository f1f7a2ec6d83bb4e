"""SORT and THREAD over a per-mailbox state kept in memory and brought up to date by what
changed (store/sortthread/incremental.py): shared by the SQLite and PostgreSQL stores.

Each call first syncs the mailbox's state: one query (one snapshot) gives the mailbox's
message count and the messages above the highest UID held; only their keys are read
(their envelopes, and the References for THREAD=REFERENCES) and they are placed into each
kept order by bisection. While only ARRIVAL and SIZE were asked for, no envelope is read at
all (those keys are in the message rows): the first other key reads every message's. When
the count shows that messages went, the mailbox's UIDs are read (UIDs only) and the missing
ones removed. Flag changes need nothing: no sort key
depends on flags (see the incremental module).

Memory: at most `SORT_STATES` mailboxes holding `SORT_STATE_MESSAGES` messages together
(about 0.6 KB a message with one order, 0.1 KB for each further order), least recently
used evicted first; a mailbox larger than the cap alone is kept while it is in use only.
A per-mailbox lock serializes syncing and the work in worker threads on one state.
Imports nothing of imapd or notify.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Final

from store.api import Criterion
from store.sortthread.incremental import UNREAD, Criteria, MailboxSortState, needs_contents
from store.sortthread.records import ContentKeys, SortRecord
from store.sortthread.threads import Node

#: Mailboxes whose sort state is kept, and the messages they may hold together.
SORT_STATES: Final = 16
SORT_STATE_MESSAGES: Final = 200_000
#: Changes larger than this are applied in a worker thread.
_IN_THREAD: Final = 1000

Row = tuple[int, int, int, int]  # uid, INTERNALDATE epoch, size, content id
EMPTY_KEYS: Final = ContentKeys(None, "", False, "", "", "", "", "", None, ())


def build_records(rows: Sequence[Row], keys: Mapping[int, ContentKeys]) -> list[SortRecord]:
    """The records of (uid, INTERNALDATE epoch, size, content id) rows. A content missing
    from ``keys`` went between the two reads (its message was expunged meanwhile): it sorts
    as all-empty until the next sync removes it."""
    get = keys.get
    return [
        SortRecord(uid, arrival, size, get(cid, EMPTY_KEYS)) for uid, arrival, size, cid in rows
    ]


class SortState:
    """The mixin: `sort_order`, `sort_keys`, `thread_roots` over the kept states. The store
    provides `_sort_delta`, `_sort_uids`, `_sort_content_keys` and `search`."""

    _sort_states: OrderedDict[int, MailboxSortState]
    _sort_locks: dict[int, asyncio.Lock]
    #: content ids of each held mailbox's messages (to read the References again)
    _sort_cids: dict[int, dict[int, int]]

    async def search(self, mailbox_id: int, criterion: Criterion) -> list[int]:
        raise NotImplementedError

    async def _sort_delta(self, mailbox_id: int, after_uid: int) -> tuple[int, list[Row]] | None:
        """(message count, rows of the messages above ``after_uid`` in UID order), read in
        one snapshot; None: no such mailbox."""
        raise NotImplementedError

    async def _sort_uids(self, mailbox_id: int) -> list[int]:
        raise NotImplementedError

    async def _sort_content_keys(
        self, content_ids: list[int], references: bool
    ) -> dict[int, ContentKeys]:
        raise NotImplementedError

    def _sort_lock(self, mailbox_id: int) -> asyncio.Lock:
        try:
            locks = self._sort_locks
        except AttributeError:
            locks = self._sort_locks = {}
            self._sort_states = OrderedDict()
            self._sort_cids = {}
        lock = locks.get(mailbox_id)
        if lock is None:
            lock = locks[mailbox_id] = asyncio.Lock()
        return lock

    def _evict(self, keep: int) -> None:
        states = self._sort_states
        held = sum(len(s) for s in states.values())
        while len(states) > 1 and (len(states) > SORT_STATES or held > SORT_STATE_MESSAGES):
            oldest = next(iter(states))
            if oldest == keep:
                states.move_to_end(oldest)
                continue
            held -= len(states.pop(oldest))
            self._sort_cids.pop(oldest, None)
            lock = self._sort_locks.get(oldest)
            if lock is not None and not lock.locked():
                del self._sort_locks[oldest]

    async def _synced(
        self, mailbox_id: int, references: bool, contents: bool = True
    ) -> MailboxSortState:
        """The mailbox's state brought up to date (hold its lock); not ``contents``: the
        content keys need not be read (ARRIVAL and SIZE alone), unless the state holds
        them already."""
        states = self._sort_states
        state = states.get(mailbox_id)
        delta = await self._sort_delta(mailbox_id, 0 if state is None else state.max_uid)
        if delta is None:
            states.pop(mailbox_id, None)
            self._sort_cids.pop(mailbox_id, None)
            return MailboxSortState(())
        count, rows = delta
        keyed = contents or references or (state is not None and state.keyed)
        if keyed:
            ids = list(dict.fromkeys(r[3] for r in rows))
            keys = await self._sort_content_keys(ids, references)
            new = build_records(rows, keys)
        else:
            new = [SortRecord(uid, arrival, size, UNREAD) for uid, arrival, size, _ in rows]
        cids = self._sort_cids.setdefault(mailbox_id, {})
        cids.update((r[0], r[3]) for r in rows)
        if state is None:
            state = MailboxSortState(new, keyed)
        elif len(new) > _IN_THREAD:
            await asyncio.to_thread(state.add, new)
        else:
            state.add(new)
        if len(state) != count:  # messages went: which, by their UIDs
            now = set(await self._sort_uids(mailbox_id))
            gone = [u for u in state.records if u not in now]
            if len(gone) > _IN_THREAD:
                await asyncio.to_thread(state.remove, gone)
            else:
                state.remove(gone)
            for u in gone:
                cids.pop(u, None)
        if keyed and (not state.keyed or (references and state.without_references)):
            lacking = [
                u
                for u, r in state.records.items()
                if r.keys is UNREAD or (references and r.keys.references is None)
            ]
            if lacking:
                ids = [cids[u] for u in lacking]
                keys = await self._sort_content_keys(list(dict.fromkeys(ids)), references)
                state.replace(
                    (
                        SortRecord(r.uid, r.arrival, r.size, keys.get(cid, EMPTY_KEYS))
                        for u, cid in zip(lacking, ids, strict=True)
                        if (r := state.records[u]) is not None
                    ),
                    keyed=True,
                )
            state.keyed = True
        states[mailbox_id] = state
        states.move_to_end(mailbox_id)
        self._evict(mailbox_id)
        return state

    async def sort_order(self, mailbox_id: int, criteria: Criteria) -> list[int]:
        """Every message's UID sorted by ``criteria`` ((sort-key, reverse) pairs, RFC 5256
        §3), ties by UID. The caller filters it to a search's matches; the list is shared
        and stays the same object while the mailbox's messages do: do not change it."""
        async with self._sort_lock(mailbox_id):
            state = await self._synced(mailbox_id, False, needs_contents(criteria))
            if criteria not in state.orders and len(state) > _IN_THREAD:
                await asyncio.to_thread(state.order, criteria)
            return state.order(criteria).uids()

    async def sort_keys(self, mailbox_id: int, criteria: Criteria) -> Mapping[int, Any]:
        """Every message's sort key under ``criteria`` (UID -> key; keys compare as the
        order goes): a live read-only view, kept up to date by later calls. CONTEXT=SORT
        places new members by these keys (imapd/rfc5267.py)."""
        async with self._sort_lock(mailbox_id):
            state = await self._synced(mailbox_id, False, needs_contents(criteria))
            if criteria not in state.orders and len(state) > _IN_THREAD:
                await asyncio.to_thread(state.order, criteria)
            return state.order(criteria).keys

    async def thread_roots(
        self,
        mailbox_id: int,
        algorithm: str,
        criterion: Criterion | None,
        visible: Sequence[int] | None = None,
    ) -> list[Node]:
        """THREAD ``algorithm`` ("ORDEREDSUBJECT" or "REFERENCES", RFC 5256 §3) of the
        messages matching ``criterion`` (None: all) and among ``visible`` UIDs (ascending;
        None: any), as store/sortthread/threads.py gives it. The tree is shared: do not
        change it."""
        by_refs = algorithm == "REFERENCES"
        matched = None if criterion is None else await self.search(mailbox_id, criterion)
        async with self._sort_lock(mailbox_id):
            state = await self._synced(mailbox_id, by_refs)
            chosen: list[int] | None
            if matched is None:
                chosen = None if visible is None else list(visible)
            elif visible is None:
                chosen = matched
            else:
                seen = set(visible)
                chosen = [u for u in matched if u in seen]
            return await asyncio.to_thread(state.thread, algorithm, chosen)
