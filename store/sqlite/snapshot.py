"""The SQLite store read as one snapshot by another program: the source of ``imapd store
copy`` (store/pgcopy.py, docs/postgresql.md "Moving over").

`Snapshot.open` takes the store's lock exclusively (store/sqlite/files.py `StoreLock`: no
server or command may have the store open meanwhile, so nothing is written behind the
copy's back), opens the file read-only, refuses a schema other than this version's latest
(its columns are what the reader expects), and starts one read transaction that lasts
until `close`. Rows are streamed from a cursor (`rows`), never read whole.
Imports nothing of imapd or notify.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from store.errors import StoreError
from store.sqlite import migrate
from store.sqlite.files import StoreLock

__all__ = ["Snapshot"]

DB_NAME = "imapd.sqlite3"


class Snapshot:
    """A consistent, read-only view of the store in a data directory. Build with `open`."""

    def __init__(self, conn: sqlite3.Connection, lock: StoreLock) -> None:
        self._conn = conn
        self._lock = lock

    @classmethod
    def open(cls, data_dir: str | Path) -> Snapshot:
        """Raises StoreError (no store there, another schema version) or StoreInUse."""
        db_path = Path(data_dir) / DB_NAME
        if not db_path.is_file():
            raise StoreError(f"no SQLite store at {db_path}")
        lock = StoreLock(db_path, exclusive=True).acquire()
        try:
            conn = sqlite3.connect(db_path.resolve().as_uri() + "?mode=ro", uri=True)
            conn.isolation_level = None
            try:
                conn.execute("PRAGMA query_only = ON")
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                latest = migrate.available()[-1].version
                if version != latest:
                    hint = (
                        "open it once with this imapd (e.g. `imapd fsck`) first"
                        if version < latest
                        else "use the imapd that wrote it"
                    )
                    raise StoreError(
                        f"the SQLite store at {db_path} is at schema version {version},"
                        f" this imapd's is {latest}: {hint}"
                    )
                conn.execute("BEGIN")  # one snapshot until close()
            except BaseException:
                conn.close()
                raise
        except BaseException:
            lock.release()
            raise
        return cls(conn, lock)

    def rows(self, sql: str, *args: Any) -> Iterator[tuple[Any, ...]]:
        """The rows of a SELECT, streamed."""
        yield from self._conn.execute(sql, args)

    def value(self, sql: str, *args: Any) -> Any:
        """The first column of the first row of a SELECT (None: no row)."""
        row = self._conn.execute(sql, args).fetchone()
        return None if row is None else row[0]

    def sequence(self, table: str) -> int:
        """The AUTOINCREMENT high-water mark of ``table`` (0: none yet)."""
        value = self.value("SELECT seq FROM sqlite_sequence WHERE name = ?", table)
        return int(value or 0)

    def close(self) -> None:
        try:
            self._conn.close()
        finally:
            self._lock.release()
