"""Modified UTF-7 (RFC 3501 §5.1.3): examples, canonical form, malformed input."""

from __future__ import annotations

import pytest

from imapd.protocol.utf7 import decode, encode

PAIRS = [
    ("INBOX", "INBOX"),
    ("", ""),
    ("&", "&-"),
    ("a&b&&", "a&-b&-&-"),
    ("Entw\u00fcrfe", "Entw&APw-rfe"),
    # RFC 3501 §5.1.3's example
    ("~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("\U0001f600", "&2D3eAA-"),
    ("\u00e9\u20ac", "&AOkgrA-"),
    ("tab\there", "tab&AAk-here"),
    ("\x7f", "&AH8-"),
    ("\u00e9&\u00e9", "&AOk-&-&AOk-"),
]


@pytest.mark.parametrize(("text", "wire"), PAIRS)
def test_encode(text: str, wire: str) -> None:
    assert encode(text) == wire


@pytest.mark.parametrize(("text", "wire"), PAIRS)
def test_decode(text: str, wire: str) -> None:
    assert decode(wire) == text


@pytest.mark.parametrize(
    "wire",
    [
        "&",  # no closing "-"
        "&U,BTFw",  # no closing "-"
        "&U/BTFw-",  # "/" is not modified base64
        "&U,BT!w-",  # not base64
        "&AGE-",  # "a" must be direct
        "&ACY-",  # "&" must be "&-"
        "&AOk-&AOk-",  # adjacent runs: not canonical
        "&AOl-",  # non-zero padding bits
        "&AO-",  # 1 octet: odd UTF-16 length
        "&A-",  # truncated base64
        "&2D0-",  # lone high surrogate
        "&3gA-",  # lone low surrogate
        "\u00e9",  # non-ASCII must be encoded
        "a\tb",  # control characters must be encoded
        "&AOk=-",  # no base64 padding
    ],
)
def test_decode_rejects(wire: str) -> None:
    with pytest.raises(ValueError, match="modified UTF-7"):
        decode(wire)


def test_encode_rejects_lone_surrogates() -> None:
    with pytest.raises(ValueError):
        encode("\ud800")
