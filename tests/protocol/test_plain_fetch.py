"""The FETCH hot path renders the same bytes as the generic serializer, att by att."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

import pytest

from imapd.commands.fetch import _plain_fetch_lines, plain_columns
from imapd.fetch import fetch_response
from imapd.protocol.serializer import serialize
from imapd.protocol.values import FetchAtt
from imapd.selected import SelectedView
from store.api import MessageRecord
from store.changes import Counts, FlagChange, FlagsChanged, MailboxRef, Origin

TZ = dt.timezone(dt.timedelta(hours=-5, minutes=-30))
RECORDS = [
    MessageRecord(3, 11, (), dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), 120),
    MessageRecord(7, 12, ("\\Seen", "$Work"), dt.datetime(2025, 12, 31, 23, 0, tzinfo=TZ), 9),
    MessageRecord(9, 15, ("\\Deleted",), dt.datetime(2026, 7, 9, 1, 2, 3, tzinfo=dt.UTC), 1),
]
TZ_NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def plain_rows(
    records: list[MessageRecord], atts: tuple[FetchAtt, ...]
) -> list[tuple[object, ...]]:
    """What `Store.fetch_plain` returns for these records and the columns ``atts`` show."""
    value: dict[str, Callable[[MessageRecord], object]] = {
        "modseq": lambda r: r.modseq,
        "flags": lambda r: " ".join(r.flags),
        "size": lambda r: r.size,
        "internaldate": lambda r: r.internaldate.isoformat(),
    }
    return [(r.uid, *(value[c](r) for c in plain_columns(atts))) for r in records]


NAMES = ["UID", "FLAGS", "MODSEQ", "RFC822.SIZE", "INTERNALDATE"]


@pytest.mark.parametrize(
    "names",
    [c for n in range(1, 4) for c in itertools.permutations(NAMES, n)],
    ids=lambda names: "+".join(names),
)
def test_plain_path_matches_generic_serializer(names: tuple[str, ...]) -> None:
    atts = tuple(FetchAtt(n) for n in names)
    view = SelectedView(1, [1, 3, 7, 9], readonly=False, recent={7})
    fast = _plain_fetch_lines(view, plain_rows(RECORDS, atts), atts)
    slow = b"".join(
        serialize(fetch_response(view, view.seq_of(r.uid) or 0, r, atts)) for r in RECORDS
    )
    assert fast == slow


@pytest.mark.parametrize("names", [("FLAGS",), ("UID", "FLAGS", "MODSEQ"), ("INTERNALDATE",)])
def test_plain_path_numbers_rows_that_are_not_a_run(names: tuple[str, ...]) -> None:
    """Rows that are not a run of the view's UIDs (a message expunged meanwhile, one the
    client was never told of) are numbered by lookup, and rows the view lacks are left out;
    a pending flag update of a message the FETCH reports is dropped (it would repeat it)."""
    atts = tuple(FetchAtt(n) for n in names)
    view = SelectedView(1, [1, 3, 7, 9], readonly=False, recent={9})
    box, counts = MailboxRef(1, "alice", "INBOX", 1), Counts(4, 0, 10, 20, 0)
    for uid in (3, 7):  # flag changes made elsewhere, not reported yet
        change = FlagChange(uid, 20, ("\\Flagged",), ("\\Flagged",), ())
        view.apply(FlagsChanged(1, TZ_NOW, Origin("other"), box, counts, (change,)), own=False)
    kept = [RECORDS[0], RECORDS[2]]  # UIDs 3 and 9: seq 2 and 4
    rows = plain_rows(kept, atts)
    rows.insert(1, (5, *rows[0][1:]))  # not in the view
    fast = _plain_fetch_lines(view, rows, atts)
    slow = b"".join(serialize(fetch_response(view, view.seq_of(r.uid) or 0, r, atts)) for r in kept)
    assert fast == slow
    assert fast.startswith(b"* 2 FETCH") and b"\r\n* 4 FETCH" in fast
    told = [line.items[0] for line in view.flush_flags()]  # type: ignore[union-attr]
    assert told == ([3] if "FLAGS" in names else [2, 3])  # UID 7's still due; 3's told
