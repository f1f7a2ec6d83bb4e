"""APPEND's target look-up answered in-process on PostgreSQL, as the SQLite store answers
every look-up (issue 18: APPEND per CPU-second; a query per APPEND cost imapd and
PostgreSQL about a tenth of the APPEND's CPU).

Owns: `AppendTargets.append_target` (store/api.py) and its cache, a mixin of
`PostgresStore` (store/postgres/store.py). Must not import imapd or notify.

What is cached: the `get_mailbox` answer for a name of the user's own namespace only (the
owner holds every right; no ACL, no admin flag is read), by (user id, client name), while
this process follows every commit of the database (`follow_foreign_commits`: ``_published``
set), so that another instance's RENAME, DELETE, CREATE or ACL change reaches
`_forget_targets`, which drops the whole cache, in commit order with the other changes.
Any change of a kind not known to leave names and rights alone drops it too. Its counts
are those of the look-up that filled it: a caller must not use them (APPEND does not).

Why that is enough: a look-up only names the target; APPEND's write transaction checks it
again (`PostgresMessages._append_in`: the row is the user's own and selectable, or the
general path reads the ACL and answers MailboxNotFound / NO [NOPERM]). A cached answer
older than a commit not yet published here is the race any look-up before its write has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from store.api import MailboxInfo
from store.changes import (
    ApplePushRegistered,
    CalendarAlarmFired,
    Change,
    FlagsChanged,
    MessagesAdded,
    MessagesExpunged,
    MetadataChanged,
    QuotaChanged,
    SessionEvent,
    SubscriptionChanged,
    UrlKeysReset,
)
from store.postgres.base import PostgresBase

#: Entries at most; the cache is dropped whole when full (it refills at one query each).
TARGETS_MAX = 4096

#: Changes that leave every mailbox's name, existence, selectability and ACL as they were.
_HARMLESS = (
    MessagesAdded,
    MessagesExpunged,
    FlagsChanged,
    QuotaChanged,
    SessionEvent,
    MetadataChanged,
    SubscriptionChanged,
    CalendarAlarmFired,
    ApplePushRegistered,
    UrlKeysReset,
)


class AppendTargets(PostgresBase):
    """`append_target` (see the module). `get_mailbox` is PostgresMailboxes'."""

    #: (user id, client name) -> the user's own mailbox of that name (`append_target`).
    _targets: dict[tuple[int, str], MailboxInfo]
    #: Bumped by every batch `_forget_targets` drops the cache for: a look-up that an
    #: unharmless batch overtook while it waited for its answer is not kept.
    _targets_generation: int
    _published: int | None

    if TYPE_CHECKING:  # PostgresMailboxes' (store/postgres/mailboxes.py)

        async def get_mailbox(self, user_id: int, name: str) -> MailboxInfo: ...

    async def append_target(self, user_id: int, name: str) -> MailboxInfo:
        key = (user_id, name)
        info = self._targets.get(key)
        if info is not None:
            return info
        following = self._published is not None  # read before the look-up's await
        generation = self._targets_generation
        info = await self.get_mailbox(user_id, name)
        if following and info.owner_id == user_id and generation == self._targets_generation:
            if len(self._targets) >= TARGETS_MAX:
                self._targets.clear()
            self._targets[key] = info
        return info

    def _forget_targets(self, changes: Sequence[Change]) -> None:
        """Called with every batch of changes this process publishes, in commit order."""
        if not all(isinstance(c, _HARMLESS) for c in changes):
            self._targets.clear()
            self._targets_generation += 1
