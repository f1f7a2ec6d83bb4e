"""Mailboxes in the SQLite store: `SqliteMailboxes`, the mixin of `SqliteStore` for
mailboxes, their names and what is attached to them.

Owns: LIST's rows (the user's own mailboxes, then others' the user has a right on), get,
CREATE (with missing parents and RFC 6154 uses), DELETE, RENAME (INBOX's own case),
SUBSCRIBE, SELECT/EXAMINE and \\Recent claims, a mailbox's ACL (RFC 4314; the rules in
store/acl.py) and METADATA (RFC 5464; the SQL in store/metadata.py). The rules are in the
implementation notes atop store/sqlite/store.py. Must not import imapd or notify.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import aiosqlite

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
from store.errors import (
    MailboxExists,
    MailboxInvalid,
    MailboxNotFound,
    Unavailable,
    UserNotFound,
)
from store.sqlite import metadata as metadata_sql
from store.sqlite import quota as quota_sql
from store.sqlite.base import (
    _COUNTS,
    _FACTS,
    _MBOX_COLUMNS,
    _MBOX_FROM,
    _MBOX_SELECT,
    Row,
    SqliteBase,
    _facts,
    _Mbox,
    _one,
    _rows,
    _Tx,
)
from store.sqlite.synctx import SyncTx

SPECIAL_USES = {  # RFC 6154 §2, RFC 8457 \Important
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

# MailboxInfo extras: unclaimed \Recent (a PK range count) and subscription.
_INFO_SELECT = (
    "SELECT "
    + _MBOX_COLUMNS
    + ", (SELECT count(*) FROM messages x WHERE x.mailbox_id = m.id AND x.uid >= m.recent_uid)"
    + ", EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = m.owner_id AND s.name = m.name)"
    + _MBOX_FROM
)


def _info(row: Row) -> MailboxInfo:
    return _Mbox.from_row(row).info(int(row[15]), bool(row[16]))


class SqliteMailboxes(SqliteBase):
    """Mailboxes, names, subscriptions, SELECT, ACL and METADATA (see the module)."""

    # --- namespaces and rights (RFC 2342, RFC 4314; store/namespace.py, store/acl.py) ----
    async def _as_seen(
        self,
        db: aiosqlite.Connection,
        user_id: int,
        info: MailboxInfo,
    ) -> MailboxInfo:
        """``info`` (an _INFO_SELECT row of any owner) as ``user_id`` sees it: its name in
        that user's namespaces, its effective rights, that user's subscription."""
        if info.owner_id == user_id:
            return info
        viewer, admin = await self._viewer(db, user_id)
        rights = await self._acl_rights(db, viewer, admin, info.id, info.owner)
        name = namespace.visible_name(viewer, info.owner, info.name)
        return dataclasses.replace(
            info, name=name, rights=rights, subscribed=await self._is_subscribed(db, user_id, name)
        )

    # --- mailboxes --------------------------------------------------------------------------
    async def list_mailboxes(self, user_id: int) -> list[MailboxInfo]:
        """All of the user's mailboxes, including \\Noselect placeholders, sorted by name;
        then the other users' and shared mailboxes on which the user has any right, as the
        user sees them (`MailboxInfo.rights`: LIST shows those with ``l``)."""
        rows = await _rows(
            self._reader, _INFO_SELECT + " WHERE m.owner_id = ? ORDER BY m.name", (user_id,)
        )
        return [_info(r) for r in rows] + await self._others_mailboxes(user_id)

    async def _others_mailboxes(self, user_id: int) -> list[MailboxInfo]:
        """Other owners' mailboxes with a right for ``user_id`` (an ACL entry naming the user
        or anyone; every one for an admin), sorted by the name the user sees."""
        db = self._reader
        try:
            viewer, admin = await self._viewer(db, user_id)
        except UserNotFound:
            return []  # deleted meanwhile: nothing is visible
        where = " WHERE m.owner_id != ?"
        params: list[object] = [user_id]
        if not admin:
            where += " AND m.id IN (SELECT mailbox_id FROM acl WHERE identifier IN (?, 'anyone'))"
            params.append(viewer)
        rows = await _rows(db, _INFO_SELECT + where, params)
        if not rows:
            return []
        entries: dict[int, dict[str, str]] = {}
        for mailbox_id, identifier, rights in await _rows(
            db,
            "SELECT mailbox_id, identifier, rights FROM acl"
            " WHERE identifier IN (?, ?, 'anyone', '-anyone')",
            (viewer, "-" + viewer),
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
        """Subscribed names; they need not exist (RFC 3501 §6.3.6)."""
        rows = await _rows(
            self._reader,
            "SELECT name FROM subscriptions WHERE user_id = ? ORDER BY name",
            (user_id,),
        )
        return [r[0] for r in rows]

    async def get_mailbox(self, user_id: int, name: str) -> MailboxInfo:
        """The mailbox a client name means for ``user_id`` (any namespace), as that user
        sees it, with their rights; the caller checks them (RFC 4314 §4). Raises
        MailboxNotFound; a \\Noselect placeholder is returned (selectable=False)."""
        owner_id, local = await self._locate(self._reader, user_id, name)
        row = await _one(
            self._reader, _INFO_SELECT + " WHERE m.owner_id = ? AND m.name = ?", (owner_id, local)
        )
        if row is None:
            raise MailboxNotFound("Mailbox does not exist")
        return await self._as_seen(self._reader, user_id, _info(row))

    async def create_mailbox(
        self, user_id: int, name: str, origin: Origin, special_use: tuple[str, ...] = ()
    ) -> MailboxInfo:
        """Creates missing parents too (RFC 3501 §6.3.3), each published; a trailing
        delimiter is dropped. A \\Noselect placeholder becomes a real mailbox (new
        UIDVALIDITY). Raises MailboxExists (also for INBOX), MailboxInvalid (empty name,
        empty level, forbidden character, unknown special use), UserNotFound."""
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

        async def body(tx: _Tx) -> MailboxInfo:
            owner_id, local = await self._locate(tx.db, user_id, name)  # any namespace
            if local == names.INBOX:
                raise MailboxExists("INBOX always exists")
            owner = await self._owner(tx.db, owner_id)
            wanted = [*names.parents(local), local]
            rows = await tx.rows(
                _MBOX_SELECT + " WHERE m.owner_id = ? AND m.name IN"
                " (SELECT value FROM json_each(?))",
                (owner_id, json.dumps(wanted)),
            )
            existing = {r[3]: _Mbox.from_row(r) for r in rows}
            target = existing.get(local)
            if target is not None and target.selectable:
                raise MailboxExists("Mailbox already exists")
            missing = [p for p in names.parents(local) if p not in existing]
            made = await self._insert_mailboxes(
                tx, owner_id, owner, [(p, ()) for p in missing], origin
            )
            # RFC 4314 §4: a new mailbox SHOULD inherit the ACL of its nearest parent.
            parent = next(
                (existing[p] for p in reversed(names.parents(local)) if p in existing), None
            )
            if target is None:
                [created] = await self._insert_mailboxes(
                    tx, owner_id, owner, [(local, tuple(uses))], origin
                )
                await self._inherit_acl(tx, parent, [*made, created])
                return created.info(0, await self._is_subscribed(tx.db, owner_id, local))
            # A placeholder comes back to life: a new UIDVALIDITY, so its UIDs may restart.
            uidvalidity = await self._uidvalidities(tx, 1)
            await tx.run(
                "UPDATE mailboxes SET selectable = 1, uidvalidity = ?, uidnext = 1,"
                " highestmodseq = 1, recent_uid = 1, special_use = ? WHERE id = ?",
                (uidvalidity, " ".join(uses), target.id),
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
    async def _inherit_acl(tx: _Tx, parent: _Mbox | None, created: Sequence[_Mbox]) -> None:
        """Copy ``parent``'s ACL to each of ``created`` (no Change: nothing was SET)."""
        if parent is None or not created:
            return
        await tx.run(
            "INSERT OR REPLACE INTO acl (mailbox_id, identifier, rights)"
            " SELECT j.value, a.identifier, a.rights FROM acl AS a, json_each(?) AS j"
            " WHERE a.mailbox_id = ?",
            (json.dumps([m.id for m in created]), parent.id),
        )

    @staticmethod
    async def _is_subscribed(db: aiosqlite.Connection, user_id: int, name: str) -> bool:
        row = await _one(
            db, "SELECT 1 FROM subscriptions WHERE user_id = ? AND name = ?", (user_id, name)
        )
        return row is not None

    @staticmethod
    async def _has_children(db: aiosqlite.Connection, user_id: int, name: str) -> bool:
        low, high = names.child_range(name)
        row = await _one(
            db,
            "SELECT 1 FROM mailboxes WHERE owner_id = ? AND name >= ? AND name < ? LIMIT 1",
            (user_id, low, high),
        )
        return row is not None

    async def delete_mailbox(self, user_id: int, name: str, origin: Origin) -> None:
        """RFC 3501 §6.3.4: INBOX cannot be deleted (MailboxInvalid); a mailbox with
        children becomes a \\Noselect placeholder (its messages removed); a placeholder with
        children cannot be deleted (MailboxInvalid); without children it is removed.
        Subscriptions are kept. Raises MailboxNotFound."""
        name = names.canonical(name)
        if name == names.INBOX:
            raise MailboxInvalid("INBOX cannot be deleted")

        async def body(tx: _Tx) -> None:
            owner_id, local = await self._locate(tx.db, user_id, name)  # any namespace
            if local == names.INBOX:
                raise MailboxInvalid("INBOX cannot be deleted")
            mbox = await self._by_name(tx.db, owner_id, local)
            if mbox is None:
                raise MailboxNotFound("Mailbox does not exist")
            children = await self._has_children(tx.db, owner_id, local)
            if not mbox.selectable and children:
                raise MailboxInvalid("Mailbox has inferior hierarchical names")
            rows = await tx.rows(
                "SELECT " + _FACTS + " FROM messages m JOIN contents c ON c.id = m.content_id"
                " WHERE m.mailbox_id = ? ORDER BY m.uid",
                (mbox.id,),
            )
            within = await quota_sql.settle(
                tx.db, {mbox.id: (-mbox.messages, -mbox.size)}, tx.at, origin
            )
            await tx.run("DELETE FROM messages WHERE mailbox_id = ?", (mbox.id,))
            await tx.run("DELETE FROM expunged WHERE mailbox_id = ?", (mbox.id,))
            if children:
                await tx.run(
                    "UPDATE mailboxes SET selectable = 0, messages = 0, unseen = 0, size = 0,"
                    " deleted = 0, special_use = '', highestmodseq = highestmodseq + 1"
                    " WHERE id = ?",
                    (mbox.id,),
                )
            else:
                await tx.run("DELETE FROM mailboxes WHERE id = ?", (mbox.id,))
            facts = tuple(_facts(r) for r in rows)
            tx.emit(MailboxDeleted(0, tx.at, origin, mbox.ref, mbox.counts, facts), mbox.owner)
            for change in within:  # QuotaWithin follows the MailboxDelete (docs/events.md "Order")
                tx.emit(change, change.user)

        await self._write(body)

    async def rename_mailbox(self, user_id: int, old: str, new: str, origin: Origin) -> None:
        """Renames with all children; creates missing parents of the new name. Subscriptions
        are left alone (RFC 9051 §6.3.6: renaming does not update subscription information
        on the original name; RFC 3501 §6.3.6: never remove a name unilaterally).
        Renaming INBOX moves its messages to a new mailbox and leaves INBOX empty
        (RFC 3501 §6.3.5; see the module notes). Raises MailboxNotFound, MailboxExists,
        MailboxInvalid (into itself, bad new name)."""
        old = names.canonical(old)
        new = names.validate(new)
        if new == names.INBOX or new == old:
            raise MailboxExists("Target mailbox already exists")
        if old != names.INBOX and new.startswith(old + "/"):
            raise MailboxInvalid("Cannot rename a mailbox into itself")

        async def body(tx: _Tx) -> None:
            owner_id, old_local = await self._locate(tx.db, user_id, old)  # any namespace
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
        self, tx: _Tx, owner_id: int, name: str, taken: set[str]
    ) -> list[tuple[str, tuple[str, ...]]]:
        parents = names.parents(name)
        rows = await tx.rows(
            "SELECT name FROM mailboxes WHERE owner_id = ? AND name IN"
            " (SELECT value FROM json_each(?))",
            (owner_id, json.dumps(parents)),
        )
        present = {r[0] for r in rows} | taken
        return [(p, ()) for p in parents if p not in present]

    async def _rename(self, tx: _Tx, source: _Mbox, new: str, origin: Origin) -> None:
        old = source.name
        low, high = names.child_range(old)
        rows = await tx.rows(
            _MBOX_SELECT + " WHERE m.owner_id = ? AND (m.name = ? OR (m.name >= ? AND m.name < ?))"
            " ORDER BY m.name",
            (source.owner_id, old, low, high),
        )
        moving = [_Mbox.from_row(r) for r in rows]
        moving.sort(key=lambda m: m.name != old)  # the named mailbox first
        targets = [new + m.name[len(old) :] for m in moving]
        clash = await tx.rows(
            "SELECT name FROM mailboxes WHERE owner_id = ? AND name IN"
            " (SELECT value FROM json_each(?)) AND NOT (name = ? OR (name >= ? AND name < ?))",
            (source.owner_id, json.dumps(targets), old, low, high),
        )
        if clash:
            raise MailboxExists(f"Mailbox {clash[0][0]} already exists")
        parents = await self._missing_parents(tx, source.owner_id, new, set())
        # Two steps through names no client can make (a U+0001 prefix), so that UNIQUE holds
        # after every row whatever order SQLite updates them in. Subscriptions stay where
        # they are (RFC 9051 §6.3.6), so no MailboxSubscribe/UnSubscribe event either.
        prefix_len = len(old)
        where = " WHERE owner_id = ? AND (name = ? OR (name >= ? AND name < ?))"
        await tx.run(
            "UPDATE mailboxes SET name = char(1) || name" + where, (source.owner_id, old, low, high)
        )
        await tx.run(
            "UPDATE mailboxes SET name = ? || substr(name, ?)"
            " WHERE owner_id = ? AND substr(name, 1, 1) = char(1)",
            (new, prefix_len + 2, source.owner_id),
        )
        await self._insert_mailboxes(tx, source.owner_id, source.owner, parents, origin)
        renames = tuple(
            (m.ref, dataclasses.replace(m.ref, name=t))
            for m, t in zip(moving, targets, strict=True)
        )
        tx.emit(MailboxRenamed(0, tx.at, origin, renames), source.owner)

    async def _rename_inbox(self, tx: _Tx, inbox: _Mbox, new: str, origin: Origin) -> None:
        if await self._by_name(tx.db, inbox.owner_id, new) is not None:
            raise MailboxExists("Target mailbox already exists")
        parents = await self._missing_parents(tx, inbox.owner_id, new, set())
        await self._insert_mailboxes(tx, inbox.owner_id, inbox.owner, parents, origin)
        [target] = await self._insert_mailboxes(
            tx, inbox.owner_id, inbox.owner, [(new, ())], origin
        )
        await metadata_sql.copy_mailbox(tx.db, inbox.id, target.id)  # RFC 5464 §4.1
        rows = await tx.rows(
            "SELECT " + _FACTS + ", m.content_id"
            " FROM messages m JOIN contents c ON c.id = m.content_id"
            " WHERE m.mailbox_id = ? ORDER BY m.uid",
            (inbox.id,),
        )
        if not rows:
            return
        # The new mailbox takes INBOX's figures; its UIDVALIDITY is its own.
        row = await tx.one(
            "UPDATE mailboxes SET uidnext = ?, highestmodseq = ?, recent_uid = ?, messages = ?,"
            " unseen = ?, size = ?, deleted = ? WHERE id = ? " + _COUNTS,
            (
                inbox.uidnext,
                inbox.highestmodseq,
                inbox.recent_uid,
                inbox.messages,
                inbox.unseen,
                inbox.size,
                inbox.deleted,
                target.id,
            ),
        )
        assert row is not None
        target_counts = Counts(*row)
        await tx.run(
            "UPDATE messages SET mailbox_id = ? WHERE mailbox_id = ?", (target.id, inbox.id)
        )
        row = await tx.one(
            "UPDATE mailboxes SET highestmodseq = highestmodseq + 1, recent_uid = uidnext,"
            " messages = 0, unseen = 0, size = 0, deleted = 0 WHERE id = ? " + _COUNTS,
            (inbox.id,),
        )
        assert row is not None
        inbox_counts = Counts(*row)
        await tx.run(
            "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq)"
            " SELECT ?, uid, ? FROM messages WHERE mailbox_id = ?",
            (inbox.id, inbox_counts.highestmodseq, target.id),
        )
        facts = tuple(_facts(r, content_id=r[8]) for r in rows)
        uids = tuple(f.uid for f in facts)
        tx.emit(
            MessagesAdded(
                0, tx.at, origin, target.ref, target_counts, facts, "move", inbox.ref, uids
            ),
            inbox.owner,
        )
        tx.emit(
            MessagesExpunged(
                0, tx.at, origin, inbox.ref, inbox_counts, facts, inbox_counts.highestmodseq, "move"
            ),
            inbox.owner,
        )

    async def set_subscribed(
        self, user_id: int, name: str, subscribed: bool, origin: Origin
    ) -> None:
        """SUBSCRIBE/UNSUBSCRIBE. Subscribing a name that does not exist raises
        MailboxNotFound. Subscribing twice, or unsubscribing a name that is not subscribed
        (RFC 9051 §6.3.8: OK), is a no-op: nothing changes, nothing is published."""
        name = names.canonical(name)

        async def body(tx: _Tx) -> None:
            owner = await self._owner(tx.db, user_id)
            if subscribed:
                owner_id, local = await self._locate(tx.db, user_id, name)
                if await self._by_name(tx.db, owner_id, local) is None:
                    raise MailboxNotFound("Mailbox does not exist")
                done = await tx.rows(
                    "INSERT INTO subscriptions (user_id, name) VALUES (?, ?)"
                    " ON CONFLICT DO NOTHING RETURNING 1",
                    (user_id, name),
                )
            else:
                done = await tx.rows(
                    "DELETE FROM subscriptions WHERE user_id = ? AND name = ? RETURNING 1",
                    (user_id, name),
                )
            if done:
                tx.emit(SubscriptionChanged(0, tx.at, origin, owner, name, subscribed), owner)

        await self._write(body)

    async def open_mailbox(self, user_id: int, name: str, *, claim_recent: bool) -> MailboxSnapshot:
        """SELECT/EXAMINE: the snapshot and MAX(change_log.seq) in one transaction on the
        writer. Raises MailboxNotFound, MailboxInvalid (\\Noselect)."""
        name = names.canonical(name)

        async def body(tx: _Tx) -> MailboxSnapshot:
            owner_id, local = await self._locate(tx.db, user_id, name)  # any namespace
            row = await tx.one(
                "SELECT "
                + _MBOX_COLUMNS
                + ", EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = m.owner_id"
                " AND s.name = m.name), (SELECT coalesce(max(seq), 0) FROM change_log)"
                + _MBOX_FROM
                + " WHERE m.owner_id = ? AND m.name = ?",
                (owner_id, local),
            )
            if row is None:
                raise MailboxNotFound("Mailbox does not exist")
            mbox = _Mbox.from_row(row)
            if not mbox.selectable:
                raise MailboxInvalid("Mailbox is not selectable (\\Noselect)")
            messages = await tx.rows(
                "SELECT uid, seen, flags FROM messages WHERE mailbox_id = ? ORDER BY uid",
                (mbox.id,),
            )
            uids = [m[0] for m in messages]
            first_unseen = next((m[0] for m in messages if not m[1]), None)
            keywords: dict[str, str] = {}
            for m in messages:
                for flag in flagrules.keywords(flagrules.from_text(m[2])):
                    keywords.setdefault(flag.lower(), flag)
            recent = frozenset(u for u in uids if u >= mbox.recent_uid)
            if claim_recent and mbox.recent_uid < mbox.uidnext:
                await tx.run("UPDATE mailboxes SET recent_uid = uidnext WHERE id = ?", (mbox.id,))
            if claim_recent:
                self._recent_floor[mbox.id] = max(mbox.recent_uid, mbox.uidnext)
            return MailboxSnapshot(
                mailbox=mbox.info(len(recent), bool(row[15])),
                uids=uids,
                recent=recent,
                first_unseen_uid=first_unseen,
                keywords=tuple(keywords.values()),
                seq=int(row[16]),
            )

        try:
            return await self._write(body)
        except Unavailable:
            if not claim_recent:
                raise
        # A full disk: the \\Recent claim cannot be written, but the mailbox can still be
        # read. Opened without claiming (as EXAMINE does): another session may then show
        # the same messages as \\Recent too, which is harmless. The in-memory floor the
        # failed attempt set is dropped (it only ever holds lower bounds).
        self._recent_floor.clear()
        claim_recent = False
        return await self._write(body)

    async def claim_recent(self, mailbox_id: int, uids: Sequence[int]) -> frozenset[int]:
        """Claim \\Recent for newly arrived UIDs; returns those this caller is first to see."""
        if not uids:
            return frozenset()
        floor = self._recent_floor.get(mailbox_id)
        mine = [u for u in uids if floor is None or u >= floor]
        if not mine:
            # Decided in memory, at once: of a thousand sessions woken by one APPEND the
            # first claims and writes, the others see the raised floor and write nothing.
            # A claim the floor allows is decided by the row below: other server processes
            # on this file (--workers, docs/workers.md) claim too, and the floor is only a
            # lower bound of recent_uid, so exactly one session anywhere gets \\Recent.
            return frozenset()
        # Raised before the write, not after it: the listeners one commit wakes all call
        # here in the same loop turn, and only the first may start a transaction (with the
        # floor raised after the commit, all thousand did, one at a time).
        raised = max(mine) + 1
        self._recent_floor[mailbox_id] = raised

        def body(tx: SyncTx) -> frozenset[int]:
            row = tx.one("SELECT recent_uid FROM mailboxes WHERE id = ?", (mailbox_id,))
            if row is None:
                return frozenset()
            claimed = frozenset(u for u in mine if u >= row[0])
            if claimed:
                tx.run(
                    "UPDATE mailboxes SET recent_uid = ? WHERE id = ?",
                    (max(claimed) + 1, mailbox_id),
                )
            return claimed

        try:
            if getattr(self, "on_commit", None) is not None:
                # Other processes on this file (--workers: the wake channel is set) claim
                # too, and another one already did, as a rule (its listeners were woken
                # first): recent_uid only grows, so a plain read tells, and the write
                # transaction (whose lock the writer's next APPEND would wait for in
                # SQLite's busy handler, docs/workers.md) is left out.
                seen = await _one(
                    self._reader, "SELECT recent_uid FROM mailboxes WHERE id = ?", (mailbox_id,)
                )
                if seen is None or seen[0] > max(mine):
                    return frozenset()
            # One round trip to the writer's thread (synctx.py): the writer lock is held
            # for one hop, not five (BEGIN, SELECT, UPDATE, change_log, COMMIT), so the
            # next APPEND, queued behind this claim, waits for one (issue 17 point 4).
            return await self._write_sync(body)
        except BaseException:
            if self._recent_floor.get(mailbox_id) == raised:  # not claimed: a later one may
                if floor is None:
                    del self._recent_floor[mailbox_id]
                else:
                    self._recent_floor[mailbox_id] = floor
            raise

    # --- ACL (RFC 4314; the rules in store/acl.py) ---------------------------------------------
    async def acl_entries(self, mailbox_id: int) -> list[tuple[str, str]]:
        """The stored ACL of a mailbox: (identifier, canonical rights), sorted; the owner's
        implicit entry is not among them. The caller checked the ``a`` right."""
        rows = await _rows(
            self._reader,
            "SELECT identifier, rights FROM acl WHERE mailbox_id = ? ORDER BY identifier",
            (mailbox_id,),
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
        """SETACL (``change``) or DELETEACL (None) on the mailbox ``name`` means for
        ``user_id``, with its AclChanged in the same transaction (also when nothing
        changed, as Cyrus reports every SETACL). An entry left with no rights is removed.
        Returns the entry's rights after. The caller checked the ``a`` right. Raises
        MailboxNotFound, MailboxInvalid (the owner's own entry: their rights are fixed)."""

        async def body(tx: _Tx) -> str:
            mbox = await self._by_name(tx.db, *await self._locate(tx.db, user_id, name))
            if mbox is None:
                raise MailboxNotFound("Mailbox does not exist")
            if identifier.removeprefix("-") == mbox.owner:
                raise MailboxInvalid("The owner's rights cannot be changed")
            row = await tx.one(
                "SELECT rights FROM acl WHERE mailbox_id = ? AND identifier = ?",
                (mbox.id, identifier),
            )
            old = "" if row is None else str(row[0])
            new = "" if change is None else aclrules.apply(old, change)
            if new:
                await tx.run(
                    "INSERT OR REPLACE INTO acl (mailbox_id, identifier, rights) VALUES (?, ?, ?)",
                    (mbox.id, identifier, new),
                )
            else:
                await tx.run(
                    "DELETE FROM acl WHERE mailbox_id = ? AND identifier = ?", (mbox.id, identifier)
                )
            rights = None if change is None else str(change)
            tx.emit(AclChanged(0, tx.at, origin, mbox.ref, identifier, rights, new), mbox.owner)
            return new

        return await self._write(body)

    # --- METADATA (RFC 5464; the SQL lives in store/metadata.py) ------------------------------
    async def get_metadata(
        self, user_id: int, mailbox: str | None, entries: Sequence[str], *, depth: int | None
    ) -> list[tuple[str, bytes | None]]:
        """GETMETADATA: entries of a mailbox (None: the server) as ``user_id`` sees them,
        None for a requested entry without value (see `metadata.read`). \\Noselect
        placeholders have annotations too (RFC 5464 §4.1). Raises MailboxNotFound."""
        mailbox_id = metadata.SERVER
        if mailbox is not None:
            mailbox_id = (await self.get_mailbox(user_id, mailbox)).id
        return await metadata_sql.read(self._reader, mailbox_id, user_id, entries, depth)

    async def set_metadata(
        self,
        user_id: int,
        mailbox: str | None,
        items: Sequence[tuple[str, bytes | None]],
        origin: Origin,
        limits: metadata.MetadataLimits,
    ) -> tuple[str, ...]:
        """SETMETADATA in one transaction with its MetadataChanged changes (none if nothing
        changed); a None value removes the entry. Returns the entries changed. Raises
        MailboxNotFound, MetadataNoPrivate, MetadataTooBig, MetadataTooMany (nothing set)."""
        name = None if mailbox is None else names.canonical(mailbox)

        async def body(tx: _Tx) -> tuple[str, ...]:
            owner = await self._owner(tx.db, user_id)
            ref: MailboxRef | None = None
            mailbox_id = metadata.SERVER
            if name is not None:
                mbox = await self._by_name(tx.db, *await self._locate(tx.db, user_id, name))
                if mbox is None:
                    raise MailboxNotFound("Mailbox does not exist")
                ref, mailbox_id = mbox.ref, mbox.id
            changed = await metadata_sql.write(tx.db, mailbox_id, user_id, items, limits)
            for change, who in metadata.changes(tx.at, origin, owner, ref, changed):
                tx.emit(change, who)
            return tuple(changed)

        return await self._write(body)
