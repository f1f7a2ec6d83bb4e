"""SEARCH's substring keys on PostgreSQL through a trigram index (pg_trgm; schema:
migrations/0007_trigram.sql): the candidates of a text leaf, for store/textsearch.py's
`TextMatcher` to decide.

Each contents row has a ``content_text`` row: `textsearch.every_text`, every text a text key
can match, case-folded, made at APPEND. A text leaf with a non-empty needle becomes
``text LIKE '%needle%'`` (case-folded, LIKE's wildcards escaped) over the mailbox's messages:
a GIN trigram index answers it without reading the mailbox (for needles of three characters
or more; shorter ones still work, by a scan of the index). The candidates are a superset of
the matches, so TextMatcher reads only them. The invariant this needs: every contents row
has its content_text row, written in the same transaction (`PostgresMessages._append_in`;
a tool writing contents rows itself, such as a store copy, must write it too, from
`textsearch.every_text`): a row without one is never a candidate. ``HEADER name ""`` asks
the index for the field's name (`needle`). The SENT* keys use an indexed column instead
(store/postgres/search.py). Must not import imapd or notify.
"""

from __future__ import annotations

from store.api import Criterion
from store.postgres.base import Db
from store.textsearch import TEXT_KEYS

#: Messages of mailbox $1 whose contents text may match the pattern $2.
CANDIDATES = (
    "SELECT m.uid FROM content_text t JOIN messages m ON m.content_id = t.id"
    " WHERE m.mailbox_id = $1 AND t.text LIKE $2"
)


def pattern(needle: str) -> str:
    """The LIKE pattern of a substring search for ``needle`` (case-folded, as the text)."""
    escaped = needle.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "%" + escaped.replace("\x00", " ") + "%"


def needle(leaf: Criterion) -> str | None:
    """What every message ``leaf`` matches has in its contents text, or None when the index
    cannot narrow it. A text key with a non-empty string: that string. ``HEADER name ""``
    (every message having that field, RFC 3501 §6.4.4): the field's name, which is in the
    header block the text starts with (a field matches when its name, stripped and
    ASCII-lowercased, equals the key's: store/mime/text.py `header_values`); only for an
    ASCII name, whose case-folding is plain lowercasing on both sides."""
    if leaf.name.upper() not in TEXT_KEYS or not isinstance(leaf.value, str):
        return None
    if leaf.value:
        return leaf.value
    if leaf.name.upper() == "HEADER" and leaf.header:
        name = leaf.header.strip()
        if name and name.isascii():
            return name
    return None


def indexed(leaf: Criterion) -> bool:
    """Whether the index narrows ``leaf`` (`needle`)."""
    return needle(leaf) is not None


async def candidates(db: Db, mailbox_id: int, leaf: Criterion) -> list[int]:
    """The UIDs of mailbox ``mailbox_id`` that ``leaf`` (`indexed`) may match, ascending."""
    found = needle(leaf)
    assert found is not None
    rows = await db.fetch(CANDIDATES + " ORDER BY 1", mailbox_id, pattern(found))
    return [int(r[0]) for r in rows]
