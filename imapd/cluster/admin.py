"""``imapd who`` and ``imapd kick`` through the store (docs/workers.md): when no control
socket answers (or to reach every instance), the session registry is read and kick requests
are written to the store; on SQLite the wake channel tells the processes at once, on
PostgreSQL the request's NOTIFY (channel ``imapd_kicks``) does."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from imapd.cluster.node import registry_entry
from imapd.cluster.wake import KICK, broadcast
from store.cluster import ClusterStore

if TYPE_CHECKING:
    from imapd.config import Config

#: How often a waiting ``kick`` reads the registry (an admin command, not a server path).
POLL = 0.05


async def wait_gone(store: ClusterStore, sessions: list[str], within: float) -> bool:
    """Until none of ``sessions`` is in the registry (their instances deregister them right
    after they ended); False after ``within`` seconds."""
    deadline = time.monotonic() + within
    wanted = set(sessions)
    while True:
        if not wanted & {r.session for r in await store.cluster_sessions()}:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL)


async def answer(
    config: Config, op: str, session: str | None = None, user: str | None = None
) -> dict[str, Any] | None:
    """The control socket's answer to ``who`` or ``kick``, made from the store's registry;
    None when no instance is registered (no server runs in cluster mode)."""
    from imapd.control.wire import KICK_WAIT
    from store.open import open_store

    store = await open_store(config.db_path, lambda changes: None, scrypt_n=config.scrypt_n)
    try:
        rows = await store.cluster_sessions()
        if op == "who":
            if not rows and not await store.cluster_instances():
                return None
            return {"ok": True, "sessions": [registry_entry(r) for r in rows]}
        chosen = [r.session for r in rows if (r.session == session if session else r.user == user)]
        if not chosen:
            return None if not await store.cluster_instances() else {"ok": True, "kicked": []}
        await store.request_kick(session=session, user=user)
        broadcast(config.data_dir, KICK)
        await wait_gone(store, chosen, KICK_WAIT)
        return {"ok": True, "kicked": chosen}
    finally:
        await store.close()
