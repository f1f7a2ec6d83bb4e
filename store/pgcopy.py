"""``imapd store copy``: the SQLite store of a data directory into an empty PostgreSQL one.

Joins the two halves, one per backend: the source is a read-only snapshot of the SQLite
store (store/sqlite/snapshot.py), the writing is store/postgres/importer.py (what is copied,
and how: its docstring). Like store/open.py it names both backends; imapd/cli/storecopy.py
imports it only for that command, so asyncpg stays an optional extra.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from store.postgres.importer import CopyFailed, CopyReport, import_store
from store.sqlite.snapshot import Snapshot

__all__ = ["CopyFailed", "CopyReport", "copy_store"]


async def copy_store(
    data_dir: str | Path,
    url: str,
    *,
    progress: Callable[[str], None] | None = None,
    progress_every: float = 5.0,
) -> CopyReport:
    """Copy the SQLite store in ``data_dir`` into the empty PostgreSQL store at ``url``.
    Raises StoreInUse (a server or command has the source open), StoreError (no source, a
    schema version of either side this imapd cannot copy) and store.postgres.importer's
    errors (TargetNotEmpty, TargetUnavailable, CopyFailed: nothing committed)."""
    source = Snapshot.open(data_dir)
    try:
        return await import_store(source, url, progress=progress, progress_every=progress_every)
    finally:
        source.close()
