"""Protocol value types shared by the parser, the serializer and the handlers.

Owns: sequence sets, fetch attributes, search keys, flags, the `Secret` wrapper and the
NewTypes for UIDs, sequence numbers and mod-sequences. Must not import asyncio, socket, ssl,
store or notify: these are plain values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NewType

Uid = NewType("Uid", int)
SeqNum = NewType("SeqNum", int)
ModSeq = NewType("ModSeq", int)

#: System flags of RFC 3501 §2.3.2, in their canonical spelling. `\Recent` is session state
#: and can never be set by a client.
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
_SYSTEM_BY_LOWER = {f.lower(): f for f in (*SYSTEM_FLAGS, "\\Recent")}


def canonical_flag(flag: str) -> str:
    """System flags are case-insensitive (RFC 3501 §2.3.2); keep keywords as given."""
    return _SYSTEM_BY_LOWER.get(flag.lower(), flag)


@dataclass(frozen=True, slots=True)
class SpooledLiteral:
    """A literal the core did not keep: at least ``Limits.literal_spool_size`` octets, handed
    out as `LiteralChunk` events as they arrived (the session writes them to a spool file).
    It is the ``index``-th such literal of its command (0-based); ``size`` its octets."""

    index: int
    size: int


@dataclass(frozen=True, slots=True)
class Secret:
    """A password or SASL response: never printed by accident; `.reveal()` is greppable."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """RFC 3501 §9 sequence-set: ranges with ``None`` standing for ``*``.

    ``saved`` is RFC 5182's ``$`` (the result of the last SEARCH with RETURN (SAVE)).
    A range ``(a, b)`` may be reversed (``5:2`` equals ``2:5``).
    """

    ranges: tuple[tuple[int | None, int | None], ...] = ()
    saved: bool = False

    def resolve(self, largest: int) -> Iterator[tuple[int, int]]:
        """Yield ordered (low, high) pairs, ``*`` replaced by ``largest``.

        With ``largest == 0`` a ``*`` resolves to 0, which matches nothing valid (RFC 3501 §9:
        ``*`` is the largest number in use).
        """
        for a, b in self.ranges:
            lo = largest if a is None else a
            hi = largest if b is None else b
            if lo > hi:
                lo, hi = hi, lo
            yield lo, hi

    def merged(self, largest: int) -> list[tuple[int, int]]:
        """`resolve`'s pairs sorted, with overlapping and adjacent ones joined: what they
        cover costs no more than once however often a client repeats it (``1:*,1:*,...``
        10,000 times would otherwise name a large mailbox 10,000 times)."""
        out: list[tuple[int, int]] = []
        for lo, hi in sorted(self.resolve(largest)):
            if out and lo <= out[-1][1] + 1:
                if hi > out[-1][1]:
                    out[-1] = (out[-1][0], hi)
            else:
                out.append((lo, hi))
        return out

    def contains(self, n: int, largest: int) -> bool:
        return any(lo <= n <= hi for lo, hi in self.resolve(largest))

    def values(self, largest: int, limit: int | None = None) -> list[int]:
        """Every number in the set that is between 1 and ``limit`` (default ``largest``)."""
        cap = largest if limit is None else limit
        out: list[int] = []
        for lo, hi in self.merged(largest):
            out.extend(range(max(lo, 1), min(hi, cap) + 1))
        return out  # merged: ascending, each number once

    def __str__(self) -> str:
        if self.saved:
            return "$"

        def one(v: int | None) -> str:
            return "*" if v is None else str(v)

        return ",".join(one(a) if a == b else f"{one(a)}:{one(b)}" for a, b in self.ranges)

    @classmethod
    def from_values(cls, values: list[int] | tuple[int, ...] | set[int]) -> SequenceSet:
        """Compress numbers into ranges: [1,2,3,7] -> 1:3,7."""
        ranges: list[tuple[int | None, int | None]] = []
        for v in sorted(set(values)):
            if ranges and ranges[-1][1] == v - 1:
                ranges[-1] = (ranges[-1][0], v)
            else:
                ranges.append((v, v))
        return cls(tuple(ranges))


@dataclass(frozen=True, slots=True)
class Section:
    """A BODY[...] section spec (RFC 3501 §6.4.5).

    ``part`` is the part path (``(1, 2)`` for ``1.2``; empty for the whole message).
    ``text`` is one of None, "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME".
    ``fields`` holds the header names for the two HEADER.FIELDS forms, upper-cased.
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FetchAtt:
    """One fetch attribute after macro expansion.

    ``name`` is upper-case: ENVELOPE, FLAGS, INTERNALDATE, RFC822, RFC822.HEADER,
    RFC822.SIZE, RFC822.TEXT, BODY, BODYSTRUCTURE, UID, MODSEQ, SAVEDATE, BINARY,
    BINARY.SIZE. For BODY with a section (``BODY[...]``), ``section`` is set; ``BODY``
    without one is the non-extensible body structure. ``partial`` is ``<origin.count>``.
    """

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False
    lazy: bool = False  # PREVIEW (LAZY), RFC 8970 §4.1


@dataclass(frozen=True, slots=True)
class SearchKey:
    """A node of an RFC 3501 §6.4.4 search program.

    ``name`` is the upper-case key (ALL, ANSWERED, BCC, BEFORE, BODY, CC, DELETED, DRAFT,
    FLAGGED, FROM, HEADER, KEYWORD, LARGER, NEW, NOT, OLD, ON, OR, RECENT, SEEN, SENTBEFORE,
    SENTON, SENTSINCE, SINCE, SMALLER, SUBJECT, TEXT, TO, UID, UNANSWERED, UNDELETED,
    UNDRAFT, UNFLAGGED, UNKEYWORD, UNSEEN, MODSEQ, SAVEDBEFORE, SAVEDON, SAVEDSINCE,
    SAVEDATESUPPORTED, OLDER, YOUNGER) or two structural names: ``AND`` for a parenthesised
    list or the top-level list, ``SEQSET`` for a bare sequence set. ``value`` holds the
    argument (str, int, date or SequenceSet); ``header`` the HEADER field name;
    ``children`` the operands of AND/OR/NOT.
    """

    name: str
    value: str | int | dt.date | SequenceSet | None = None
    header: str | None = None
    children: tuple[SearchKey, ...] = ()
