"""Header blocks stored apart from their messages (issue 17), in the SQLite store.

Owns: what fills ``content_header`` besides its trigger (migration 0015_content_header): the
row of a spooled message, whose octets reach ``contents.raw`` by blob I/O after the INSERT
the trigger saw (store/sqlite/append.py `_fill_raw`). FETCH reads the table through
`SqliteMessages.fetch_plain` and `fetch`; a contents row without a header row (a block over
`store.api.HEADER_ROW_MAX`) is cut from the message there. Must not import imapd or notify.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from store.api import HEADER_ROW_MAX

if TYPE_CHECKING:
    from store.sqlite.synctx import SyncTx

#: The row of contents ``id`` from the message's first octets (``head``, at least its
#: header block when that is short enough to be kept): none when the block is longer than
#: HEADER_ROW_MAX or than ``head``.
_FILL = (
    "INSERT OR REPLACE INTO content_header (id, header) SELECT id, substr(?1, 1, header_len)"
    " FROM contents WHERE id = ?2 AND header_len <= ?3 AND header_len <= length(?1)"
)


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(HEADER_ROW_MAX)


def fill_spooled(tx: SyncTx, content_id: int, path: Path) -> None:
    """The header row of contents ``content_id``, whose message is the file at ``path`` (read
    for its first `HEADER_ROW_MAX` octets only), on the writer's thread inside APPEND's
    one-call transaction (store/sqlite/append.py `_fill_raw`)."""
    tx.run(_FILL, (_head(path), content_id, HEADER_ROW_MAX))
