"""The events' envelope and bodyStructure cut from the bytes APPEND pre-rendered for FETCH
(`MessageFacts.wire`, carried by the published Change only) are the text rendered from the
stored structure (what a sink reading the change_log sends): the Cyrus JSON is the same
bytes either way (docs/events.md "Serialisation")."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from imapd.fetch import prerender
from imapd.server import _renderer
from notify.cyrus import Format, event_fields, to_json
from notify.events import events_for
from store.changes import Counts, MailboxRef, MessageFacts, MessagesAdded, Origin, read_change
from store.changes import to_json as change_json
from store.mime import parse_message, structure_to_json
from tests.protocol.test_fetch_wire import MESSAGES

RENDERER = _renderer()
AT = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


def _facts(raw: bytes) -> MessageFacts:
    parsed = parse_message(raw)
    return MessageFacts(
        7, 3, ("\\Seen",), len(raw), AT, None, structure_to_json(parsed), 42, prerender(parsed)
    )


@pytest.mark.parametrize("raw", MESSAGES)
def test_wire_text_is_the_rendered_text(raw: bytes) -> None:
    facts = _facts(raw)
    assert facts.structure is not None and facts.wire is not None
    assert RENDERER.text(facts, "ENVELOPE") == RENDERER.envelope(facts.structure)
    assert RENDERER.text(facts, "BODYSTRUCTURE") == RENDERER.bodystructure(facts.structure)


@pytest.mark.parametrize("raw", MESSAGES)
def test_published_and_logged_change_give_the_same_json(raw: bytes) -> None:
    published = MessagesAdded(
        9,
        AT,
        Origin("sess", "bob", "imap", "127.0.0.1:1"),
        MailboxRef(1, "bob", "INBOX", 77),
        Counts(1, 0, 8, 3, len(raw)),
        (_facts(raw),),
    )
    # The change_log keeps no wire: a sink catching up from the log renders.
    logged = read_change("MessagesAdded", 9, change_json(published))
    assert isinstance(logged, MessagesAdded)
    assert logged.messages[0].wire is None
    assert dataclasses.replace(published.messages[0], wire=None) == logged.messages[0]
    fmt = Format(renderer=RENDERER)
    [live] = events_for(published)
    [read] = events_for(logged)
    fields = event_fields(live, fmt, pid=1)
    assert "vnd.cmu.envelope" in fields and "bodyStructure" in fields
    assert to_json(fields) == to_json(event_fields(read, fmt, pid=1))
