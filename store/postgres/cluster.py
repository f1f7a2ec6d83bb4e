"""`store.cluster.ClusterStore` on PostgreSQL: the same rules as store/sqlite/cluster.py
(docs/workers.md, store/cluster.py), with the database's clock for every instance
(``extract(epoch FROM clock_timestamp())``), so instances on several machines agree on lease
expiry whatever their own clocks say. A mixin of `PostgresStore`; a beat is one transaction
on a pooled connection, outside the change-log numbering lock (it logs no change).
"""

from __future__ import annotations

from typing import Any

from store.cluster import KICK_KEEP, Beat, BeatResult, ClusterSession, KickRequest
from store.postgres.base import PostgresBase

_NOW = "extract(epoch FROM clock_timestamp())"
#: LISTEN/NOTIFY channel of kick requests: the payload is the request's id.
KICK_CHANNEL = "imapd_kicks"
#: pg_advisory_xact_lock key under which kick requests are numbered (ASCII "imapdkck").
KICK_LOCK = 0x696D6170646B636B
_SESSION_COLUMNS = 'session, instance, "user", peer, service, started, client'


def _session(row: Any) -> ClusterSession:
    return ClusterSession(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


def _kick(row: Any) -> KickRequest:
    return KickRequest(int(row[0]), row[1], row[2])


class PostgresCluster(PostgresBase):
    async def cluster_beat(self, beat: Beat) -> BeatResult:
        async with self._pool.acquire() as conn, conn.transaction():
            expired = await conn.fetch(
                f"DELETE FROM cluster_instances WHERE expires < {_NOW} AND instance != $1"
                " RETURNING instance",
                beat.instance,
            )
            gone = tuple(str(r[0]) for r in expired)
            if gone:
                await conn.execute(
                    "DELETE FROM cluster_sessions WHERE instance = ANY($1::text[])", list(gone)
                )
                await conn.execute(
                    "DELETE FROM cluster_leases WHERE holder = ANY($1::text[])", list(gone)
                )
            await conn.execute(
                "INSERT INTO cluster_instances (instance, pid, started, expires)"
                f" VALUES ($1, $2, $3, {_NOW} + $4) ON CONFLICT (instance) DO UPDATE"
                " SET expires = excluded.expires",
                beat.instance,
                beat.pid,
                beat.started,
                beat.ttl,
            )
            held: set[str] = set()
            for role in beat.want:
                holder = await conn.fetchval(
                    "INSERT INTO cluster_leases (role, holder, expires)"
                    f" VALUES ($1, $2, {_NOW} + $3) ON CONFLICT (role) DO UPDATE"
                    " SET holder = excluded.holder, expires = excluded.expires"
                    f" WHERE cluster_leases.holder = excluded.holder"
                    f" OR cluster_leases.expires < {_NOW} RETURNING holder",
                    role,
                    beat.instance,
                    beat.ttl,
                )
                if holder is not None:
                    held.add(role)
            if beat.release:
                await conn.execute(
                    "DELETE FROM cluster_leases WHERE role = ANY($1::text[]) AND holder = $2",
                    list(beat.release),
                    beat.instance,
                )
            if beat.drop_sessions:
                await conn.execute(
                    "DELETE FROM cluster_sessions WHERE session = ANY($1::text[])",
                    list(beat.drop_sessions),
                )
            if beat.add_sessions:
                await conn.executemany(
                    f"INSERT INTO cluster_sessions ({_SESSION_COLUMNS})"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (session) DO UPDATE SET"
                    ' instance = excluded.instance, "user" = excluded."user",'
                    " client = excluded.client",
                    [
                        (s.session, s.instance, s.user, s.peer, s.service, s.started, s.client)
                        for s in beat.add_sessions
                    ],
                )
            # The newest request stays, however old: its id is what the next is numbered
            # after (`request_kick`), so ids never go back.
            await conn.execute(
                f"DELETE FROM cluster_kicks WHERE requested < {_NOW} - $1"
                " AND id < (SELECT max(id) FROM cluster_kicks)",
                KICK_KEEP,
            )
            kicks = await conn.fetch(
                'SELECT id, session, "user" FROM cluster_kicks WHERE id > $1 ORDER BY id',
                beat.kicks_after,
            )
        return BeatResult(frozenset(held), tuple(_kick(r) for r in kicks), gone)

    async def cluster_leave(self, instance: str) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM cluster_sessions WHERE instance = $1", instance)
            await conn.execute("DELETE FROM cluster_leases WHERE holder = $1", instance)
            await conn.execute("DELETE FROM cluster_instances WHERE instance = $1", instance)

    async def cluster_instances(self) -> list[str]:
        rows = await self._pool.fetch(
            f"SELECT instance FROM cluster_instances WHERE expires >= {_NOW}"
            " ORDER BY started, instance"
        )
        return [str(r[0]) for r in rows]

    async def cluster_sessions(self) -> list[ClusterSession]:
        rows = await self._pool.fetch(
            f"SELECT {_SESSION_COLUMNS} FROM cluster_sessions WHERE instance IN"
            f" (SELECT instance FROM cluster_instances WHERE expires >= {_NOW})"
            " ORDER BY started, session"
        )
        return [_session(r) for r in rows]

    async def cluster_kicks(self, after: int) -> list[KickRequest]:
        rows = await self._pool.fetch(
            'SELECT id, session, "user" FROM cluster_kicks WHERE id > $1 ORDER BY id', after
        )
        return [_kick(r) for r in rows]

    async def request_kick(self, *, session: str | None = None, user: str | None = None) -> int:
        if (session is None) == (user is None):
            raise ValueError("request_kick: give exactly one of session and user")
        # Numbered in commit order (migrations/0009_write_path.sql, imapd_request_kick):
        # an instance that read id N has read every id below it, so a request committed
        # late is not skipped by a reader already past a higher id. The NOTIFY (delivered
        # at COMMIT) wakes every instance's LISTEN connection: the request is read at once,
        # not at the next beat (PostgresStore.on_kick).
        value = await self._pool.fetchval(
            "SELECT imapd_request_kick($1, $2, $3, $4)", KICK_LOCK, session, user, KICK_CHANNEL
        )
        return int(value)

    async def cluster_kick_head(self) -> int:
        return int(await self._pool.fetchval("SELECT coalesce(max(id), 0) FROM cluster_kicks"))
