"""Password guessing: back-off per address and per user, bounded hashing, one log line per
failure.

Owns: `AuthGuard`, through which every LOGIN and AUTHENTICATE verification goes, and the
``auth failed:`` log line (the README gives the fail2ban filter for it). Imports nothing of
the session or the store; the caller hands in the verification as a coroutine function.

How an attacker is slowed and others are not:
- **Hashing is bounded**: at most `HASH_SLOTS` verifications run at once (scrypt is
  CPU-bound and runs in worker threads), and one address holds at most one of them: its
  further attempts queue behind each other on that address's own lock, never ahead of
  other addresses. A user on another address waits for at most the verifications already
  running, not for the attacker's queue.
- **Per address**: after a failure, the address's next verification starts no earlier than
  the back-off delay later (the wait happens on the address's lock, off the hashing slots).
- **Per user**: a failed attempt is answered after the back-off delay of the address or of
  the user name, whichever is longer (guesses at one account from many addresses slow
  down); a right password is never delayed by the user's failures, so an attacker cannot
  lock its owner out.
- **Delays** double with each recent failure from `auth_failure_delay` up to
  `auth_failure_delay_max`; failures count with a half-life of `HALF_LIFE` seconds, so a
  delay decays back by itself. Dovecot's auth_penalty works the same way per address.
- Records are pruned once their failures decayed away, and capped in number, so random
  user names or addresses cannot grow memory without bound.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

log = logging.getLogger("imapd.auth")

T = TypeVar("T")

#: Verifications hashing at once: one per CPU (scrypt is CPU-bound), at least two so one
#: address's attempt never stands in every other user's way.
HASH_SLOTS = max(2, os.cpu_count() or 1)
#: Seconds for a failure to count half as much.
HALF_LIFE = 300.0
#: Records kept at most per kind (addresses, user names); the least recently failed go first.
MAX_RECORDS = 100_000
#: A record whose decayed failures fell below this is forgotten.
FORGET_BELOW = 0.05
#: Octets of a client-chosen user name quoted in a log line.
LOGGED_NAME_MAX = 64


@dataclass(slots=True)
class _Record:
    failures: float = 0.0
    at: float = 0.0  # time.monotonic() of the last failure
    not_before: float = 0.0  # this address's next verification may not start earlier
    lock: asyncio.Lock | None = None
    waiting: int = 0

    def decayed(self, now: float) -> float:
        return self.failures * math.pow(0.5, (now - self.at) / HALF_LIFE)


@dataclass(slots=True)
class AuthGuard:
    base_delay: float
    max_delay: float
    slots: int = HASH_SLOTS
    _hashing: asyncio.Semaphore = field(init=False)
    _addresses: dict[str, _Record] = field(default_factory=dict)
    _users: dict[str, _Record] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._hashing = asyncio.Semaphore(self.slots)

    def delay(self, failures: float) -> float:
        """The back-off for this many recent failures (0 for none)."""
        if failures < 0.5 or self.base_delay <= 0:
            return 0.0
        return min(self.max_delay, self.base_delay * 2 ** min(failures - 1, 30))

    async def verify(self, address: str, check: Callable[[], Awaitable[T]]) -> T:
        """Run ``check`` (the store's verification) as the address's turn comes: after its
        earlier attempts, after its back-off, in one of the hashing slots."""
        record = self._addresses.get(address)
        if record is None:
            record = self._addresses[address] = _Record()
        if record.lock is None:
            record.lock = asyncio.Lock()
        record.waiting += 1
        try:
            async with record.lock:
                wait = record.not_before - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                async with self._hashing:
                    return await check()
        finally:
            record.waiting -= 1
            if record.waiting == 0 and record.failures == 0:
                self._addresses.pop(address, None)

    def failed(self, address: str, user: str) -> float:
        """Count a failure; returns how long to wait before answering it."""
        now = time.monotonic()
        by_address = self._count(self._addresses, address, now)
        by_user = self._count(self._users, user, now)
        by_address.not_before = now + self.delay(by_address.failures)
        return self.delay(max(by_address.failures, by_user.failures))

    def _count(self, records: dict[str, _Record], key: str, now: float) -> _Record:
        record = records.pop(key, None) or _Record()
        record.failures = record.decayed(now) + 1
        record.at = now
        records[key] = record  # most recently failed last: pruning starts at the front
        if len(records) > MAX_RECORDS:
            self._prune(records, now)
        return record

    @staticmethod
    def _prune(records: dict[str, _Record], now: float) -> None:
        for key in list(records):
            record = records[key]
            if len(records) <= MAX_RECORDS // 2:
                break
            if record.waiting == 0 and (
                record.decayed(now) < FORGET_BELOW or len(records) > MAX_RECORDS
            ):
                del records[key]


def log_failure(
    *, address: str, user: str, mechanism: str, reason: str, session: str, delay: float
) -> None:
    """The one line a failed LOGIN/AUTHENTICATE leaves, for people and fail2ban:
    ``auth failed: rip=ADDR user="NAME" mech=MECH reason=REASON session=ID delay=Ns``.
    ``rip`` comes first and is never client-chosen; the user name is quoted with every
    quote, backslash and control character escaped and cut at `LOGGED_NAME_MAX`, so no
    name can forge a second line or field. Never the password."""
    log.info(
        "auth failed: rip=%s user=%s mech=%s reason=%s session=%s delay=%.1fs",
        address,
        quote_for_log(user),
        mechanism,
        reason,
        session,
        delay,
    )


def quote_for_log(text: str, limit: int = LOGGED_NAME_MAX) -> str:
    """``text`` in double quotes, safe on one log line (see `log_failure`)."""
    cut = text[:limit]
    out = ['"']
    for ch in cut:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
    out.append('..."' if len(text) > limit else '"')
    return "".join(out)
