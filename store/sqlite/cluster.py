"""`store.cluster.ClusterStore` on SQLite: instances, leases, the session registry and kick
requests of the processes sharing one store file (docs/workers.md; the rules in
store/cluster.py). A mixin of `SqliteStore`; each beat is one write transaction on the
writer connection, with no change_log rows (nothing is published). Times: ``time.time()``,
the processes sharing one SQLite file share one machine's clock.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from store.cluster import KICK_KEEP, Beat, BeatResult, ClusterSession, KickRequest
from store.sqlite.base import SqliteBase, _rows, _Tx

_SESSION_COLUMNS = "session, instance, user, peer, service, started, client"


def _session(row: Sequence[object]) -> ClusterSession:
    user = row[2]
    return ClusterSession(
        str(row[0]),
        str(row[1]),
        None if user is None else str(user),
        str(row[3]),
        str(row[4]),
        str(row[5]),
        None if row[6] is None else str(row[6]),
    )


def _kick(row: Sequence[object]) -> KickRequest:
    session, user = row[1], row[2]
    return KickRequest(
        int(str(row[0])),
        None if session is None else str(session),
        None if user is None else str(user),
    )


class SqliteCluster(SqliteBase):
    async def cluster_beat(self, beat: Beat) -> BeatResult:
        async def body(tx: _Tx) -> BeatResult:
            now = time.time()
            expired = await tx.rows(
                "DELETE FROM cluster_instances WHERE expires < ? AND instance != ?"
                " RETURNING instance",
                (now, beat.instance),
            )
            gone = tuple(str(r[0]) for r in expired)
            if gone:
                await tx.run(
                    "DELETE FROM cluster_sessions WHERE instance NOT IN"
                    " (SELECT instance FROM cluster_instances) AND instance != ?",
                    (beat.instance,),
                )
            await tx.run(
                "INSERT INTO cluster_instances (instance, pid, started, expires)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (instance) DO UPDATE SET expires ="
                " excluded.expires",
                (beat.instance, beat.pid, beat.started, now + beat.ttl),
            )
            held: set[str] = set()
            for role in beat.want:
                row = await tx.one(
                    "INSERT INTO cluster_leases (role, holder, expires) VALUES (?, ?, ?)"
                    " ON CONFLICT (role) DO UPDATE SET holder = excluded.holder,"
                    " expires = excluded.expires"
                    " WHERE cluster_leases.holder = excluded.holder"
                    " OR cluster_leases.expires < ? RETURNING holder",
                    (role, beat.instance, now + beat.ttl, now),
                )
                if row is not None:
                    held.add(role)
            for role in beat.release:
                await tx.run(
                    "DELETE FROM cluster_leases WHERE role = ? AND holder = ?",
                    (role, beat.instance),
                )
            if beat.drop_sessions:
                await tx.many(
                    "DELETE FROM cluster_sessions WHERE session = ?",
                    [(s,) for s in beat.drop_sessions],
                )
            if beat.add_sessions:
                await tx.many(
                    f"INSERT OR REPLACE INTO cluster_sessions ({_SESSION_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (s.session, s.instance, s.user, s.peer, s.service, s.started, s.client)
                        for s in beat.add_sessions
                    ],
                )
            await tx.run("DELETE FROM cluster_kicks WHERE requested < ?", (now - KICK_KEEP,))
            kicks = await tx.rows(
                "SELECT id, session, user FROM cluster_kicks WHERE id > ? ORDER BY id",
                (beat.kicks_after,),
            )
            return BeatResult(frozenset(held), tuple(_kick(r) for r in kicks), gone)

        return await self._write(body)

    async def cluster_leave(self, instance: str) -> None:
        async def body(tx: _Tx) -> None:
            await tx.run("DELETE FROM cluster_sessions WHERE instance = ?", (instance,))
            await tx.run("DELETE FROM cluster_leases WHERE holder = ?", (instance,))
            await tx.run("DELETE FROM cluster_instances WHERE instance = ?", (instance,))

        await self._write(body)

    async def cluster_instances(self) -> list[str]:
        rows = await _rows(
            self._reader,
            "SELECT instance FROM cluster_instances WHERE expires >= ? ORDER BY started, instance",
            (time.time(),),
        )
        return [str(r[0]) for r in rows]

    async def cluster_sessions(self) -> list[ClusterSession]:
        rows = await _rows(
            self._reader,
            f"SELECT {_SESSION_COLUMNS} FROM cluster_sessions WHERE instance IN"
            " (SELECT instance FROM cluster_instances WHERE expires >= ?)"
            " ORDER BY started, session",
            (time.time(),),
        )
        return [_session(r) for r in rows]

    async def cluster_kicks(self, after: int) -> list[KickRequest]:
        rows = await _rows(
            self._reader,
            "SELECT id, session, user FROM cluster_kicks WHERE id > ? ORDER BY id",
            (after,),
        )
        return [_kick(r) for r in rows]

    async def request_kick(self, *, session: str | None = None, user: str | None = None) -> int:
        if (session is None) == (user is None):
            raise ValueError("request_kick: give exactly one of session and user")

        async def body(tx: _Tx) -> int:
            row = await tx.one(
                "INSERT INTO cluster_kicks (session, user, requested) VALUES (?, ?, ?)"
                " RETURNING id",
                (session, user, time.time()),
            )
            assert row is not None
            return int(row[0])

        return await self._write(body)

    async def cluster_kick_head(self) -> int:
        rows = await _rows(self._reader, "SELECT coalesce(max(id), 0) FROM cluster_kicks")
        return int(rows[0][0]) if rows else 0
