"""SORT and THREAD on PostgreSQL: the sort records of the messages a search matches, built
with store/sortthread/ (the same keys, sorting and threading as the SQLite store). Each
content's keys come from its stored envelope (``contents.structure``) and, for
THREAD=REFERENCES, its header block. Records are built, sorted and threaded in a worker
thread. No result cache yet (the SQLite store keeps one: store/sqlite/sort.py): every SORT
reads the messages' keys again. Imports nothing of imapd or notify.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

from store.api import Criterion
from store.mime.bodystructure import structure_from_json
from store.postgres.base import PostgresBase
from store.sortthread.records import ContentKeys, SortRecord, content_keys
from store.sortthread.sorting import sort_records as sort_by
from store.sortthread.threads import Node, ordered_subject, references

_ALL: Final = Criterion("ALL")
_PLAIN_KEYS: Final = frozenset({"ARRIVAL", "SIZE"})
_EMPTY: Final = ContentKeys(None, "", False, "", "", "", "", "", None, ())
#: Contents read per round trip.
CHUNK: Final = 500

Row = tuple[int, int, int, int]  # uid, INTERNALDATE epoch, size, content id


def _keys(found: list[tuple[int, str, bytes | None]], with_refs: bool) -> dict[int, ContentKeys]:
    return {
        cid: content_keys(structure_from_json(structure).envelope, header, with_refs)
        for cid, structure, header in found
    }


def _build(rows: list[Row], keys: dict[int, ContentKeys]) -> list[SortRecord]:
    return [
        SortRecord(uid, arrival, size, keys.get(cid, _EMPTY)) for uid, arrival, size, cid in rows
    ]


class PostgresSort(PostgresBase):
    """`sort_records`, `sort_order`, `thread_roots` (see the module)."""

    async def search(self, mailbox_id: int, criterion: Criterion) -> list[int]:
        raise NotImplementedError  # PostgresMessages

    async def _records(
        self, mailbox_id: int, criterion: Criterion, with_refs: bool, contents: bool
    ) -> list[SortRecord]:
        uids = await self.search(mailbox_id, criterion)
        rows: list[Row] = [
            (int(r[0]), int(r[1]), int(r[2]), int(r[3]))
            for r in await self._pool.fetch(
                "SELECT uid, internal_epoch, size, content_id FROM messages"
                " WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid",
                mailbox_id,
                uids,
            )
        ]
        keys: dict[int, ContentKeys] = {}
        ids = sorted({r[3] for r in rows}) if contents else []
        header = "substring(raw from 1 for header_len)" if with_refs else "NULL::bytea"
        for start in range(0, len(ids), CHUNK):
            found = [
                (int(r[0]), str(r[1]), None if r[2] is None else bytes(r[2]))
                for r in await self._pool.fetch(
                    "SELECT id, structure, " + header + " FROM contents"
                    " WHERE id = ANY($1::bigint[])",
                    ids[start : start + CHUNK],
                )
            ]
            keys.update(await asyncio.to_thread(_keys, found, with_refs))
        return await asyncio.to_thread(_build, rows, keys)

    async def sort_records(
        self,
        mailbox_id: int,
        criterion: Criterion,
        *,
        references: bool = False,
        contents: bool = True,
    ) -> list[SortRecord]:
        """The matching messages' sort records in UID order (store/api.py)."""
        return await self._records(mailbox_id, criterion, references, contents)

    async def sort_order(
        self, mailbox_id: int, criteria: tuple[tuple[str, bool], ...]
    ) -> list[int]:
        """Every message's UID sorted by ``criteria``, ties by UID (RFC 5256 §3)."""
        contents = any(k not in _PLAIN_KEYS for k, _ in criteria)
        records = await self._records(mailbox_id, _ALL, False, contents)
        return await asyncio.to_thread(lambda: [r.uid for r in sort_by(records, criteria)])

    async def thread_roots(
        self,
        mailbox_id: int,
        algorithm: str,
        criterion: Criterion | None,
        visible: Sequence[int] | None = None,
    ) -> list[Node]:
        """THREAD ``algorithm`` of the matching messages among ``visible`` (RFC 5256 §3)."""
        by_refs = algorithm == "REFERENCES"
        records = await self._records(mailbox_id, criterion or _ALL, by_refs, True)
        if visible is not None:
            seen = set(visible)
            records = [r for r in records if r.uid in seen]
        return await asyncio.to_thread(
            lambda: references(records) if by_refs else ordered_subject(records)
        )
