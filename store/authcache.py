"""The authentication cache: successful password verifications remembered for a while, so a
webmail that logs in on every page view (Roundcube: a new connection and LOGIN per web
request) pays scrypt once per ``ttl`` instead of once per request. Dovecot's auth_cache_size /
auth_cache_ttl do the same for the same reason.

Owns: `AuthCache` (pure: no SQL, no I/O, no asyncio; the clock is injected) and its
`AuthCacheStats`. A backend's ``authenticate`` uses it in one place, after reading the user's
row and before verifying (store/sqlite/users.py)::

    if cache.hit(name, password, stored):      # stored: the row's hash string, as read now
        return user                            # no scrypt
    ... verify as always (unknown user: the dummy hash) ...
    if matched: cache.remember(name, password, stored)

and ``cache.forget(name)`` after it changes or deletes a user's password row.

What is kept, and why it is safe:
- **Never the password.** An entry's key is HMAC-SHA256, under a random secret made when
  the cache is and never leaving this process, of the length-prefixed user name, password
  and stored hash string. The key is useless off this process (the secret is unknown) and
  in it (a 256-bit MAC reveals nothing of its input); nothing else about the login is kept
  but the expiry time.
- **Any password change misses at once, whoever makes it.** The stored hash string is in
  the key and a new password always gets a new salted hash, so after ``imapd user passwd``
  from another process the server reads the new row, computes another key and misses: no
  message between processes is needed. A deleted user has no row, so ``authenticate`` has
  no stored hash to look up and never hits. `forget` (by name) frees the entries early in
  the process that made the change.
- **Only successes.** A failed verification stores nothing, so wrong passwords keep
  paying the full scrypt and the failure delays of imapd/auth_guard.py; an unknown user
  never reaches `remember`. Unknown user and wrong password still cost the same (one
  scrypt each); only a right password can be faster, which tells the client nothing it
  did not just prove.
- **Bounded.** At most ``max_entries`` entries, least recently used dropped first; an
  entry lives ``ttl`` seconds from the verification that made it (a hit does not extend
  it, so a password's check is repeated at least every ``ttl``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["AuthCache", "AuthCacheStats"]

_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class AuthCacheStats:
    """Counters since the cache was made (``imapd stats``; the control socket's ``stats``)."""

    ttl: float
    max_entries: int
    entries: int
    hits: int  # logins answered without a verification
    misses: int  # lookups that found nothing valid (the caller then verifies)
    stored: int  # successful verifications remembered
    expired: int  # entries dropped because their ttl ran out
    evicted: int  # entries dropped to stay within max_entries
    forgotten: int  # entries dropped by `forget` (password changed, user deleted)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "ttl": self.ttl,
            "max_entries": self.max_entries,
            "entries": self.entries,
            "hits": self.hits,
            "misses": self.misses,
            "stored": self.stored,
            "expired": self.expired,
            "evicted": self.evicted,
            "forgotten": self.forgotten,
        }


def _field(data: bytes) -> bytes:
    return len(data).to_bytes(8, "big") + data


def _octets(text: str) -> bytes:
    # The octets the client sent (surrogate-escaped undecodable ones), as store/passwords.py.
    return text.encode("utf-8", "surrogateescape")


class AuthCache:
    """Remembered successful verifications (see the module). ``ttl`` seconds (> 0) and
    ``max_entries`` (> 0); ``clock`` returns monotonic seconds (tests pass a fake);
    ``secret`` is random unless given (tests)."""

    def __init__(
        self,
        ttl: float,
        max_entries: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        secret: bytes | None = None,
    ) -> None:
        if not ttl > 0 or max_entries < 1:
            raise ValueError(
                "an AuthCache needs ttl > 0 and max_entries >= 1 (0 disables: make none)"
            )
        self.ttl = float(ttl)
        self.max_entries = max_entries
        self._clock = clock
        self._secret = secret if secret is not None else os.urandom(_SECRET_BYTES)
        #: key -> (user name, expiry); least recently used first.
        self._entries: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._hits = self._misses = self._stored = 0
        self._expired = self._evicted = self._forgotten = 0

    @classmethod
    def configured(cls, ttl: float, max_entries: int) -> AuthCache | None:
        """The cache for configuration values, or None when either is 0 (disabled)."""
        if ttl <= 0 or max_entries <= 0:
            return None
        return cls(ttl, max_entries)

    def key(self, name: str, password: str, stored: str) -> bytes:
        """The entry key: HMAC-SHA256(secret, len|name, len|password, len|stored)."""
        message = _field(_octets(name)) + _field(_octets(password)) + _field(_octets(stored))
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def hit(self, name: str, password: str, stored: str) -> bool:
        """Whether ``password`` was verified against ``stored`` (the row's hash string as
        read now) for ``name`` less than ``ttl`` seconds ago. Counts a hit or a miss."""
        key = self.key(name, password, stored)
        entry = self._entries.get(key)
        if entry is not None:
            if entry[1] > self._clock():
                self._entries.move_to_end(key)
                self._hits += 1
                return True
            del self._entries[key]
            self._expired += 1
        self._misses += 1
        return False

    def remember(self, name: str, password: str, stored: str) -> None:
        """Record a successful verification of ``password`` against ``stored``."""
        key = self.key(name, password, stored)
        self._entries[key] = (name, self._clock() + self.ttl)
        self._entries.move_to_end(key)
        self._stored += 1
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self._evicted += 1

    def forget(self, name: str) -> int:
        """Drop every entry of user ``name`` (its password changed or it was deleted);
        returns how many. Linear in the entries: it runs on admin actions, not logins."""
        keys = [k for k, (who, _) in self._entries.items() if who == name]
        for k in keys:
            del self._entries[k]
        self._forgotten += len(keys)
        return len(keys)

    def stats(self) -> AuthCacheStats:
        return AuthCacheStats(
            self.ttl,
            self.max_entries,
            len(self._entries),
            self._hits,
            self._misses,
            self._stored,
            self._expired,
            self._evicted,
            self._forgotten,
        )
