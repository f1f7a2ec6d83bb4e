"""store/mime/preview.py: the RFC 8970 preview text of a message."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store.mime import parse_message
from store.mime.preview import ENCODED_LIMIT, LENGTH, _html_text, preview_source, preview_text


def preview(message: bytes) -> str:
    return preview_text(message, parse_message(message))


def part(ctype: str, body: bytes, cte: str = "7bit", extra: str = "") -> bytes:
    head = f"Content-Type: {ctype}\r\nContent-Transfer-Encoding: {cte}\r\n{extra}\r\n"
    return head.encode() + body


def multipart(subtype: str, *parts: bytes) -> bytes:
    out = [f'MIME-Version: 1.0\r\nContent-Type: multipart/{subtype}; boundary="zz"\r\n\r\n']
    body = b"".join(b"--zz\r\n" + p + b"\r\n" for p in parts)
    return out[0].encode() + body + b"--zz--\r\n"


def test_plain_text_whitespace_normalised() -> None:
    assert preview(b"Subject: x\r\n\r\n  Hello,\r\n\r\n\tworld\xc2\xa0again  \r\n") == (
        "Hello, world again"
    )


def test_not_mime_and_empty() -> None:
    assert preview(b"Subject: x\r\n\r\n") == ""
    assert preview(b"no header at all") == ""


def test_first_text_part_depth_first_skipping_attachments() -> None:
    message = b"Subject: x\r\n" + multipart(
        "mixed",
        part("image/png", base64.encodebytes(b"\x89PNG"), "base64"),
        part("text/plain", b"an attachment", extra="Content-Disposition: attachment\r\n"),
        part("text/plain; charset=iso-8859-1", b"caf=E9 cr=E8me", "quoted-printable"),
        part("text/plain", b"second text"),
    )
    assert preview(message) == "café crème"


def test_html_stripped() -> None:
    html = (
        b"<!DOCTYPE html><html><head><title>T</title><style>p{color:red}</style></head>"
        b"<body><!-- hidden --><p>Hello&nbsp;<b>Wor</b>ld</p><div>next&amp;<br>line</div>"
        b"<script>var a = '<p>no</p>';</script>a &lt; b</body></html>"
    )
    message = b"Subject: x\r\n" + multipart("alternative", part("text/html", html))
    assert preview(message) == "Hello World next& line a < b"


def test_base64_text_utf8_and_invisible_padding() -> None:
    text = "\u200b\u034f Grüße \ufeffaus Köln \x00\x07!".encode()
    message = b"Subject: x\r\n" + part(
        "text/plain; charset=utf-8", base64.encodebytes(text), "base64"
    )
    assert preview(message) == "Grüße aus Köln !"


def test_no_text_part_is_empty() -> None:
    """RFC 8970 §3.2: no meaningful preview (an image, an encrypted message): ""."""
    image = b"Subject: x\r\n" + part("image/jpeg", base64.encodebytes(b"\xff\xd8"), "base64")
    assert preview(image) == ""
    encrypted = b"Subject: x\r\n" + multipart(
        "encrypted",
        part("application/pgp-encrypted", b"Version: 1"),
        part("application/octet-stream", b"-----BEGIN PGP MESSAGE-----"),
    )
    assert preview(encrypted) == ""
    unknown = b"Subject: x\r\n" + part("text/plain", b"begin 644 x", "x-uuencode")
    assert preview(unknown) == ""


def test_encapsulated_message_text() -> None:
    inner = b"Subject: inner\r\n\r\nforwarded words\r\n"
    message = b"Subject: x\r\n" + multipart("mixed", part("message/rfc822", inner))
    assert preview(message) == "forwarded words"


@pytest.mark.parametrize("char", ["a", "é", "€", "𝄞", "日"])
def test_at_most_200_characters_never_cutting_a_character(char: str) -> None:
    """RFC 8970 §3.3: SHOULD 200 preview characters, MUST NOT exceed 256; a preview
    character is one UCS character in UTF-8, so a cut never splits its octets."""
    body = (char * 6 + " ") * 200
    head = b"Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    got = preview(head + body.encode())
    assert len(got) == LENGTH  # the 200th character is not a space here
    assert got == body[:LENGTH]
    got.encode("utf-8").decode("utf-8")  # whole characters only


def test_long_body_read_only_up_to_the_limit() -> None:
    """Only ENCODED_LIMIT octets are read: a multi-megabyte body costs no more."""
    body = b"x " * (4 << 20)
    message = b"Subject: x\r\n\r\n" + body
    structure = parse_message(message)
    source = preview_source(structure)
    assert source is not None and source[2] - source[1] == ENCODED_LIMIT < len(body)
    assert preview_text(message, structure) == ("x " * 100).rstrip()


@pytest.mark.parametrize(
    "html",
    [
        "<!--" * 8000,
        "<" * 32768,
        "<a" * 16000,
        "</" * 16000,
        "<![CDATA[" * 3000,
        "<a b='<' c=\"\" d " * 1500,
        "<div>" * 6000,
        "&" * 32768,
        "<script>" + "</scrip" * 4000,
    ],
)
def test_hostile_html_is_linear(html: str) -> None:
    """Shapes that took html.parser seconds (quadratic on unclosed constructs) give a
    bounded answer; the scanner is one pass of str.find."""
    assert len(_html_text(html)) <= len(html)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_never_raises_and_stays_bounded(body: bytes) -> None:
    for ctype in ("text/plain", "text/html"):
        for cte in ("7bit", "base64", "quoted-printable"):
            got = preview(b"Subject: x\r\n" + part(ctype + "; charset=utf-8", body, cte))
            assert len(got) <= LENGTH
            assert got == got.strip()
            assert "  " not in got
            assert all(ch.isprintable() for ch in got)
