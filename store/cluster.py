"""Several server processes on one store: what they share through it (docs/workers.md).

Owns: the values and the `ClusterStore` protocol both backends implement (SQLite:
store/sqlite/cluster.py, PostgreSQL: store/postgres/cluster.py; tables in their ``cluster``
migrations). Imports nothing of imapd or notify. Nothing here goes through the change log:
these rows are bookkeeping of the running processes, not changes to mail.

- **Instances**: each serving process has a row whose ``expires`` it pushes forward at each
  heartbeat (`ClusterStore.cluster_beat`). A row past its expiry is a process that died
  without saying so (kill -9): the next beat of any instance removes it with its sessions
  and leases.
- **Leases** (roles): a role (an event sink, the calendar alarm timer, expiry) runs in the one
  instance holding its lease. A beat renews the leases its instance holds and takes any that
  is free or expired, atomically (one statement per role: holder and expiry change together
  only when the row is absent, expired or already ours). A holder killed with -9 stops
  renewing, and another instance takes the role over within one lease time plus one beat.
- **Sessions**: the registry ``imapd who`` reads: (instance, session, user, peer, service,
  started), kept by each instance (a beat carries the additions and removals since the
  last).
- **Kicks**: ``imapd kick`` adds a request row; every instance reads the requests after its
  own cursor at each beat (and at once when woken) and ends its matching sessions.

Times are Unix seconds, taken from one clock: SQLite's processes share a machine (time.time),
PostgreSQL's instances use the database's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

#: Requests kept this long (seconds): every live instance reads them well within it.
KICK_KEEP = 60.0


@dataclass(frozen=True, slots=True)
class ClusterSession:
    """One session in the registry."""

    session: str
    instance: str
    user: str | None
    peer: str
    service: str
    started: str  # ISO 8601, seconds
    client: str | None = None  # RFC 2971 ID's name and version, when the client sent ID


@dataclass(frozen=True, slots=True)
class KickRequest:
    id: int
    session: str | None
    user: str | None


@dataclass(frozen=True, slots=True)
class Beat:
    """One heartbeat of ``instance``: its liveness for ``ttl`` more seconds, the roles it
    wants (renewed if held, taken if free or expired) and gives up, its registry changes,
    and its kick cursor."""

    instance: str
    pid: int
    started: str
    ttl: float
    want: tuple[str, ...] = ()
    release: tuple[str, ...] = ()
    add_sessions: tuple[ClusterSession, ...] = ()
    drop_sessions: tuple[str, ...] = ()
    kicks_after: int = 0


@dataclass(frozen=True, slots=True)
class BeatResult:
    held: frozenset[str]  # the wanted roles this instance holds until its next beat
    kicks: tuple[KickRequest, ...] = ()  # requests after ``kicks_after``
    gone: tuple[str, ...] = field(default=())  # instances found expired and removed


class ClusterStore(Protocol):
    async def cluster_beat(self, beat: Beat) -> BeatResult:
        """One transaction: refresh the instance row, remove expired instances (with their
        sessions and leases), renew or take the wanted leases, release the others asked,
        apply the registry changes, read kick requests after ``kicks_after``."""
        ...

    async def cluster_leave(self, instance: str) -> None:
        """A clean stop: the instance's row, sessions and leases go at once (the others
        need not wait for the lease time)."""
        ...

    async def cluster_instances(self) -> list[str]:
        """The live instances (heartbeat not expired), by start."""
        ...

    async def cluster_sessions(self) -> list[ClusterSession]:
        """The registry's sessions of live instances, oldest first."""
        ...

    async def cluster_kicks(self, after: int) -> list[KickRequest]:
        """Kick requests with id > ``after``, in order."""
        ...

    async def request_kick(self, *, session: str | None = None, user: str | None = None) -> int:
        """Ask every instance to end a session (by id) or a user's sessions; the request's id."""
        ...

    async def cluster_kick_head(self) -> int:
        """The last kick request's id (0: none): a new instance's cursor."""
        ...
