"""The server's ENVELOPE/BODYSTRUCTURE renderer for events says what FETCH would say."""

from __future__ import annotations

import pytest

from imapd.fetch import render_bodystructure, render_envelope
from imapd.protocol.serializer import serialize_value
from imapd.server import _renderer
from store import mime
from tests.e2e.messages import NESTED, SIMPLE

ODD = (
    b'From: "Q \\"uote\\"" <q@example.org>\r\nSubject: caf\xc3\xa9 \\ back\r\n'
    b"To: undisclosed-recipients:;\r\n\r\nx\r\n"
)


@pytest.mark.parametrize("raw", [SIMPLE, NESTED, ODD, b"\r\n"])
def test_same_text_as_fetch(raw: bytes) -> None:
    part = mime.parse_message(raw)
    stored = mime.structure_to_json(part)
    render = _renderer()
    assert (
        render.envelope(stored)
        == serialize_value(render_envelope(part.envelope), utf8=True).decode()
    )
    assert (
        render.bodystructure(stored)
        == serialize_value(render_bodystructure(part, extensible=True), utf8=True).decode()
    )
