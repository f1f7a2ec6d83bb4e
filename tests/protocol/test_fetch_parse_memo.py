"""FETCH's attribute lists parsed once per distinct octets (imapd/protocol/parser/message.py,
issue 17): a repeated list parses to what a fresh parse gives, counts its arguments against
the limit each time, depends on UID FETCH or FETCH, and a list holding a literal is parsed
afresh (its octets are not in the command text)."""

from __future__ import annotations

import pytest

from imapd.protocol import commands as cmd
from imapd.protocol.errors import BadCommand
from imapd.protocol.parser import message as fetch_parser
from imapd.protocol.parser import parse_command
from imapd.protocol.state import Selected
from imapd.protocol.values import FetchAtt, Section
from tests.protocol.feeding import connection, feed

LIST = b"(UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.50> ENVELOPE) (CHANGEDSINCE 7)"


def test_a_repeated_list_parses_as_the_first_time() -> None:
    fetch_parser._FETCH_TAILS.clear()
    first = parse_command(b"a FETCH 1:5 " + LIST)
    assert fetch_parser._FETCH_TAILS  # kept
    again = parse_command(b"b FETCH 3,9 " + LIST)
    assert isinstance(first, cmd.Fetch) and isinstance(again, cmd.Fetch)
    assert again.atts == first.atts and again.changedsince == first.changedsince == 7
    assert (again.tag, str(again.sequence_set)) == ("b", "3,9")
    assert first.atts[2] == FetchAtt(
        "BODY", Section((), "HEADER.FIELDS", ("FROM", "TO")), (0, 50), peek=True
    )
    # The arguments still count against the limit: the same limits refuse it.
    assert [_refused(n, fresh=False) for n in range(12)] == [
        _refused(n, fresh=True) for n in range(12)
    ]
    assert _refused(4, fresh=False) and not _refused(11, fresh=False)


def _refused(max_args: int, *, fresh: bool) -> bool:
    if fresh:
        fetch_parser._FETCH_TAILS.clear()
    try:
        parse_command(b"c FETCH 1 " + LIST, max_args=max_args)
    except BadCommand as exc:
        assert "Too many arguments" in str(exc)
        return True
    return False


def test_uid_and_vanished_are_part_of_the_key() -> None:
    tail = b"(FLAGS) (CHANGEDSINCE 4 VANISHED)"
    uid = parse_command(b"a UID FETCH 1:* " + tail)
    assert isinstance(uid, cmd.Fetch) and uid.vanished
    with pytest.raises(BadCommand, match="VANISHED needs UID FETCH"):
        parse_command(b"b FETCH 1:* " + tail)


def test_a_list_with_a_literal_is_parsed_afresh() -> None:
    conn = connection(Selected("u", "INBOX", False))
    got = []
    for name in (b"FROM", b"DATE"):
        line = b"a FETCH 1 (BODY.PEEK[HEADER.FIELDS ({4+}\r\n" + name + b")])\r\n"
        [event] = feed(conn, [line])
        assert isinstance(event, cmd.Fetch)
        got += [a.section.fields for a in event.atts if a.section]
    assert got == [("FROM",), ("DATE",)]
