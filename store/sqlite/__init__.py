"""The SQLite backend: `SqliteStore` (store/sqlite/store.py) and everything that speaks SQL
to its file. Outside this package only store/open.py names it."""

from store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
