"""The authentication cache (store/authcache.py), pure: ttl with an injected clock, the LRU
bound, keys that never hold the password, the stored hash in the key; and the SQLite
store's `authenticate` through it (a real file; the verification counted by wrapping
store.passwords.verify_password, the one function that runs scrypt)."""

from __future__ import annotations

from pathlib import Path

import pytest

import store.sqlite.users as users_module
from store.authcache import AuthCache
from store.errors import AuthFailed
from store.passwords import hash_password, verify_password
from store.sqlite import SqliteStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


STORED = "$scrypt$n=2,r=8,p=1$c2FsdA$a2V5"
OTHER = "$scrypt$n=2,r=8,p=1$c2FsdB$a2V6"


def test_hit_after_remember_until_ttl_then_expired() -> None:
    clock = Clock()
    cache = AuthCache(60, 10, clock=clock)
    assert not cache.hit("alice", "pw", STORED)
    cache.remember("alice", "pw", STORED)
    clock.now += 59.9
    assert cache.hit("alice", "pw", STORED)
    clock.now += 0.1  # exactly ttl after the verification: gone (a hit does not extend it)
    assert not cache.hit("alice", "pw", STORED)
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.stored, stats.expired, stats.entries) == (1, 2, 1, 1, 0)


def test_other_password_user_or_stored_hash_misses() -> None:
    cache = AuthCache(60, 10, clock=Clock())
    cache.remember("alice", "pw", STORED)
    assert not cache.hit("alice", "pw2", STORED)
    assert not cache.hit("bob", "pw", STORED)
    assert not cache.hit("alice", "pw", OTHER)  # the password was changed (new hash)
    assert cache.hit("alice", "pw", STORED)


def test_fields_are_length_prefixed() -> None:
    """("ab", "c") and ("a", "bc") are different logins, not one concatenation."""
    cache = AuthCache(60, 10, clock=Clock(), secret=b"k" * 32)
    assert cache.key("ab", "c", STORED) != cache.key("a", "bc", STORED)
    assert cache.key("a", "b" + STORED, "") != cache.key("a", "b", STORED)
    cache.remember("ab", "c", STORED)
    assert not cache.hit("a", "bc", STORED)


def test_lru_bound_drops_least_recently_used() -> None:
    cache = AuthCache(60, 2, clock=Clock())
    cache.remember("a", "pw", STORED)
    cache.remember("b", "pw", STORED)
    assert cache.hit("a", "pw", STORED)  # a is now the most recent
    cache.remember("c", "pw", STORED)  # over the bound: b goes
    assert cache.stats().entries == 2
    assert cache.stats().evicted == 1
    assert cache.hit("a", "pw", STORED)
    assert cache.hit("c", "pw", STORED)
    assert not cache.hit("b", "pw", STORED)


def test_key_and_entries_never_hold_the_password() -> None:
    password = "correct horse battery staple"
    cache = AuthCache(60, 10, clock=Clock())
    cache.remember("alice", password, STORED)
    key = cache.key("alice", password, STORED)
    assert len(key) == 32  # an HMAC-SHA256 digest
    held = repr(vars(cache)).encode() + b"".join(cache._entries)
    for needle in (password.encode(), password.encode()[:8], password.encode().hex().encode()):
        assert needle not in held
    assert password.encode() not in key
    # Another process (another secret) gets another key for the same login.
    assert AuthCache(60, 10).key("alice", password, STORED) != key


def test_forget_by_name() -> None:
    cache = AuthCache(60, 10, clock=Clock())
    cache.remember("alice", "pw", STORED)
    cache.remember("alice", "old", OTHER)
    cache.remember("bob", "pw", STORED)
    assert cache.forget("alice") == 2
    assert not cache.hit("alice", "pw", STORED)
    assert cache.hit("bob", "pw", STORED)


def test_zero_disables() -> None:
    assert AuthCache.configured(0, 100) is None
    assert AuthCache.configured(60, 0) is None
    assert AuthCache.configured(60, 100) is not None
    with pytest.raises(ValueError):
        AuthCache(0, 10)


# --- through the SQLite store -------------------------------------------------------------
@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The stored hashes verified, in order (scrypt runs once per entry)."""
    seen: list[str] = []
    real = verify_password

    def counting(password: str, stored: str) -> bool:
        seen.append(stored)
        return real(password, stored)

    monkeypatch.setattr(users_module, "verify_password", counting)
    return seen


async def test_store_authenticate_uses_the_cache(tmp_path: Path, verifications: list[str]) -> None:
    clock = Clock()
    cache = AuthCache(60, 10, clock=clock)
    store = await SqliteStore.open(
        tmp_path / "s.sqlite3", lambda c: None, scrypt_n=16, auth_cache=cache
    )
    try:
        await store.create_user("alice", "pw")
        user = await store.authenticate("alice", "pw")
        assert len(verifications) == 1
        assert await store.authenticate("alice", "pw") == user
        assert len(verifications) == 1  # the second login: no scrypt
        with pytest.raises(AuthFailed):
            await store.authenticate("alice", "wrong")  # wrong: full verification
        assert len(verifications) == 2
        with pytest.raises(AuthFailed) as unknown:
            await store.authenticate("nobody", "pw")  # unknown: the dummy hash, as before
        assert unknown.value.unknown_user
        assert len(verifications) == 3
        with pytest.raises(AuthFailed):
            await store.authenticate("alice", "wrong")  # failures are never remembered
        assert len(verifications) == 4
        clock.now += 60
        await store.authenticate("alice", "pw")  # expired: verified again
        assert len(verifications) == 5

        await store.set_password("alice", "new")
        assert cache.stats().forgotten == 1
        with pytest.raises(AuthFailed):
            await store.authenticate("alice", "pw")
        await store.authenticate("alice", "new")
        await store.delete_user("alice")
        with pytest.raises(AuthFailed):
            await store.authenticate("alice", "new")
    finally:
        await store.close()


async def test_password_changed_by_another_connection_misses(
    tmp_path: Path, verifications: list[str]
) -> None:
    """The stored hash binds the entry: a change by another process (here another store on
    the same file, which shares no cache) makes the old password fail at once."""
    path = tmp_path / "s.sqlite3"
    cache = AuthCache(60, 10, clock=Clock())
    store = await SqliteStore.open(path, lambda c: None, scrypt_n=16, auth_cache=cache)
    other = await SqliteStore.open(path, lambda c: None, scrypt_n=16)
    try:
        await store.create_user("alice", "pw")
        await store.authenticate("alice", "pw")
        await store.authenticate("alice", "pw")
        assert cache.stats().hits == 1
        await other.set_password("alice", "new")
        with pytest.raises(AuthFailed):
            await store.authenticate("alice", "pw")
        assert cache.stats().forgotten == 0  # not forgotten: missed by the new hash
        await store.authenticate("alice", "new")
    finally:
        await other.close()
        await store.close()


def test_hash_password_changes_the_stored_string() -> None:
    """What the cross-process miss rests on: the same password hashes anew (new salt)."""
    assert hash_password("pw", n=16) != hash_password("pw", n=16)
