"""Versioned schema migrations: ``store/sqlite/migrations/NNNN_name.sql`` applied in order.

Owns: the schema version, kept in ``PRAGMA user_version`` (the number of the last file
applied). Each file runs in its own ``BEGIN IMMEDIATE`` transaction together with the
version bump, so a crash leaves the schema at one version or the next, never between; the
version is re-read inside that transaction, so two processes opening the same new file
apply each migration once. Imports nothing of imapd or notify.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

import aiosqlite

_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(script: str) -> list[str]:
    """Cut a script into complete statements (sqlite3.complete_statement knows triggers'
    BEGIN ... END). ``executescript`` cannot be used: it COMMITs any open transaction."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip() and not all(
        not ln.strip() or ln.strip().startswith("--") for ln in current.splitlines()
    ):
        raise ValueError(f"incomplete statement at the end of a migration: {current[:80]!r}")
    return statements


def available() -> list[Migration]:
    """The migration files shipped in store/sqlite/migrations, by version; versions must be
    1, 2, 3... without gaps."""
    found: list[Migration] = []
    for entry in resources.files("store.sqlite").joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(
                Migration(int(match[1]), entry.name, tuple(split_statements(entry.read_text())))
            )
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration files must be numbered 1..n: {[m.name for m in found]}")
    return found


async def schema_version(db: aiosqlite.Connection) -> int:
    rows = list(await db.execute_fetchall("PRAGMA user_version"))
    return int(rows[0][0])


async def migrate(db: aiosqlite.Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Apply the pending migrations on ``db`` (autocommit mode). Returns the versions applied.
    Raises RuntimeError if the database is newer than this code."""
    migrations = available() if migrations is None else migrations
    applied: list[int] = []
    latest = migrations[-1].version if migrations else 0
    if await schema_version(db) > latest:
        raise RuntimeError("the database schema is newer than this program")
    for migration in migrations:
        await db.execute("BEGIN IMMEDIATE")
        try:
            if await schema_version(db) >= migration.version:
                await db.execute("ROLLBACK")
                continue
            for statement in migration.statements:
                await db.execute(statement)
            # PRAGMA takes no parameters; the version is an int from the file name.
            await db.execute(f"PRAGMA user_version = {int(migration.version)}")
            await db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise
        applied.append(migration.version)
    return applied
