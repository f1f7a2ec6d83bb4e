"""The layout of ENVELOPE, BODY and BODYSTRUCTURE rendered once, at APPEND, to the bytes
FETCH sends.

Owns: the opaque ``wire`` value the store keeps per stored message (store/sqlite
migration 0010, `store.api.MessageRecord.wire`) and cutting one answer out of it. The bytes
are made by THE renderer and THE serializer (`imapd.fetch.prerender`), so FETCH splicing
them sends exactly what rendering at FETCH time would (tests compare both over corpora);
only their cost moves to APPEND.

The serializer's choices differ with UTF8=ACCEPT (RFC 6855 §3: non-ASCII strings quoted
rather than sent as literals), so each answer is kept twice when the two differ. Layout::

    b"W1 " + six decimal lengths separated by spaces + b"\\n" + the six pieces

in the order ENVELOPE, BODY, BODYSTRUCTURE, then the same three for a UTF8=ACCEPT session;
a length 0 in the second three means "as the first" (no answer is ever empty).
"""

from __future__ import annotations

MAGIC = b"W1 "
#: The answers kept, by FETCH attribute name: their index in the layout.
ITEMS = {"ENVELOPE": 0, "BODY": 1, "BODYSTRUCTURE": 2}


def pack(plain: list[bytes], utf8: list[bytes]) -> bytes:
    """The ``wire`` value of the three answers as serialised without and with UTF8=ACCEPT."""
    pieces = plain + [b"" if u == p else u for u, p in zip(utf8, plain, strict=True)]
    head = MAGIC + b" ".join(b"%d" % len(p) for p in pieces) + b"\n"
    return head + b"".join(pieces)


def piece(wire: bytes, name: str, utf8: bool) -> bytes:
    """The answer for FETCH attribute ``name`` (ENVELOPE, BODY, BODYSTRUCTURE) in ``wire``.
    Raises ValueError for bytes of another layout (a change of layout needs a migration
    that drops the stored values, so that FETCH renders from the structure again)."""
    if not wire.startswith(MAGIC):
        raise ValueError("not a wire value of layout W1")
    end = wire.index(b"\n")
    lengths = wire[len(MAGIC) : end].split()
    i = ITEMS[name]
    if utf8 and lengths[i + 3] != b"0":
        i += 3
    start = end + 1
    for n in lengths[:i]:
        start += int(n)
    return wire[start : start + int(lengths[i])]
