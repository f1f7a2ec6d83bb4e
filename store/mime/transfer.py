"""Content-Transfer-Encoding undone (RFC 2045 §6), for BINARY (RFC 3516) and URLAUTH=BINARY.

Owns: `decode_transfer`, the one decoder of a part's body: base64 and quoted-printable decoded,
7bit, 8bit and binary passed through, any other encoding refused (None: RFC 3516 §4.3's
``UNKNOWN-CTE``). Pure and stdlib only; imports nothing of imapd, notify or the backends.

Decoding is lenient, as RFC 2045 asks of readers: base64 ignores every character outside its
alphabet (§6.8) and ends at the first ``=``; quoted-printable drops trailing white space on
each line (§6.7 rule 3), keeps a malformed ``=XY`` as written (§6.7 note 1) and honours soft
line breaks after CRLF or a bare LF. The result is never larger than the input.

Large bodies are decoded in pieces of `PIECE` octets (cut on a base64 quantum or after a line
end), so a caller running this in a worker thread gives the GIL back between pieces and the
event loop is never held for long (cf. store/mime/text.py's ``_decode_in_pieces``).
"""

from __future__ import annotations

import binascii

#: Bodies are decoded in pieces of about this many octets.
PIECE = 1 << 20

#: The encodings `decode_transfer` knows, lower-case (RFC 2045 §6.1; "" is an absent field,
#: which means 7bit).
KNOWN = frozenset({"", "7bit", "8bit", "binary", "base64", "quoted-printable"})

_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
#: Every other octet, deleted by `bytes.translate` (C speed: a regex took 50 ns per line end).
_NOT_BASE64 = bytes(sorted(set(range(256)) - set(_BASE64_ALPHABET)))
#: A space or tab before a line end: only then does quoted-printable need the line-by-line
#: pass (substring searches run at C speed; a regex over every space did not).
_TRAILING_SPACE = (b" \n", b"\t\n", b" \r\n", b"\t\r\n")


def decode_transfer(body: bytes, cte: str) -> bytes | None:
    """``body`` with the Content-Transfer-Encoding ``cte`` (any case, as BodyPart.encoding
    holds it) undone; None when ``cte`` is not one of `KNOWN` (RFC 3516 §4.3: the server
    cannot decode it). Never raises on malformed input."""
    match cte.strip().lower():
        case "" | "7bit" | "8bit" | "binary":
            return body
        case "base64":
            return _base64(body)
        case "quoted-printable":
            return _quoted_printable(body)
        case _:
            return None


def _base64(body: bytes) -> bytes:
    clean = body.translate(None, _NOT_BASE64)
    end = clean.find(b"=")  # RFC 2045 §6.8: "=" marks the end of the encoded data
    if end >= 0:
        clean = clean[:end]
    rest = len(clean) % 4
    if rest == 1:  # six bits are no octet: dropped
        clean = clean[:-1]
        rest = 0
    view = memoryview(clean)
    whole = len(clean) - rest
    out = [binascii.a2b_base64(view[i : min(i + PIECE, whole)]) for i in range(0, whole, PIECE)]
    if rest:
        out.append(binascii.a2b_base64(bytes(view[whole:]) + b"=" * (4 - rest)))
    return b"".join(out)


def _quoted_printable(body: bytes) -> bytes:
    out: list[bytes] = []
    start = 0
    while start < len(body):
        end = len(body) if len(body) - start <= PIECE else body.find(b"\n", start + PIECE) + 1
        if end <= 0:  # no line end after the piece: the rest is one line
            end = len(body)
        out.append(binascii.a2b_qp(_without_trailing_space(body[start:end])))
        start = end
    return b"".join(out)


def _without_trailing_space(piece: bytes) -> bytes:
    if not piece.endswith((b" ", b"\t")) and not any(t in piece for t in _TRAILING_SPACE):
        return piece
    lines = piece.split(b"\n")
    for i, line in enumerate(lines):
        if line.endswith(b"\r"):
            lines[i] = line[:-1].rstrip(b" \t") + b"\r"
        else:
            lines[i] = line.rstrip(b" \t")
    return b"\n".join(lines)
