"""Users in the SQLite store: `SqliteUsers`, the mixin of `SqliteStore` for accounts and what
hangs on an account.

Owns: creating a user (with the default mailboxes and their RFC 6154 uses), authenticating,
passwords (hashed in a worker thread, store/passwords.py), the admin flag, deleting and
listing users; a user's quota root (RFC 9208; one root per user: the rules in store/quota.py,
the SQL in store/sqlite/quota.py) and XAPPLEPUSHSERVICE registrations (store/sqlite/push.py).
Must not import imapd or notify.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from store import names, quota
from store.api import PushDevice, User
from store.changes import ApplePushRegistered, MailboxDeleted, Origin
from store.errors import AuthFailed, StoreError, UserExists, UserNotFound
from store.passwords import dummy_hash, hash_password, parameters, verify_password
from store.sqlite import push
from store.sqlite import quota as quota_sql
from store.sqlite.base import _MBOX_SELECT, SqliteBase, _Mbox, _one, _rows, _Tx

DEFAULT_MAILBOXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (names.INBOX, ()),
    ("Drafts", ("\\Drafts",)),
    ("Sent", ("\\Sent",)),
    ("Trash", ("\\Trash",)),
    ("Junk", ("\\Junk",)),
    ("Archive", ("\\Archive",)),
)


class SqliteUsers(SqliteBase):
    """Users, their passwords, quota roots and push registrations (see the module)."""

    # --- users ------------------------------------------------------------------------------
    async def create_user(
        self, name: str, password: str, *, admin: bool = False, origin: Origin | None = None
    ) -> User:
        """Create a user with INBOX, Drafts, Sent, Trash, Junk, Archive (RFC 6154 uses), all
        subscribed; publishes a MailboxCreated for each. Raises UserExists."""
        if not name or name != name.strip():
            raise StoreError("A user name must be non-empty without surrounding spaces")
        hashed = await asyncio.to_thread(hash_password, password, n=self._scrypt_n)
        origin = origin or Origin(service="cli")

        async def body(tx: _Tx) -> User:
            row = await tx.one(
                "INSERT INTO users (name, password, is_admin, created) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO NOTHING RETURNING id",
                (name, hashed, int(admin), tx.at_iso),
            )
            if row is None:
                raise UserExists("User already exists")
            user_id = int(row[0])
            await self._insert_mailboxes(tx, user_id, name, DEFAULT_MAILBOXES, origin)
            await tx.many(
                "INSERT INTO subscriptions (user_id, name) VALUES (?, ?)",
                [(user_id, mailbox) for mailbox, _ in DEFAULT_MAILBOXES],
            )
            return User(user_id, name, admin)

        return await self._write(body)

    async def authenticate(self, name: str, password: str) -> User:
        """Raises AuthFailed (same error, same work for unknown user and wrong password:
        exactly one scrypt verification either way, an unknown user's against a dummy hash
        of the configured parameters; so is a row whose password is no hash, as the
        Shared/ pseudo-owner's ``!``). With an auth cache (store/authcache.py), a right
        password verified against this same stored hash less than its ttl ago is taken
        without scrypt; a miss verifies as always and only a success is remembered."""
        row = await _one(
            self._reader, "SELECT id, name, password, is_admin FROM users WHERE name = ?", (name,)
        )
        stored = row[2] if row is not None else None
        if stored is None or parameters(stored) is None:
            if self._dummy_hash is None:
                self._dummy_hash = dummy_hash(n=self._scrypt_n)
            row, stored = None, self._dummy_hash
        cache = self._auth_cache
        if row is not None and cache is not None and cache.hit(name, password, stored):
            return User(row[0], row[1], bool(row[3]))
        matched = await asyncio.to_thread(verify_password, password, stored)
        if row is None:
            raise AuthFailed("Authentication failed", unknown_user=True)
        if not matched:
            raise AuthFailed("Authentication failed")
        if cache is not None:
            cache.remember(name, password, stored)
        return User(row[0], row[1], bool(row[3]))

    async def get_user(self, name: str) -> User:
        """Raises UserNotFound (also for "", the shared namespace's pseudo-owner)."""
        if not name:
            raise UserNotFound("No such user")
        row = await _one(
            self._reader, "SELECT id, name, is_admin FROM users WHERE name = ?", (name,)
        )
        if row is None:
            raise UserNotFound("No such user")
        return User(row[0], row[1], bool(row[2]))

    async def set_password(self, name: str, password: str) -> None:
        """Raises UserNotFound."""
        if not name:
            raise UserNotFound("No such user")
        hashed = await asyncio.to_thread(hash_password, password, n=self._scrypt_n)

        async def body(tx: _Tx) -> None:
            row = await tx.one(
                "UPDATE users SET password = ? WHERE name = ? RETURNING id", (hashed, name)
            )
            if row is None:
                raise UserNotFound("No such user")

        await self._write(body)
        if self._auth_cache is not None:
            self._auth_cache.forget(name)  # the new hash misses anyway; free the entries

    async def delete_user(self, name: str, origin: Origin | None = None) -> None:
        """Deletes the user and all their mailboxes, messages and subscriptions; publishes a
        MailboxDeleted (without message facts) per mailbox. Raises UserNotFound."""
        origin = origin or Origin(service="cli")
        if not name:
            raise UserNotFound("No such user")  # the pseudo-owner of Shared/ stays

        async def body(tx: _Tx) -> None:
            row = await tx.one("SELECT id FROM users WHERE name = ?", (name,))
            if row is None:
                raise UserNotFound("No such user")
            user_id = row[0]
            mboxes = [
                _Mbox.from_row(r)
                for r in await tx.rows(
                    _MBOX_SELECT + " WHERE m.owner_id = ? ORDER BY m.name", (user_id,)
                )
            ]
            owned = "(SELECT id FROM mailboxes WHERE owner_id = ?)"
            await tx.run("DELETE FROM messages WHERE mailbox_id IN " + owned, (user_id,))
            await tx.run("DELETE FROM expunged WHERE mailbox_id IN " + owned, (user_id,))
            await tx.run("DELETE FROM mailboxes WHERE owner_id = ?", (user_id,))
            await tx.run("DELETE FROM subscriptions WHERE user_id = ?", (user_id,))
            await tx.run("DELETE FROM users WHERE id = ?", (user_id,))
            for mbox in mboxes:
                tx.emit(MailboxDeleted(0, tx.at, origin, mbox.ref, mbox.counts), name)

        await self._write(body)
        if self._auth_cache is not None:
            self._auth_cache.forget(name)  # no row, no hit anyway; free the entries

    async def set_admin(self, name: str, admin: bool) -> User:
        """Grant or revoke the admin flag (``imapd user admin``): admins create shared
        mailboxes and administer every ACL (store/acl.py). Sessions see the change at their
        next rights check. Raises UserNotFound."""
        if not name:
            raise UserNotFound("No such user")

        async def body(tx: _Tx) -> User:
            row = await tx.one(
                "UPDATE users SET is_admin = ? WHERE name = ? RETURNING id", (int(admin), name)
            )
            if row is None:
                raise UserNotFound("No such user")
            return User(int(row[0]), name, admin)

        return await self._write(body)

    async def list_users(self) -> list[User]:
        rows = await _rows(
            self._reader, "SELECT id, name, is_admin FROM users WHERE name != '' ORDER BY name"
        )  # not the shared namespace's pseudo-owner
        return [User(r[0], r[1], bool(r[2])) for r in rows]

    # --- XAPPLEPUSHSERVICE (store/sqlite/push.py) --------------------------------------------
    async def register_push(
        self,
        user_id: int,
        aps_version: int,
        account_id: str,
        device_token: str,
        subtopic: str,
        mailboxes: Sequence[str],
        origin: Origin,
    ) -> tuple[str, ...]:
        """Register a device for the user's mailboxes (names that do not exist or are
        \\Noselect are left out) and publish ApplePushRegistered. Returns the mailbox names
        registered. Raises UserNotFound."""
        wanted = tuple(dict.fromkeys(names.canonical(n) for n in mailboxes))

        async def body(tx: _Tx) -> tuple[str, ...]:
            owner = await self._owner(tx.db, user_id)
            present = await push.existing_mailboxes(tx.db, user_id, wanted)
            await push.upsert(
                tx.db, user_id, aps_version, account_id, device_token, subtopic, present, tx.at_iso
            )
            tx.emit(
                ApplePushRegistered(
                    0,
                    tx.at,
                    origin,
                    owner,
                    aps_version,
                    account_id,
                    device_token,
                    subtopic,
                    present,
                ),
                owner,
            )
            return present

        return await self._write(body)

    async def push_devices(self, user_id: int | None = None) -> list[PushDevice]:
        """XAPPLEPUSHSERVICE registrations of one user, or of everyone."""
        return await push.devices(self._reader, user_id)

    # --- QUOTA (RFC 9208; the rules and SQL live in store/quota.py) ---------------------------
    async def get_quota(self, root: str) -> quota.QuotaInfo:
        """GETQUOTA: a root by name (a user's name names the user's root), with its usage.
        Raises QuotaRootNotFound."""
        info, _ = await quota_sql.by_name(self._reader, root)
        return info

    async def get_quota_root(self, user_id: int, name: str) -> quota.QuotaInfo:
        """GETQUOTAROOT: the root of the user's mailbox ``name``, which need not exist
        (RFC 9208 §4.1.2). Raises UserNotFound."""
        owner = await self._owner(self._reader, user_id)
        return await quota_sql.of_mailbox(self._reader, user_id, owner, names.canonical(name))

    async def set_quota(
        self, root: str, limits: quota.Limits, origin: Origin | None = None
    ) -> quota.QuotaInfo:
        """SETQUOTA / ``imapd quota set``: replace a user root's limits (RFC 9208 §4.1.3:
        limits not given are removed) and publish QuotaChanged(kind="limits"), then
        QuotaChanged(kind="within") if the root was full and no longer is. Returns the root
        with its usage. Raises QuotaRootNotFound (also for roots without a user: they
        cannot be set yet)."""
        origin = origin or Origin(service="cli")

        async def body(tx: _Tx) -> quota.QuotaInfo:
            before, user_id = await quota_sql.by_name(tx.db, root)
            if user_id is None:
                raise quota.QuotaRootNotFound("Only users' quota roots can be set")
            await quota_sql.set_limits(tx.db, user_id, limits)
            after, _ = await quota_sql.by_name(tx.db, root)
            tx.emit(
                quota.change("limits", tx.at, origin, after.root, after.usage), after.root.owner
            )
            if quota.full(before.root.limits, before.usage) and not quota.full(limits, after.usage):
                tx.emit(
                    quota.change("within", tx.at, origin, after.root, after.usage), after.root.owner
                )
            return after

        return await self._write(body)
