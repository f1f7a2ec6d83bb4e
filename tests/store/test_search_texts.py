"""APPEND's content_search texts (store/textsearch.py `search_texts`) are cut in one pass
over the header fields; they must equal, for every message, what SEARCH's per-key
definition (`header_parts`, one scan per key) gives: folded, encoded, repeated, missing,
odd-case and malformed fields, and a message with no header at all."""

from __future__ import annotations

import pytest

from store.mime import parse_message
from store.textsearch import STORED_KEYS, header_parts, search_texts

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
