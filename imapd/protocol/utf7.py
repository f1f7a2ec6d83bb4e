"""Modified UTF-7 for mailbox names (RFC 3501 §5.1.3).

Owns: `encode` (Unicode -> modified UTF-7) and `decode` (the reverse, strict). Only the
canonical form is accepted, so ``encode(decode(s)) == s`` for every ``s`` that decodes: a
client cannot name one mailbox two ways. Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

import binascii

_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"
_B64_SET = frozenset(_B64.decode())


def _direct(ch: str) -> bool:
    """RFC 3501 §5.1.3: printable US-ASCII (0x20-0x7e) represents itself, except "&"."""
    return "\x20" <= ch <= "\x7e"


def _encode_run(run: str) -> str:
    data = run.encode("utf-16-be")  # raises UnicodeEncodeError (a ValueError) on lone surrogates
    b64 = binascii.b2a_base64(data, newline=False).decode("ascii")
    return "&" + b64.rstrip("=").replace("/", ",") + "-"


def encode(name: str) -> str:
    """Encode a Unicode mailbox name; "&" becomes "&-" (RFC 3501 §5.1.3)."""
    out: list[str] = []
    run: list[str] = []
    for ch in name:
        if _direct(ch):
            if run:
                out.append(_encode_run("".join(run)))
                run.clear()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    if run:
        out.append(_encode_run("".join(run)))
    return "".join(out)


def _decode_run(b64: str) -> str:
    """One shifted run (between "&" and "-"), rejecting every non-canonical spelling."""
    if len(b64) % 4 == 1:
        raise ValueError("modified UTF-7: truncated base64")
    padded = b64.replace(",", "/") + "=" * (-len(b64) % 4)
    try:
        data = binascii.a2b_base64(padded, strict_mode=True)
    except binascii.Error as exc:
        raise ValueError(f"modified UTF-7: bad base64 ({exc})") from None
    # Shortest form: the leftover bits must be zero (re-encoding gives the same text).
    if binascii.b2a_base64(data, newline=False).decode("ascii").rstrip("=") != padded.rstrip("="):
        raise ValueError("modified UTF-7: non-zero padding bits")
    if len(data) % 2:
        raise ValueError("modified UTF-7: odd number of UTF-16 octets")
    try:
        text = data.decode("utf-16-be")
    except UnicodeDecodeError:
        raise ValueError("modified UTF-7: invalid UTF-16") from None
    if any(_direct(ch) for ch in text):
        raise ValueError("modified UTF-7: printable ASCII must not be encoded")
    return text


def decode(name: str) -> str:
    """Decode a modified UTF-7 mailbox name; raise ValueError on anything malformed.

    Rejected: characters outside 0x20-0x7e, "&" without a closing "-", base64 outside the
    modified alphabet, non-zero padding bits, odd UTF-16 lengths, unpaired surrogates,
    printable ASCII spelled in base64, and two adjacent shifted runs (not canonical).
    """
    out: list[str] = []
    i = 0
    n = len(name)
    last_run_end = -1
    while i < n:
        ch = name[i]
        if not _direct(ch):
            raise ValueError(f"modified UTF-7: character {ch!r} must be encoded")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = name.find("-", i + 1)
        if end < 0:
            raise ValueError("modified UTF-7: '&' without closing '-'")
        b64 = name[i + 1 : end]
        if not b64:
            out.append("&")
        else:
            if any(c not in _B64_SET for c in b64):
                raise ValueError("modified UTF-7: invalid base64 character")
            if last_run_end == i:
                raise ValueError("modified UTF-7: adjacent encoded runs")
            out.append(_decode_run(b64))
            last_run_end = end + 1
        i = end + 1
    return "".join(out)
