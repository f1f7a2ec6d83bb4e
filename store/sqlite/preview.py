"""RFC 8970 previews in the SQLite store: `SqlitePreviews`, the mixin of `SqliteStore` that
reads them and computes the missing ones.

Owns: the ``content_preview`` table (migrations/*_preview.sql): written at APPEND with the
message (store/sqlite/messages.py), read here by contents id; for a contents row stored before
the migration the preview is computed at the first request that may wait for it, from the few
octets `preview_source` names (never the whole message), and saved. Must not import imapd or
notify.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from store import previews
from store.previews import COMPUTE_BATCH
from store.sqlite.base import SqliteBase, _rows, _Tx


class SqlitePreviews(SqliteBase):
    async def previews(self, content_ids: Sequence[int], *, compute: bool = True) -> dict[int, str]:
        """The preview of each contents row among ``content_ids`` (RFC 8970 §3.3), by id.
        ``compute``: a row without one gets it now, and it is saved (else it is missing
        from the answer: FETCH PREVIEW (LAZY) answers NIL). Contents rows that no longer
        exist are missing too."""
        ids = sorted(set(content_ids))
        if not ids:
            return {}
        rows = await _rows(
            self._reader,
            "SELECT id, preview FROM content_preview WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(ids),),
        )
        found: dict[int, str] = {int(r[0]): str(r[1]) for r in rows}
        missing = [i for i in ids if i not in found]
        for start in range(0, len(missing), COMPUTE_BATCH) if compute else ():
            found.update(await self._compute_previews(missing[start : start + COMPUTE_BATCH]))
        return found

    async def _compute_previews(self, ids: list[int]) -> dict[int, str]:
        structures = await _rows(
            self._reader,
            "SELECT id, structure FROM contents WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(ids),),
        )
        pairs = [(int(r[0]), str(r[1])) for r in structures]
        out, wanted = await previews.sources(pairs)
        if wanted:
            # substr() reads just these octets of the blob (1-based), not the message.
            rows = await _rows(
                self._reader,
                "SELECT c.id, substr(c.raw, w.value->>1 + 1, w.value->>2 - w.value->>1)"
                " FROM json_each(?) AS w JOIN contents AS c ON c.id = w.value->>0",
                (json.dumps([[i, s, e] for i, _, s, e in wanted]),),
            )
            bodies: dict[int, bytes] = {int(r[0]): bytes(r[1]) for r in rows}
            out.update(
                await previews.compute(
                    [(i, part, bodies[i]) for i, part, _, _ in wanted if i in bodies]
                )
            )

        async def save(tx: _Tx) -> None:
            await tx.many(
                "INSERT OR IGNORE INTO content_preview (id, preview)"
                " SELECT id, ? FROM contents WHERE id = ?",
                [(text, i) for i, text in out.items()],
            )

        if out:
            await self._write(save)
        return out
