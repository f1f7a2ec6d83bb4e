"""SORT (RFC 5256 §3) and its DISPLAY keys (RFC 5957 §4) over `SortRecord` values.

One stable sort per criterion, last criterion first: Python's sort is stable, so the
records come out ordered by the first criterion, ties by the next, and remaining ties by
the order they came in, which is UID order and so sequence-number order (the implicit last
criterion). REVERSE reverses its own criterion only (``reverse=True`` keeps ties in their
input order, so it never reverses the implicit one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, Final

from store.sortthread.records import SortRecord

#: sort-key -> the value compared (strings are i;unicode-casemap keys; the empty string,
#: an absent header, collates first).
KEYS: Final[dict[str, Callable[[SortRecord], Any]]] = {
    "ARRIVAL": attrgetter("arrival"),
    "CC": attrgetter("keys.cc"),
    "DATE": attrgetter("sent"),
    "FROM": attrgetter("keys.from_"),
    "SIZE": attrgetter("size"),
    "SUBJECT": attrgetter("keys.subject"),
    "TO": attrgetter("keys.to"),
    "DISPLAYFROM": attrgetter("keys.display_from"),
    "DISPLAYTO": attrgetter("keys.display_to"),
}


def sort_records(
    records: Sequence[SortRecord], criteria: Sequence[tuple[str, bool]]
) -> list[SortRecord]:
    """``records`` (in UID order) sorted by ``criteria``: (sort-key, reverse) pairs in
    priority order."""
    out = list(records)
    for key, reverse in reversed(criteria):
        out.sort(key=KEYS[key], reverse=reverse)
    return out
