"""APPEND's content_search texts (store/textsearch.py `search_texts`) are cut in one pass
over the header fields; they must equal, for every message, what SEARCH's per-key
definition (`header_parts`, one scan per key) gives: folded, encoded, repeated, missing,
odd-case and malformed fields, and a message with no header at all."""

from __future__ import annotations

import pytest

from store.mime import parse_message, structure_to_json
from store.mime.sections import header_spans
from store.mime.text import header_values
from store.textsearch import (
    STORED_KEYS,
    TextMatcher,
    header_parts,
    index_pieces,
    index_text,
    search_texts,
)

MESSAGES = [
    b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nbody\r\n",
    (
        b"from: =?UTF-8?B?SsO8cmdlbg==?= <j@example.org>\r\n"
        b'TO: a@example.org,\r\n  "B, C" <bc@example.org>\r\n'
        b"To: second@example.org\r\n"
        b"cc: =?ISO-8859-1?Q?Andr=E9?= <andre@example.org>\r\n"
        b"Bcc: hidden@example.org\r\n"
        b"Subject: =?UTF-8?Q?caf=C3=A9?=\r\n   folded\r\n"
        b"Subject: second subject\r\n"
        b"X-Other: From: not this\r\n"
        b"\r\nbody\r\n"
    ),
    b"Subject: only a subject\r\n\r\n",
    b"no header separator at all, just text",
    b"\r\nbody without header\r\n",
    b"From alice Mon Jan  1 00:00:00 2024\r\nFrom: x@example.org\r\nBroken header line\r\n\r\n",
    (
        b"Content-Type: multipart/mixed; boundary=b\r\nFrom: outer@example.org\r\n\r\n"
        b"--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@example.org\r\n"
        b"Subject: inner\r\n\r\ninner body\r\n--b--\r\n"
    ),
]


@pytest.mark.parametrize("raw", MESSAGES)
def test_one_pass_equals_the_per_key_definition(raw: bytes) -> None:
    structure = parse_message(raw)
    expected = tuple(
        "".join("\n" + p for p in header_parts(raw, structure, key)) for key in STORED_KEYS
    )
    assert search_texts(raw, structure) == expected


def test_the_texts_hold_what_search_looks_for() -> None:
    texts = dict(
        zip(STORED_KEYS, search_texts(MESSAGES[1], parse_message(MESSAGES[1])), strict=True)
    )
    assert "jürgen" in texts["FROM"] and "j@example.org" in texts["FROM"]
    assert "second@example.org" in texts["TO"] and "bc@example.org" in texts["TO"]
    assert "andré" in texts["CC"] and "hidden@example.org" in texts["BCC"]
    assert "café" in texts["SUBJECT"] and "second subject" in texts["SUBJECT"]
    assert "not this" not in texts["FROM"]


# --- issue 18: the PostgreSQL prefilter's text (store/postgres/trigram.py) -------------------
PIECE_MESSAGES = [
    *MESSAGES,
    (  # 8-bit header values (Latin-1, UTF-8), an encoded word split over a fold, repeats
        b"From: =?ISO-8859-1?Q?Fran=E7ois?= Gar\xe7on <fg@example.org>\r\n"
        b"To: \xc3\xa9milie <em@example.org>, em@example.org\r\n"
        b"Subject: =?UTF-8?Q?Stra=C3=9Fe?=\r\n =?UTF-8?Q?_und_Weg?= tail\r\n"
        b"X-Folded: first half\r\n\tsecond half\r\n"
        b"X-Note: caf\xe9 cr\xe8me\r\n"
        b"\r\nthe body says Stra\xc3\x9fe and stra\xc3\x9fe and STRASSE\r\n"
    ),
]


def _texts(raw: bytes) -> list[str]:
    """Every text `TextMatcher` searches in ``raw``, case-folded, as it searches them."""
    structure = parse_message(raw)
    matcher = TextMatcher()
    parsed = matcher._parsed(1, structure_to_json(structure))
    texts = [matcher._header_text(parsed, raw), matcher._body(parsed, raw).casefold()]
    for key in STORED_KEYS:
        texts.extend(header_parts(raw, structure, key))
    texts.extend(
        v.casefold()
        for start, end in header_spans(raw, structure)
        for v in header_values(raw, structure, raw[start:end].split(b":")[0].decode("latin-1"))
    )
    return texts


@pytest.mark.parametrize("raw", PIECE_MESSAGES)
def test_every_needle_a_text_key_matches_has_its_pieces_in_the_index_text(raw: bytes) -> None:
    """Any substring of any text SEARCH matches (so any needle it can find) has each of its
    whitespace-free pieces inside one piece of `index_text`, which holds each piece once."""
    structure = parse_message(raw)
    stored = index_text(raw, structure).split(" ")
    assert len(stored) == len(set(stored))
    for text in _texts(raw):
        for start in range(len(text)):
            for end in range(start + 1, min(len(text), start + 40) + 1):
                for piece in index_pieces(text[start:end]):
                    assert any(piece in s for s in stored), (piece, text)


def test_index_text_is_shorter_than_the_texts_it_stands_for() -> None:
    raw = PIECE_MESSAGES[-1]
    text = index_text(raw, parse_message(raw))
    assert "françois" in text and "garçon" in text and "émilie" in text  # decoded values
    assert "crème" in text  # a Latin-1 value as HEADER reads it (not the block's UTF-8)
    assert "straße" not in text and text.split().count("strasse") == 1  # case-folded
    assert text.split().count("em@example.org") == 1  # in To twice, in the address text
    assert len(text) < len("\n".join(_texts(raw)))
    assert index_pieces("  Zwei  WORTE zwei ") == ["zwei", "worte"]
    assert index_pieces(" \t") == []
