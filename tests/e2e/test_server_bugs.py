"""A bug in a handler is answered ``NO [SERVERBUG]`` and the connection goes on, wherever
the handler runs: also a SASL exchange's second step, which once ran outside the
dispatcher's exception handling and closed the connection without a reply."""

from __future__ import annotations

import base64
import logging

import pytest

import imapd.commands.auth
from imapd.commands.base import Outcome
from imapd.commands.context import Context
from imapd.protocol.values import Secret
from tests.conftest import PASSWORD, RunningServer
from tests.rawclient import RawClient


class InjectedBug(RuntimeError):
    pass


def _forget_injected(records_owner: logging.Logger) -> None:
    """The server logs the bug with its traceback, as it must; the test fixture fails a
    test on any such record, so drop the ones this test caused, and only them."""
    for handler in records_owner.handlers:
        records = getattr(handler, "records", None)
        if isinstance(records, list):
            records[:] = [r for r in records if not (r.exc_info and r.exc_info[0] is InjectedBug)]


def test_a_bug_in_the_sasl_response_step_is_answered_serverbug(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(session: Context, data: Secret | None) -> Outcome:
        raise InjectedBug("injected")

    monkeypatch.setattr(imapd.commands.auth, "finish_authenticate", broken)
    client = RawClient.connect(server.host, server.port)
    try:
        client.response()  # greeting
        client.line("a AUTHENTICATE PLAIN")
        assert client.response() == "+ "
        client.line(base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode())
        assert client.response() == "a NO [SERVERBUG] Internal error"
        monkeypatch.undo()
        tagged = client.command("l", f"LOGIN alice {PASSWORD}")[-1]  # the connection goes on
        assert tagged.startswith("l OK"), tagged
        assert client.ok("n", "NOOP")[-1] == "n OK NOOP completed"
    finally:
        client.close()
        _forget_injected(logging.getLogger("imapd"))
