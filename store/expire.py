"""Message expiry by per-mailbox retention: the rules (the SQL is store/sqlite/expire.py).

Owns: what "expired" means. A mailbox with ``retention_days`` set loses the messages saved
into it (``savedate``, RFC 8514: arrival by APPEND, delivery, COPY or MOVE) more than that many
days ago. This is Cyrus's cyr_expire with ``expire_by_savedate: on`` (its default is the
sent date, ``gmtime``); unlike Cyrus the value is not inherited by child mailboxes and
``\\Flagged`` messages are not kept (Cyrus: ``expire_keep_flagged``, off by default). The
transaction itself (one per mailbox, MessagesExpunged kind "expire", Origin(service=
"expire")) is the backend's ``expire``. Imports nothing of imapd or notify.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

#: Retention values are whole days, at most about 100 years (keeps the cutoff arithmetic
#: far from datetime's limits).
MAX_RETENTION_DAYS = 36500


@dataclass(frozen=True, slots=True)
class DueMailbox:
    id: int
    retention_days: int


def check_days(days: int | None) -> int | None:
    """Normalise a retention: None or 0 clears it. Raises ValueError when out of range."""
    if days is None or days == 0:
        return None
    if not 0 < days <= MAX_RETENTION_DAYS:
        raise ValueError(f"retention must be 1..{MAX_RETENTION_DAYS} days, or 0/none")
    return days


def cutoff(now: dt.datetime, days: int) -> str:
    """The savedate before which messages are expired, as ISO 8601 UTC."""
    if now.tzinfo is None:
        raise ValueError("expire needs an aware datetime")
    return (now.astimezone(dt.UTC) - dt.timedelta(days=days)).isoformat()
