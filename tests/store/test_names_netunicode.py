"""store/names.py `validate`: RFC 9051 §5.1 "Server implementations MUST prohibit the
creation of 8-bit mailbox names that do not comply with Net-Unicode" (RFC 5198 §2: NFC,
no control characters)."""

from __future__ import annotations

import pytest

from store import names
from store.errors import MailboxInvalid


@pytest.mark.parametrize(
    "name",
    [
        "Entwu\u0308rfe",  # NFD: u + COMBINING DIAERESIS
        "A\u030a",  # NFD of Å
        "C1\u0085",  # NEL, a C1 control
        "C1\u0090x",
        "C0\x01",
        "del\x7f",
    ],
)
def test_refused(name: str) -> None:
    with pytest.raises(MailboxInvalid):
        names.validate(name)


@pytest.mark.parametrize("name", ["Entwürfe", "Å/日本語", "INBOX/x", "a\u00a0b", "emoji 📬"])
def test_accepted(name: str) -> None:
    assert names.validate(name) == name
