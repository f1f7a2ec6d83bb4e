"""FETCH responses rendered straight from the store's rows (issue 17): imaptest's FETCH mix
(UID, FLAGS, ENVELOPE, INTERNALDATE, BODY, BODYSTRUCTURE, RFC822.SIZE, header fields, one
message's BODY.PEEK[]) without a `MessageRecord` per message or a value tree per response.

Owns: which attribute lists this path serves (`plan`), the `Store.fetch_plain` columns
they read (one query per batch, the pre-rendered bytes and the header block included; what
never changes of a message is kept by `imapd.fetch_cache`, so most batches read only flags
or nothing), the pre-rendered bytes cut into items once (`pieces`), and their lines, built
attribute by attribute over the whole batch and joined once. The bytes
are those `imapd.fetch.fetch_line` sends for the same messages (tests compare both, over
odd MIME and every attribute mix). When a row lacks what its line needs (no pre-rendered
bytes stored, a header block over `store.api.HEADER_ROW_MAX`, a big literal that must go
out uncopied), `render` answers None and the caller renders that batch the generic way.

Not served here (the generic path does): anything setting \\Seen, CHANGEDSINCE, part
numbers, TEXT and MIME sections, BINARY, PREVIEW, SAVEDATE, EMAILID, THREADID. Pure.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from imapd import fetch_wire
from imapd.fetch import imap_datetime, section_label
from imapd.protocol.serializer import BIG_LITERAL
from imapd.protocol.values import FetchAtt
from imapd.selected import SelectedView
from store.mime.sections import top_header_fields

_HEADER_TEXTS = {"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"}
#: The plain attributes: their `fetch_plain` column.
_PLAIN = {
    "FLAGS": "flags",
    "MODSEQ": "modseq",
    "RFC822.SIZE": "size",
    "INTERNALDATE": "internaldate",
}


@dataclass(frozen=True, slots=True)
class RowPlan:
    """How one FETCH's attributes are read and rendered from rows."""

    atts: tuple[FetchAtt, ...]
    #: `Store.fetch_plain` columns after the UID, each once, in first use order.
    columns: tuple[str, ...]

    @property
    def content(self) -> bool:
        """The whole message is read: batches are bounded by octets."""
        return "raw" in self.columns


def _column(att: FetchAtt) -> str | None:
    """The column ``att`` is rendered from ("" for UID, in every row); None: not here."""
    name, section = att.name, att.section
    if name == "UID":
        return ""
    if name in _PLAIN:
        return _PLAIN[name]
    if section is None:
        if name in fetch_wire.ITEMS:  # ENVELOPE, BODY, BODYSTRUCTURE
            return "wire"
        return {"RFC822.HEADER": "header", "RFC822": "raw"}.get(name)
    if name != "BODY" or section.part:
        return None
    if section.text is None:
        return "raw"
    return "header" if section.text.upper() in _HEADER_TEXTS else None


def plan(atts: tuple[FetchAtt, ...]) -> RowPlan | None:
    """The plan for ``atts``, or None when one of them is not served from rows. The caller
    sends here only FETCHes that set no \\Seen and have no CHANGEDSINCE."""
    columns: list[str] = []
    for att in atts:
        column = _column(att)
        if column is None:
            return None
        if column and column not in columns:
            columns.append(column)
    return RowPlan(atts, tuple(columns))


def render(
    view: SelectedView,
    rows: Sequence[tuple[Any, ...]],
    rplan: RowPlan,
    utf8: bool,
    order: Sequence[str] | None = None,
) -> bytes | None:
    """The FETCH lines of ``rows`` (`Store.fetch_plain` rows for ``rplan.columns``, in UID
    order, their ``wire`` column cut by `pieces`: `imapd.fetch_cache` builds them; their
    columns after the UID in ``order`` when given, else as the plan lists them) for the
    messages the client numbers; None when a row lacks what its line needs.
    Reports FLAGS, so the view's pending flag updates of these messages are dropped."""
    if not rows:
        return b""
    field = {c: i for i, c in enumerate(rplan.columns if order is None else order, 1)}
    if ("header" in field or "raw" in field) and not _servable(rows, field):
        return None
    uids = [r[0] for r in rows]
    first = bisect_left(view.uids, uids[0])
    heads: Sequence[int]
    if view.uids[first : first + len(uids)] == uids:  # no message expunged meanwhile
        heads = range(first + 1, first + 1 + len(uids))
    else:
        numbered = [(n, r) for r in rows if (n := view.seq_of(r[0])) is not None]
        heads, rows = [n for n, _ in numbered], [r for _, r in numbered]
        uids = [r[0] for r in rows]
    if view.uidonly:  # RFC 9586 §3.3: ``* uid UIDFETCH (...)``
        heads = uids
    columns: list[Any] = [_items(att, rows, uids, field, view, utf8) for att in rplan.atts]
    if "wire" in field and any(None in column for column in columns):
        return None  # stored without pre-rendered bytes
    if "flags" in field:
        view.forget_flag_updates(uids)  # this FETCH reports them
    line = b"* %d UIDFETCH (%s)\r\n" if view.uidonly else b"* %d FETCH (%s)\r\n"
    if len(columns) == 1:
        return b"".join([line % pair for pair in zip(heads, columns[0], strict=True)])
    join = b" ".join
    lines = zip(heads, zip(*columns, strict=True), strict=True)
    return b"".join([line % (n, join(items)) for n, items in lines])


def _servable(rows: Sequence[tuple[Any, ...]], field: dict[str, int]) -> bool:
    """Rows with their header block (not over HEADER_ROW_MAX) and no big message (sent
    uncopied, `serialize_pieces`). Missing pre-rendered bytes: `_items` finds them."""
    if "header" in field:
        i = field["header"]
        if None in [r[i] for r in rows]:
            return False
    if "raw" in field:
        i = field["raw"]
        if any(r[i] is None or len(r[i]) >= BIG_LITERAL for r in rows):
            return False
    return True


def _items(
    att: FetchAtt,
    rows: Sequence[tuple[Any, ...]],
    uids: list[int],
    field: dict[str, int],
    view: SelectedView,
    utf8: bool,
) -> list[bytes] | list[bytes | None]:
    """The one item ``att`` adds to each row's line (None: no pre-rendered bytes)."""
    name = att.name
    if name == "UID":
        return [b"UID %d" % u for u in uids]
    column = _column(att)
    assert column is not None
    i = field[column] if column else 0
    if name == "FLAGS":
        recent = view.recent if view.recent and not view.rev2 else None
        if recent is None:
            return [_flags_item(r[i]) for r in rows]
        return [_flags_item(r[i], r[0] in recent) for r in rows]
    if name == "MODSEQ":
        return [b"MODSEQ (%d)" % r[i] for r in rows]
    if name == "RFC822.SIZE":
        return [b"RFC822.SIZE %d" % r[i] for r in rows]
    if name == "INTERNALDATE":
        return [_internaldate_item(r[i]) for r in rows]
    if column == "wire":  # None for a row without them (`render` then answers None)
        k = fetch_wire.ITEMS[name] + (len(fetch_wire.ITEMS) if utf8 else 0)
        return [None if r[i] is None else r[i][k] for r in rows]
    label = (name if att.section is None else section_label(att)).encode() + b" "
    data = _section(att)
    return [label + _literal(data(r[i])) for r in rows]


@functools.lru_cache(maxsize=1024)
def _flags_item(flags: str, recent: bool = False) -> bytes:
    """``FLAGS (...)`` of a stored flags column (space-separated atoms), as
    `SelectedView.flags_with_recent` and the serializer render it."""
    names = flags.split()
    if recent:
        names.append("\\Recent")
    return b"FLAGS (" + " ".join(names).encode() + b")"


@functools.lru_cache(maxsize=4096)
def _internaldate_item(stored: str) -> bytes:
    """``INTERNALDATE "..."`` of a stored ISO date (zone kept: it is in the text)."""
    return b'INTERNALDATE "%s"' % imap_datetime(dt.datetime.fromisoformat(stored)).encode()


def pieces(wire: bytes | None) -> tuple[bytes, ...] | None:
    """The ENVELOPE, BODY and BODYSTRUCTURE items of the pre-rendered bytes ``wire``, each
    with its name (``b"ENVELOPE (...)"``), then the same three for a UTF8=ACCEPT session
    (`fetch_wire.ITEMS` order): what a row's ``wire`` column holds for `render`. None for
    a message stored without them (or of another layout)."""
    if wire is None or not wire.startswith(fetch_wire.MAGIC):
        return None
    end = wire.index(b"\n")
    lengths = [int(n) for n in wire[len(fetch_wire.MAGIC) : end].split()]
    names = [name.encode() + b" " for name in fetch_wire.ITEMS]
    count = len(names)
    out: list[bytes] = []
    start = end + 1
    for name, length in zip(names, lengths[:count], strict=True):
        out.append(name + wire[start : start + length])
        start += length
    for i, length in enumerate(lengths[count:]):
        out.append(names[i] + wire[start : start + length] if length else out[i])
        start += length
    return tuple(out)


def _section(att: FetchAtt) -> Callable[[bytes], bytes]:
    """What ``att`` sends of a row's header block or message (`imapd.fetch.section_data`)."""
    section = att.section
    text = (section.text or "").upper() if section is not None else ""
    cut: Callable[[bytes], bytes]
    if att.name == "RFC822.HEADER" or text == "HEADER" or att.name == "RFC822" or not text:

        def whole(data: bytes) -> bytes:
            return data

        cut = whole
    else:
        assert section is not None
        fields, exclude = section.fields, text.endswith(".NOT")

        def picked(header: bytes) -> bytes:
            return header_fields(header, fields, exclude)

        cut = picked
    if att.partial is None:
        return cut
    origin, count = att.partial

    def partial(data: bytes) -> bytes:
        return cut(data)[origin : origin + count]

    return partial


#: `header_fields` remembers the answers for this many header blocks and field lists ...
MEMO_ENTRIES = 1024
#: ... of header blocks up to this long (so it holds at most ~5 MiB).
MEMO_HEADER_MAX = 4096
_memo: dict[tuple[bytes, tuple[str, ...], bool], bytes] = {}
_memo_lock = threading.Lock()


def header_fields(header: bytes, fields: tuple[str, ...], exclude: bool) -> bytes:
    """`top_header_fields`, remembered by the header block's octets (the answer is a
    function of them and the field list): clients ask the same messages for the same
    fields again and again (each time a folder is opened; imaptest's mix), as Dovecot's
    cache file keeps the fields asked for. Bounded: `MEMO_ENTRIES` of blocks up to
    `MEMO_HEADER_MAX` octets, the oldest entry dropped first. Safe from the rendering
    threads (`RENDER_IN_THREAD`): entries are added and dropped under a lock."""
    key = (header, fields, exclude)
    found = _memo.get(key)
    if found is None:
        found = top_header_fields(header, fields, exclude)
        if len(header) <= MEMO_HEADER_MAX:
            with _memo_lock:
                if len(_memo) >= MEMO_ENTRIES:
                    del _memo[next(iter(_memo))]
                _memo[key] = found
    return found


def _literal(data: bytes) -> bytes:
    """`imapd.protocol.serializer.literal`: NUL goes out as 0x80 in a {n} literal."""
    if b"\x00" in data:
        data = data.replace(b"\x00", b"\x80")
    return b"{%d}\r\n%s" % (len(data), data)
