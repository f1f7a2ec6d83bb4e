"""SEARCH's substring keys on PostgreSQL through a trigram index (pg_trgm; schema:
migrations/0007_trigram.sql, 0012_content_text_pieces.sql): the candidates of a text leaf,
for store/textsearch.py's `TextMatcher` to decide.

Each contents row has a ``content_text`` row: `textsearch.index_text`, every
whitespace-separated piece of every text a text key can match, case-folded, each distinct
piece once, made at APPEND. A text leaf with a non-empty needle becomes one ``text LIKE
'%piece%'`` per piece of the needle (`textsearch.index_pieces`: its whitespace-free runs;
case-folded, LIKE's wildcards escaped), ANDed, over the mailbox's messages: the GIN trigram
index answers them together without reading the mailbox (for pieces of three characters or
more; shorter ones still work, by a scan of the index). A message the needle is in has each
piece inside one of its stored pieces, so the candidates are a superset of the matches and
TextMatcher reads only them. Rows written before migration 0012 hold the whole text
(`every_text` of then): each piece of a needle found in it is a substring of it too, so the
same conditions hold for them. The invariant this needs: every contents row has its
content_text row, written in the same transaction (`PostgresAppend._append_in`; a tool
writing contents rows itself, such as a store copy, must write it too, from
`textsearch.index_text`): a row without one is never a candidate. ``HEADER name ""`` asks
the index for the field's name (`needle`). A needle of white space only is not narrowed
(`indexed` is False: every message is read). The SENT* keys use an indexed column instead
(store/postgres/search.py). Must not import imapd or notify.
"""

from __future__ import annotations

from store.api import Criterion
from store.postgres.base import Db
from store.textsearch import TEXT_KEYS, index_pieces

#: Messages of mailbox $1 whose contents text may match; `candidates_sql` adds one
#: ``t.text LIKE $k`` per piece.
CANDIDATES = (
    "SELECT m.uid FROM content_text t JOIN messages m ON m.content_id = t.id"
    " WHERE m.mailbox_id = $1"
)


def candidates_sql(pieces: int) -> str:
    """`CANDIDATES` for ``pieces`` LIKE patterns ($2, $3, ...), in UID order."""
    likes = "".join(f" AND t.text LIKE ${k + 2}" for k in range(pieces))
    return CANDIDATES + likes + " ORDER BY 1"


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
    """Whether the index narrows ``leaf`` (`needle`, with a piece that is not white space)."""
    found = needle(leaf)
    return found is not None and bool(index_pieces(found))


async def candidates(db: Db, mailbox_id: int, leaf: Criterion) -> list[int]:
    """The UIDs of mailbox ``mailbox_id`` that ``leaf`` (`indexed`) may match, ascending."""
    found = needle(leaf)
    assert found is not None
    pieces = index_pieces(found)
    assert pieces
    rows = await db.fetch(candidates_sql(len(pieces)), mailbox_id, *map(pattern, pieces))
    return [int(r[0]) for r in rows]
