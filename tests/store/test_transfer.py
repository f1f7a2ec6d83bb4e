"""store/mime/transfer.py: Content-Transfer-Encoding undone (RFC 2045 §6) for BINARY."""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store.mime import transfer
from store.mime.transfer import decode_transfer

SAMPLE = bytes(range(256)) * 3


@pytest.mark.parametrize("cte", ["7bit", "8BIT", "Binary", "", "  7BIT "])
def test_identity_encodings_pass_through(cte: str) -> None:
    assert decode_transfer(SAMPLE, cte) == SAMPLE


@pytest.mark.parametrize("cte", ["x-uuencode", "X-FOO", "base65", "quoted-printable2", "7 bit"])
def test_unknown_encoding_is_none(cte: str) -> None:
    # RFC 3516 §4.3: what the server cannot decode is UNKNOWN-CTE, never passed through.
    assert decode_transfer(b"abc", cte) is None


def test_base64_lines_and_case() -> None:
    encoded = base64.encodebytes(SAMPLE).replace(b"\n", b"\r\n")
    assert decode_transfer(encoded, "BASE64") == SAMPLE
    assert decode_transfer(encoded, "base64") == SAMPLE


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        (b"aGVs\r\nbG8=\r\n", b"hello"),
        (b"aGVs bG8", b"hello"),  # missing padding
        (b"aGVs*bG8=!!", b"hello"),  # RFC 2045 §6.8: characters outside the alphabet ignored
        (b"aGVsbG8=aGVsbG8=", b"hello"),  # "=" ends the data
        (b"aGVsbG8gd", b"hello w"[:6]),  # a lone sextet makes no octet
        (b"", b""),
        (b"====", b""),
        (b"\x00\xff\r\n", b""),
    ],
)
def test_base64_lenient(encoded: bytes, decoded: bytes) -> None:
    assert decode_transfer(encoded, "base64") == decoded


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        (b"caf=C3=A9\r\n", "café\r\n".encode()),
        (b"long=\r\nline\r\n", b"longline\r\n"),  # soft line break
        (b"long=\nline", b"longline"),  # after a bare LF too
        (b"trail   \r\nnext\t\r\n", b"trail\r\nnext\r\n"),  # RFC 2045 §6.7 rule 3
        (b"soft=  \r\nbreak", b"softbreak"),  # white space after "=" still a soft break
        (b"end  ", b"end"),
        (b"nul=00byte", b"nul\x00byte"),
        (b"bad=ZZ and =4", b"bad=ZZ and =4"),  # malformed escapes kept as written
        (b"=3D=3d", b"=="),
        (b"", b""),
    ],
)
def test_quoted_printable(encoded: bytes, decoded: bytes) -> None:
    assert decode_transfer(encoded, "Quoted-Printable") == decoded


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_base64_round_trip(data: bytes) -> None:
    assert decode_transfer(base64.encodebytes(data), "base64") == data


def _qp(data: bytes) -> bytes:
    """Quoted-printable of any octets: binary mode, so CR and LF are escaped too
    (`quopri.encodestring` treats them as line breaks and may turn CRLF into LF)."""
    return binascii.b2a_qp(data, quotetabs=True, istext=False)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_quoted_printable_round_trip(data: bytes) -> None:
    assert decode_transfer(_qp(data), "quoted-printable") == data


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from(["base64", "quoted-printable"]))
def test_never_raises_never_grows(data: bytes, cte: str) -> None:
    out = decode_transfer(data, cte)
    assert out is not None
    assert len(out) <= len(data)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600), st.sampled_from(["base64", "quoted-printable"]))
def test_pieces_change_nothing(data: bytes, cte: str) -> None:
    """Decoding in pieces (tiny here) gives what one piece gives."""
    encoded = base64.encodebytes(data) if cte == "base64" else _qp(data)
    whole = decode_transfer(encoded, cte)
    saved = transfer.PIECE
    transfer.PIECE = 8
    try:
        assert decode_transfer(encoded, cte) == whole == data
    finally:
        transfer.PIECE = saved


def test_large_body_in_pieces() -> None:
    data = bytes(range(256)) * (3 * transfer.PIECE // 256 + 7)
    assert decode_transfer(binascii.b2a_base64(data, newline=False), "base64") == data
    assert decode_transfer(_qp(data), "quoted-printable") == data
