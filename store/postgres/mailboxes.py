"""Mailboxes in the PostgreSQL store: `PostgresMailboxes`, the mixin of `PostgresStore` for
names, subscriptions, SELECT and \\Recent, ACL and METADATA (the PostgreSQL twin of
store/sqlite/mailboxes.py; the rules are store/names.py, namespace.py, acl.py, metadata.py).
What SQLite does by trigger (ACL and annotations leaving with their mailbox or user) is done
here in the same transaction. Must not import imapd or notify.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from store import acl as aclrules
from store import flags as flagrules
from store import metadata, names, namespace
from store.api import MailboxInfo, MailboxSnapshot
from store.changes import (
    AclChanged,
    Counts,
    MailboxCreated,
    MailboxDeleted,
    MailboxRef,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
    Origin,
    SubscriptionChanged,
)
from store.errors import MailboxExists, MailboxInvalid, MailboxNotFound, UserNotFound
from store.postgres import metadata as metadata_sql
from store.postgres import quota as quota_sql
from store.postgres.base import (
    COUNTS,
    FACTS,
    MBOX_COLUMNS,
    MBOX_FROM,
    MBOX_SELECT,
    Db,
    Mbox,
    PostgresBase,
    Row,
    Tx,
    facts,
    fetch_one,
)

SPECIAL_USES = {
    s.lower(): s
    for s in (
        "\\All",
        "\\Archive",
        "\\Drafts",
        "\\Flagged",
        "\\Junk",
        "\\Sent",
        "\\Trash",
        "\\Important",
    )
}

_INFO_SELECT = (
    "SELECT "
    + MBOX_COLUMNS
    # \Recent: the messages from recent_uid on, counted only when that is not all of them
    # (UIDs start at 1) nor none: an APPEND's look-up of a mailbox no session selected
    # counted every message of it (issue 18, APPEND per CPU-second).
    + ", CASE WHEN m.recent_uid <= 1 THEN m.messages WHEN m.recent_uid >= m.uidnext THEN 0"
    " ELSE (SELECT count(*) FROM messages x WHERE x.mailbox_id = m.id AND x.uid >= m.recent_uid)"
    " END"
    + ", EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = m.owner_id AND s.name = m.name)"
    + MBOX_FROM
)


def _info(row: Row) -> MailboxInfo:
    return Mbox.from_row(row).info(int(row[15]), bool(row[16]))


def _child_where(first: int) -> str:
    """Mailboxes named $first or below it ($first+1 <= name < $first+2: names.child_range)."""
    return f" (m.name = ${first} OR (m.name >= ${first + 1} AND m.name < ${first + 2}))"


class PostgresMailboxes(PostgresBase):
    """Mailboxes, names, subscriptions, SELECT, ACL and METADATA."""

    async def _as_seen(self, db: Db, user_id: int, info: MailboxInfo) -> MailboxInfo:
        if info.owner_id == user_id:
            return info
        viewer, admin = await self._viewer(db, user_id)
        rows = await db.fetch(
            "SELECT identifier, rights FROM acl WHERE mailbox_id = $1"
            " AND identifier IN ($2, $3, 'anyone', '-anyone')",
            info.id,
            viewer,
            "-" + viewer,
        )
        rights = aclrules.effective(viewer, info.owner, {r[0]: r[1] for r in rows}, is_admin=admin)
        name = namespace.visible_name(viewer, info.owner, info.name)
        return dataclasses.replace(
            info, name=name, rights=rights, subscribed=await self._is_subscribed(db, user_id, name)
        )

    async def list_mailboxes(self, user_id: int) -> list[MailboxInfo]:
        rows = await self._pool.fetch(
            _INFO_SELECT + " WHERE m.owner_id = $1 ORDER BY m.name", user_id
        )
        return [_info(r) for r in rows] + await self._others_mailboxes(user_id)

    async def _others_mailboxes(self, user_id: int) -> list[MailboxInfo]:
        db = self._pool
        try:
            viewer, admin = await self._viewer(db, user_id)
        except UserNotFound:
            return []
        if admin:
            rows = await db.fetch(_INFO_SELECT + " WHERE m.owner_id != $1", user_id)
        else:
            rows = await db.fetch(
                _INFO_SELECT + " WHERE m.owner_id != $1 AND m.id IN (SELECT mailbox_id FROM acl"
                " WHERE identifier IN ($2, 'anyone'))",
                user_id,
                viewer,
            )
        if not rows:
            return []
        entries: dict[int, dict[str, str]] = {}
        for mailbox_id, identifier, rights in await db.fetch(
            "SELECT mailbox_id, identifier, rights FROM acl"
            " WHERE identifier IN ($1, $2, 'anyone', '-anyone')",
            viewer,
            "-" + viewer,
        ):
            entries.setdefault(mailbox_id, {})[identifier] = rights
        subs = set(await self.subscriptions(user_id))
        out: list[MailboxInfo] = []
        for row in rows:
            info = _info(row)
            rights = aclrules.effective(
                viewer, info.owner, entries.get(info.id, {}), is_admin=admin
            )
            if rights:
                name = namespace.visible_name(viewer, info.owner, info.name)
                out.append(
                    dataclasses.replace(info, name=name, rights=rights, subscribed=name in subs)
                )
        out.sort(key=lambda m: m.name)
        return out

    async def subscriptions(self, user_id: int) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT name FROM subscriptions WHERE user_id = $1 ORDER BY name", user_id
        )
        return [r[0] for r in rows]

    async def get_mailbox(self, user_id: int, name: str) -> MailboxInfo:
        owner_id, local = await self._locate(self._pool, user_id, name)
        row = await fetch_one(
            self._pool, _INFO_SELECT + " WHERE m.owner_id = $1 AND m.name = $2", owner_id, local
        )
        if row is None:
            raise MailboxNotFound("Mailbox does not exist")
        return await self._as_seen(self._pool, user_id, _info(row))

    async def create_mailbox(
        self, user_id: int, name: str, origin: Origin, special_use: tuple[str, ...] = ()
    ) -> MailboxInfo:
        name = names.validate(name)
        if name == names.INBOX:
            raise MailboxExists("INBOX always exists")
        uses: list[str] = []
        for use in special_use:
            canonical = SPECIAL_USES.get(use.lower())
            if canonical is None:
                raise MailboxInvalid(f"Unsupported special use {use}")
            if canonical not in uses:
                uses.append(canonical)

        async def body(tx: Tx) -> MailboxInfo:
            owner_id, local = await self._locate(tx.db, user_id, name)
            if local == names.INBOX:
                raise MailboxExists("INBOX always exists")
            owner = await self._owner(tx.db, owner_id)
            wanted = [*names.parents(local), local]
            rows = await tx.rows(
                MBOX_SELECT + " WHERE m.owner_id = $1 AND m.name = ANY($2::text[]) FOR UPDATE OF m",
                owner_id,
                wanted,
            )
            existing = {r[3]: Mbox.from_row(r) for r in rows}
            target = existing.get(local)
            if target is not None and target.selectable:
                raise MailboxExists("Mailbox already exists")
            missing = [p for p in names.parents(local) if p not in existing]
            made = await self._insert_mailboxes(
                tx, owner_id, owner, [(p, ()) for p in missing], origin
            )
            parent = next(
                (existing[p] for p in reversed(names.parents(local)) if p in existing), None
            )
            if target is None:
                [created] = await self._insert_mailboxes(
                    tx, owner_id, owner, [(local, tuple(uses))], origin
                )
                await self._inherit_acl(tx, parent, [*made, created])
                return created.info(0, await self._is_subscribed(tx.db, owner_id, local))
            uidvalidity = await self._uidvalidities(tx, 1)
            await tx.run(
                "UPDATE mailboxes SET selectable = true, uidvalidity = $1, uidnext = 1,"
                " highestmodseq = 1, recent_uid = 1, special_use = $2 WHERE id = $3",
                uidvalidity,
                " ".join(uses),
                target.id,
            )
            revived = dataclasses.replace(
                target,
                uidvalidity=uidvalidity,
                uidnext=1,
                highestmodseq=1,
                recent_uid=1,
                special_use=tuple(uses),
                selectable=True,
            )
            await self._inherit_acl(tx, parent, [*made, revived])
            tx.emit(MailboxCreated(0, tx.at, origin, revived.ref, tuple(uses)), owner)
            return revived.info(0, await self._is_subscribed(tx.db, owner_id, local))

        return await self._write(body)

    @staticmethod
    async def _inherit_acl(tx: Tx, parent: Mbox | None, created: Sequence[Mbox]) -> None:
        if parent is None or not created:
            return
        await tx.run(
            "INSERT INTO acl (mailbox_id, identifier, rights)"
            " SELECT j, a.identifier, a.rights FROM acl AS a, unnest($1::bigint[]) AS j"
            " WHERE a.mailbox_id = $2 ON CONFLICT (mailbox_id, identifier)"
            " DO UPDATE SET rights = excluded.rights",
            [m.id for m in created],
            parent.id,
        )

    @staticmethod
    async def _is_subscribed(db: Db, user_id: int, name: str) -> bool:
        row = await fetch_one(
            db, "SELECT 1 FROM subscriptions WHERE user_id = $1 AND name = $2", user_id, name
        )
        return row is not None

    @staticmethod
    async def _has_children(db: Db, user_id: int, name: str) -> bool:
        low, high = names.child_range(name)
        row = await fetch_one(
            db,
            "SELECT 1 FROM mailboxes WHERE owner_id = $1 AND name >= $2 AND name < $3 LIMIT 1",
            user_id,
            low,
            high,
        )
        return row is not None

    async def delete_mailbox(self, user_id: int, name: str, origin: Origin) -> None:
        name = names.canonical(name)
        if name == names.INBOX:
            raise MailboxInvalid("INBOX cannot be deleted")

        async def body(tx: Tx) -> None:
            owner_id, local = await self._locate(tx.db, user_id, name)
            if local == names.INBOX:
                raise MailboxInvalid("INBOX cannot be deleted")
            row = await tx.one(
                MBOX_SELECT + " WHERE m.owner_id = $1 AND m.name = $2 FOR UPDATE OF m",
                owner_id,
                local,
            )
            if row is None:
                raise MailboxNotFound("Mailbox does not exist")
            mbox = Mbox.from_row(row)
            children = await self._has_children(tx.db, owner_id, local)
            if not mbox.selectable and children:
                raise MailboxInvalid("Mailbox has inferior hierarchical names")
            rows = await tx.rows(
                "SELECT " + FACTS + " FROM messages m JOIN contents c ON c.id = m.content_id"
                " WHERE m.mailbox_id = $1 ORDER BY m.uid",
                mbox.id,
            )
            within = await quota_sql.settle(
                tx.db, {mbox.id: (-mbox.messages, -mbox.size)}, tx.at, origin
            )
            gone = await tx.rows(
                "DELETE FROM messages WHERE mailbox_id = $1 RETURNING content_id", mbox.id
            )
            await self._drop_contents(tx, [r[0] for r in gone])
            await tx.run("DELETE FROM expunged WHERE mailbox_id = $1", mbox.id)
            await metadata_sql.forget_mailbox(tx.db, mbox.id)
            await tx.run("DELETE FROM acl WHERE mailbox_id = $1", mbox.id)
            if children:
                await tx.run(
                    "UPDATE mailboxes SET selectable = false, messages = 0, unseen = 0,"
                    " size = 0, deleted = 0, special_use = '',"
                    " highestmodseq = highestmodseq + 1 WHERE id = $1",
                    mbox.id,
                )
            else:
                await tx.run("DELETE FROM mailboxes WHERE id = $1", mbox.id)
            tx.emit(
                MailboxDeleted(
                    0, tx.at, origin, mbox.ref, mbox.counts, tuple(facts(r) for r in rows)
                ),
                mbox.owner,
            )
            for change in within:
                tx.emit(change, change.user)

        await self._write(body)

    async def rename_mailbox(self, user_id: int, old: str, new: str, origin: Origin) -> None:
        old = names.canonical(old)
        new = names.validate(new)
        if new == names.INBOX or new == old:
            raise MailboxExists("Target mailbox already exists")
        if old != names.INBOX and new.startswith(old + "/"):
            raise MailboxInvalid("Cannot rename a mailbox into itself")

        async def body(tx: Tx) -> None:
            owner_id, old_local = await self._locate(tx.db, user_id, old)
            source = await self._by_name(tx.db, owner_id, old_local)
            if source is None:
                raise MailboxNotFound("Mailbox does not exist")
            try:
                new_owner, new_local = await self._locate(tx.db, user_id, new)
            except MailboxNotFound:
                raise MailboxInvalid("Cannot rename to that name") from None
            if new_owner != owner_id:
                raise MailboxInvalid("Cannot rename a mailbox to another owner's namespace")
            if new_local == names.INBOX:
                raise MailboxExists("Target mailbox already exists")
            if old_local == names.INBOX:
                await self._rename_inbox(tx, source, new_local, origin)
            else:
                await self._rename(tx, source, new_local, origin)

        await self._write(body)

    async def _missing_parents(
        self, tx: Tx, owner_id: int, name: str
    ) -> list[tuple[str, tuple[str, ...]]]:
        parents = names.parents(name)
        rows = await tx.rows(
            "SELECT name FROM mailboxes WHERE owner_id = $1 AND name = ANY($2::text[])",
            owner_id,
            parents,
        )
        present = {r[0] for r in rows}
        return [(p, ()) for p in parents if p not in present]

    async def _rename(self, tx: Tx, source: Mbox, new: str, origin: Origin) -> None:
        old = source.name
        low, high = names.child_range(old)
        rows = await tx.rows(
            MBOX_SELECT
            + " WHERE m.owner_id = $1 AND"
            + _child_where(2)
            + " ORDER BY m.name FOR UPDATE OF m",
            source.owner_id,
            old,
            low,
            high,
        )
        moving = [Mbox.from_row(r) for r in rows]
        moving.sort(key=lambda m: m.name != old)
        targets = [new + m.name[len(old) :] for m in moving]
        clash = await tx.rows(
            "SELECT m.name FROM mailboxes m WHERE m.owner_id = $1 AND m.name = ANY($2::text[])"
            " AND NOT" + _child_where(3),
            source.owner_id,
            targets,
            old,
            low,
            high,
        )
        if clash:
            raise MailboxExists(f"Mailbox {clash[0][0]} already exists")
        parents = await self._missing_parents(tx, source.owner_id, new)
        # One statement: PostgreSQL checks UNIQUE (owner_id, name) at its end.
        await tx.run(
            "UPDATE mailboxes m SET name = $5 || substr(m.name, $6)"
            " WHERE m.owner_id = $1 AND" + _child_where(2),
            source.owner_id,
            old,
            low,
            high,
            new,
            len(old) + 1,
        )
        await self._insert_mailboxes(tx, source.owner_id, source.owner, parents, origin)
        renames = tuple(
            (m.ref, dataclasses.replace(m.ref, name=t))
            for m, t in zip(moving, targets, strict=True)
        )
        tx.emit(MailboxRenamed(0, tx.at, origin, renames), source.owner)

    async def _rename_inbox(self, tx: Tx, inbox: Mbox, new: str, origin: Origin) -> None:
        if await self._by_name(tx.db, inbox.owner_id, new) is not None:
            raise MailboxExists("Target mailbox already exists")
        await tx.run("SELECT 1 FROM mailboxes WHERE id = $1 FOR UPDATE", inbox.id)
        inbox = await self._by_id(tx.db, inbox.id)  # the figures under the lock
        parents = await self._missing_parents(tx, inbox.owner_id, new)
        await self._insert_mailboxes(tx, inbox.owner_id, inbox.owner, parents, origin)
        [target] = await self._insert_mailboxes(
            tx, inbox.owner_id, inbox.owner, [(new, ())], origin
        )
        await metadata_sql.copy_mailbox(tx.db, inbox.id, target.id)
        rows = await tx.rows(
            "SELECT " + FACTS + " FROM messages m JOIN contents c ON c.id = m.content_id"
            " WHERE m.mailbox_id = $1 ORDER BY m.uid",
            inbox.id,
        )
        if not rows:
            return
        row = await tx.one(
            "UPDATE mailboxes SET uidnext = $1, highestmodseq = $2, recent_uid = $3,"
            " messages = $4, unseen = $5, size = $6, deleted = $7 WHERE id = $8 " + COUNTS,
            inbox.uidnext,
            inbox.highestmodseq,
            inbox.recent_uid,
            inbox.messages,
            inbox.unseen,
            inbox.size,
            inbox.deleted,
            target.id,
        )
        assert row is not None
        target_counts = Counts(*row)
        await tx.run(
            "UPDATE messages SET mailbox_id = $1 WHERE mailbox_id = $2", target.id, inbox.id
        )
        row = await tx.one(
            "UPDATE mailboxes SET highestmodseq = highestmodseq + 1, recent_uid = uidnext,"
            " messages = 0, unseen = 0, size = 0, deleted = 0 WHERE id = $1 " + COUNTS,
            inbox.id,
        )
        assert row is not None
        inbox_counts = Counts(*row)
        await tx.run(
            "INSERT INTO expunged (mailbox_id, uid, modseq)"
            " SELECT $1, uid, $2 FROM messages WHERE mailbox_id = $3"
            " ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = excluded.modseq",
            inbox.id,
            inbox_counts.highestmodseq,
            target.id,
        )
        moved = tuple(facts(r) for r in rows)
        uids = tuple(f.uid for f in moved)
        tx.emit(
            MessagesAdded(
                0, tx.at, origin, target.ref, target_counts, moved, "move", inbox.ref, uids
            ),
            inbox.owner,
        )
        tx.emit(
            MessagesExpunged(
                0, tx.at, origin, inbox.ref, inbox_counts, moved, inbox_counts.highestmodseq, "move"
            ),
            inbox.owner,
        )

    async def set_subscribed(
        self, user_id: int, name: str, subscribed: bool, origin: Origin
    ) -> None:
        name = names.canonical(name)

        async def body(tx: Tx) -> None:
            owner = await self._owner(tx.db, user_id)
            if subscribed:
                owner_id, local = await self._locate(tx.db, user_id, name)
                if await self._by_name(tx.db, owner_id, local) is None:
                    raise MailboxNotFound("Mailbox does not exist")
                done = await tx.rows(
                    "INSERT INTO subscriptions (user_id, name) VALUES ($1, $2)"
                    " ON CONFLICT DO NOTHING RETURNING 1",
                    user_id,
                    name,
                )
            else:
                done = await tx.rows(
                    "DELETE FROM subscriptions WHERE user_id = $1 AND name = $2 RETURNING 1",
                    user_id,
                    name,
                )
            if done:
                tx.emit(SubscriptionChanged(0, tx.at, origin, owner, name, subscribed), owner)

        await self._write(body)

    async def open_mailbox(self, user_id: int, name: str, *, claim_recent: bool) -> MailboxSnapshot:
        """SELECT/EXAMINE. The mailbox row is locked first (FOR UPDATE when claiming
        \\Recent: one claimant across instances; FOR SHARE for EXAMINE), and every change
        to a mailbox's messages locks that row: the statements after the lock read one
        state of the mailbox, and max(change_log.seq) read after them covers every change
        in it (READ COMMITTED: each statement sees what committed before it)."""
        name = names.canonical(name)
        async with self._pool.acquire() as conn, conn.transaction():
            owner_id, local = await self._locate(conn, user_id, name)
            lock = "UPDATE" if claim_recent else "SHARE"
            if (
                await fetch_one(
                    conn,
                    "SELECT 1 FROM mailboxes WHERE owner_id = $1 AND name = $2 FOR " + lock,
                    owner_id,
                    local,
                )
                is None
            ):
                raise MailboxNotFound("Mailbox does not exist")
            row = await fetch_one(
                conn,
                "SELECT "
                + MBOX_COLUMNS
                + ", EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = m.owner_id"
                " AND s.name = m.name)" + MBOX_FROM + " WHERE m.owner_id = $1 AND m.name = $2",
                owner_id,
                local,
            )
            assert row is not None
            mbox = Mbox.from_row(row)
            if not mbox.selectable:
                raise MailboxInvalid("Mailbox is not selectable (\\Noselect)")
            messages = await conn.fetch(
                "SELECT uid, seen, flags FROM messages WHERE mailbox_id = $1 ORDER BY uid", mbox.id
            )
            seq = int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM change_log"))
            uids = [m[0] for m in messages]
            first_unseen = next((m[0] for m in messages if not m[1]), None)
            keywords: dict[str, str] = {}
            for m in messages:
                for flag in flagrules.keywords(flagrules.from_text(m[2])):
                    keywords.setdefault(flag.lower(), flag)
            recent = frozenset(u for u in uids if u >= mbox.recent_uid)
            if claim_recent and mbox.recent_uid < mbox.uidnext:
                await conn.execute(
                    "UPDATE mailboxes SET recent_uid = uidnext WHERE id = $1", mbox.id
                )
        if claim_recent:  # committed: a lower bound of recent_uid (see `claim_recent`)
            self._recent_floor[mbox.id] = max(mbox.recent_uid, mbox.uidnext)
        return MailboxSnapshot(
            mailbox=mbox.info(len(recent), bool(row[15])),
            uids=uids,
            recent=recent,
            first_unseen_uid=first_unseen,
            keywords=tuple(keywords.values()),
            seq=seq,
        )

    async def claim_recent(self, mailbox_id: int, uids: Sequence[int]) -> frozenset[int]:
        """Claimed in the database under the mailbox row's lock: across all instances
        exactly one caller gets each UID.

        A claim below this process's floor (a lower bound of the row's ``recent_uid``) is
        refused in memory: of a thousand listeners woken by one APPEND the first claims in
        a transaction, the others see the raised floor and touch no row (one transaction
        per listener and event was the push bench's cost). ``recent_uid`` only grows while
        the mailbox lives; the floors are dropped when a MailboxCreated, Renamed or Deleted
        is published (`PostgresStore._announce`), which, in commit order, comes before any
        new message of a revived or renamed mailbox, from whichever instance."""
        if not uids:
            return frozenset()
        floor = self._recent_floor.get(mailbox_id)
        if floor is not None and not any(u >= floor for u in uids):
            return frozenset()
        # The listeners are woken together, before the first claim has raised the floor:
        # one claim per mailbox at a time in this process, the floor read again after the
        # wait, so the others are decided in memory.
        entry = self._claiming.setdefault(mailbox_id, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                floor = self._recent_floor.get(mailbox_id)
                if floor is not None and not any(u >= floor for u in uids):
                    return frozenset()
                return await self._claim_recent(mailbox_id, uids)
        finally:
            entry[1] -= 1
            if not entry[1]:
                del self._claiming[mailbox_id]

    async def _claim_recent(self, mailbox_id: int, uids: Sequence[int]) -> frozenset[int]:
        async def body(tx: Tx) -> tuple[frozenset[int], int] | None:
            row = await tx.one(
                "SELECT recent_uid FROM mailboxes WHERE id = $1 FOR UPDATE", mailbox_id
            )
            if row is None:
                return None
            claimed = frozenset(u for u in uids if u >= row[0])
            if claimed:
                await tx.run(
                    "UPDATE mailboxes SET recent_uid = $1 WHERE id = $2",
                    max(claimed) + 1,
                    mailbox_id,
                )
            return claimed, max(claimed) + 1 if claimed else int(row[0])

        got = await self._write(body)
        if got is None:
            return frozenset()
        claimed, floor = got
        self._recent_floor[mailbox_id] = max(floor, self._recent_floor.get(mailbox_id, 0))
        return claimed

    # --- ACL (RFC 4314) ---------------------------------------------------------------------
    async def acl_entries(self, mailbox_id: int) -> list[tuple[str, str]]:
        rows = await self._pool.fetch(
            "SELECT identifier, rights FROM acl WHERE mailbox_id = $1 ORDER BY identifier",
            mailbox_id,
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    async def set_acl(
        self,
        user_id: int,
        name: str,
        identifier: str,
        change: aclrules.Modification | None,
        origin: Origin,
    ) -> str:
        async def body(tx: Tx) -> str:
            mbox = await self._by_name(tx.db, *await self._locate(tx.db, user_id, name))
            if mbox is None:
                raise MailboxNotFound("Mailbox does not exist")
            if identifier.removeprefix("-") == mbox.owner:
                raise MailboxInvalid("The owner's rights cannot be changed")
            await tx.run("SELECT 1 FROM mailboxes WHERE id = $1 FOR UPDATE", mbox.id)
            row = await tx.one(
                "SELECT rights FROM acl WHERE mailbox_id = $1 AND identifier = $2",
                mbox.id,
                identifier,
            )
            old = "" if row is None else str(row[0])
            new = "" if change is None else aclrules.apply(old, change)
            if new:
                await tx.run(
                    "INSERT INTO acl (mailbox_id, identifier, rights) VALUES ($1, $2, $3)"
                    " ON CONFLICT (mailbox_id, identifier) DO UPDATE"
                    " SET rights = excluded.rights",
                    mbox.id,
                    identifier,
                    new,
                )
            else:
                await tx.run(
                    "DELETE FROM acl WHERE mailbox_id = $1 AND identifier = $2", mbox.id, identifier
                )
            rights = None if change is None else str(change)
            tx.emit(AclChanged(0, tx.at, origin, mbox.ref, identifier, rights, new), mbox.owner)
            return new

        return await self._write(body)

    # --- METADATA (RFC 5464) ----------------------------------------------------------------
    async def get_metadata(
        self, user_id: int, mailbox: str | None, entries: Sequence[str], *, depth: int | None
    ) -> list[tuple[str, bytes | None]]:
        mailbox_id = metadata.SERVER
        if mailbox is not None:
            mailbox_id = (await self.get_mailbox(user_id, mailbox)).id
        return await metadata_sql.read(self._pool, mailbox_id, user_id, entries, depth)

    async def set_metadata(
        self,
        user_id: int,
        mailbox: str | None,
        items: Sequence[tuple[str, bytes | None]],
        origin: Origin,
        limits: metadata.MetadataLimits,
    ) -> tuple[str, ...]:
        name = None if mailbox is None else names.canonical(mailbox)

        async def body(tx: Tx) -> tuple[str, ...]:
            owner = await self._owner(tx.db, user_id)
            ref: MailboxRef | None = None
            mailbox_id = metadata.SERVER
            if name is not None:
                mbox = await self._by_name(tx.db, *await self._locate(tx.db, user_id, name))
                if mbox is None:
                    raise MailboxNotFound("Mailbox does not exist")
                ref, mailbox_id = mbox.ref, mbox.id
            # One SETMETADATA at a time per mailbox (the entry-count limit is a sum).
            await tx.run("SELECT pg_advisory_xact_lock($1, $2)", 0x696D6170, mailbox_id)
            changed = await metadata_sql.write(tx.db, mailbox_id, user_id, items, limits)
            for change, who in metadata.changes(tx.at, origin, owner, ref, changed):
                tx.emit(change, who)
            return tuple(changed)

        return await self._write(body)
