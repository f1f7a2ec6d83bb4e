"""Versioned schema migrations for PostgreSQL: ``store/postgres/migrations/NNNN_name.sql``
applied in order, the version kept in the ``schema_version`` table.

Each file runs in one transaction with its version row, under a transaction-level advisory
lock, so two instances starting on one new database apply each migration once, and a crash
leaves the schema at one version or the next. A database newer than this code is refused
with the versions it has that this code lacks (two instances of different versions: the
older refuses to serve). Imports nothing of imapd or notify.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
#: pg_advisory_xact_lock key of schema migration (ASCII "imapdmig").
MIGRATION_LOCK = 0x696D6170646D6967


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    script: str


class SchemaTooNew(RuntimeError):
    """The database has migrations this program does not know."""


class MigrationFailed(RuntimeError):
    """A migration could not be applied (nothing of it was: it runs in one transaction)."""


#: What a migration needs beyond SQL, said when it fails for want of it.
_NEEDS = {
    "pg_trgm": "the pg_trgm extension (one of PostgreSQL's contrib modules, shipped by"
    " Debian's postgresql package; CREATE EXTENSION pg_trgm needs a role allowed to create"
    " it, e.g. the database owner: it is a trusted extension since PostgreSQL 13)",
}


def available() -> list[Migration]:
    """The migration files shipped in store/postgres/migrations, numbered 1..n."""
    found: list[Migration] = []
    for entry in resources.files("store.postgres").joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), entry.name, entry.read_text()))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration files must be numbered 1..n: {[m.name for m in found]}")
    return found


async def applied_versions(conn: asyncpg.Connection) -> list[tuple[int, str]]:
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return []
    rows = await conn.fetch("SELECT version, name FROM schema_version ORDER BY version")
    return [(int(r[0]), str(r[1])) for r in rows]


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Apply the pending migrations. Returns the versions applied. Raises SchemaTooNew."""
    migrations = available() if migrations is None else migrations
    known = {m.version for m in migrations}
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY,"
            " name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())"
        )
        have = await applied_versions(conn)
        unknown = [name for version, name in have if version not in known]
        if unknown:
            raise SchemaTooNew(
                "the PostgreSQL schema is newer than this program: it has migration(s) "
                + ", ".join(unknown)
                + " which this version lacks; upgrade imapd"
            )
        done = {version for version, _ in have}
        for migration in migrations:
            if migration.version in done:
                continue
            try:
                await conn.execute(migration.script)
            except asyncpg.PostgresError as exc:
                needs = [text for word, text in _NEEDS.items() if word in migration.script]
                hint = f"; it needs {', '.join(needs)}" if needs else ""
                raise MigrationFailed(
                    f"PostgreSQL schema migration {migration.name} failed: {exc}{hint}"
                ) from exc
            await conn.execute(
                "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(migration.version)
    return applied


async def connect_and_migrate(dsn: str) -> asyncpg.Connection:
    """A connection to ``dsn`` with the schema migrated (tests' template, `imapd` start)."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    except BaseException:
        await conn.close()
        raise
    return conn
