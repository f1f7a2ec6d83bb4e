"""Numbers as inclusive ranges: ``[1, 2, 3, 7]`` -> ``[(1, 3), (7, 7)]``. Pure.

The store binds a UID set as one JSON array of ranges (store/sqlite/messages.py) and the
handlers hand the store `Criterion("UIDS", ...)` and VANISHED ranges in this form. The sans-IO
core (imapd/protocol/values.py, `SequenceSet.from_values` and `merged`) keeps its own: it
imports nothing of the store.
"""

from __future__ import annotations

from collections.abc import Iterable


def number_ranges(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, merged inclusive ranges of a collection of numbers (duplicates and any order
    allowed): a whole ``1:*`` becomes one range."""
    if type(numbers) is list and numbers:  # a run (FETCH's usual set): compared in C
        low, high = numbers[0], numbers[-1]
        if high - low + 1 == len(numbers) and numbers == list(range(low, high + 1)):
            return [(low, high)]
    out: list[tuple[int, int]] = []
    for n in sorted(set(numbers)):
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out
