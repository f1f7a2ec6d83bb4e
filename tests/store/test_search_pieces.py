"""SEARCH BODY over long text parts: decoded and case-folded in pieces (store.mime_text
PIECE), with the same answers as over the whole text (a match across a piece boundary,
a multi-octet character cut by one, a character that folds to two)."""

from __future__ import annotations

from store import mime
from store.mime.text import _decode_in_pieces
from store.sqlite import search


def _matcher_hits(body: bytes, needle: str, charset: str = "utf-8") -> bool:
    raw = (f"Subject: x\r\nContent-Type: text/plain; charset={charset}\r\n\r\n").encode() + body
    structure = mime.parse_message(raw)
    return bool(
        search.TextMatcher().text(1, raw, mime.structure_to_json(structure), "BODY", None, needle)
    )


def test_match_across_a_piece_boundary() -> None:
    body = b"a" * (mime.PIECE - 3) + b"NeEdLe" + b"b" * mime.PIECE
    assert _matcher_hits(body, "needle")
    assert not _matcher_hits(body, "needles")


def test_multibyte_character_cut_by_a_piece_and_folding() -> None:
    body = b"x" * (mime.PIECE - 1) + "\u00dfTRASSE".encode() + b"y" * 10
    assert _decode_in_pieces(body, "utf-8") == body.decode("utf-8")
    assert _matcher_hits(body, "sstrasse")  # ß folds to "ss"
    latin = b"z" * (mime.PIECE + 5) + "caf\u00e9".encode("latin-1")
    assert _decode_in_pieces(latin, "iso-8859-1").endswith("caf\u00e9")
    assert _decode_in_pieces(latin, "no-such-charset") == latin.decode("utf-8", "replace")
