"""RFC 9586 §3: which parsed commands name messages by number once UIDONLY is enabled
(imapd/protocol/uidonly.py). Rows: command line -> refused (True) or allowed (False); the
hostile ones hide a number deep in a search program or behind a UID form."""

from __future__ import annotations

import pytest

from imapd.protocol.parser import parse_command
from imapd.protocol.uidonly import message_numbers

ROWS: list[tuple[bytes, bool]] = [
    # §3.2: FETCH, STORE, SEARCH, COPY, MOVE "are prohibited"
    (b"a FETCH 1 (FLAGS)", True),
    (b"a FETCH * (FLAGS)", True),
    (b"a FETCH $ (FLAGS)", True),  # the command itself is prohibited, whatever its set
    (b"a STORE 1:* +FLAGS (\\Seen)", True),
    (b"a SEARCH ALL", True),
    (b"a COPY 1 Trash", True),
    (b"a MOVE 1 Trash", True),
    # §3.3-3.6: their UID forms are the way
    (b"a UID FETCH 1:* (FLAGS)", False),
    (b"a UID FETCH * (FLAGS)", False),  # "*" in a UID set is the highest UID
    (b"a UID FETCH $ (FLAGS)", False),
    (b"a UID STORE 5 +FLAGS (\\Seen)", False),
    (b"a UID COPY 1:3 Trash", False),
    (b"a UID MOVE 1:3 Trash", False),
    (b"a UID EXPUNGE 1:3", False),
    (b"a EXPUNGE", False),
    # §3.5: the <sequence set> criterion, at any depth
    (b"a UID SEARCH 1:5", True),
    (b"a UID SEARCH *", True),
    (b"a UID SEARCH NOT 1", True),
    (b"a UID SEARCH OR SEEN (UNSEEN (FLAGGED 2,4))", True),
    (b"a UID SEARCH " + b"NOT " * 20 + b"3", True),
    (b"a UID SEARCH RETURN (COUNT) CHARSET UTF-8 OR 1 ALL", True),
    (b"a UID SEARCH UID 1:5", False),
    (b"a UID SEARCH ALL", False),
    (b"a UID SEARCH $", False),  # the saved result: UIDs
    (b"a UID SEARCH OR UID 1 (NOT UID 2)", False),
    # §3.8: SORT and THREAD like SEARCH; REPLACE takes a message number (RFC 8508)
    (b"a SORT (DATE) UTF-8 ALL", True),
    (b"a THREAD REFERENCES UTF-8 ALL", True),
    (b"a UID SORT (DATE) UTF-8 ALL", False),
    (b"a UID SORT (DATE) UTF-8 NOT 7", True),
    (b"a UID THREAD REFERENCES UTF-8 ALL", False),
    (b"a UID THREAD ORDEREDSUBJECT UTF-8 OR 1 2", True),
    # §3.7: the fourth QRESYNC parameter (message sequence match data)
    (b"a SELECT INBOX (QRESYNC (1 2 1:5 (1:3 1:3)))", True),
    (b"a SELECT INBOX (QRESYNC (1 2 1:5))", False),
    (b"a SELECT INBOX", False),
    # No message numbers at all
    (b"a NOOP", False),
    (b'a LIST "" *', False),
    (b"a STATUS INBOX (MESSAGES)", False),
]


@pytest.mark.parametrize(("line", "refused"), ROWS, ids=[r[0].decode() for r in ROWS])
def test_message_numbers(line: bytes, refused: bool) -> None:
    why = message_numbers(parse_command(line))
    assert (why is not None) is refused, why


def test_replace_by_number_is_refused() -> None:
    body = b"Subject: x\r\n"
    line = b"a REPLACE 1 INBOX {12}"
    assert message_numbers(parse_command(line, ((len(line), body),))) is not None
    line = b"a UID REPLACE 1 INBOX {12}"
    assert message_numbers(parse_command(line, ((len(line), body),))) is None
