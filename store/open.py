"""The one place that picks the store backend: everything else is typed against the
Protocols of store/api.py (`Store`, `ChangeFeed`) and never names a backend.

The default is SQLite (store/sqlite/): a file ``imapd.sqlite3`` in the data directory. A
store URL (``url=``, else the environment variable ``IMAPD_STORE``) picks another backend:
``postgresql://user:password@host:port/database`` (or ``postgres://``) is the PostgreSQL store
(store/postgres/, docs/postgresql.md; the optional extra ``imapd[postgres]``, imported only
here and only then). Any other scheme is refused.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from store.api import ChangeFeed, Prerender, Publish, Store
from store.authcache import AuthCache
from store.errors import StoreError, StoreUnreachable
from store.passwords import DEFAULT_N
from store.sqlite import SqliteStore
from store.sqlite.files import private_dir

__all__ = [
    "ENV_STORE",
    "check_store_url",
    "mask_url",
    "open_change_feed",
    "open_store",
    "private_dir",
    "store_url",
]

#: The environment variable naming the store URL (``--store`` sets it for a command).
ENV_STORE = "IMAPD_STORE"
_POSTGRES_SCHEMES = ("postgresql", "postgres")
#: Connections in the PostgreSQL pool of one process (``IMAPD_STORE_POOL``, default 10).
ENV_POOL = "IMAPD_STORE_POOL"


def store_url(url: str | None = None) -> str | None:
    """The store URL in effect: ``url``, else $IMAPD_STORE; None means the SQLite file."""
    chosen = url if url is not None else os.environ.get(ENV_STORE, "")
    return chosen.strip() or None


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and logs."""
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


def check_store_url(url: str | None = None) -> str | None:
    """What is wrong with the store URL in effect (`store_url`), or None: for a command to
    refuse at start, before opening anything."""
    chosen = store_url(url)
    if chosen is None:
        return None
    try:
        _postgres_url(chosen)
    except StoreError as exc:
        return exc.text
    try:
        from store.postgres.store import missing_methods
    except ImportError:
        return "the PostgreSQL store needs asyncpg: pip install 'imapd[postgres]'"
    if missing := missing_methods():  # no half backend (docs/postgresql.md)
        return (
            "the PostgreSQL store is not complete yet: it lacks "
            + ", ".join(missing)
            + " (docs/postgresql.md)"
        )
    return None


def _postgres_url(url: str) -> str:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in _POSTGRES_SCHEMES:
        raise StoreError(
            f"unsupported store URL {mask_url(url)!r}: use postgresql://..."
            " (or no URL for the SQLite store in the data directory)"
        )
    return url


async def _open_postgres(
    url: str,
    publish: Publish,
    scrypt_n: int,
    clock: Callable[[], dt.datetime] | None = None,
    auth_cache: AuthCache | None = None,
    prerender: Prerender | None = None,
) -> Any:
    try:
        from store.postgres.store import PostgresStore, missing_methods
    except ImportError as exc:
        raise StoreError(
            "the PostgreSQL store needs asyncpg: pip install 'imapd[postgres]'"
        ) from exc
    if missing := missing_methods():  # no half backend (docs/postgresql.md)
        raise StoreError(
            "the PostgreSQL store is not complete yet: it lacks "
            + ", ".join(missing)
            + " (docs/postgresql.md)"
        )
    try:
        pool = int(os.environ.get(ENV_POOL, "10"))
    except ValueError:
        raise StoreUnreachable(f"{ENV_POOL} must be a number of connections") from None
    from store.postgres.migrate import MigrationFailed, SchemaTooNew

    where = mask_url(url)
    try:
        return await PostgresStore.open(
            url,
            publish,
            scrypt_n=scrypt_n,
            clock=clock,
            auth_cache=auth_cache,
            min_size=1,
            max_size=max(pool, 2),
            prerender=prerender,
        )
    except (SchemaTooNew, MigrationFailed) as exc:  # an older instance beside a newer one
        raise StoreUnreachable(f"refusing the PostgreSQL store at {where}: {exc}") from exc
    except (OSError, TimeoutError) as exc:
        raise StoreUnreachable(f"cannot reach the PostgreSQL store at {where}: {exc}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith("asyncpg"):  # refused login, no such database
            raise StoreUnreachable(f"cannot open the PostgreSQL store at {where}: {exc}") from exc
        raise


async def open_store(
    path: str | Path,
    publish: Publish,
    *,
    synchronous: str = "FULL",
    scrypt_n: int = DEFAULT_N,
    check: str = "schema",
    url: str | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    auth_cache: AuthCache | None = None,
    prerender: Prerender | None = None,
) -> Store:
    """Open (creating and migrating) the store: the SQLite file at ``path``, or the store
    a URL names (``url``, else $IMAPD_STORE; see the module). After each COMMIT its Changes
    go to ``publish``, in commit order. ``synchronous`` and ``check`` are the SQLite
    backend's durability and startup-check settings (Config.sqlite_synchronous,
    startup_check). ``clock`` (aware datetimes; default: now in UTC) dates every change:
    the server passes its test clock under ``calendar_test_clock`` (docs/calendar.md).
    ``auth_cache`` (Config.auth_cache_ttl/auth_cache_size, store/authcache.py): successful
    logins its ``authenticate`` remembers; every backend consults it the same way (the
    module's docstring). ``prerender``: see store.api.Prerender (without it, FETCH renders
    from the stored structure). Raises StoreDamaged, DiskFull, StoreInUse, Unavailable (a store
    URL that cannot be reached; its password masked: StoreUnreachable), StoreError (a bad URL)."""
    chosen = store_url(url)
    if chosen is not None:
        store: Store = await _open_postgres(
            _postgres_url(chosen), publish, scrypt_n, clock, auth_cache, prerender
        )
        return store
    return await SqliteStore.open(
        path,
        publish,
        synchronous=synchronous,
        scrypt_n=scrypt_n,
        check=check,
        clock=clock,
        auth_cache=auth_cache,
        prerender=prerender,
    )


async def open_change_feed(
    path: str | Path,
    *,
    url: str | None = None,
) -> tuple[ChangeFeed, Callable[[], Awaitable[None]]]:
    """The store opened from another process (``imapd notifyd --outbox``, ``imapd
    webhook``, ``imapd events tail``): its change log and message reads. SQLite: the file at
    ``path`` read-only (FileNotFoundError when there is none); a store URL: the PostgreSQL
    store (it publishes nothing: such a process writes nothing but its cursor). Returns the
    feed and its closer."""
    chosen = store_url(url)
    if chosen is not None:

        def no_publish(changes: object) -> None:
            raise RuntimeError("a change feed publishes nothing")

        feed = await _open_postgres(_postgres_url(chosen), no_publish, DEFAULT_N)
        return feed, feed.close
    return await SqliteStore.open_read_only(path)
