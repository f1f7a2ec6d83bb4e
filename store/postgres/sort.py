"""SORT and THREAD on PostgreSQL: the sort records of the messages a search matches, built
with store/sortthread/ (the same keys, sorting and threading as the SQLite store). Each
content's keys come from its stored envelope (``contents.structure``) and, for
THREAD=REFERENCES, its header block. Records are built, sorted and threaded in a worker
thread. SORT, THREAD and the CONTEXT=SORT keys run over a per-mailbox state kept in memory
and brought up to date by what changed (store/sortstate.py); `sort_records` (any search) is
read afresh each time. Imports nothing of imapd or notify.
"""

from __future__ import annotations

import asyncio
from typing import Final

from store.api import Criterion
from store.mime.bodystructure import structure_from_json
from store.postgres.base import PostgresBase
from store.sortstate import SortState
from store.sortthread.records import ContentKeys, SortRecord, content_keys

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


class PostgresSort(SortState, PostgresBase):
    """`sort_records`; `sort_order`, `sort_keys`, `thread_roots` over the kept per-mailbox
    states (store/sortstate.py), fed by the reads below."""

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

    async def _sort_delta(self, mailbox_id: int, after_uid: int) -> tuple[int, list[Row]] | None:
        """One statement, one snapshot: the count and the messages above ``after_uid``."""
        found = await self._pool.fetch(
            "SELECT b.messages, m.uid, m.internal_epoch, m.size, m.content_id"
            " FROM mailboxes AS b LEFT JOIN messages AS m"
            " ON m.mailbox_id = b.id AND m.uid > $1 WHERE b.id = $2 ORDER BY m.uid",
            after_uid,
            mailbox_id,
        )
        if not found:
            return None
        return int(found[0][0]), [
            (int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in found if r[1] is not None
        ]

    async def _sort_uids(self, mailbox_id: int) -> list[int]:
        found = await self._pool.fetch("SELECT uid FROM messages WHERE mailbox_id = $1", mailbox_id)
        return [int(r[0]) for r in found]

    async def _sort_content_keys(
        self, content_ids: list[int], references: bool
    ) -> dict[int, ContentKeys]:
        keys: dict[int, ContentKeys] = {}
        header = "substring(raw from 1 for header_len)" if references else "NULL::bytea"
        for start in range(0, len(content_ids), CHUNK):
            found = [
                (int(r[0]), str(r[1]), None if r[2] is None else bytes(r[2]))
                for r in await self._pool.fetch(
                    "SELECT id, structure, " + header + " FROM contents"
                    " WHERE id = ANY($1::bigint[])",
                    content_ids[start : start + CHUNK],
                )
            ]
            if len(found) > 16:
                keys.update(await asyncio.to_thread(_keys, found, references))
            else:
                keys.update(_keys(found, references))
        return keys
