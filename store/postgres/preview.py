"""RFC 8970 previews in the PostgreSQL store: `PostgresPreviews`, the mixin of `PostgresStore`
that reads them and computes the missing ones; the twin of store/sqlite/preview.py.

Owns: the ``content_preview`` table (migrations/*_preview.sql): written at APPEND with the
message (store/postgres/append.py), read here by contents id; for a contents row stored
before the migration the preview is computed at the first request that may wait for it, from
the few octets `preview_source` names (a substring of the bytea, not the message), and saved.
Must not import imapd or notify.
"""

from __future__ import annotations

from collections.abc import Sequence

from store import previews
from store.postgres.base import PostgresBase, Tx
from store.previews import COMPUTE_BATCH


class PostgresPreviews(PostgresBase):
    async def previews(self, content_ids: Sequence[int], *, compute: bool = True) -> dict[int, str]:
        """The preview of each contents row among ``content_ids`` (RFC 8970 §3.3), by id.
        ``compute``: a row without one gets it now, and it is saved (else it is missing
        from the answer: FETCH PREVIEW (LAZY) answers NIL). Contents rows that no longer
        exist are missing too."""
        ids = sorted(set(content_ids))
        if not ids:
            return {}
        async with self._pool.acquire() as db:
            rows = await db.fetch(
                "SELECT id, preview FROM content_preview WHERE id = ANY($1::bigint[])", ids
            )
        found: dict[int, str] = {int(r[0]): str(r[1]) for r in rows}
        missing = [i for i in ids if i not in found]
        for start in range(0, len(missing), COMPUTE_BATCH) if compute else ():
            found.update(await self._compute_previews(missing[start : start + COMPUTE_BATCH]))
        return found

    async def _compute_previews(self, ids: list[int]) -> dict[int, str]:
        async with self._pool.acquire() as db:
            structures = await db.fetch(
                "SELECT id, structure FROM contents WHERE id = ANY($1::bigint[])", ids
            )
            pairs = [(int(r[0]), str(r[1])) for r in structures]
            out, wanted = await previews.sources(pairs)
            bodies: dict[int, bytes] = {}
            if wanted:
                # substring() of the bytea: these octets reach us, not the message.
                rows = await db.fetch(
                    "SELECT c.id, substring(c.raw FROM w.s + 1 FOR w.e - w.s) FROM"
                    " unnest($1::bigint[], $2::int[], $3::int[]) AS w(id, s, e)"
                    " JOIN contents AS c ON c.id = w.id",
                    [i for i, _, _, _ in wanted],
                    [s for _, _, s, _ in wanted],
                    [e for _, _, _, e in wanted],
                )
                bodies = {int(r[0]): bytes(r[1]) for r in rows}
        work = [(i, part, bodies[i]) for i, part, _, _ in wanted if i in bodies]
        out.update(await previews.compute(work))

        async def save(tx: Tx) -> None:
            # Contents deleted meanwhile are skipped (the join), never an error.
            await tx.run(
                "INSERT INTO content_preview (id, preview) SELECT c.id, x.p FROM"
                " unnest($1::bigint[], $2::text[]) AS x(id, p) JOIN contents AS c ON c.id = x.id"
                " ON CONFLICT (id) DO NOTHING",
                list(out),
                list(out.values()),
            )

        if out:
            await self._write(save)
        return out
