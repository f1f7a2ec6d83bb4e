"""The connection pool as the store uses it: asyncpg's pool whose lost connections become
`store.errors.Unavailable` (``NO [UNAVAILABLE]`` for the command in flight; the session
stays), never a driver error. asyncpg replaces a closed connection at the next acquire, so
service resumes by itself once PostgreSQL answers again. Nothing acknowledged is lost: a
transaction whose COMMIT did not return raised before its caller was answered.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from store.errors import Unavailable

#: What a connection lost or refused looks like (server restart, admin shutdown, network).
LOST = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


def lost(exc: BaseException) -> Unavailable | None:
    """The Unavailable a lost connection means, or None for any other exception."""
    if isinstance(exc, LOST):
        return Unavailable(f"the PostgreSQL store is unavailable ({type(exc).__name__}); try again")
    return None


class Pool:
    """fetch, fetchrow, fetchval, execute on a pooled connection, and acquire()."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def fetch(self, sql: str, *args: object) -> list[Any]:
        try:
            return list(await self._pool.fetch(sql, *args))
        except LOST as exc:
            raise lost(exc) from exc  # type: ignore[misc]

    async def fetchrow(self, sql: str, *args: object) -> Any:
        try:
            return await self._pool.fetchrow(sql, *args)
        except LOST as exc:
            raise lost(exc) from exc  # type: ignore[misc]

    async def fetchval(self, sql: str, *args: object) -> Any:
        try:
            return await self._pool.fetchval(sql, *args)
        except LOST as exc:
            raise lost(exc) from exc  # type: ignore[misc]

    async def execute(self, sql: str, *args: object) -> str:
        try:
            return str(await self._pool.execute(sql, *args))
        except LOST as exc:
            raise lost(exc) from exc  # type: ignore[misc]

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        """A connection; a lost one (also inside the caller's block) raises Unavailable."""
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except LOST as exc:
            raise lost(exc) from exc  # type: ignore[misc]

    async def close(self) -> None:
        await self._pool.close()
