"""The one place that picks the store backend: everything else is typed against the
Protocols of store/api.py (`Store`, `ChangeFeed`) and never names a backend.

Today the backend is SQLite (store/sqlite/): a file ``imapd.sqlite3`` in the data directory.
A second backend (store/postgres/, say) is chosen here, from the same arguments plus its own
configuration; no handler, CLI command, sink or webhook changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from store.api import ChangeFeed, Prerender, Publish, Store
from store.passwords import DEFAULT_N
from store.sqlite import SqliteStore
from store.sqlite.files import private_dir

__all__ = ["open_change_feed", "open_store", "private_dir"]


async def open_store(
    path: str | Path,
    publish: Publish,
    *,
    synchronous: str = "FULL",
    scrypt_n: int = DEFAULT_N,
    check: str = "schema",
    prerender: Prerender | None = None,
) -> Store:
    """Open (creating and migrating) the store at ``path``; after each COMMIT its Changes go
    to ``publish``, in commit order. ``synchronous`` and ``check`` are the backend's
    durability and startup-check settings (Config.sqlite_synchronous, startup_check).
    ``prerender``: see store.api.Prerender (without it, FETCH renders from the structure).
    Raises StoreDamaged, DiskFull, StoreInUse (store/errors.py)."""
    return await SqliteStore.open(
        path, publish, synchronous=synchronous, scrypt_n=scrypt_n, check=check,
        prerender=prerender,
    )


async def open_change_feed(
    path: str | Path,
) -> tuple[ChangeFeed, Callable[[], Awaitable[None]]]:
    """The store at ``path`` opened read-only from another process (``imapd notifyd
    --outbox``, ``imapd webhook``, ``imapd events tail``): its change log and message reads,
    no writes. Returns the feed and its closer. Raises FileNotFoundError when there is no
    store."""
    return await SqliteStore.open_read_only(path)
