"""Connection limits: how many connections the server holds, per client address, and per
user and address after login; the descriptor budget they must fit in; and logging a limit
once per episode, not once per refused connection.

Owns: `Admission` (the counts, asked by imapd/server.py at accept and by the LOGIN handlers
after a successful verification), `Episodes` (one log line when a limit starts refusing,
one when it has stopped for a while, with the count in between), `address_key` (the unit
limits and throttles count by: an IPv4 address, an IPv6 /64) and `raise_nofile_limit`.
Imports nothing of the session or the store.

Precedents: Dovecot's ``mail_max_userip_connections`` (default 10) for user and address;
Postfix's ``smtpd_client_connection_count_limit`` (50, half its process limit) for a
per-address cap before any authentication. Past a limit the client is told, never just
dropped: ``* BYE [UNAVAILABLE]`` at connect, ``NO [LIMIT]`` at LOGIN (RFC 5530).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imapd.cluster.admission import SharedCounts

log = logging.getLogger("imapd.limits")

#: An episode ends (and its summary is logged) once its limit refused nothing for this long.
EPISODE_QUIET = 60.0
#: Seconds a TLS handshake may take (at most login_timeout): enough for a slow mobile link;
#: an implicit-TLS handshake holds a descriptor before `Admission` counts its connection.
TLS_HANDSHAKE_TIMEOUT = 30.0
#: Descriptors kept aside beyond the server's own at start (listeners, SQLite's files): LMTP
#: and control connections, SQLite temporary files, a TLS certificate reload.
DESCRIPTOR_HEADROOM = 64


def address_key(host: str) -> str:
    """What per-address limits count by: the address; for IPv6 its /64, the block a single
    subscriber usually gets (one machine can pick any address in it)."""
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host  # a UNIX socket path, or whatever the transport named
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


@dataclass(slots=True)
class _Episode:
    first: float
    last: float
    refused: int
    timer: asyncio.TimerHandle | None = None


class Episodes:
    """A limit's refusals logged once per episode: a WARNING line at the first refusal, an
    INFO line with the count once `EPISODE_QUIET` seconds passed without one. A flood of
    refused connections writes two lines, not one per connection."""

    def __init__(self, quiet: float = EPISODE_QUIET) -> None:
        self.quiet = quiet
        self._open: dict[tuple[str, str], _Episode] = {}

    def refused(self, limit: str, key: str, text: str) -> None:
        """A refusal by ``limit`` (an option name) for ``key`` (address, user...);
        ``text`` is the line logged when this starts an episode."""
        now = time.monotonic()
        episode = self._open.get((limit, key))
        if episode is None:
            log.warning("limit %s reached: %s (logged once until it stops refusing)", limit, text)
            episode = self._open[(limit, key)] = _Episode(now, now, 0)
            self._schedule(limit, key, episode)
        episode.refused += 1
        episode.last = now

    def _schedule(self, limit: str, key: str, episode: _Episode) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a test calling directly): ends at the next refusal
            return
        episode.timer = loop.call_at(loop.time() + self.quiet, self._check, limit, key)

    def _check(self, limit: str, key: str) -> None:
        episode = self._open.get((limit, key))
        if episode is None:
            return
        idle = time.monotonic() - episode.last
        if idle < self.quiet:
            loop = asyncio.get_running_loop()
            episode.timer = loop.call_at(loop.time() + self.quiet - idle, self._check, limit, key)
            return
        del self._open[(limit, key)]
        log.info(
            "limit %s for %s: %d refused in %.0f s, none since %.0f s",
            limit,
            key,
            episode.refused,
            episode.last - episode.first,
            self.quiet,
        )

    def close(self) -> None:
        for episode in self._open.values():
            if episode.timer is not None:
                episode.timer.cancel()
        self._open.clear()


class Admission:
    """Connection counts against ``max_connections``, ``max_connections_per_ip`` and
    ``max_connections_per_user_ip``; each refusal goes through `Episodes`."""

    def __init__(self, total: int, per_ip: int, per_user_ip: int) -> None:
        self.total = total
        self.per_ip = per_ip
        self.per_user_ip = per_user_ip
        self.episodes = Episodes()
        self.connections = 0
        self._by_ip: Counter[str] = Counter()
        self._by_user_ip: Counter[tuple[str, str]] = Counter()
        #: --workers: the counts of all workers (imapd/cluster/admission.py); the limits
        #: above then hold for the whole server, and ``budget`` is this process's own
        #: descriptor budget (0: none beyond ``total``).
        self.shared: SharedCounts | None = None
        self.budget = 0

    def connect(self, key: str) -> str | None:
        """A new connection from address ``key``: None when admitted (then `disconnect`
        must follow), else the text of the BYE it gets."""
        shared = self.shared
        if shared is not None:
            with shared.locked():
                return self._connect(key, shared)
        return self._connect(key, None)

    def _connect(self, key: str, shared: SharedCounts | None) -> str | None:
        total = shared.count(TOTAL) if shared is not None else self.connections
        if (self.total and total >= self.total) or (
            self.budget and self.connections >= self.budget
        ):
            self.episodes.refused(
                "max_connections", "the server", f"{total} connections, new ones get BYE"
            )
            return "Too many connections, try again later"
        from_ip = shared.count(_ip(key)) if shared is not None else self._by_ip[key]
        if self.per_ip and from_ip >= self.per_ip:
            self.episodes.refused(
                "max_connections_per_ip", key, f"{from_ip} connections from {key}"
            )
            return "Too many connections from your address"
        if shared is not None:
            if not shared.add(TOTAL, 1):
                return "Too many connections, try again later"  # the shared table is full
            if not shared.add(_ip(key), 1):
                shared.add(TOTAL, -1)
                return "Too many connections, try again later"
        self.connections += 1
        self._by_ip[key] += 1
        return None

    def disconnect(self, key: str) -> None:
        self.connections -= 1
        self._by_ip[key] -= 1
        if self._by_ip[key] <= 0:
            del self._by_ip[key]
        if (shared := self.shared) is not None:
            with shared.locked():
                shared.add(TOTAL, -1)
                shared.add(_ip(key), -1)

    def login(self, user: str, key: str) -> bool:
        """A session from ``key`` authenticated as ``user``: False when that would pass
        ``max_connections_per_user_ip`` (then the login is refused); True counts it until
        `logout`."""
        shared = self.shared
        if shared is None:
            return self._login(user, key, None)
        with shared.locked():
            return self._login(user, key, shared)

    def _login(self, user: str, key: str, shared: SharedCounts | None) -> bool:
        held = (
            shared.count(_user_ip(user, key))
            if shared is not None
            else self._by_user_ip[(user, key)]
        )
        if self.per_user_ip and held >= self.per_user_ip:
            self.episodes.refused(
                "max_connections_per_user_ip",
                f"{user} from {key}",
                f"{held} sessions of {user!r} from {key}",
            )
            return False
        if shared is not None and not shared.add(_user_ip(user, key), 1):
            return False  # the shared table is full
        self._by_user_ip[(user, key)] += 1
        return True

    def logout(self, user: str, key: str) -> None:
        self._by_user_ip[(user, key)] -= 1
        if self._by_user_ip[(user, key)] <= 0:
            del self._by_user_ip[(user, key)]
        if (shared := self.shared) is not None:
            with shared.locked():
                shared.add(_user_ip(user, key), -1)


#: The shared key counting every connection of the server (--workers).
TOTAL = "\0total"


def _ip(key: str) -> str:
    return "a\0" + key


def _user_ip(user: str, key: str) -> str:
    return "u\0" + user + "\0" + key


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one (each connection holds a descriptor; a
    soft limit of 1024 is a common default). Returns the (soft, hard) now in force; an
    unlimited hard limit is capped at what the kernel allows a process."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if target == resource.RLIM_INFINITY:
        target = _nr_open()
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("descriptor limit not raised from %d toward %d: %s", soft, target, exc)
        else:
            log.info("descriptor limit raised from %d to %d", soft, target)
            soft = target
    return soft, hard


def _nr_open() -> int:
    """The kernel's per-process ceiling (Linux fs.nr_open), else a million."""
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1 << 20


def open_descriptors() -> int | None:
    """How many descriptors this process holds now (Linux /proc, BSD /dev/fd), or None."""
    for path in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(path))
        except OSError:
            continue
    return None


def connection_budget(max_connections: int, soft_limit: int) -> int:
    """The number of connections the descriptor limit leaves room for: accept must never
    fail at the descriptor limit (uvloop's libuv then closes the new connection with nothing
    said and nothing logged; asyncio logs an error per second and leaves it queued), so the
    server's own limit must be reached first. 0: unlimited."""
    held = open_descriptors() or 32
    room = max(1, soft_limit - held - DESCRIPTOR_HEADROOM)
    if max_connections == 0 or max_connections > room:
        return room
    return max_connections
